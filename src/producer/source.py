"""Where events come from: Wikimedia EventStreams over SSE, or a recording replayed from a file.

Both sources yield `RawEvent`s (the SSE id and the untouched bytes) and never parse JSON beyond
what pacing needs: validation is the next stage's job, and a frame that fails it still has to
reach the dead-letter topic byte for byte.
"""

from __future__ import annotations

import codecs
import json
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
import sseclient
import structlog

log = structlog.get_logger("producer.source")

FILE_TOPIC_PREFIX = "file:"


@dataclass(frozen=True)
class RawEvent:
    """One frame as received: `sse_id` is the resume position after this frame."""

    data: bytes
    sse_id: str | None
    event_type: str = "message"


class StreamRejected(RuntimeError):
    """The server refused us in a way that retrying will not fix (e.g. 403 on User-Agent)."""


def reconnect_delay(attempt: int, cap: float, base: float = 1.0) -> float:
    """Exponential backoff with full jitter, so many clients do not reconnect in step."""
    return random.uniform(0, min(cap, base * 2**attempt))


class SseSource:
    """Reads EventStreams over one connection, reconnecting for ever.

    The server ends every connection after about 15 minutes, so a clean end reconnects at once;
    errors back off exponentially. Each (re)connect sends the id of the last frame read as
    `Last-Event-ID`, starting from the delivered checkpoint after a restart.
    """

    def __init__(
        self,
        url: str,
        user_agent: str,
        last_event_id: str | None,
        connect_timeout: float,
        read_timeout: float,
        backoff_cap: float,
        stop: threading.Event,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self.last_event_id = last_event_id
        self._timeouts = (connect_timeout, read_timeout)
        self._backoff_cap = backoff_cap
        self._stop = stop
        self._session = session or requests.Session()
        self._session.headers.update({"User-Agent": user_agent, "Accept": "text/event-stream"})
        self.reconnects = 0
        self.state = "connecting"  # connecting | connected | retrying (shown by /health, stats)

    def __iter__(self) -> Iterator[RawEvent]:
        attempt = 0
        while not self._stop.is_set():
            try:
                for raw in self._read_once():
                    attempt = 0
                    yield raw
                log.info("sse_ended", url=self.url, last_event_id=self.last_event_id)
                delay = 0.0
            except StreamRejected:
                raise
            except (requests.RequestException, OSError, ValueError) as exc:
                self.state = "retrying"
                delay = reconnect_delay(attempt, self._backoff_cap)
                retry_after = getattr(exc, "retry_after", None)
                if retry_after is not None:
                    delay = max(delay, retry_after)
                attempt += 1
                log.warning(
                    "sse_disconnected",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_seconds=round(delay, 2),
                )
            self.reconnects += 1
            self._stop.wait(delay)

    def _read_once(self) -> Iterator[RawEvent]:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        with self._session.get(
            self.url, headers=headers, stream=True, timeout=self._timeouts
        ) as resp:
            _raise_for_stream_status(resp)
            self.state = "connected"
            log.info("sse_connected", url=self.url, last_event_id=self.last_event_id)
            for event in sseclient.SSEClient(_arrivals(resp)).events():
                if self._stop.is_set():
                    return
                if event.id:
                    self.last_event_id = event.id
                yield RawEvent(
                    data=event.data.encode("utf-8"),
                    sse_id=event.id or None,
                    event_type=event.event or "message",
                )


def _arrivals(resp: requests.Response, size: int = 65536) -> Iterator[bytes]:
    """Bytes as they arrive, chunked or not (`iter_content` would wait to fill its chunk).

    Invalid UTF-8 is replaced (U+FFFD) here: the SSE parser would otherwise raise on it, and
    reconnecting from the same id would meet the same bytes for ever. The frame then fails JSON
    parsing or validation and is dead-lettered like any other bad input.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := resp.raw.read1(size):
        yield decoder.decode(chunk).encode("utf-8")


def _raise_for_stream_status(resp: requests.Response) -> None:
    if resp.status_code == 200:
        return
    body = resp.text[:300] if not resp.raw.closed else ""
    if resp.status_code == 403:
        raise StreamRejected(
            f"403 from {resp.url}: check USER_AGENT_CONTACT (Wikimedia's User-Agent policy): {body}"
        )
    err = requests.HTTPError(f"HTTP {resp.status_code} from {resp.url}: {body}", response=resp)
    retry_after = resp.headers.get("Retry-After")
    if retry_after and retry_after.isdigit():
        err.retry_after = float(retry_after)  # type: ignore[attr-defined]
    raise err


class FileSource:
    """Replays a recorded `.sse` or JSON-lines file, for offline demos, tests and benchmarks.

    Positions are frame indexes in the file (`[{"topic":"file:<path>","partition":0,"offset":N}]`),
    so a restarted producer resumes a replay where its checkpoint says, like it would live; a
    checkpoint from another file or from the live stream does not apply and the replay starts over.
    """

    def __init__(
        self,
        path: Path,
        speed: str,
        last_event_id: str | None,
        stop: threading.Event,
        wait_at_end: bool = False,
    ) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"SSE_URL points at a missing file: {path}")
        self.path = path.resolve()
        self._topic = FILE_TOPIC_PREFIX + str(self.path)
        self._factor = None if speed == "fast" else (1.0 if speed == "realtime" else float(speed))
        self._resume_after = file_offset(last_event_id, self._topic)
        if last_event_id and self._resume_after is None:
            log.warning("checkpoint_ignored", last_event_id=last_event_id, source=self._topic)
        self._stop = stop
        self._wait_at_end = wait_at_end
        self.reconnects = 0
        self.state = "replaying"  # replaying | finished

    def __iter__(self) -> Iterator[RawEvent]:
        yield from self._replay()
        self.state = "finished"
        if self._wait_at_end:
            log.info("replay_finished", path=str(self.path))
            self._stop.wait()

    def _replay(self) -> Iterator[RawEvent]:
        pacer = _Pacer(self._factor)
        for index, (data, event_type) in enumerate(self._frames()):
            if self._stop.is_set():
                return
            if self._resume_after is not None and index <= self._resume_after:
                continue
            pacer.wait(data, self._stop)
            yield RawEvent(data=data, sse_id=self._event_id(index), event_type=event_type)

    def _event_id(self, index: int) -> str:
        return json.dumps([{"topic": self._topic, "partition": 0, "offset": index}])

    def _frames(self) -> Iterator[tuple[bytes, str]]:
        if self.path.suffix == ".sse":
            with self.path.open("rb") as fh:
                for event in sseclient.SSEClient(_chunks(fh)).events():
                    yield event.data.encode("utf-8"), event.event or "message"
            return
        with self.path.open("rb") as fh:
            for line in fh:
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield line, "message"


def _chunks(fh, size: int = 65536) -> Iterable[bytes]:
    while chunk := fh.read(size):
        yield chunk


class _Pacer:
    """Sleeps so that event time advances `factor` times faster than wall time."""

    def __init__(self, factor: float | None) -> None:
        self._factor = factor
        self._origin: tuple[float, float] | None = None

    def wait(self, data: bytes, stop: threading.Event) -> None:
        if self._factor is None:
            return
        event_ts = _event_timestamp(data)
        if event_ts is None:
            return
        now = time.monotonic()
        if self._origin is None:
            self._origin = (event_ts, now)
            return
        due = self._origin[1] + (event_ts - self._origin[0]) / self._factor
        if due > now:
            stop.wait(due - now)


def _event_timestamp(data: bytes) -> float | None:
    try:
        return datetime.fromisoformat(json.loads(data)["meta"]["dt"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return None


def file_offset(event_id: str | None, topic: str | None = None) -> int | None:
    """The frame index in a file-replay id (of `topic` if given); None for anything else."""
    if not event_id:
        return None
    try:
        part = json.loads(event_id)[0]
        is_file = str(part["topic"]).startswith(FILE_TOPIC_PREFIX)
        if not is_file or (topic is not None and part["topic"] != topic):
            return None
        return int(part["offset"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def open_source(
    url: str,
    user_agent: str,
    last_event_id: str | None,
    stop: threading.Event,
    speed: str = "fast",
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    backoff_cap: float = 60.0,
    wait_at_end: bool = False,
) -> SseSource | FileSource:
    """`file://` URLs replay a recording; anything else is a live EventStreams endpoint."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FileSource(Path(unquote(parsed.path)), speed, last_event_id, stop, wait_at_end)
    if file_offset(last_event_id) is not None:
        log.warning("checkpoint_ignored", last_event_id=last_event_id, source=url)
        last_event_id = None
    return SseSource(
        url, user_agent, last_event_id, connect_timeout, read_timeout, backoff_cap, stop
    )
