"""A tiny HTTP health endpoint, so supervisors (compose, the native launcher) can tell a live
producer from a hung one: 503 `stalled` when the main loop has not turned for 30 s; otherwise 200,
`ok` or `degraded` with the problems named (Kafka away, position not committed). A degraded
producer is doing the right thing (waiting, retrying): restarting it would not help."""

from __future__ import annotations

import time
from http.server import ThreadingHTTPServer
from typing import Any

from wikistreams.healthcheck import serve_json_health
from wikistreams.producer.logs import LogFields

STALE_AFTER_SECONDS = 30.0


class Heartbeat:
    """Touched by the pipeline loop; read by the health endpoint."""

    def __init__(self) -> None:
        self.at = time.monotonic()
        self.details: LogFields = {}
        self.problems: dict[str, str] = {}

    def beat(self, **details: Any) -> None:
        self.at = time.monotonic()
        self.details.update(details)

    @property
    def age(self) -> float:
        return time.monotonic() - self.at


def serve_health(heartbeat: Heartbeat, bind: str, port: int) -> ThreadingHTTPServer:
    def answer() -> tuple[bool, LogFields]:
        ok = heartbeat.age < STALE_AFTER_SECONDS
        problems = dict(heartbeat.problems)
        status = "stalled" if not ok else ("degraded" if problems else "ok")
        body = {"status": status, "loop_age_seconds": round(heartbeat.age, 1)}
        return ok, body | heartbeat.details | {"problems": problems}

    return serve_json_health(answer, bind, port)
