"""The HTTP health endpoint of the long-running parts (the producer, the resource sampler).

Supervisors (compose healthchecks, the native launcher) only need a status code: 200 while the
part is healthy, 503 when restarting it could help. The JSON body says why, for people.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (healthy, body): asked on every request, so the answer is always current.
HealthAnswer = Callable[[], tuple[bool, dict[str, Any]]]


def serve_json_health(
    answer: HealthAnswer, host: str, port: int, path: str | None = None
) -> ThreadingHTTPServer:
    """Answer GET (only `path`, when given) on a daemon thread; returns the server, whose
    `server_address` holds the bound port (0 picks a free one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if path is not None and self.path != path:
                self.send_error(404)
                return
            ok, fields = answer()
            body = json.dumps(fields).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Probes every few seconds would drown the log lines dashboards are built on."""

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
