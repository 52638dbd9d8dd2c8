"""Native mode: ``container_stats`` lines for the process trees the native launcher started.

Without Docker there are no containers, but there is the same unit of operation: one service of
native/services.toml, started by the launcher (`wikistreams.native`), whose pid record
(`native.records`, ``<var>/run/<service>.pid``) holds the kernel start time, so a recycled pid
is never mistaken for the service. A service is that process and all its descendants (gunicorn
workers, a JVM started by a bash wrapper). Each poll writes one line per running service, with
the fields and units of the Docker path (``stats.resource_record``), so the Resources dashboard
and the memory alert work unchanged. ``container`` is the service name, ``container_id`` the
service's root pid (like a container id it changes when the service is restarted).

How each field maps (docs/observability.md has the same table for operators):

* ``cpu_percent``: CPU seconds (user + system, including reaped children) the tree used during a
  short window (default 1 s, as the Docker daemon samples twice about a second apart), divided
  by the window, x 100: percent of one CPU, 200 = two busy cores, as ``docker stats``.
* ``mem_usage_bytes``: the sum of the tree's PSS (proportional set size). RSS would count pages
  shared by forked workers once per worker; PSS splits them, so the sum is what the service
  costs, the closest per-process match to a cgroup's usage. RSS where PSS is unreadable.
* ``mem_limit_bytes``: the lowest cgroup memory limit above the root process (v2 ``memory.max``,
  v1 ``memory.limit_in_bytes``), else the host's memory, which is what Docker reports for a
  container without a limit.
* ``net_rx_bytes``/``net_tx_bytes``: 0, with ``net_scope: "host"``. Native services share the
  host's network namespace and Linux keeps no per-process byte counters (Docker likewise reports
  none for a ``network_mode: host`` container). The host-wide counters would be the same number
  on every service's line, i.e. wrong attribution, so they are not used.
* ``block_read_bytes``/``block_write_bytes``: the tree's ``/proc/<pid>/io`` read_bytes and
  write_bytes (bytes that reached the storage layer), like blkio's service bytes. Cumulative
  over the living processes: a worker that exited takes its count with it.
* ``pids``: threads of the tree (Docker's ``pids.current`` counts tasks, i.e. threads).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, TextIO

import psutil

from wikistreams.native.paths import Paths
from wikistreams.native.records import read_pid
from wikistreams.resources.runner import NATIVE_SERVICE, log_line
from wikistreams.resources.stats import resource_record

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned 64-bit number; anything this large is
# "unlimited", and the host's memory applies.
_NO_LIMIT = 1 << 60


@dataclass(frozen=True)
class LaunchedService:
    """One running service of the native launcher: its name and its root process."""

    name: str
    pid: int


def launched_services(paths: Paths) -> list[LaunchedService]:
    """Every service whose pid record (the launcher's own, `native.records`) names a process
    that still runs. A record left by a crashed service, or whose pid now belongs to another
    program, is skipped: its start time no longer matches."""
    found = []
    for path in sorted(paths.run.glob("*.pid")):
        record = read_pid(paths, path.stem)  # None while being replaced: the next poll reads it
        if record is not None:
            found.append(LaunchedService(path.stem, record.pid))
    return found


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants; empty when it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def cpu_seconds(procs: Iterable[psutil.Process]) -> dict[Hashable, float]:
    """CPU seconds per process, including the children it has reaped.

    Keyed by the process itself: psutil compares and hashes a Process by (pid, create time), so
    a pid reused within one poll is another key. Counting reaped children keeps a short-lived
    worker's CPU in the tree after it exits: its time moves into its parent's ``children_*``
    counters.
    """
    seconds: dict[Hashable, float] = {}
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        seconds[proc] = t.user + t.system + t.children_user + t.children_system
    return seconds


def cpu_percent(
    before: dict[Hashable, float], after: dict[Hashable, float], window: float
) -> float:
    """Percent of one CPU used between two ``cpu_seconds`` snapshots ``window`` seconds apart.

    A process only in ``after`` started inside the window: all its time counts. A process only in
    ``before`` exited: a parent that reaped it carries its time on. A negative delta cannot
    happen for one process; it is clamped anyway so a clock quirk never yields negative CPU.
    """
    if window <= 0:
        return 0.0
    used = sum(max(0.0, seconds - before.get(key, 0.0)) for key, seconds in after.items())
    return used / window * 100.0


def memory_bytes(proc: psutil.Process) -> int:
    """PSS where the kernel exposes it (Linux smaps_rollup), else RSS."""
    try:
        pss = getattr(proc.memory_full_info(), "pss", None)
        if isinstance(pss, int):
            return pss
    except psutil.AccessDenied:
        pass
    return int(proc.memory_info().rss)


def _cgroup_limit_files(pid: int) -> list[Path]:
    """The memory limit files of the process's cgroup and of every cgroup above it."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return []
    files = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, cgroup = rest.partition(":")
        if hierarchy == "0" and not controllers:  # v2 unified hierarchy
            base, name = CGROUP_ROOT, "memory.max"
        elif "memory" in controllers.split(","):  # v1 memory controller
            base, name = CGROUP_ROOT / "memory", "memory.limit_in_bytes"
        else:
            continue
        path = base / cgroup.strip("/")
        while True:
            files.append(path / name)
            if path == base:
                break
            path = path.parent
    return files


def memory_limit_bytes(pid: int) -> int:
    """The lowest cgroup memory limit that applies to ``pid``, at most the host's memory."""
    limit = int(psutil.virtual_memory().total)
    for path in _cgroup_limit_files(pid):
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value.isdigit() and 0 < int(value) < _NO_LIMIT:
            limit = min(limit, int(value))
    return limit


def _sum(procs: Iterable[psutil.Process], read: Callable[[psutil.Process], int]) -> int:
    """Sum ``read(proc)`` over processes; one that exited or is not ours counts 0."""
    total = 0
    for proc in procs:
        try:
            total += int(read(proc))
        except psutil.Error:
            continue
    return total


def tree_record(
    service: LaunchedService, procs: list[psutil.Process], cpu: float
) -> dict[str, Any]:
    """The ``container_stats`` fields of one service's process tree (mapping: module doc)."""
    return {
        **resource_record(
            container=service.name,
            container_id=str(service.pid),
            cpu_percent=cpu,
            mem_usage_bytes=_sum(procs, memory_bytes),
            mem_limit_bytes=memory_limit_bytes(service.pid),
            net_rx_bytes=0,
            net_tx_bytes=0,
            block_read_bytes=_sum(procs, lambda p: p.io_counters().read_bytes),
            block_write_bytes=_sum(procs, lambda p: p.io_counters().write_bytes),
            pids=_sum(procs, lambda p: p.num_threads()),
        ),
        "net_scope": "host",
    }


class NativeSampler:
    """Samples every service with a live pid record under ``<var>/run``."""

    def __init__(self, paths: Paths, window_seconds: float = 1.0) -> None:
        self.paths = paths
        self.window_seconds = window_seconds

    def poll(self, stop: threading.Event | None = None, out: TextIO | None = None) -> int:
        """Log one ``container_stats`` line per running service; return how many were logged.

        All trees are snapshotted, then one window is waited for all of them together, so a poll
        takes about ``window_seconds`` however many services run.
        """
        services = launched_services(self.paths)
        if not services:
            return 0
        before = {svc: cpu_seconds(process_tree(svc.pid)) for svc in services}
        started = time.monotonic()
        (stop or threading.Event()).wait(self.window_seconds)
        window = time.monotonic() - started
        logged = 0
        for svc in services:
            procs = process_tree(svc.pid)
            if not procs:
                continue  # stopped during the window; its next start has a new pid record
            try:
                record = tree_record(
                    svc, procs, cpu_percent(before[svc], cpu_seconds(procs), window)
                )
            except Exception as exc:  # noqa: BLE001 - one service must not stop the others
                log_line(
                    "container_stats_failed",
                    level="warning",
                    out=out,
                    service=NATIVE_SERVICE,
                    container=svc.name,
                    error_class=type(exc).__name__,
                    error=str(exc),
                )
                continue
            log_line("container_stats", out=out, service=NATIVE_SERVICE, **record)
            logged += 1
        return logged
