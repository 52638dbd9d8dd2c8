"""Starting and stopping one service process: its directories, log, environment, one-time init
step, process group, the check that its ports are free, and the lock that keeps two launchers
from starting it twice.

Every service runs in its own session (Ctrl-C in a terminal must not reach it), so it leads its
own process group and `terminate` stops everything it forked at once. Its stdout and stderr are
appended to var/log/<name>.log after a `=== nativectl start ... ===` banner (the log collector
and the Grafana dashboards know that line).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from wikistreams.native.config import Config, NativeError, Service
from wikistreams.native.paths import rel
from wikistreams.native.procinfo import group_pids, port_open, port_owner, reap
from wikistreams.native.records import PidRecord, write_pid

BANNER_TIME = "%Y-%m-%dT%H:%M:%S%z"


def start_process(
    cfg: Config, svc: Service, argv: list[str]
) -> tuple[subprocess.Popen[bytes], PidRecord]:
    """Start the command in a session of its own and write its pid record."""
    prepare_dirs(cfg, svc)
    banner = f"nativectl start {time.strftime(BANNER_TIME)} ===\n=== {shlex.join(argv)}"
    log = open_log(cfg, svc, banner)
    try:
        proc = subprocess.Popen(argv, start_new_session=True, **process_io(cfg, svc, log))
    finally:
        log.close()
    record = PidRecord.of(proc.pid, argv)
    write_pid(cfg.paths, svc.name, record)
    return proc, record


def prepare_dirs(cfg: Config, svc: Service) -> None:
    for path in [str(cfg.paths.run), str(cfg.paths.log), svc.data, *svc.mkdirs]:
        Path(cfg.expand(path, svc)).mkdir(parents=True, exist_ok=True)


def open_log(cfg: Config, svc: Service, banner: str) -> IO[bytes]:
    """The service's log file, opened for appending, with a `=== banner ===` line written."""
    log = open(cfg.paths.log_file(svc.name), "ab")
    log.write(f"\n=== {banner} ===\n".encode())
    log.flush()
    return log


def process_io(cfg: Config, svc: Service, log: IO[bytes]) -> dict[str, Any]:
    """Working dir, environment and stdio shared by a service and its init step."""
    return {
        "cwd": cfg.expand(svc.cwd, svc),
        "env": service_env(cfg, svc),
        "stdin": subprocess.DEVNULL,
        "stdout": log,
        "stderr": subprocess.STDOUT,
    }


def service_env(cfg: Config, svc: Service) -> dict[str, str]:
    """The launcher's environment (so `make up SSE_URL=...` reaches the service) plus `env`."""
    env = dict(os.environ)
    env.update({k: cfg.expand(v, svc) for k, v in svc.env.items()})
    return env


def run_init(cfg: Config, svc: Service) -> None:
    """Run the one-time init step (e.g. Kafka's storage format) unless its marker file exists."""
    if svc.init is None:
        return
    marker = Path(cfg.expand(svc.init.creates, svc))
    if marker.exists():
        return
    argv = cfg.expand_argv(svc.init.command, svc)
    print(f"[init] {svc.name}: {shlex.join(argv[-6:])}", flush=True)
    with open_log(cfg, svc, f"nativectl init: {shlex.join(argv)}") as log:
        code = subprocess.call(argv, **process_io(cfg, svc, log))
    if code != 0 or not marker.exists():
        log_path = rel(cfg.paths.log_file(svc.name))
        raise NativeError(f"{svc.name}: init failed (exit {code}); see {log_path}")


def check_ports_free(svc: Service) -> None:
    """A clear error instead of a JVM that dies on `Address already in use`."""
    for port in svc.ports:
        if port_open("127.0.0.1", port):
            owner = port_owner(port)
            raise NativeError(
                f"{svc.name}: port {port} is already in use by a process the launcher did not start"
                + (f": {owner}" if owner else f" (see `ss -ltnp 'sport = :{port}'`)")
            )


def describe_exit(code: int) -> str:
    """`exit 3`, or the signal's name: Popen reports a death by signal N as -N."""
    if code >= 0:
        return f"exit {code}"
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def terminate(svc: Service, record: PidRecord) -> str:
    """SIGTERM the service's process group, wait, SIGKILL after stop_timeout; say how it ended."""
    pgid = record.pgid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return "already gone"
    outcome = "stopped"
    if not wait_group_exit(record.pid, pgid, svc.stop_timeout):
        outcome = f"killed after {svc.stop_timeout:.0f}s"
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_group_exit(record.pid, pgid, 5)
    return outcome


def wait_group_exit(pid: int, pgid: int, seconds: float) -> bool:
    """Wait until no live process is left in the group; False on timeout."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reap(pid)
        if not group_pids(pgid):
            return True
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def launch_lock(cfg: Config, name: str) -> Iterator[None]:
    """Serialise starting one service across launchers (two `up`s, `with_stack.py`).

    Without it both could find the service stopped and start a keeper each; the loser's clean-up
    would then orphan the winner's keeper.
    """
    cfg.paths.run.mkdir(parents=True, exist_ok=True)
    with open(cfg.paths.lock_file(name), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
