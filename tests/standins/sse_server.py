"""A local stand-in for Wikimedia EventStreams that replays real recorded recentchange events.

It speaks the same SSE as `stream.wikimedia.org`: a `:ok` comment, then `event: message`,
`id: [{topic, partition, timestamp}, ...]` and `data: {...}` frames. Ids are timestamp-based
like the live service, so `Last-Event-ID` resumes at the first event at or after that time, which
replays a few events exactly as the real service does. Recorded `.sse` frames keep their own ids.

For tests it can also cut connections after N events (the live service cuts every ~15 min),
require a policy-compliant User-Agent (403 otherwise), answer 429/503 a number of times, and
inject malformed frames at chosen positions.

Run alone: `python -m tests.standins.sse_server --port 8098 FILE...`.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import sseclient

from tests.standins import LoopbackServer

TOPIC = "eqiad.mediawiki.recentchange"
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
            with path.open("rb") as fh:
                for event in sseclient.SSEClient(iter([fh.read()])).events():
                    data = event.data.encode("utf-8")
                    ts = _id_timestamp(event.id) if event.id else _ts(data)
                    frames.append(Frame(data, event.id or _live_id(ts), ts or _ts(data)))
            continue
        for line in path.read_bytes().splitlines():
            if line.strip():
                frames.append(Frame(line, _live_id(_ts(line)), _ts(line)))
    return frames


def _ts(data: bytes) -> int:
    dt = json.loads(data)["meta"]["dt"]
    return int(datetime.fromisoformat(dt.replace("Z", "+00:00")).timestamp() * 1000)


def _live_id(timestamp_ms: int) -> str:
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
    return next((i for i, f in enumerate(frames) if f.timestamp_ms >= ts), len(frames))


@dataclass
class Behaviour:
    cut_after: int = 0  # close each connection after this many frames (0 = never)
    require_user_agent: bool = True
    reject_next: int = 0  # answer this many connections with `reject_status`
    reject_status: int = 429
    retry_after: str = "1"
    inject: dict[int, bytes] = field(default_factory=dict)  # raw frame text before position i
    frame_delay: float = 0.0
    hold_open: bool = True  # after the last frame, keep the connection open (like live)
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
            b.connections.append({"user_agent": user_agent, "last_event_id": last_id})
            reject = b.reject_next > 0
            if reject:
                b.reject_next -= 1
        if b.require_user_agent and not UA_POLICY.match(user_agent):
            self._plain(403, "Please set a user-agent and respect our robot policy")
            return
        if reject:
            self._plain(b.reject_status, "Too many requests", {"Retry-After": b.retry_after})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self._stream(resume_index(self.server.frames, last_id), b)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _stream(self, start: int, b: Behaviour) -> None:
        self.wfile.write(b":ok\n\n")
        sent = 0
        for index in range(start, len(self.server.frames)):
            if index in b.inject:
                self.wfile.write(b.inject[index])
            frame = self.server.frames[index]
            self.wfile.write(
                b"event: %s\nid: %s\ndata: %s\n\n"
                % (frame.event_type.encode(), frame.sse_id.encode(), frame.data)
            )
            self.wfile.flush()
            sent += 1
            if b.frame_delay:
                time.sleep(b.frame_delay)
            if b.cut_after and sent >= b.cut_after:
                return
        if b.hold_open:
            while True:
                time.sleep(1)
                self.wfile.write(b":\n\n")
                self.wfile.flush()

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
