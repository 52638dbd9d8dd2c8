"""A paced EventStreams stand-in for benchmarks: a real-shaped event mix at a set rate.

The test stand-in (`tests/standins/sse_server.py`) replays recordings as they are; a latency
benchmark needs more: a steady rate (or "catch-up", as fast as the producer reads), a live-like
mix of wikis, and the exact send time of every event so Kafka's record timestamps can be joined
against it. Frames look like the live service's: `event: message`, `id: [{"topic":
"eqiad.mediawiki.recentchange","partition":0,"timestamp":<ms>}, ...]`, `data: {...}`.

The mix is built from the real recordings in `tests/data/recorded/recentchange`:

- Wikidata entity edits come from the editgroups recordings (wikidatawiki, ns 0 `Q<n>`); a few
  (`PROPERTY_SHARE`) are turned into ns 120 `Property:P<n>` edits, which no recording has. Each
  gets a fresh id, counting up from a random base, so the producer's label cache always misses,
  as it mostly does live (most items edited now were not edited in the last minutes).
- Everything else comes from the recordings of other wikis (enwiki).
- Every event gets a unique `meta.id` (uuid4) and `meta.dt` = its send time.

Why 18 % entity edits (`ENTITY_SHARE`): the recordings cannot tell, each was filtered to one
wiki by whoever recorded it. The figure is the one the issue gives for live traffic;
`--entity-share` changes it.

After the last frame the connection stays open with `:` comments (like the live service between
events), so the producer does not reconnect. A reconnect continues with the next unsent event
(`Last-Event-ID` is not honoured; the benchmark counts connections instead).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.conftest import recorded_events
from tests.standins import LoopbackServer, recentchange_dir

ENTITY_SHARE = 0.18
PROPERTY_SHARE = 0.02  # of the entity edits
WIKIDATA = "wikidatawiki"
DT_MARK = "@@SEND_DT@@"  # replaced by the send time when the frame goes out
CATCHUP_CHUNK = 64  # frames per socket write when sending as fast as possible
_Q_TITLE = re.compile(r"^Q[1-9]\d*$")


def _recorded_events(root: Path | None = None) -> list[dict]:
    """Every event of every recording (.jsonl/.json lines, .sse frames) as parsed JSON."""
    root = root or recentchange_dir()
    out = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in {".sse", ".jsonl", ".json"}:
            continue
        datas = recorded_events(path)  # the producer's own file source and SSE parser
        for data in datas:
            try:
                event = json.loads(data)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("meta"), dict):
                out.append(event)
    return out


def load_templates(root: Path | None = None) -> tuple[list[dict], list[dict]]:
    """(Wikidata item edits, other wikis' events) from the recordings."""
    entity, other = [], []
    for event in _recorded_events(root):
        if event.get("wiki") == WIKIDATA:
            if event.get("namespace") == 0 and _Q_TITLE.match(str(event.get("title", ""))):
                entity.append(event)
        elif event.get("wiki"):
            other.append(event)
    if not entity or not other:
        raise RuntimeError("recordings lack wikidatawiki item edits or other wikis' events")
    return entity, other


@dataclass(frozen=True)
class LoadEvent:
    event_id: str
    entity: bool
    data: bytes  # JSON with DT_MARK where meta.dt goes


class EventMix:
    """Builds real-shaped events; fresh entity ids unless `fresh_entities=False`."""

    def __init__(
        self,
        entity_share: float = ENTITY_SHARE,
        seed: int | None = None,
        fresh_entities: bool = True,
    ) -> None:
        self.entity_share = entity_share
        self.fresh_entities = fresh_entities
        self._rng = random.Random(seed)
        self._entity, self._other = load_templates()
        # Far above today's highest ids: unknown to the stand-in API, never in the label cache.
        self._next_q = self._rng.randrange(500_000_000, 900_000_000, 1000)
        self._next_p = self._rng.randrange(500_000, 900_000, 1000)

    def build(self, count: int) -> list[LoadEvent]:
        return list(self.iter(count))

    def iter(self, count: int) -> Iterator[LoadEvent]:
        for _ in range(count):
            yield self._one()

    def _one(self) -> LoadEvent:
        entity = self._rng.random() < self.entity_share
        event = json.loads(json.dumps(self._rng.choice(self._entity if entity else self._other)))
        event_id = str(uuid.uuid4())
        event["meta"]["id"] = event_id
        event["meta"]["dt"] = DT_MARK
        if entity and self.fresh_entities:
            if self._rng.random() < PROPERTY_SHARE:
                self._next_p += 1
                event["namespace"], event["title"] = 120, f"Property:P{self._next_p}"
            else:
                self._next_q += 1
                event["title"] = f"Q{self._next_q}"
        data = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return LoadEvent(event_id, entity, data)


def iso_ms(epoch: float) -> str:
    """EventStreams' `meta.dt` format: UTC, milliseconds, `Z`."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def sse_id(epoch_ms: int) -> bytes:
    return (
        b'[{"topic":"eqiad.mediawiki.recentchange","partition":0,"timestamp":%d},'
        b'{"topic":"codfw.mediawiki.recentchange","partition":0,"offset":-1}]' % epoch_ms
    )


def frame(event: LoadEvent, epoch: float, event_epoch: float | None = None) -> bytes:
    """`epoch`: the send time (SSE id); `event_epoch`: its `meta.dt`, the send time if None."""
    dt = epoch if event_epoch is None else event_epoch
    data = event.data.replace(DT_MARK.encode(), iso_ms(dt).encode())
    return b"event: message\nid: %s\ndata: %s\n\n" % (sse_id(int(epoch * 1000)), data)


class LoadStandIn(LoopbackServer):
    """Serves `events` once, at `rate` events/s (None: as fast as the client reads).

    `sent_at[event_id]` is the `time.time()` just before the event's frame was written.
    `history_seconds` > 0: the events are history, as a backfill gets it: their `meta.dt` spread
    evenly over that many seconds before the first connection (else: the send time).
    """

    def __init__(
        self,
        events: list[LoadEvent],
        rate: float | None,
        port: int = 0,
        history_seconds: float = 0.0,
    ) -> None:
        super().__init__(port, _Handler)
        self.events = events
        self.rate = rate
        self.history_seconds = history_seconds
        self.sent_at: dict[str, float] = {}
        self.cursor = 0
        self.connections = 0
        self.started_at: float | None = None  # time.time() of the first connection
        self.started = threading.Event()
        self.finished = threading.Event()
        self.closing = threading.Event()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.base_url + "/v2/stream/recentchange"

    def event_time(self, index: int) -> float | None:
        """`meta.dt` of the `index`th event as epoch seconds; None: its send time."""
        if not self.history_seconds or self.started_at is None:
            return None
        step = self.history_seconds / max(1, len(self.events))
        return self.started_at - self.history_seconds + index * step

    def stop(self) -> None:
        self.closing.set()
        super().stop()


class _Handler(BaseHTTPRequestHandler):
    server: LoadStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self._stream()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _stream(self) -> None:
        load = self.server
        with load._lock:
            load.connections += 1
        self.wfile.write(b":ok\n\n")
        self.wfile.flush()
        origin, first = time.monotonic(), load.cursor
        if load.started_at is None:
            load.started_at = time.time()
            load.started.set()
        while load.cursor < len(load.events) and not load.closing.is_set():
            if load.rate:
                due = first + int((time.monotonic() - origin) * load.rate) + 1
                upto = min(len(load.events), due)
                if upto <= load.cursor:
                    time.sleep(
                        max(0.0, origin + (load.cursor - first) / load.rate - time.monotonic())
                    )
                    continue
            else:
                upto = min(len(load.events), load.cursor + CATCHUP_CHUNK)
            now = time.time()
            chunk = load.events[load.cursor : upto]
            for event in chunk:
                load.sent_at[event.event_id] = now
            first_index = load.cursor
            self.wfile.write(
                b"".join(
                    frame(event, now, load.event_time(first_index + i))
                    for i, event in enumerate(chunk)
                )
            )
            self.wfile.flush()
            load.cursor = upto
        load.finished.set()
        while not load.closing.wait(1.0):
            self.wfile.write(b":\n\n")
            self.wfile.flush()
