"""`status`: one row per service (state, pid, health, restarts, last exit, memory, URL).

RESTARTS counts the restarts after unexpected exits since `up`; LAST EXIT is the latest such exit
(for a one-shot service: how its last run ended). The exit code is 0 when every running service
is healthy and no one-shot run failed.
"""

from __future__ import annotations

import time

from wikistreams.native.config import Config
from wikistreams.native.health import healthy
from wikistreams.native.keeper import RESUPERVISE
from wikistreams.native.order import topo_order
from wikistreams.native.paths import rel
from wikistreams.native.procinfo import group_pids, rss_kib
from wikistreams.native.records import read_keeper, read_pid, read_result

HEADER = ("SERVICE", "STATE", "PID", "HEALTH", "RESTARTS", "LAST EXIT", "RSS", "URL")


def status(cfg: Config) -> int:
    """Print the table and the memory total; 1 if anything is unhealthy or failed."""
    paths = cfg.paths
    rows = [HEADER]
    total = keepers = bad = 0
    unsupervised = []
    for name in topo_order(cfg, list(cfg.services)):
        svc = cfg.services[name]
        url = cfg.expand(svc.url, svc)
        keeper, record = read_keeper(paths, name), read_pid(paths, name)
        if svc.oneshot:
            url = url or f"log {rel(paths.log_file(name))}"
            result = read_result(paths, name)
            if record is not None:
                rss = rss_kib(group_pids(record.pgid))
                total += rss
                rows.append(
                    (name, "running", str(record.pid), "-", "-", "-", f"{rss // 1024}M", url)
                )
            elif result is not None:
                bad += not result.ok
                state = "done" if result.ok else "failed"
                rows.append((name, state, "-", "-", "-", result.exit, "-", url))
            else:
                rows.append((name, "stopped", "-", "-", "-", "-", "-", url))
            continue
        if keeper is None and record is None:
            rows.append((name, "stopped", "-", "-", "-", "-", "-", url))
            continue
        if keeper is None:
            unsupervised.append(name)
            restarts, last_exit = "-", "-"
        else:
            keepers += rss_kib([keeper.pid])
            restarts, last_exit = str(keeper.restarts), keeper.last_exit or "-"
        if record is None:  # between an exit and the restart
            next_start = keeper.next_start if keeper is not None else None
            wait = max(0.0, (next_start or time.time()) - time.time())
            rows.append((name, "restarting", "-", f"in {wait:.0f}s", restarts, last_exit, "-", url))
            bad += 1
            continue
        rss = rss_kib(group_pids(record.pgid))
        total += rss
        health = "ok" if healthy(cfg, svc) else "FAIL"
        bad += health != "ok"
        pid = str(record.pid)
        rows.append((name, "running", pid, health, restarts, last_exit, f"{rss // 1024}M", url))
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    print(
        f"total RSS of running services: {total / 1024:.0f} MiB "
        f"(+ {keepers / 1024:.0f} MiB for their keepers)"
    )
    for name in unsupervised:
        print(f"note: {name} runs without a keeper (no restarts); {RESUPERVISE}")
    return 1 if bad else 0
