"""What the Docker and the native sampler share: the JSON line, the poll loop and /health.

Why shared: both modes must write byte-for-byte the same kind of line (envelope, ``msg``, field
names) at the same cadence, so that one dashboard and one alert rule serve compose and native
deployments. Only "where do the numbers come from" differs (``__main__.poll_once`` for Docker,
``processes.NativeSampler.poll`` for native process trees).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from typing import Any, Callable, TextIO

from wikistreams.healthcheck import serve_json_health

DOCKER_SERVICE = "docker-stats-logger"
# The native launcher's service name: the launcher writes its output to var/log/stats-logger.log and
# the collector derives the ``service`` label from that file name.
NATIVE_SERVICE = "stats-logger"


def log_line(
    msg: str,
    level: str = "info",
    out: TextIO | None = None,
    service: str = DOCKER_SERVICE,
    **fields: Any,
) -> None:
    """One JSON object per line with the same envelope as the producer (docs/contracts.md)."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record: dict[str, Any] = {
        "ts": now,
        "level": level,
        "logger": service,
        "msg": msg,
        "service": service,
    }
    record.update(fields)
    stream = out if out is not None else sys.stdout
    stream.write(json.dumps(record, separators=(",", ":")) + "\n")
    stream.flush()


class Heartbeat:
    """When the last poll finished; /health answers 200 only while polls keep finishing.

    Why not "the port answers": a sampler stuck in a poll (a hung Docker API call, a /proc read
    that blocks) still accepts connections, but no longer writes lines; the launcher should see
    that as unhealthy.
    """

    def __init__(self, max_age_seconds: float) -> None:
        self.max_age_seconds = max_age_seconds
        self._last: float | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._last = time.monotonic()

    def age(self) -> float | None:
        with self._lock:
            return None if self._last is None else time.monotonic() - self._last

    def healthy(self) -> bool:
        age = self.age()
        return age is not None and age <= self.max_age_seconds


def serve_health(heartbeat: Heartbeat, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """``GET /health`` on a daemon thread: 200 after a recent poll, 503 before the first one or
    once polls stopped finishing. Returns the server (``server_address`` has the bound port)."""

    def answer() -> tuple[bool, dict[str, Any]]:
        age = heartbeat.age()
        ok = heartbeat.healthy()
        body = {
            "status": "ok" if ok else "stale",
            "last_poll_age_seconds": None if age is None else round(age, 1),
        }
        return ok, body

    return serve_json_health(answer, host, port, "/health")


def run_polls(
    poll: Callable[[threading.Event], object],
    interval: float,
    once: bool,
    on_error: Callable[[Exception], None],
    heartbeat: Heartbeat | None = None,
) -> None:
    """Call ``poll`` every ``interval`` seconds until SIGTERM/SIGINT (or once).

    ``poll`` receives the stop event so a sampler that waits inside a poll (the native one
    measures CPU over a short window) ends promptly on SIGTERM. An exception of a poll is handed
    to ``on_error`` and the loop goes on: a daemon restarting or a service stopping mid-poll is
    ordinary, and the next poll may succeed.
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        started = time.monotonic()
        try:
            poll(stop)
            if heartbeat is not None:
                heartbeat.beat()
        except Exception as exc:  # noqa: BLE001 - see the docstring
            on_error(exc)
        if once:
            break
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
