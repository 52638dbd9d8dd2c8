"""wikistreams-stats-logger: one ``container_stats`` JSON line per container (or native service)
every N seconds.

Two sources, one line format (``stats.resource_record``, ``runner.log_line``):
  (default)   the Docker Engine API: every running container (compose, service
              docker-stats-logger)
  --native    every process tree the native launcher started (``<var>/run/*.pid``; var is
              WIKISTREAMS_VAR_DIR or <repo>/var), see processes.py (native service stats-logger)

Settings (environment; the options below override them):
  DOCKER_HOST                   unix:///path or tcp://host:port (compose: the GET-only socket
                                proxy, tcp://docker-api-proxy:2375); wins over DOCKER_SOCKET
  DOCKER_SOCKET                 default /var/run/docker.sock, when DOCKER_HOST is unset
  DOCKER_STATS_INTERVAL_SECONDS default 15 (--interval)
  DOCKER_STATS_ONCE             "1": one poll, then exit (--once; smoke tests)
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TextIO

from wikistreams.resources.engine import DockerEngine
from wikistreams.native.paths import Paths
from wikistreams.resources.processes import NativeSampler
from wikistreams.resources.runner import (
    DOCKER_SERVICE,
    NATIVE_SERVICE,
    Heartbeat,
    log_line,
    run_polls,
    serve_health,
)
from wikistreams.resources.stats import container_record

COMPOSE_SERVICE_LABEL = "com.docker.compose.service"


def container_name(summary: dict[str, Any]) -> str:
    """Prefer the compose service name: it survives container re-creation, the id does not."""
    labels = summary.get("Labels") or {}
    if labels.get(COMPOSE_SERVICE_LABEL):
        return str(labels[COMPOSE_SERVICE_LABEL])
    names = summary.get("Names") or []
    return names[0].lstrip("/") if names else str(summary.get("Id", ""))[:12]


def poll_once(engine: DockerEngine, pool: ThreadPoolExecutor, out: TextIO | None = None) -> int:
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


def parse_args(argv: list[str] | None, environ: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="wikistreams-stats-logger", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="sample the native launcher's process trees instead of Docker containers",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=float(environ.get("DOCKER_STATS_INTERVAL_SECONDS", "15")),
        help="seconds between polls (default: DOCKER_STATS_INTERVAL_SECONDS or 15)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        default=environ.get("DOCKER_STATS_ONCE") == "1",
        help="one poll, then exit",
    )
    parser.add_argument(
        "--cpu-window",
        type=float,
        default=1.0,
        help="--native: seconds over which CPU is measured in each poll (default 1)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=0,
        help="serve GET /health on 127.0.0.1:PORT (200 while polls finish; default: off)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; a failed poll is logged and retried next interval."""
    environ = dict(os.environ)
    args = parse_args(argv, environ)
    service = NATIVE_SERVICE if args.native else DOCKER_SERVICE
    heartbeat = None
    if args.health_port:
        # A poll may take the CPU window plus the interval; three missed polls are unhealthy.
        heartbeat = Heartbeat(3 * (args.interval + args.cpu_window) + 5)
        serve_health(heartbeat, args.health_port)

    def on_error(exc: Exception) -> None:
        kind = "native_sample_error" if args.native else "docker_api_error"
        log_line(
            kind, level="error", service=service, error_class=type(exc).__name__, error=str(exc)
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        poll: Callable[[threading.Event], Any]
        if args.native:
            sampler = NativeSampler(Paths.from_env(environ), window_seconds=args.cpu_window)
            poll = sampler.poll
            log_line(
                "startup",
                service=service,
                mode="native",
                run_dir=str(sampler.paths.run),
                interval_seconds=args.interval,
            )
        else:
            engine = DockerEngine.from_env(environ)

            def poll(_stop: threading.Event) -> int:
                return poll_once(engine, pool)

            log_line("startup", docker_host=engine.address, interval_seconds=args.interval)
        run_polls(poll, args.interval, args.once, on_error, heartbeat)
    log_line("shutdown", service=service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
