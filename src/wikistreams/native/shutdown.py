"""`down` and `clean`: stop exactly the services the launcher started, for good.

`down` walks reverse dependency order (stopping ZooKeeper under Druid would break Druid, so what
needs a named service is stopped too) and signals each service's keeper, which stops restarting,
stops the service's process group (SIGTERM, SIGKILL after `stop_timeout`) and exits. A service
without a keeper (its keeper was killed, or an older launcher started it) is stopped directly. It
never touches a process it has no pid or keeper record for.
"""

from __future__ import annotations

import shutil
import time

from wikistreams.native.config import Config, NativeError
from wikistreams.native.keeper import stop_keeper
from wikistreams.native.order import resolve_names, topo_order, with_dependents
from wikistreams.native.paths import rel
from wikistreams.native.procinfo import wait_gone
from wikistreams.native.processes import terminate
from wikistreams.native.records import read_keeper, read_pid, running_services


def down(cfg: Config, names: list[str] | None = None) -> None:
    """Stop the given services (and what needs them); a bare `down` stops every service."""
    chosen = resolve_names(cfg, names) if names else list(cfg.services)
    if not stop_services(cfg, with_dependents(cfg, chosen)):
        print("[down] nothing running")


def stop_services(cfg: Config, names: list[str]) -> bool:
    """Stop exactly these services (those that run), in reverse dependency order, for good."""
    stopped: list[int] = []
    for name in reversed(topo_order(cfg, names)):
        t0 = time.monotonic()
        pids: list[int] = []
        outcome = stop_service(cfg, name, pids)
        if outcome is None:
            continue
        stopped += pids
        print(f"[down] {name}: {outcome} (pid {pids[-1]}, {time.monotonic() - t0:.1f}s)")
    wait_gone(stopped, 5)
    return bool(stopped)


def stop_service(cfg: Config, name: str, pids: list[int]) -> str | None:
    """Stop one service for good: its keeper first (so nothing restarts it), then any process
    left without one. None if nothing ran. Appends the pids that exited to `pids`."""
    svc, paths = cfg.services[name], cfg.paths
    keeper, record = read_keeper(paths, name), read_pid(paths, name)
    outcome = None
    if keeper is not None:
        pids.append(keeper.pid)
        outcome = stop_keeper(cfg, svc, keeper)
    record = read_pid(paths, name) or record
    if record is not None:
        pids.append(record.pid)
        if record.alive():
            outcome = terminate(svc, record)
    for path in (paths.pid_file(name), paths.keeper_file(name), paths.result_file(name)):
        path.unlink(missing_ok=True)
    return outcome


def clean(cfg: Config) -> None:
    """Stop everything, then wipe data, logs and pid files; jars under var/lib stay."""
    down(cfg)
    alive_now = running_services(cfg.paths, list(cfg.services))
    if alive_now:
        raise NativeError(f"still running, not wiping: {', '.join(alive_now)}")
    paths = cfg.paths
    for path in (paths.data, paths.log, paths.run, paths.tmp):
        if path.exists():
            shutil.rmtree(path)
            print(f"[clean] removed {rel(path)}")
