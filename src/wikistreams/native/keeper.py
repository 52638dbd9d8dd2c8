"""The keeper: one small process per long-running service that starts it, waits for it and
restarts it after every exit, with exponential backoff, until it is told to stop (SIGTERM).

One keeper per service rather than one daemon for all: a service keeps the environment of the
`up` that started it (e.g. SSE_URL), `down NAME` is one signal to that service's keeper, and a
failing keeper affects one service only. Its state (restart count, last exit) is
var/run/<name>.keeper, which `status` reads; its messages go to the service's log as
`=== nativectl keeper ...: ... ===` lines. Like compose's `restart: unless-stopped`, every exit
counts, even exit 0; what the dead process forked is stopped first, so it cannot hold the ports.

The keeper is `python -m wikistreams.native keep NAME`; it imports only what it needs (no Kafka
client, no HTTP), since one runs per service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from wikistreams.backoff import Backoff
from wikistreams.native.config import Config, NativeError, Restart, Service
from wikistreams.native.paths import ROOT, rel
from wikistreams.native.procinfo import group_pids
from wikistreams.native.processes import (
    BANNER_TIME,
    check_ports_free,
    describe_exit,
    prepare_dirs,
    run_init,
    start_process,
    terminate,
)
from wikistreams.native.records import (
    KeeperState,
    PidRecord,
    load_keeper,
    read_keeper,
    read_pid,
    write_keeper,
)

T = TypeVar("T")
KEEPER_REGISTER_SECONDS = 15.0
RESUPERVISE = "`wikistreams-native down NAME` then `up NAME` puts it under a keeper"


def restart_delay(backoff: Backoff, restart: Restart, uptime: float) -> float:
    """The wait before a restart. A run that lasted `reset_after` seconds counts as a success, so
    a service that crashes once a day restarts after about `backoff` seconds, while one that
    crashes on start is retried ever more slowly (up to `max_backoff`)."""
    if uptime >= restart.reset_after:
        backoff.reset()
    return backoff.delay()


class Stop(Exception):
    """SIGTERM or SIGINT reached a keeper while it waits: stop the service for good."""


class Keeper:
    """`python -m wikistreams.native keep NAME`: run one service, restart it after every exit."""

    def __init__(self, cfg: Config, svc: Service):
        self.cfg, self.svc = cfg, svc
        self.argv = cfg.expand_argv(svc.command, svc)
        self.backoff = Backoff(svc.restart.backoff, svc.restart.max_backoff)
        self.record: PidRecord | None = None  # the running service process
        self.stopping = False
        self.interruptible = False
        self.state = KeeperState.mine()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.cfg.paths.run.mkdir(parents=True, exist_ok=True)
        self.save()
        try:
            while True:
                code, uptime = self.run_once()
                delay = restart_delay(self.backoff, self.svc.restart, uptime)
                now = time.time()
                self.state.last_exit = describe_exit(code)
                self.state.last_exit_at, self.state.next_start = now, now + delay
                self.save()
                self.say(
                    f"{self.svc.name} exited ({describe_exit(code)}) after {uptime:.1f}s; "
                    f"restart #{self.state.restarts + 1} in {delay:.2f}s"
                )
                self.pause(time.sleep, delay)
                self.state.restarts += 1
        except Stop:
            pass
        finally:
            self.state.outcome, self.state.next_start = self.stop_child(), None
            self.save()

    def run_once(self) -> tuple[int, float]:
        """Start the command, wait until it exits; returns (exit code, seconds it ran)."""
        began = time.monotonic()
        try:
            proc, self.record = start_process(self.cfg, self.svc, self.argv)
        except OSError as exc:
            self.say(f"cannot run {self.argv[0]!r}: {exc}")
            return 127, 0.0
        self.state.next_start = None
        self.save()
        code = self.pause(proc.wait)
        if group_pids(self.record.pgid):
            # Like a container: what the dead process forked must not keep its ports.
            self.say(f"stopping what is left of {self.svc.name}'s process group")
            terminate(self.svc, self.record)
        self.record = None
        self.cfg.paths.pid_file(self.svc.name).unlink(missing_ok=True)
        return code, time.monotonic() - began

    def stop_child(self) -> str:
        """SIGTERM the service's process group, SIGKILL after stop_timeout; how it ended."""
        if self.record is None:
            outcome = "stopped (was waiting to restart)"
        else:
            outcome = terminate(self.svc, self.record)
        self.record = None
        self.cfg.paths.pid_file(self.svc.name).unlink(missing_ok=True)
        return outcome

    def pause(self, wait: Callable[..., T], *args: float) -> T:
        """Block in `wait` (the service's exit, a backoff sleep) where a stop request may cut in.

        Elsewhere a signal only sets a flag, so it never interrupts the keeper half-way through
        starting a process or writing its state.
        """
        self.interruptible = True
        try:
            if self.stopping:
                raise Stop
            return wait(*args)
        finally:
            self.interruptible = False

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        if self.interruptible:
            raise Stop

    def save(self) -> None:
        write_keeper(self.cfg.paths, self.svc.name, self.state)

    def say(self, message: str) -> None:
        print(f"=== nativectl keeper {time.strftime(BANNER_TIME)}: {message} ===", flush=True)


def launch(cfg: Config, svc: Service) -> PidRecord | None:
    """Check ports, run the init step, start the service's keeper; return the service's pid record
    (None if it exited at once).

    Returns once the keeper has started the service (or recorded why it could not), so the
    caller's health polling sees either a process or its exit.
    """
    paths = cfg.paths
    check_ports_free(svc)
    prepare_dirs(cfg, svc)
    run_init(cfg, svc)
    for stale in (paths.pid_file(svc.name), paths.keeper_file(svc.name)):
        stale.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "wikistreams.native", "keep", svc.name]
    argv += ["--services", str(cfg.path), "--var", str(paths.var)]
    with open(paths.log_file(svc.name), "ab") as log:
        keeper = subprocess.Popen(
            argv,
            cwd=ROOT,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + KEEPER_REGISTER_SECONDS
    while time.monotonic() < deadline and keeper.poll() is None:
        state = read_keeper(paths, svc.name)
        record = read_pid(paths, svc.name)
        if state is not None and (record is not None or state.last_exit):
            return record
        time.sleep(0.05)
    if keeper.poll() is None:
        keeper.terminate()
    raise NativeError(f"{svc.name}: its keeper did not start; see {rel(paths.log_file(svc.name))}")


def stop_keeper(cfg: Config, svc: Service, keeper: KeeperState) -> str:
    """SIGTERM the keeper, which stops its service and exits; SIGKILL it if it hangs."""
    try:
        os.kill(keeper.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + svc.stop_timeout + 10
    while keeper.alive():
        if time.monotonic() > deadline:
            os.kill(keeper.pid, signal.SIGKILL)
            return "keeper did not exit; killed it"
        time.sleep(0.1)
    final = load_keeper(cfg.paths, svc.name)
    return (final.outcome if final else None) or "stopped"
