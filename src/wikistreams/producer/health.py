"""A tiny HTTP health endpoint, so supervisors (compose, the native launcher) can tell a live
producer from a hung one: 503 `stalled` when the main loop has not turned for 30 s; otherwise 200,
`ok` or `degraded` with the problems named (Kafka away, position not committed, the stream silent
for SOURCE_STALL_SECONDS) and `degraded_reason` saying them in one line. A degraded producer is
doing the right thing (waiting, retrying): restarting it would not help."""

from __future__ import annotations

import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from wikistreams.healthcheck import serve_json_health
from wikistreams.producer.logs import LogFields

STALE_AFTER_SECONDS = 30.0

# Asked at each request: (fields for the body, the problem that makes the producer degraded).
LiveCheck = Callable[[], tuple[LogFields, str | None]]


class Heartbeat:
    """Touched by the pipeline loop; read by the health endpoint.

    `checks` are asked at each request rather than at each loop turn, so that a silent stream
    shows even when nothing else happens (the active term's source registers one)."""

    def __init__(self) -> None:
        self.at = time.monotonic()
        self.details: LogFields = {}
        self.problems: dict[str, str] = {}
        self.checks: dict[str, LiveCheck] = {}

    def beat(self, **details: Any) -> None:
        self.at = time.monotonic()
        self.details.update(details)

    @property
    def age(self) -> float:
        return time.monotonic() - self.at

    def answer(self) -> tuple[bool, LogFields]:
        ok = self.age < STALE_AFTER_SECONDS
        problems = dict(self.problems)
        fields: LogFields = {}
        for name, check in list(self.checks.items()):
            found, problem = check()
            fields |= found
            if problem is not None:
                problems[name] = problem
        status = "stalled" if not ok else ("degraded" if problems else "ok")
        reason = "; ".join(f"{name}: {text}" for name, text in problems.items()) or None
        body = {"status": status, "degraded_reason": reason, "loop_age_seconds": round(self.age, 1)}
        return ok, body | self.details | fields | {"problems": problems}


def serve_health(heartbeat: Heartbeat, bind: str, port: int) -> ThreadingHTTPServer:
    return serve_json_health(heartbeat.answer, bind, port)
