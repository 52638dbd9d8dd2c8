"""A tiny HTTP health endpoint, so supervisors (compose, the native launcher) can tell a live
producer from a hung one: 503 `stalled` when the main loop has not turned for 30 s; otherwise 200,
`ok` or `degraded` with the problems named (Kafka away, position not committed). A degraded
producer is doing the right thing (waiting, retrying): restarting it would not help."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            ok = heartbeat.age < STALE_AFTER_SECONDS
            problems = dict(heartbeat.problems)
            status = "stalled" if not ok else ("degraded" if problems else "ok")
            body = json.dumps(
                {"status": status, "loop_age_seconds": round(heartbeat.age, 1)}
                | heartbeat.details
                | {"problems": problems}
            ).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((bind, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server
