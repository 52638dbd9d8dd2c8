"""Local stand-ins for the two internet services (EventStreams, the Wikidata API).

They replay real recorded data committed in `tests/data/recorded/` (origins and licences in its
SOURCES.md); set `WIKISTREAMS_DATA_DIR` to use another copy.
"""

from __future__ import annotations

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The User-Agent contact of tests and benchmarks: a real address form (the producer refuses
# placeholders and reserved domains), and only ever sent to the local stand-ins.
TEST_CONTACT = "wikistreams-tests@users.noreply.github.com"


def data_dir() -> Path:
    configured = os.environ.get("WIKISTREAMS_DATA_DIR")
    path = Path(configured) if configured else REPO_ROOT / "tests" / "data" / "recorded"
    if not path.is_dir():
        raise FileNotFoundError(
            f"recorded data not found at {path}; set WIKISTREAMS_DATA_DIR to a copy of it"
        )
    return path


def recentchange_dir() -> Path:
    return data_dir() / "recentchange"


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 that runs in the background of a test."""

    daemon_threads = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", port), handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (timeouts in tests) is not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)
