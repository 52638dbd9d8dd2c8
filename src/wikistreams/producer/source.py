"""Where events come from: Wikimedia EventStreams over SSE, or a recording replayed from a file.

Both sources yield `RawEvent`s (the SSE id and the frame's bytes) and never parse JSON beyond
what pacing needs: validation is the next stage's job, and a frame that fails it still has to
reach the dead-letter topic. Frames are parsed by `producer.sse` (linear time, bounded memory); a
frame over `max_frame_bytes` arrives as a stub (`oversize_bytes`, `sha256`, a short prefix).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ClassVar, NamedTuple
from urllib.parse import unquote, urlparse

import requests
import structlog
import urllib3

from wikistreams.producer.backfill import since_for
from wikistreams.producer.sse import (
    DEFAULT_MAX_FRAME_BYTES,
    PREFIX_BYTES,
    SseEvent,
    SseParser,
    parse,
)

if TYPE_CHECKING:
    from wikistreams.producer.position import Position

log = structlog.get_logger("producer.source")

FILE_TOPIC_PREFIX = "file:"


# Whatever a broken, stalled or garbled connection can raise from any layer below us: requests,
# urllib3 (ProtocolError, ReadTimeoutError, DecodeError, SSLError; `resp.raw` bypasses requests'
# wrapping), http.client (IncompleteRead), sockets and ssl (OSError), bad chunk sizes (ValueError)
# and zlib. All of them mean "reconnect"; only `StreamRejected` ends the source.
STREAM_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
    ValueError,
    zlib.error,
)
READ_SIZE = 65536


class RawEvent(NamedTuple):
    """One frame as received: `sse_id` is the resume position after this frame.

    A frame bigger than the source's `max_frame_bytes` is not kept: `oversize_bytes` is the size
    of its data and `sha256` that data's hex digest (the bytes a record would have carried), and
    `data` holds only its first KiB, so the pipeline can dead-letter a stub (FrameTooLarge).
    A NamedTuple because one is made per event: it costs a third of a frozen dataclass.
    """

    data: bytes
    sse_id: str | None
    event_type: str = "message"
    oversize_bytes: int | None = None  # set when the frame exceeded SSE_MAX_FRAME_BYTES
    sha256: str | None = None  # of the whole over-size frame's data (`data` keeps a prefix)


def _raw_event(event: SseEvent, sse_id: str | None) -> RawEvent:
    if event.oversize:
        return RawEvent(event.data, sse_id, event.event, event.data_size, event.sha256)
    return RawEvent(event.data, sse_id, event.event)


class StreamRejected(RuntimeError):
    """The server refused us in a way that retrying will not fix (e.g. 403 on User-Agent)."""


def reconnect_delay(attempt: int, cap: float, base: float = 1.0) -> float:
    """Exponential backoff with jitter, so many clients do not reconnect in step.

    The jitter spans the upper half only ("equal jitter"): unlike full jitter, it never retries
    at once, so a failing server sees at most one connection per `min(cap, base) / 2` seconds.
    """
    ceiling = min(cap, base * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)


class SseSource:
    """Reads EventStreams over one connection, reconnecting for ever.

    The server ends every connection after about 15 minutes, so a connection that delivered
    events and ended cleanly reconnects at once (or after the server's `retry:` time). Any error,
    and any connection that delivered no event (e.g. a 200 that closes at once), backs off
    exponentially: reconnecting in a tight loop would hammer Wikimedia. Each (re)connect sends the
    id of the last frame read as `Last-Event-ID`, starting from the committed position after a
    restart. `since` (a backfill, see `producer.backfill`) is sent only while there is no id yet:
    the service lets `Last-Event-ID` win anyway.
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
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        backoff_base: float = 1.0,
        since: str | None = None,
    ) -> None:
        self.url = url
        self.last_event_id = last_event_id
        self.since = since
        self._timeouts = (connect_timeout, read_timeout)
        self._backoff_cap = backoff_cap
        self._backoff_base = backoff_base
        self._max_frame_bytes = max_frame_bytes
        self._retry_seconds = 0.0  # after a clean end; the server may ask for more (`retry:`)
        self._stop = stop
        self._session = session or requests.Session()
        self._session.headers.update({"User-Agent": user_agent, "Accept": "text/event-stream"})
        self.reconnects = 0
        self.state = "connecting"  # connecting | connected | retrying (shown by /health, stats)

    def __iter__(self) -> Iterator[RawEvent]:
        attempt = 0
        while not self._stop.is_set():
            delivered = 0
            error: BaseException | None = None
            try:
                for raw in self._read_once():
                    delivered += 1
                    yield raw
            except StreamRejected:
                raise
            except STREAM_ERRORS as exc:
                error = exc
            if self._stop.is_set():
                return
            if delivered:
                attempt = 0
            if error is None and delivered:  # the routine end of a connection (~15 min)
                delay = min(self._retry_seconds, self._backoff_cap)
                log.info(
                    "sse_ended",
                    url=self.url,
                    last_event_id=self.last_event_id,
                    events=delivered,
                    retry_in_seconds=round(delay, 2),
                )
            else:
                self.state = "retrying"
                delay = reconnect_delay(attempt, self._backoff_cap, self._backoff_base)
                delay = max(delay, getattr(error, "retry_after", None) or 0.0)
                attempt += 1
                log.warning(
                    "sse_disconnected",
                    error=f"{type(error).__name__}: {error}" if error else "ended with no event",
                    events=delivered,
                    retry_in_seconds=round(delay, 2),
                )
            self.reconnects += 1
            self._stop.wait(delay)

    def _read_once(self) -> Iterator[RawEvent]:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        params = {"since": self.since} if self.since and not self.last_event_id else None
        with self._session.get(
            self.url, headers=headers, params=params, stream=True, timeout=self._timeouts
        ) as resp:
            _raise_for_stream_status(resp)
            self.state = "connected"
            log.info(
                "sse_connected",
                url=self.url,
                last_event_id=self.last_event_id,
                since=params["since"] if params else None,
            )
            parser = SseParser(self._max_frame_bytes)
            # `read1` returns what has arrived instead of waiting to fill a buffer; decoded, in
            # case the server compresses (requests leaves `resp.raw` undecoded).
            while chunk := resp.raw.read1(READ_SIZE, decode_content=True):
                for event in parser.feed(chunk):
                    if self._stop.is_set():
                        return
                    if event.last_event_id:
                        self.last_event_id = event.last_event_id
                    yield _raw_event(event, event.id or None)
                # A frame without data is not dispatched, but its id moves the resume position.
                self.last_event_id = parser.last_event_id or self.last_event_id
                if parser.retry_ms is not None:
                    self._retry_seconds = parser.retry_ms / 1000


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
    so a restarted producer resumes a replay where its position says, like it would live; a
    position from another file or from the live stream does not apply and the replay starts over.
    """

    def __init__(
        self,
        path: Path,
        speed: str,
        last_event_id: str | None,
        stop: threading.Event,
        wait_at_end: bool = False,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"SSE_URL points at a missing file: {path}")
        self.path = path.resolve()
        self._topic = FILE_TOPIC_PREFIX + str(self.path)
        self._id_prefix = '[{"topic": ' + json.dumps(self._topic) + ', "partition": 0, "offset": '
        self._factor = None if speed == "fast" else (1.0 if speed == "realtime" else float(speed))
        self._resume_after = file_offset(last_event_id, self._topic)
        if last_event_id and self._resume_after is None:
            log.warning("checkpoint_ignored", last_event_id=last_event_id, source=self._topic)
        self._stop = stop
        self._wait_at_end = wait_at_end
        self._max_frame_bytes = max_frame_bytes
        self.reconnects = 0
        self.state = "replaying"  # replaying | finished

    def __iter__(self) -> Iterator[RawEvent]:
        yield from self._replay()
        self.state = "finished"
        if self._wait_at_end:
            log.info("replay_finished", path=str(self.path))
            self._stop.wait()

    def _replay(self) -> Iterator[RawEvent]:
        pacer = _Pacer(self._factor) if self._factor is not None else None
        stop = self._stop
        skip = -1 if self._resume_after is None else self._resume_after
        for index, frame in enumerate(self._frames()):
            if stop.is_set():
                return
            if index <= skip:
                continue
            if pacer is not None:
                pacer.wait(frame.data, stop)
            yield _raw_event(frame, self._event_id(index))

    def _event_id(self, index: int) -> str:
        """`[{"topic": "file:<path>", "partition": 0, "offset": <index>}]`, as JSON."""
        return f"{self._id_prefix}{index}}}]"

    def _frames(self) -> Iterator[SseEvent]:
        with self.path.open("rb") as fh:
            if self.path.suffix == ".sse":
                yield from parse(_chunks(fh), self._max_frame_bytes)
                return
            for line in fh:
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    continue
                if len(line) <= self._max_frame_bytes:
                    yield SseEvent(line, size=len(line), data_size=len(line))
                else:  # same stub as a live frame that big: Kafka would refuse the record
                    digest = hashlib.sha256(line).hexdigest()
                    stub = line[:PREFIX_BYTES]
                    yield SseEvent(stub, size=len(line), sha256=digest, data_size=len(line))


def _chunks(fh: BinaryIO, size: int = READ_SIZE) -> Iterable[bytes]:
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
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    since: str | None = None,
) -> SseSource | FileSource:
    """`file://` URLs replay a recording (from its start: `since` does not apply); anything
    else is a live EventStreams endpoint."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        return FileSource(path, speed, last_event_id, stop, wait_at_end, max_frame_bytes)
    if file_offset(last_event_id) is not None:
        log.warning("checkpoint_ignored", last_event_id=last_event_id, source=url)
        last_event_id = None
    return SseSource(
        url,
        user_agent,
        last_event_id,
        connect_timeout,
        read_timeout,
        backoff_cap,
        stop,
        max_frame_bytes=max_frame_bytes,
        since=since,
    )


@dataclass
class EventStreamSource:
    """EventStreams (or a `file://` recording) as the pipeline's `stages.Source`.

    Opened at the committed position, whose SSE id becomes the first `Last-Event-ID`. Only a
    stream with no position yet backfills (`backfill_hours` of history via `since`); a replayed
    file never does, its recording being the history.
    """

    url: str
    user_agent: str
    backfill_hours: float = 0.0
    speed: str = "fast"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    backoff_cap: float = 60.0
    wait_at_end: bool = False
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    since: str | None = field(default=None, init=False)
    _reader: SseSource | FileSource | None = field(default=None, init=False, repr=False)
    resumes: ClassVar[bool] = True

    @property
    def name(self) -> str:
        return self.url

    def open(self, resume: Position | None, stop: threading.Event) -> Iterable[RawEvent]:
        live = not self.url.startswith(FILE_TOPIC_PREFIX)
        self.since = since_for(self.backfill_hours) if resume is None and live else None
        self._reader = open_source(
            self.url,
            self.user_agent,
            resume.last_event_id if resume else None,
            stop,
            speed=self.speed,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            backoff_cap=self.backoff_cap,
            wait_at_end=self.wait_at_end,
            max_frame_bytes=self.max_frame_bytes,
            since=self.since,
        )
        return self._reader

    @property
    def state(self) -> str:
        return self._reader.state if self._reader is not None else "connecting"

    @property
    def reconnects(self) -> int:
        return self._reader.reconnects if self._reader is not None else 0

    def close(self, complete: bool) -> None:
        """Nothing to hand back: the position committed with the events is the progress."""
