"""``fatigue-guard config-reference``: the reference of every setting, generated from the code.

:func:`settings_reference` renders :class:`~fatigue_guard.config.Settings` as markdown: each
field's environment variable (prefix and aliases as the class defines them), type, default,
allowed values and description, then the locations derived from ``FATIGUE_GUARD_HOME``.
``docs/configuration.md`` is this text; a test compares the two, so the page cannot go stale.

pydantic and the settings are imported inside the functions, so that importing the command
(``fatigue-guard --help``) stays cheap.
"""

from __future__ import annotations

import json
import textwrap
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

GENERATE_COMMAND = "fatigue-guard config-reference --out docs/configuration.md"

# Stands in for FATIGUE_GUARD_HOME when the derived locations are rendered.
_HOME = Path("/FATIGUE_GUARD_HOME")
_HOME_TEXT = "$FATIGUE_GUARD_HOME"


def env_names(name: str, field: FieldInfo) -> list[str]:
    """The environment variables a field is read from, in the order they are looked up."""
    from pydantic import AliasChoices, AliasPath

    from fatigue_guard.config import Settings

    alias = field.validation_alias or field.alias
    if isinstance(alias, AliasChoices):
        return [c if isinstance(c, str) else str(c.path[0]) for c in alias.choices]
    if isinstance(alias, AliasPath):
        return [str(alias.path[0])]
    if isinstance(alias, str):
        return [alias]
    prefix = Settings.model_config.get("env_prefix", "")
    return [f"{prefix}{name}".upper()]


def _type_name(annotation: Any) -> str:
    from pydantic import SecretStr

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin is dict or annotation is dict:
        return "JSON object"
    if origin in (list, tuple, set, frozenset):
        return "JSON list"
    names = {bool: "bool", int: "int", float: "float", str: "str", Path: "path"}
    if annotation is SecretStr:
        return "secret"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _default(field: FieldInfo) -> str:
    from pydantic import SecretStr

    value = field.get_default(call_default_factory=True)
    if value is None:
        return "*unset*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"`{_number(value)}`"
    if isinstance(value, SecretStr):
        return "*(secret)*"
    if isinstance(value, dict | list | tuple):
        return f"`{json.dumps(value)}`"
    return f"`{value}`" if str(value) else '`""`'


def _allowed(field: FieldInfo) -> str:
    rules = []
    for item in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(item, attr, None)
            if isinstance(bound, int | float) and not isinstance(bound, bool):
                rules.append(f"{sign} {_number(bound)}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            rules.append(f"matches `{pattern}`")
    return ", ".join(rules)


def _cell(text: str) -> str:
    """One table cell: a single line, with pipes escaped (GitHub also needs it in code spans)."""
    return " ".join(text.split()).replace("|", "\\|")


def _settings_rows() -> list[str]:
    from fatigue_guard.config import Settings

    rows = [
        "| environment variable | type | default | allowed | description |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        variables = " or ".join(f"`{env}`" for env in env_names(name, field))
        cells = (
            variables,
            _type_name(field.annotation),
            _default(field),
            _allowed(field),
            field.description or "—",
        )
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _derived_rows() -> list[str]:
    from fatigue_guard.config import Settings

    # model_construct: the defaults, without reading the environment.
    settings = Settings.model_construct(home=_HOME)
    rows = ["| `Settings` property | default | note |", "|---|---|---|"]
    for name, member in vars(Settings).items():
        if not isinstance(member, property):
            continue
        value = str(getattr(settings, name))
        if str(_HOME) not in value:
            continue
        value = value.replace(str(_HOME), _HOME_TEXT)
        doc = (member.__doc__ or "").strip().split("\n\n")[0]
        rows.append(f"| `{name}` | {_cell(f'`{value}`')} | {_cell(doc)} |")
    return rows


def _paragraph(text: str) -> list[str]:
    return textwrap.wrap(text, width=99, break_long_words=False, break_on_hyphens=False)


def settings_reference() -> str:
    """``docs/configuration.md``: every setting of :class:`Settings`, as markdown."""
    from fatigue_guard.config import Settings

    config = Settings.model_config
    prefix = config.get("env_prefix", "")
    case = "case-sensitive" if config.get("case_sensitive") else "case-insensitive"
    env_file = config.get("env_file")
    sources = "the environment (no `.env` file)"
    if env_file:
        sources = f"the environment and `{env_file}`"
    intro = (
        "Every knob of fatigue-guard is a field of the typed `Settings` class "
        "(`src/fatigue_guard/config.py`, pydantic-settings). A process reads its settings once, "
        f"from {sources}. Variable names are {case} and take the prefix `{prefix}`; a setting "
        "with several names is read from the first one that is set, and the prefix does not "
        "apply to those names. A value of the wrong type or outside its allowed range is refused "
        "with an error naming the setting. Booleans accept `true`/`false`, `1`/`0`, `yes`/`no`, "
        "`on`/`off`; secrets are never printed. A setting left *unset* behaves as its "
        "description says."
    )
    locations = (
        "With the defaults, every store lives under `FATIGUE_GUARD_HOME` (a relative path is "
        "taken from the working directory), so nothing has to run. Setting "
        "`FATIGUE_GUARD_DATABASE_URL`, `FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING` or "
        "`MLFLOW_TRACKING_URI` replaces the corresponding embedded store."
    )
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from src/fatigue_guard/config.py; do not edit by hand.",
        "     tests/cli/test_config_reference.py fails when this page differs from the code. -->",
        "",
        *_paragraph(intro),
        "",
        f"Regenerate this page with `{GENERATE_COMMAND}`.",
        "",
        "## Settings",
        "",
        *_settings_rows(),
        "",
        f"## Locations under `{_HOME_TEXT}`",
        "",
        *_paragraph(locations),
        "",
        *_derived_rows(),
        "",
    ]
    return "\n".join(lines)


def config_reference(
    out: Annotated[
        Path | None,
        typer.Option("--out", dir_okay=False, help="Write the markdown here instead of stdout."),
    ] = None,
) -> None:
    """Print the reference of every setting (markdown), or write it to --out."""
    text = settings_reference()
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}")
