"""``docs/configuration.md`` is what ``fatigue-guard config-reference`` generates from Settings."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fatigue_guard.cli.config_reference import (
    GENERATE_COMMAND,
    env_names,
    settings_reference,
)
from fatigue_guard.cli.main import app
from fatigue_guard.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_docs_configuration_is_the_generated_reference() -> None:
    assert DOC.read_text(encoding="utf-8") == settings_reference(), (
        f"docs/configuration.md is stale: run `{GENERATE_COMMAND}`"
    )


def test_every_setting_has_one_row_with_its_environment_variables() -> None:
    text = settings_reference()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    for name, field in Settings.model_fields.items():
        names = env_names(name, field)
        assert names, name
        matching = [row for row in rows if all(f"`{env}`" in row for env in names)]
        assert len(matching) == 1, (name, names)
    assert env_names("mlflow_tracking_uri", Settings.model_fields["mlflow_tracking_uri"]) == [
        "MLFLOW_TRACKING_URI",
        "FATIGUE_GUARD_MLFLOW_TRACKING_URI",
    ]
    assert env_names("home", Settings.model_fields["home"]) == ["FATIGUE_GUARD_HOME"]


def test_the_command_prints_or_writes_the_reference(tmp_path: Path) -> None:
    printed = CliRunner().invoke(app, ["config-reference"])
    assert printed.exit_code == 0, printed.output
    assert printed.output == settings_reference()
    out = tmp_path / "docs" / "configuration.md"
    written = CliRunner().invoke(app, ["config-reference", "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert out.read_text(encoding="utf-8") == settings_reference()
