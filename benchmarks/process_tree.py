"""Memory and CPU of a server's whole process tree, read with psutil.

An API process runs its prediction recorder and blob shipper as child processes, so the parent's
figures alone would miss where a leak in recording shows up.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Reading:
    """One process at one moment."""

    role: str
    rss_bytes: int
    cpu_s: float  # user + system seconds since it started


@dataclass(frozen=True)
class TreeSample:
    """The tree at one moment."""

    processes: dict[int, Reading]  # by pid
    cpu_s: float  # CPU seconds of every process seen in the tree so far, exited ones included

    @property
    def total_rss_bytes(self) -> int:
        return sum(r.rss_bytes for r in self.processes.values())


class ProcessTree:
    """A root process and its descendants, re-listed on every sample (children come and go)."""

    def __init__(self, root_pid: int) -> None:
        self._root = psutil.Process(root_pid)
        # CPU of a process that has exited is kept at its last reading, so the total never drops.
        self._cpu_by_pid: dict[int, float] = {}

    def sample(self) -> TreeSample:
        readings: dict[int, Reading] = {}
        for process in self._members():
            with (
                contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied),
                process.oneshot(),
            ):
                times = process.cpu_times()
                cpu = times.user + times.system
                self._cpu_by_pid[process.pid] = cpu
                readings[process.pid] = Reading(
                    role=role(process.cmdline(), is_root=process.pid == self._root.pid),
                    rss_bytes=process.memory_info().rss,
                    cpu_s=cpu,
                )
        return TreeSample(processes=readings, cpu_s=sum(self._cpu_by_pid.values()))

    def _members(self) -> list[psutil.Process]:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def role(cmdline: list[str], *, is_root: bool) -> str:
    """A short name for a process of ``fatigue-guard serve``'s tree, from its command line."""
    command = " ".join(cmdline)
    if is_root:
        return "api"
    for marker, name in (
        ("shipper_process", "shipper"),
        ("resource_tracker", "resource tracker"),
        ("spawn_main", "recorder"),
    ):
        if marker in command:
            return name
    return cmdline[0] if cmdline else "?"
