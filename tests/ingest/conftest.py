"""Fixtures: a private copy of the PMData excerpt (tests/fixtures/pmdata) per test, and the
import of the untouched excerpt, shared by the tests that only read it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fatigue_guard.ingest import ImportResult, import_fitbit

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pmdata"
PARTICIPANTS = ("p01", "p04", "p13")
TIMEZONE = "Europe/Oslo"  # PMData's participants live in Norway


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A writable copy of the excerpt, for tests that damage or perturb files."""
    target = tmp_path / "pmdata"
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("README.md"))
    return target


@pytest.fixture(scope="module")
def imported() -> ImportResult:
    return import_fitbit(FIXTURE, timezone=TIMEZONE)
