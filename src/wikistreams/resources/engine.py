"""A minimal Docker Engine API client, standard library only.

Why not docker-py: the image stays a plain python:slim with no dependencies to pin or patch, and
only two read-only endpoints are needed. It speaks to a unix socket or, as in compose, to a TCP
address (`DOCKER_HOST=tcp://docker-api-proxy:2375`: the GET-only socket proxy, so this service
never holds the socket itself).
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote, urlsplit

DEFAULT_SOCKET = "/var/run/docker.sock"


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


def parse_docker_host(value: str) -> tuple[str, str]:
    """``unix:///path`` or ``tcp://host:port`` (Docker's DOCKER_HOST forms) -> (kind, target).

    ``kind`` is ``"unix"`` (target: the socket path) or ``"tcp"`` (target: ``host:port``). TLS
    (DOCKER_TLS_VERIFY) is not supported: the proxy is reached on an internal network.
    """
    url = urlsplit(value)
    if url.scheme == "unix" and url.path:
        return "unix", url.path
    if url.scheme == "tcp" and url.hostname and url.port and url.path in ("", "/"):
        return "tcp", f"{url.hostname}:{url.port}"
    raise ValueError(f"DOCKER_HOST={value!r}: use unix:///path/to/docker.sock or tcp://host:port")


class DockerEngine:
    """Read-only access to the endpoints ``docker stats`` itself uses."""

    def __init__(
        self, socket_path: str = DEFAULT_SOCKET, timeout: float = 10.0, tcp: str | None = None
    ) -> None:
        self.socket_path = socket_path
        self.tcp = tcp
        self.timeout = timeout

    @classmethod
    def from_env(cls, environ: dict[str, str], timeout: float = 10.0) -> DockerEngine:
        """DOCKER_HOST when set (unix:// or tcp://), else DOCKER_SOCKET, else the default socket."""
        host = environ.get("DOCKER_HOST", "").strip()
        if host:
            kind, target = parse_docker_host(host)
            if kind == "tcp":
                return cls(timeout=timeout, tcp=target)
            return cls(target, timeout=timeout)
        return cls(environ.get("DOCKER_SOCKET", DEFAULT_SOCKET), timeout=timeout)

    @property
    def address(self) -> str:
        return f"tcp://{self.tcp}" if self.tcp else f"unix://{self.socket_path}"

    def _connection(self) -> http.client.HTTPConnection:
        if self.tcp:
            return http.client.HTTPConnection(self.tcp, timeout=self.timeout)
        return _UnixHTTPConnection(self.socket_path, self.timeout)

    def _request(self, path: str) -> bytes:
        conn = self._connection()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {response.status}: {body[:200]!r}")
            return body
        finally:
            conn.close()

    def _get(self, path: str) -> Any:
        return json.loads(self._request(path))

    def ping(self) -> None:
        """``GET /_ping``: raises unless the daemon (or the proxy in front of it) answers OK."""
        self._request("/_ping")

    def running_containers(self) -> list[dict[str, Any]]:
        """``GET /containers/json``: running containers with their names and labels."""
        containers: list[dict[str, Any]] = self._get("/containers/json")
        return containers

    def stats(self, container_id: str) -> dict[str, Any]:
        """``GET /containers/<id>/stats?stream=false``: one sample including ``precpu_stats``.

        The daemon takes about a second to answer because it samples twice; that pair is what
        makes the CPU percentage meaningful, so ``one-shot`` is deliberately not used.
        """
        stats: dict[str, Any] = self._get(
            f"/containers/{quote(container_id, safe='')}/stats?stream=false"
        )
        return stats
