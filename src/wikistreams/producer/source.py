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
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ClassVar, NamedTuple
from urllib.parse import unquote, urlparse

import requests
import structlog
import urllib3

from wikistreams.backoff import Backoff
from wikistreams.producer.backfill import since_for
from wikistreams.producer.liveness import Liveness
from wikistreams.producer.logs import LogFields
from wikistreams.producer.sse import (
    DEFAULT_MAX_FRAME_BYTES,
    PREFIX_BYTES,
    SseEvent,
    SseParser,
    parse,
)
from wikistreams.producer.stream_limits import (
    capped_wait,
    retry_after_seconds,
    unsendable,
)

if TYPE_CHECKING:
    from wikistreams.producer.config import Settings
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


class StreamRejected(requests.HTTPError):
    """The server refused us in a way that retrying will not fix (e.g. 403 on User-Agent)."""


@dataclass(frozen=True)
class SourceOptions:
    """What the sources take from the settings, read in one place (`from_settings`): no value
    here has a second default that could drift from the setting's."""

    user_agent: str
    connect_timeout: float
    read_timeout: float
    backoff_cap: float
    server_wait_cap: float  # SSE_RETRY_AFTER_MAX_SECONDS: Retry-After and `retry:` alike
    stall_seconds: float
    max_frame_bytes: int
    backfill_hours: float
    speed: str
    wait_at_end: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceOptions:
        return cls(
            user_agent=settings.user_agent,
            connect_timeout=settings.sse_connect_timeout_seconds,
            read_timeout=settings.sse_read_timeout_seconds,
            backoff_cap=settings.reconnect_backoff_max_seconds,
            server_wait_cap=settings.sse_retry_after_max_seconds,
            stall_seconds=settings.source_stall_seconds,
            max_frame_bytes=settings.sse_max_frame_bytes,
            backfill_hours=settings.backfill_hours,
            speed=settings.replay_speed,
            wait_at_end=settings.replay_at_end == "wait",
        )


class SseSource:
    """Reads EventStreams over one connection, reconnecting for ever.

    The server ends every connection after about 15 minutes, so a connection that delivered
    events and ended cleanly reconnects at once (or after the server's `retry:` time). Any error,
    and any connection that delivered no event (e.g. a 200 that closes at once), backs off
    exponentially: reconnecting in a tight loop would hammer Wikimedia. Each (re)connect sends the
    id of the last frame read as `Last-Event-ID`, starting from the committed position after a
    restart; an id that cannot be sent back is never made the resume point (`stream_limits`).
    While there is no id yet, each attempt asks for the last `backfill_hours` (`since`) counted
    from that attempt, so a stream reachable only hours later still backfills that much only.
    What the server asks us to wait is capped (`server_wait_cap`), and `liveness` says whether
    frames or keep-alives still arrive, and why not.
    """

    def __init__(
        self,
        url: str,
        last_event_id: str | None,
        options: SourceOptions,
        stop: threading.Event,
        session: requests.Session | None = None,
        backoff_base: float = 1.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.url = url
        self.last_event_id: str | None = None
        self._options = options
        self._clock = clock
        self.since = since_for(options.backfill_hours, clock() if clock else None)
        self._backoff_base = backoff_base
        self._retry_ms: int | None = None  # the server's `retry:` (an int of any size), if any
        self._stop = stop
        self._session = session or requests.Session()
        self._session.headers.update(
            {"User-Agent": options.user_agent, "Accept": "text/event-stream"}
        )
        self.reconnects = 0
        self.state = "connecting"  # connecting | connected | retrying (shown by /health, stats)
        self.liveness = Liveness(options.stall_seconds)
        self._refused_id: str | None = None  # the last id found unsendable (logged once)
        self._resume_from(last_event_id)

    def _resume_from(self, event_id: str | None) -> None:
        """Make `event_id` the resume point if it can be sent back; else keep the last one."""
        if not event_id or event_id == self.last_event_id:
            return
        reason = unsendable(event_id)
        if reason is None:
            self.last_event_id = event_id
            return
        if event_id != self._refused_id:  # once per id, not once per frame
            self._refused_id = event_id
            log.warning(
                "sse_id_unusable",
                reason=reason,
                event_id=event_id[:200],
                kept_last_event_id=self.last_event_id,
            )

    def __iter__(self) -> Iterator[RawEvent]:
        backoff = Backoff(self._backoff_base, self._options.backoff_cap)
        while not self._stop.is_set():
            delivered = 0
            error: BaseException | None = None
            try:
                for raw in self._read_once():
                    delivered += 1
                    yield raw
            except StreamRejected as exc:
                self.liveness.failed(exc)
                raise
            except STREAM_ERRORS as exc:
                error = exc
            if self._stop.is_set():
                return
            self.reconnects += 1
            if delivered:
                backoff.reset()
            if error is None and delivered:  # the routine end of a connection (~15 min)
                delay = self._server_retry()
                log.info(
                    "sse_ended",
                    url=self.url,
                    last_event_id=self.last_event_id,
                    events=delivered,
                    retry_in_seconds=round(delay, 2),
                )
                self._stop.wait(delay)
            else:
                self.state = "retrying"
                self.liveness.failed(error)
                backoff.wait(
                    self._stop,
                    log,
                    "sse_disconnected",
                    floor=self._retry_after(error),
                    error=f"{type(error).__name__}: {error}" if error else "ended with no event",
                    cause=self.liveness.cause.value if self.liveness.cause else None,
                    events=delivered,
                )

    def _server_retry(self) -> float:
        """The wait after a clean end: the server's `retry:` (capped), else none."""
        if self._retry_ms is None:
            return 0.0
        return capped_wait(self._retry_ms, self._options.server_wait_cap)

    def _retry_after(self, error: BaseException | None) -> float:
        """The server's Retry-After on an error answer, capped; 0 without one."""
        asked = getattr(error, "retry_after", None)
        if asked is None:
            return 0.0
        cap = self._options.server_wait_cap
        if asked > cap:
            log.warning("sse_retry_after_capped", asked_seconds=asked, waits_seconds=cap)
        return float(min(asked, cap))

    def _note_retry(self, retry_ms: int) -> None:
        """Keep the server's `retry:`; say so once when it is over the cap."""
        if retry_ms == self._retry_ms:
            return
        self._retry_ms = retry_ms
        cap = self._options.server_wait_cap
        if retry_ms > cap * 1000:
            digits = len(str(retry_ms))
            asked = str(retry_ms) if digits <= 15 else f"{digits} digits"
            log.warning("sse_retry_capped", asked_ms=asked, waits_seconds=cap)

    def _read_once(self) -> Iterator[RawEvent]:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        params = None
        if not self.last_event_id:
            self.since = since_for(
                self._options.backfill_hours, self._clock() if self._clock else None
            )
            params = {"since": self.since} if self.since else None
        timeouts = (self._options.connect_timeout, self._options.read_timeout)
        with self._session.get(
            self.url, headers=headers, params=params, stream=True, timeout=timeouts
        ) as resp:
            _raise_for_stream_status(resp)
            self.state = "connected"
            self.liveness.opened()
            log.info(
                "sse_connected",
                url=self.url,
                last_event_id=self.last_event_id,
                since=params["since"] if params else None,
            )
            yield from self._frames(resp)

    def _frames(self, resp: requests.Response) -> Iterator[RawEvent]:
        parser = SseParser(self._options.max_frame_bytes)
        comments = 0
        # `read1` returns what has arrived instead of waiting to fill a buffer; decoded, in
        # case the server compresses (requests leaves `resp.raw` undecoded).
        while chunk := resp.raw.read1(READ_SIZE, decode_content=True):
            events = parser.feed(chunk)
            if events or parser.comments != comments:
                comments = parser.comments
                self.liveness.sign(len(events))
            for event in events:
                if self._stop.is_set():
                    return
                self._resume_from(event.last_event_id)
                # The frame's own id is a resume point only if it became the one to send back.
                own = event.id if event.id and event.id == self.last_event_id else None
                yield _raw_event(event, own)
            # A frame without data is not dispatched, but its id moves the resume position.
            self._resume_from(parser.last_event_id)
            if parser.retry_ms is not None:
                self._note_retry(parser.retry_ms)


ERROR_BODY_BYTES = 1024  # read of an error answer's body: a hostile one may never end


def _raise_for_stream_status(resp: requests.Response) -> None:
    if resp.status_code == 200:
        return
    head = b"" if resp.raw.closed else resp.raw.read(ERROR_BODY_BYTES, decode_content=True)
    body = head.decode("utf-8", "replace")[:300]
    if resp.status_code == 403:
        policy = "check USER_AGENT_CONTACT (Wikimedia's User-Agent policy)"
        raise StreamRejected(f"403 from {resp.url}: {policy}: {body}", response=resp)
    err = requests.HTTPError(f"HTTP {resp.status_code} from {resp.url}: {body}", response=resp)
    asked = retry_after_seconds(resp.headers.get("Retry-After"))
    err.retry_after = asked  # type: ignore[attr-defined]
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
        self.frames = 0  # replayed so far (/health: `make up` waits for the first)
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
            self.frames += 1
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
    url: str, last_event_id: str | None, stop: threading.Event, options: SourceOptions
) -> SseSource | FileSource:
    """`file://` URLs replay a recording (from its start: a backfill does not apply); anything
    else is a live EventStreams endpoint."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        return FileSource(
            path,
            options.speed,
            last_event_id,
            stop,
            options.wait_at_end,
            options.max_frame_bytes,
        )
    if file_offset(last_event_id) is not None:
        log.warning("checkpoint_ignored", last_event_id=last_event_id, source=url)
        last_event_id = None
    return SseSource(url, last_event_id, options, stop)


@dataclass
class EventStreamSource:
    """EventStreams (or a `file://` recording) as the pipeline's `stages.Source`.

    Opened at the committed position, whose SSE id becomes the first `Last-Event-ID`. Only a
    stream with no position yet backfills (`backfill_hours` of history via `since`); a replayed
    file never does, its recording being the history.
    """

    url: str
    options: SourceOptions
    _reader: SseSource | FileSource | None = field(default=None, init=False, repr=False)
    resumes: ClassVar[bool] = True

    @property
    def name(self) -> str:
        return self.url

    def open(self, resume: Position | None, stop: threading.Event) -> Iterable[RawEvent]:
        self._reader = open_source(
            self.url, resume.last_event_id if resume else None, stop, self.options
        )
        return self._reader

    @property
    def since(self) -> str | None:
        """The backfill's start as asked at the last connect attempt; None once resuming."""
        reader = self._reader
        if isinstance(reader, SseSource) and not reader.last_event_id:
            return reader.since
        return None

    @property
    def state(self) -> str:
        return self._reader.state if self._reader is not None else "connecting"

    @property
    def reconnects(self) -> int:
        return self._reader.reconnects if self._reader is not None else 0

    def health(self) -> tuple[LogFields, str | None]:
        """/health fields (`source_frames`, and for the live stream why it is silent) and the
        problem that makes it `degraded` (None while frames or keep-alives arrive)."""
        reader = self._reader
        fields: LogFields = {"source_url": self.url}
        if isinstance(reader, SseSource):
            problem = reader.liveness.problem()
            return fields | reader.liveness.fields(), problem[1] if problem else None
        return fields | {"source_frames": reader.frames if reader else 0}, None

    def close(self, complete: bool) -> None:
        """Nothing to hand back: the position committed with the events is the progress."""
