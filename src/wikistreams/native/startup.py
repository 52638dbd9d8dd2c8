"""`up`: start what is not running, in dependency waves, and wait until each service serves.

Everything whose `needs` are healthy is launched together, so the Druid processes boot in
parallel once ZooKeeper and the coordinator answer, and the producer starts as soon as Kafka
does. Each long-running service is started by its keeper (keeper.py); a one-shot service runs
once, and its exit code is its health (oneshot.py).

A service that fails (it exits before it was first healthy, is not healthy within
`start_timeout`, its ports are taken, its one-shot run fails) does not stop the others: only
what needs it is skipped, everything else is still started, and `up` fails at the end naming
each failure. So a broken Druid leaves Kafka and the producer running. A crash before the
first healthy answer is mostly configuration (a port, a missing venv), so that service is
stopped with the end of its log shown instead of being retried in the background.
"""

from __future__ import annotations

import sys
import time

from wikistreams.native.config import Config, NativeError
from wikistreams.native.health import healthy
from wikistreams.native.keeper import RESUPERVISE, launch
from wikistreams.native.maven import ensure_libs
from wikistreams.native.oneshot import OneshotRun
from wikistreams.native.order import resolve_names, topo_order, with_needs
from wikistreams.native.paths import rel
from wikistreams.native.processes import launch_lock
from wikistreams.native.records import (
    read_keeper,
    read_pid,
    read_result,
    running_services,
    service_running,
)
from wikistreams.native.shutdown import stop_services

POLL_SECONDS = 1.0
PROGRESS_EVERY = 10.0


def up(cfg: Config, names: list[str] | None = None, started: list[str] | None = None) -> list[str]:
    """Start what is not running (dependencies first), wait for health; returns what it started.

    `started` is filled in place, so a caller that is interrupted half-way still knows what to
    stop. One-shot services run on every `up` that selects them.
    """
    order = topo_order(cfg, with_needs(cfg, resolve_names(cfg, names)))
    started = [] if started is None else started
    paths = cfg.paths
    running = running_services(paths, list(cfg.services))
    pending = [n for n in order if cfg.services[n].oneshot or n not in running]
    ensure_libs(cfg, pending, running)
    waiting = [n for n in order if n not in pending]
    if not pending:
        print(f"[up] already running: {', '.join(order)}")
    for name in waiting:
        if read_keeper(paths, name) is None:
            print(f"[up] {name}: running without a keeper (no restarts); {RESUPERVISE}")
    startup = Startup(cfg, started)
    try:
        startup.run(pending, waiting)
    except BaseException:
        startup.abort()
        if started:
            print(f"[up] interrupted; started before that: {', '.join(started)}", file=sys.stderr)
        raise
    print_endpoints(cfg, [n for n in order if n in startup.ok])
    reasons = list(startup.failed.values())
    if len(reasons) > 1:
        raise NativeError(f"{len(reasons)} services did not come up:\n  " + "\n  ".join(reasons))
    if reasons:
        raise NativeError(reasons[0])
    return started


class Startup:
    """The waves of one `up`: launch what is ready, poll what was launched, note failures."""

    def __init__(self, cfg: Config, started: list[str]):
        self.cfg = cfg
        self.started = started
        self.ok: set[str] = set()
        self.failed: dict[str, str] = {}  # name -> why, in the order the failures happened
        self.launched: dict[str, float] = {}
        self.last_note: dict[str, float] = {}
        self.oneshots: dict[str, OneshotRun] = {}

    def run(self, pending: list[str], waiting: list[str]) -> None:
        while pending or waiting:
            for name in list(pending):
                needs = self.cfg.services[name].needs
                broken = [n for n in needs if n in self.failed]
                if broken:
                    pending.remove(name)
                    self.fail(name, f"{name} not started: it needs {', '.join(broken)}", tail=False)
                elif all(need in self.ok for need in needs):
                    pending.remove(name)
                    try:
                        self.start(name)
                    except NativeError as exc:  # ports taken, init failed: says where to look
                        self.fail(name, str(exc), tail=False)
                    else:
                        waiting.append(name)
            for name in list(waiting):
                if self.poll(name):
                    waiting.remove(name)
            if pending or waiting:
                sys.stdout.flush()
                time.sleep(POLL_SECONDS)

    def start(self, name: str) -> None:
        svc = self.cfg.services[name]
        log = rel(self.cfg.paths.log_file(name))
        if svc.oneshot:
            with launch_lock(self.cfg, name):
                run = OneshotRun(self.cfg, svc)
            self.oneshots[name] = run
            self.started.append(name)
            print(f"[up] {name}: started pid {run.pid} (one-shot), log {log}")
            return
        with launch_lock(self.cfg, name):
            if service_running(self.cfg.paths, name):
                print(f"[up] {name}: started meanwhile by another launcher")
                return
            record = launch(self.cfg, svc)
        self.started.append(name)
        self.launched[name] = time.monotonic()
        what = f"pid {record.pid}" if record else "and exited at once"
        print(f"[up] {name}: started {what} (supervised), log {log}")

    def poll(self, name: str) -> bool:
        """One look at one service; True when it is settled (healthy, done or failed)."""
        if name in self.oneshots:
            return self.poll_oneshot(name)
        cfg, svc = self.cfg, self.cfg.services[name]
        log = rel(cfg.paths.log_file(name))
        ours = name in self.launched
        elapsed = time.monotonic() - self.launched.setdefault(name, time.monotonic())
        if healthy(cfg, svc):
            self.ok.add(name)
            note = f"healthy after {elapsed:.1f}s" if ours else "already running, healthy"
            print(f"[up] {name}: {note}", flush=True)
            return True
        keeper = read_keeper(cfg.paths, name)
        if keeper is None and read_pid(cfg.paths, name) is None:
            self.fail(name, f"{name} exited during startup; see {log}")
            return True
        if ours and keeper is not None and keeper.last_exit:
            self.fail(
                name,
                f"{name} exited during startup ({keeper.last_exit}); stopped it instead of "
                f"restarting it, see {log}",
            )
            stop_services(cfg, [name])
            return True
        if elapsed > svc.start_timeout:
            health = f"{svc.health.kind} {cfg.expand(svc.health.target, svc)}" if svc.health else ""
            self.fail(
                name,
                f"{name} not healthy after {svc.start_timeout:.0f}s ({health}); "
                f"it keeps running, see {log} or run `down`",
            )
            return True
        self.progress(name, elapsed, "waiting for health")
        return False

    def poll_oneshot(self, name: str) -> bool:
        run = self.oneshots[name]
        result = run.poll()
        if result is None:
            self.progress(name, run.elapsed, "running")
            return False
        del self.oneshots[name]
        log = rel(self.cfg.paths.log_file(name))
        if result.ok:
            self.ok.add(name)
            print(f"[up] {name}: done ({result.exit}) after {result.seconds:.1f}s", flush=True)
        else:
            self.fail(name, f"{name} failed ({result.exit}) after {result.seconds:.1f}s; see {log}")
        return True

    def progress(self, name: str, elapsed: float, what: str) -> None:
        if elapsed - self.last_note.get(name, 0.0) >= PROGRESS_EVERY:
            self.last_note[name] = elapsed
            print(f"[up] {name}: {what} ... {elapsed:.0f}s", flush=True)

    def fail(self, name: str, why: str, tail: bool = True) -> None:
        if tail:
            show_tail(self.cfg, name)
        print(f"[up] {name}: FAILED: {why}", file=sys.stderr, flush=True)
        self.failed[name] = why

    def abort(self) -> None:
        """`up` was interrupted: a one-shot run belongs to its `up`, so stop it too."""
        for name, run in self.oneshots.items():
            result = run.stop()
            print(f"[up] {name}: stopped ({result.exit})", file=sys.stderr)
        self.oneshots.clear()


def show_tail(cfg: Config, name: str, lines: int = 25) -> None:
    path = cfg.paths.log_file(name)
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    print(f"--- last {len(text)} lines of {rel(path)} ---", file=sys.stderr)
    print("\n".join(text), file=sys.stderr)


def print_endpoints(cfg: Config, names: list[str]) -> None:
    if not names:
        return
    print("[up] ready:")
    for name in names:
        svc = cfg.services[name]
        where = cfg.expand(svc.url, svc)
        if svc.oneshot:
            result = read_result(cfg.paths, name)
            done = f"done ({result.exit}, {result.seconds:.1f}s)" if result else "done"
            where = f"{done}, log {rel(cfg.paths.log_file(name))}" + (f"; {where}" if where else "")
        print(f"  {name:<20} {where}")
