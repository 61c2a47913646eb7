"""Typed errors of the importers: each names the participant and the file it is about."""

from __future__ import annotations

from pathlib import Path


class IngestError(ValueError):
    """An export cannot be imported as it is; the message says which file and why."""

    def __init__(self, message: str, *, participant: str | None = None, path: Path | None = None):
        self.participant = participant
        self.path = path
        where = []
        if participant is not None:
            where.append(f"participant {participant}")
        if path is not None:
            where.append(str(path))
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class MissingFileError(IngestError):
    """A file the import needs is not there."""


class BadFileError(IngestError):
    """A file is there but cannot be read as what it should hold."""


class LabelRuleError(ValueError):
    """A ``--label-rule`` that is not of the form ``<op><number>``."""
