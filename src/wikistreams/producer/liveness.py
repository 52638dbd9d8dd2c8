"""Whether the live stream is alive and, when it is not, why: for `/health` and `make up`.

A stream that has delivered neither a frame nor a keep-alive comment for `SOURCE_STALL_SECONDS`
makes the producer `degraded`. EventStreams sends a comment every 15 s or so, so silence means
that something is wrong even while every reconnect "only" retries; the cause is the last failed
connection's error, sorted into what a person can act on (DNS, TLS, an HTTP status, a refused or
timed-out connection), or `stalled` when a connection is open but silent.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from enum import Enum

import requests
import urllib3

from wikistreams.producer.logs import LogFields

DETAIL_CHARS = 300  # of an error's text, in /health and the `make up` line


class Cause(str, Enum):
    """Why the source delivers nothing (`source_cause` in /health)."""

    dns = "dns"
    tls = "tls"
    http_status = "http_status"
    refused = "refused"
    timeout = "timeout"
    connection = "connection"
    stalled = "stalled"
    connecting = "connecting"


_LABELS = {
    Cause.dns: "DNS: the host name does not resolve",
    Cause.tls: "TLS handshake failed",
    Cause.refused: "connection refused",
    Cause.timeout: "timed out",
    Cause.connection: "connection failed",
}


def _chain(error: BaseException) -> list[BaseException]:
    """The error and what caused it, outermost first: `__cause__`, `__context__`, urllib3's
    `reason`, and the exception requests wraps in its first argument (bounded: chains loop)."""
    chain: list[BaseException] = []
    todo = [error]
    while todo and len(chain) < 20:
        item = todo.pop(0)
        if any(item is seen for seen in chain):
            continue
        chain.append(item)
        linked = (item.__cause__, item.__context__, getattr(item, "reason", None), *item.args[:1])
        todo += [e for e in linked if isinstance(e, BaseException)]
    return chain


def classify(error: BaseException) -> tuple[Cause, str]:
    """The cause of a failed connection and one line for people: what it means, then the
    innermost error that says it (e.g. `[Errno -2] Name or service not known`)."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return Cause.http_status, f"HTTP {error.response.status_code} ({_text(error)})"
    chain = _chain(error)
    for cause, kinds in (
        (Cause.dns, (socket.gaierror, urllib3.exceptions.NameResolutionError)),
        (Cause.tls, (ssl.SSLError, urllib3.exceptions.SSLError, requests.exceptions.SSLError)),
        (Cause.refused, (ConnectionRefusedError,)),
        (Cause.timeout, (TimeoutError, requests.Timeout, urllib3.exceptions.TimeoutError)),
    ):
        found = [e for e in chain if isinstance(e, kinds)]
        if found:
            return cause, f"{_LABELS[cause]} ({_text(found[-1])})"
    return Cause.connection, f"{_LABELS[Cause.connection]} ({_text(error)})"


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:DETAIL_CHARS]


@dataclass
class Liveness:
    """Signs of life of one live source: frames, keep-alives, and how its connections failed."""

    stall_seconds: float
    frames: int = 0
    connected: bool = False
    cause: Cause | None = None  # of the last failed connection, until one succeeds
    detail: str | None = None
    last_sign: float = field(default_factory=time.monotonic)

    def sign(self, frames: int = 0) -> None:
        """A frame or a keep-alive arrived."""
        self.frames += frames
        self.last_sign = time.monotonic()

    def opened(self) -> None:
        self.connected = True
        self.cause = self.detail = None

    def failed(self, error: BaseException | None) -> None:
        """A connection ended badly (None: it ended cleanly without a single event)."""
        self.connected = False
        if error is None:
            self.cause, self.detail = Cause.connection, "the server ended the stream with no event"
        else:
            self.cause, self.detail = classify(error)

    @property
    def silent_seconds(self) -> float:
        return time.monotonic() - self.last_sign

    def problem(self) -> tuple[Cause, str] | None:
        """(cause, one line) once the stream has been silent for `stall_seconds`, else None."""
        silent = self.silent_seconds
        if silent < self.stall_seconds:
            return None
        limit = f"SOURCE_STALL_SECONDS={self.stall_seconds:g}"
        head = f"no frame or keep-alive for {silent:.0f} s ({limit})"
        if self.cause is not None and self.detail is not None:
            return self.cause, f"{head}: {self.detail}"
        if self.connected:
            return Cause.stalled, f"{head}: connected, but the server sends nothing"
        return Cause.connecting, f"{head}: still connecting"

    def fields(self) -> LogFields:
        """For /health: what `make up` and people read to tell why no event arrives."""
        problem = self.problem()
        cause = problem[0] if problem else self.cause
        return {
            "source_frames": self.frames,
            "source_silent_seconds": round(self.silent_seconds, 1),
            "source_cause": cause.value if cause else None,
            "source_error": self.detail,
        }
