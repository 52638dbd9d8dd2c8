"""A minimal Docker Engine API client over the unix socket, standard library only.

Why not docker-py: the image stays a plain python:slim with no dependencies to pin or patch, and
only two read-only endpoints are needed.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a unix socket (the Host header is ignored by dockerd)."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


class DockerEngine:
    """Read-only access to the endpoints ``docker stats`` itself uses."""

    def __init__(self, socket_path: str = "/var/run/docker.sock", timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _get(self, path: str) -> Any:
        conn = _UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {response.status}: {body[:200]!r}")
            return json.loads(body)
        finally:
            conn.close()

    def running_containers(self) -> list[dict[str, Any]]:
        """``GET /containers/json``: running containers with their names and labels."""
        return self._get("/containers/json")

    def stats(self, container_id: str) -> dict[str, Any]:
        """``GET /containers/<id>/stats?stream=false``: one sample including ``precpu_stats``.

        The daemon takes about a second to answer because it samples twice; that pair is what
        makes the CPU percentage meaningful, so ``one-shot`` is deliberately not used.
        """
        return self._get(f"/containers/{quote(container_id, safe='')}/stats?stream=false")
