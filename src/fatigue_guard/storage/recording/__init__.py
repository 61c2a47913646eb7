"""Recording answered predictions durably: group commit, spool, outbox flusher, child processes.

The process and thread model is described in ``docs/architecture.md``.
"""
