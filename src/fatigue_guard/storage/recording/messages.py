"""The messages between an API process and its recorder child, pickled over two pipes.

Named tuples, not classes with slots: a record crosses the pipe on every request, and a tuple is
what pickles fastest while still naming its fields.

- :class:`Call`, API process -> child, on the control pipe: ``kind`` says what to do with
  ``payload``; ``seq`` pairs it with its answer.
- :class:`Report`, child -> API process, on the control pipe: start-up, counters, answers to
  threads' calls, and the end.
- On the answer pipe, read by the API's event loop, the child sends bare lists of
  :class:`Answer` (for ``record-to-loop`` calls).
"""

from __future__ import annotations

from typing import Any, Final, Literal, NamedTuple

CallKind = Literal["record", "record-to-loop", "record_many", "get", "drain", "stop"]
ReportKind = Literal["ready", "failed", "stats", "answers", "stopped"]

# Records, answered down the control pipe (to a thread) or the answer pipe (to the event loop).
RECORD_CALLS: Final = ("record", "record-to-loop")
# The answer to a record that was stored as sent (the usual case): the API process has the
# record already, so it is not pickled back.
AS_SENT: Final = "as-sent"


class Call(NamedTuple):
    kind: CallKind
    seq: int
    payload: Any


class Answer(NamedTuple):
    seq: int
    ok: bool
    # AS_SENT, the call's result, or (not ok) the error as "Type: message": it may not pickle.
    # A refused record's RecordNotDurable crosses as itself (it pickles): the API answers it.
    value: Any


class Report(NamedTuple):
    kind: ReportKind
    payload: Any
