"""A local stand-in for Wikimedia EventStreams that replays real recorded recentchange events.

It speaks the same SSE as `stream.wikimedia.org`: a `:ok` comment, then `event: message`,
`id: [{topic, partition, timestamp}, ...]` and `data: {...}` frames. Ids are timestamp-based
like the live service, so `Last-Event-ID` resumes at the first event at or after that time, which
replays a few events exactly as the real service does. Recorded `.sse` frames keep their own ids.

Responses stream with chunked transfer encoding (HTTP/1.1). For tests it can also cut
connections after N events (the live service cuts every ~15 min), require a policy-compliant
User-Agent (403 otherwise), answer 429/503 a number of times (with any `Retry-After`), inject
malformed frames or hostile ids at chosen positions, send huge frames (one long line, or very
many short `data:` lines) without holding them in memory, and fail connections in scripted ways
(`Behaviour.faults`): cut one in the middle of a chunk, send a malformed chunk, stall until the
client's read timeout gives up, or answer 200 and close with no event.

Run alone: `python -m tests.standins.sse_server --port 8098 FILE...`.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from wikistreams.producer.sse import parse
from tests.standins import LoopbackServer, data_dir

TOPIC = "eqiad.mediawiki.recentchange"
# The raw SSE recording: nine real events (polars-book, MIT) in EventStreams' frame format,
# DERIVED by tests/data/recorded/make_derived.py (SOURCES.md 1c). Kept out of recentchange/ so
# that the events are not counted twice by what reads every recording.
RECORDED_SSE = "DERIVED_recentchange_9_frames_from_polars-book_enwiki_2023-07-29.sse"


def recorded_sse() -> Path:
    """The raw SSE recording (`:ok`, then `event: message` / `id:` / `data:` frames)."""
    return data_dir() / "sse" / RECORDED_SSE


UA_POLICY = re.compile(r"^\S+/\S+ \(.+\) \S+")


@dataclass(frozen=True)
class Frame:
    data: bytes
    sse_id: str
    timestamp_ms: int
    event_type: str = "message"


def load_frames(paths: list[Path]) -> list[Frame]:
    """Recorded events from `.jsonl`/`.json` (one event per line) and raw `.sse` files."""
    frames: list[Frame] = []
    for path in paths:
        if path.suffix == ".sse":
            content = path.read_bytes()
            for event in parse([content], max_frame_bytes=len(content) + 1):  # keep every frame
                ts = _id_timestamp(event.id) if event.id else _ts(event.data)
                frames.append(Frame(event.data, event.id or live_id(ts), ts or _ts(event.data)))
            continue
        for line in path.read_bytes().splitlines():
            if line.strip():
                frames.append(Frame(line, live_id(_ts(line)), _ts(line)))
    return frames


def _ts(data: bytes) -> int:
    dt = json.loads(data)["meta"]["dt"]
    return int(datetime.fromisoformat(dt.replace("Z", "+00:00")).timestamp() * 1000)


def live_id(timestamp_ms: int) -> str:
    """An EventStreams-style id (both data centres) at `timestamp_ms`."""
    return json.dumps(
        [
            {"topic": TOPIC, "partition": 0, "timestamp": timestamp_ms},
            {"topic": "codfw.mediawiki.recentchange", "partition": 0, "offset": -1},
        ],
        separators=(",", ":"),
    )


def _id_timestamp(sse_id: str) -> int | None:
    """The (largest) Kafka timestamp in an EventStreams id, None if it has none."""
    try:
        return max(p["timestamp"] for p in json.loads(sse_id) if "timestamp" in p)
    except (ValueError, KeyError, TypeError):
        return None


def resume_index(frames: list[Frame], last_event_id: str | None) -> int:
    """Like Kafka's offsetsForTimes: the first frame whose time is at or after the id's time."""
    ts = _id_timestamp(last_event_id) if last_event_id else None
    if ts is None:
        return 0
    return at_or_after(frames, ts)


def at_or_after(frames: list[Frame], timestamp_ms: int) -> int:
    return next((i for i, f in enumerate(frames) if f.timestamp_ms >= timestamp_ms), len(frames))


def since_ms(value: str) -> int | None:
    """EventStreams' `since`: milliseconds since the epoch, or an ISO 8601 timestamp."""
    if value.isdigit():
        return int(value)
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def start_index(
    frames: list[Frame], last_event_id: str | None, since: str | None, live: int
) -> int:
    """Where a connection starts, as the service decides: `Last-Event-ID` wins over `since`;
    with neither, at the live edge (`live`: the index of the first frame not yet history)."""
    if last_event_id:
        return resume_index(frames, last_event_id)
    if since is not None:
        ts = since_ms(since)
        return live if ts is None else at_or_after(frames, ts)
    return live


FILLER = bytes(range(48, 58)) * 6554  # 65,540 bytes of "0123456789..." for huge data lines


def filler(size: int) -> Iterator[bytes]:
    """`size` bytes of filler in pieces (a huge frame's data, never held whole)."""
    while size > 0:
        yield FILLER[: min(size, len(FILLER))]
        size -= len(FILLER)


def big_frame(kind: str, size: int, sse_id: str) -> Iterator[bytes]:
    """A huge `event: message` frame in pieces: kind "line" is one `data:` line of `size` filler
    bytes; kind "lines" is `size` lines `data: x` (the frame's data is "x\nx\n...x")."""
    yield b"event: message\nid: %s\ndata: " % sse_id.encode()
    if kind == "line":
        yield from filler(size)
        yield b"\n\n"
        return
    block = b"x\ndata: " * 8192
    full, rest = divmod(size - 1, 8192)
    for _ in range(full):
        yield block
    yield b"x\ndata: " * rest + b"x\n\n"


@dataclass
class Behaviour:
    cut_after: int = 0  # close each connection after this many frames (0 = never)
    require_user_agent: bool = True
    reject_next: int = 0  # answer this many connections with `reject_status`
    reject_status: int = 429
    retry_after: str = "1"
    inject: dict[int, bytes] = field(default_factory=dict)  # raw frame text before position i
    # Hostile ids: frame i is sent with this raw `id:` value instead of its own (bytes, so that
    # invalid UTF-8, control characters and leading spaces can be sent).
    ids: dict[int, bytes] = field(default_factory=dict)
    frame_delay: float = 0.0
    hold_open: bool = True  # after the last frame, keep the connection open (like live)
    # Huge frames sent before position i: {i: ("line", bytes) or ("lines", count)}, see big_frame.
    big_frames: dict[int, tuple[str, int]] = field(default_factory=dict)
    # One (fault, after_n_frames) per upcoming connection, in order; then connections are normal.
    # "cut_mid_chunk": announce the next frame's chunk, send half of it, close the socket.
    # "bad_chunk": a chunk size that is not hex; "stall": send nothing more (the client's read
    # timeout must fire); "empty": 200 and a clean end with no body at all.
    faults: list[tuple[str, int]] = field(default_factory=list)
    # Index of the first frame that is "live": a connection with neither Last-Event-ID nor
    # `?since=` starts there, like the service starts at now; 0 serves the whole recording.
    live_from: int = 0
    stall_seconds: float = 30.0  # a stalled connection ends when the client leaves, or then
    connections: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SseStandIn(LoopbackServer):
    def __init__(self, frames: list[Frame], port: int = 0) -> None:
        super().__init__(port, _Handler)
        self.frames = frames
        self.behaviour = Behaviour()

    @property
    def url(self) -> str:
        return self.base_url + "/v2/stream/recentchange"


class _Handler(BaseHTTPRequestHandler):
    server: SseStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        b = self.server.behaviour
        user_agent = self.headers.get("User-Agent", "")
        last_id = self.headers.get("Last-Event-ID")
        with b.lock:
            query = parse_qs(urlsplit(self.path).query)
            since = query["since"][0] if "since" in query else None
            b.connections.append(
                {"user_agent": user_agent, "last_event_id": last_id, "since": since}
            )
            reject = b.reject_next > 0
            if reject:
                b.reject_next -= 1
            fault = ("", 0)
            if not reject and b.faults:
                fault = b.faults.pop(0)
        if b.require_user_agent and not UA_POLICY.match(user_agent):
            self._plain(403, "Please set a user-agent and respect our robot policy")
            return
        if reject:
            self._plain(b.reject_status, "Too many requests", {"Retry-After": b.retry_after})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            start = start_index(self.server.frames, last_id, since, b.live_from)
            if self._stream(start, b, *fault):
                self.wfile.write(b"0\r\n\r\n")  # the last chunk: a clean end of the response
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _stream(self, start: int, b: Behaviour, fault: str, fault_after: int) -> bool:
        """Send frames from `start`; False if the connection was broken on purpose."""
        if fault == "empty":
            return True
        self._chunk(b":ok\n\n")
        sent = 0
        for index in range(start, len(self.server.frames)):
            frame = self.server.frames[index]
            text = b"event: %s\nid: %s\ndata: %s\n\n" % (
                frame.event_type.encode(),
                b.ids.get(index, frame.sse_id.encode()),
                frame.data,
            )
            if fault and sent >= fault_after:
                return self._fail(fault, text, b)
            if index in b.inject:
                self._chunk(b.inject[index])
            if index in b.big_frames:
                kind, size = b.big_frames[index]
                for piece in big_frame(kind, size, live_id(frame.timestamp_ms - 1)):
                    self._chunk(piece)
            self._chunk(text)
            sent += 1
            if b.frame_delay:
                time.sleep(b.frame_delay)
            if b.cut_after and sent >= b.cut_after:
                return True
        if fault:
            return self._fail(fault, b": the stream is drained\n\n", b)
        if b.hold_open:
            while True:
                time.sleep(1)
                self._chunk(b":\n\n")
        return True

    def _fail(self, fault: str, text: bytes, b: Behaviour) -> bool:
        if fault == "cut_mid_chunk":
            # The chunk header promises the whole frame; the socket closes after half of it.
            self.wfile.write(b"%x\r\n%s" % (len(text), text[: len(text) // 2]))
        elif fault == "bad_chunk":
            self.wfile.write(b"zz\r\n" + text + b"\r\n")
        elif fault == "stall":
            # Send nothing more; the request has no body, so recv returns when the client leaves.
            self.connection.settimeout(b.stall_seconds)
            try:
                self.connection.recv(1)
            except OSError:
                pass
        else:
            raise ValueError(f"unknown fault {fault!r}")
        return False

    def _plain(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--cut-after", type=int, default=0)
    args = parser.parse_args()
    server = SseStandIn(load_frames(args.files), args.port)
    server.behaviour.cut_after = args.cut_after
    server.behaviour.hold_open = True
    print(f"EventStreams stand-in on {server.url} ({len(server.frames)} frames)")
    server.serve_forever()


if __name__ == "__main__":
    main()
