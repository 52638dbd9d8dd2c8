"""Poll the Docker Engine every N seconds and log one ``container_stats`` JSON line per container.

Settings (environment):
  DOCKER_HOST                   unix:///path or tcp://host:port (compose: the GET-only socket
                                proxy, tcp://docker-api-proxy:2375); wins over DOCKER_SOCKET
  DOCKER_SOCKET                 default /var/run/docker.sock, when DOCKER_HOST is unset
  DOCKER_STATS_INTERVAL_SECONDS default 15
  DOCKER_STATS_ONCE             "1": one poll, then exit (smoke tests)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, TextIO

from wikistreams.resources.engine import DockerEngine
from wikistreams.resources.stats import container_record

SERVICE = "docker-stats-logger"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"


def log_line(msg: str, level: str = "info", out: TextIO = sys.stdout, **fields: Any) -> None:
    """One JSON object per line with the same envelope as the producer (docs/contracts.md)."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record = {"ts": now, "level": level, "logger": SERVICE, "msg": msg, "service": SERVICE}
    record.update(fields)
    out.write(json.dumps(record, separators=(",", ":")) + "\n")
    out.flush()


def container_name(summary: dict[str, Any]) -> str:
    """Prefer the compose service name: it survives container re-creation, the id does not."""
    labels = summary.get("Labels") or {}
    if labels.get(COMPOSE_SERVICE_LABEL):
        return labels[COMPOSE_SERVICE_LABEL]
    names = summary.get("Names") or []
    return names[0].lstrip("/") if names else str(summary.get("Id", ""))[:12]


def poll_once(engine: DockerEngine, pool: ThreadPoolExecutor, out: TextIO = sys.stdout) -> int:
    """Log every running container's stats; return how many were logged.

    Containers are sampled in parallel because each stats call takes about a second.
    """
    containers = engine.running_containers()
    futures = {pool.submit(engine.stats, c["Id"]): c for c in containers}
    logged = 0
    for future, summary in futures.items():
        try:
            record = container_record(
                future.result(), name=container_name(summary), container_id=summary.get("Id")
            )
        except Exception as exc:  # a container that stopped mid-poll must not stop the loop
            log_line(
                "container_stats_failed",
                level="warning",
                out=out,
                container=container_name(summary),
                error_class=type(exc).__name__,
                error=str(exc),
            )
            continue
        log_line("container_stats", out=out, **record)
        logged += 1
    return logged


def main() -> int:
    """Run until SIGTERM/SIGINT; Docker API errors are logged and retried next interval."""
    engine = DockerEngine.from_env(dict(os.environ))
    interval = float(os.environ.get("DOCKER_STATS_INTERVAL_SECONDS", "15"))
    once = os.environ.get("DOCKER_STATS_ONCE") == "1"
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log_line("startup", docker_host=engine.address, interval_seconds=interval)
    with ThreadPoolExecutor(max_workers=8) as pool:
        while not stop.is_set():
            started = time.monotonic()
            try:
                poll_once(engine, pool)
            except Exception as exc:  # daemon restarting, socket not mounted yet, ...
                log_line(
                    "docker_api_error",
                    level="error",
                    error_class=type(exc).__name__,
                    error=str(exc),
                )
            if once:
                break
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    log_line("shutdown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
