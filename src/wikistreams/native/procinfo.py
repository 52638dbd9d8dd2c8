"""Facts about processes and ports, from psutil: is this still the process we started, which
processes are in a group, how much memory they use, who listens on a port.

A pid alone is not an identity (the kernel recycles pids), so every record the launcher writes
carries the process's start time in clock ticks since boot, the unit of field 22 of
/proc/<pid>/stat that the launcher has always stored. It is computed from psutil's start time,
so records written by earlier versions of the launcher still match their processes.
"""

from __future__ import annotations

import os
import socket
import time

import psutil

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot; None if it is gone or a zombie."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        # Both are read from the same clock: their difference is the kernel's tick count.
        boot = psutil.boot_time()
        created = proc.create_time()
    except psutil.Error:
        return None
    return round((created - boot) * CLOCK_TICKS)


def reap(pid: int) -> None:
    """Collect our own exited child (with_stack.py keeps children), so it is not left a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def is_running(pid: int, ticks: int | None) -> bool:
    """True while the process `pid` that started at `ticks` runs (same pid and start time)."""
    reap(pid)
    return ticks is not None and start_ticks(pid) == ticks


def group_pids(pgid: int) -> list[int]:
    """Live processes in a process group (a service and anything it forked)."""
    pids = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                pids.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return pids


def rss_kib(pids: list[int]) -> int:
    """Resident memory of the given processes, in KiB."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss // 1024
        except psutil.Error:
            continue
    return total


def wait_gone(pids: list[int], seconds: float) -> None:
    """Give init a moment to reap exited processes, so `pgrep java` right after `down` is empty."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid in pids:
            reap(pid)
        if not any(psutil.pid_exists(pid) for pid in pids):
            return
        time.sleep(0.1)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_owner(port: int) -> str:
    """`pid 123 (java)` for the process listening on the port, or "" if that cannot be seen."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return ""
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except psutil.Error:
        pass
    return ""
