"""The resume position, kept in Kafka: written in the same transaction as the events it covers.

A position record says "every frame up to `last_event_id` is in Kafka, and so are these events
beyond it". The second part is what makes a restart exact: enrichment lets events without an
entity id overtake a parked entity edit, so at commit time some events past the watermark are
already in Kafka. On resume they arrive again and are dropped by id. `ids` also holds the events
of the newest frames up to the watermark (in frame order, not publish order): a timestamp
resume replays the frames of the watermark's last instant, however long ago they were published.

Records live in a compacted single-partition topic keyed by stream (`StreamIdentity.key`); the
producer is stateless on disk. A reader uses `read_committed`, so a position of an aborted or
still-open transaction is never seen: position and events are visible together or not at all.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson
from confluent_kafka import Consumer, KafkaException
from pydantic import BaseModel, ConfigDict, ValidationError

from wikistreams.producer.events import MAX_EVENT_ID_CHARS
from wikistreams.producer.limits import MAX_RECORD_BYTES
from wikistreams.producer.topic_reader import TopicUnreadable, read_to_end

# The position topic's own configs: one record per stream survives compaction. Small segments
# (and a low dirty ratio) let the cleaner keep up with one record per commit interval, so a
# start reads kilobytes, not the day's commits.
POSITION_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}
# The lease topic carries no records; its single partition is what the group assigns.
LEASE_TOPIC_CONFIG = {"cleanup.policy": "compact"}


class PositionError(RuntimeError):
    """The stored position is not a position record; the producer will not guess."""


class PositionUnavailable(PositionError):
    """Kafka did not answer the read in time: a state to wait out, not a fault of the record."""


class Position(BaseModel):
    """One position record's value (JSON)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    last_event_id: str | None
    ids: list[str] = []
    committed_at: datetime | None = None
    producer: str = ""

    def encode(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


@dataclass(frozen=True)
class StreamIdentity:
    """One stream into one topic. Every copy of a producer with the same settings shares it.

    `key` keys the position record; `transactional_id` is Kafka's fencing identity (a copy that
    starts a transaction with it makes every older copy's writes fail); `lease_group` is the
    consumer group whose member owning the lease partition is the active copy.
    """

    key: str

    @classmethod
    def of(cls, topic: str, source: str) -> StreamIdentity:
        return cls(f"{topic} <- {source}")

    @property
    def _digest(self) -> str:
        return hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:16]

    @property
    def transactional_id(self) -> str:
        return f"wikistreams-producer-{self._digest}"

    @property
    def lease_group(self) -> str:
        return f"wikistreams-lease-{self._digest}"


def this_producer() -> str:
    """Who wrote a position: host and pid, for the logs of a takeover."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_position(last_event_id: str | None, ids: list[str]) -> Position:
    return Position(
        last_event_id=last_event_id,
        ids=ids,
        committed_at=datetime.now(timezone.utc),
        producer=this_producer(),
    )


def read_position(bootstrap: str, topic: str, key: str, timeout: float = 30.0) -> Position | None:
    """The last committed position of `key`, None if the stream has none yet.

    Reads the whole (compacted) topic up to its end as `read_committed` sees it: the end is
    the last stable offset, so a transaction still open elsewhere is never read.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"wikistreams-position-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    wanted = key.encode("utf-8")
    found: bytes | None = None
    try:
        for msg in read_to_end(consumer, topic, timeout=timeout):
            if msg.key() == wanted:
                found = msg.value()  # None: a tombstone, the position was deleted
    except (TopicUnreadable, KafkaException) as exc:
        raise PositionUnavailable(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()
    if found is None:
        return None
    try:
        return Position.model_validate_json(found)
    except ValidationError as exc:
        raise PositionError(
            f"the position of {key!r} in {topic} is not a position record: {exc}. Repair it"
            " (produce a valid record for the key) or delete it with a tombstone to start from"
            " the stream's current position, skipping the events since the last run."
        ) from exc


# --- the record's size ----------------------------------------------------------------------
# An encoded position record is at most POSITION_MAX_BYTES: half of Kafka's record limit, so that
# a broker or topic set below the default still takes it, and a commit writes a few hundred KB
# at most. Every part of it is bounded in bytes, so no commit can fail for its size (a failed
# commit rewinds, and the rewound run would build the same record again).
POSITION_MAX_BYTES = MAX_RECORD_BYTES // 2
# The watermark is an SSE id (~150 bytes live); a longer one does not become the watermark.
MAX_WATERMARK_CHARS = 1024
# Bytes one event id adds to the record at most: a JSON string of \uXXXX escapes and a comma.
MAX_ID_BYTES = 6 * MAX_EVENT_ID_CHARS + 3
# Frames at or below the watermark whose ids every position record keeps (see `below`).
RECENT_BELOW = 200
# Everything but the ids: the watermark, the time and the producer's name, and one id of
# overshoot (reading stops once the budget is reached, after the id that reached it).
_RECORD_OVERHEAD = 6 * MAX_WATERMARK_CHARS + 512 + MAX_ID_BYTES
# The ids' share of the record. Reading waits while the recent ids, those finished past the
# watermark and those of events on their way (parked for labels) fill it: the parked events
# leave by their deadline, the watermark moves, and what is left is the recent ids, which
# always fit (RECENT_BELOW ids of the longest kind are a third of it).
IDS_MAX_BYTES = POSITION_MAX_BYTES - _RECORD_OVERHEAD
# How long a resumed position's ids are named at most, in frames finished since the resume: by
# then every frame up to the old record's last id was surely read again (each named id is at
# least 4 bytes of IDS_MAX_BYTES). Ids read again leave the carried ones at once.
CARRY_FRAMES = 2 * (IDS_MAX_BYTES // 4) + RECENT_BELOW


def id_bytes(event_id: str) -> int:
    """What `event_id` adds to an encoded record: its JSON string and a comma."""
    return len(orjson.dumps(event_id)) + 1


@dataclass
class DeliveryTracker:
    """Turns out-of-order completions into a contiguous watermark, and the ids beyond it.

    Every frame read from the source gets a sequence number with `begin()`; `done()` marks it
    finished: handed to Kafka (in the open transaction), dead-lettered or deliberately dropped.
    `position` is the SSE id of the highest sequence number below which nothing is pending;
    `beyond_ids()` names the events finished past it (they overtook a parked entity edit).

    It also keeps the size of the record `position_ids()` makes: `full` says when the ids it
    names, with those of events on their way (`expect()`), fill the record, and the ids carried
    over from a resumed position give way to the rest if the record would outgrow
    POSITION_MAX_BYTES.
    """

    position: str | None = None
    # Event ids of the newest frames at or below the watermark, in frame order: a timestamp
    # resume replays the frames of the watermark's last instant, whenever they were published.
    below: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_BELOW))
    # Ids given up to keep a record under POSITION_MAX_BYTES, since the start (see `carry`).
    trimmed: int = 0
    # Frames whose SSE id was too long to become the watermark.
    long_watermarks: int = 0
    # The resumed position's ids (with their sizes), named again until their frame is read
    # again or `_carry_until` frames have passed: their frames come after the resumed watermark
    # and a crash before they are read again must still find them named.
    _carried: dict[str, int] = field(default_factory=dict)
    _carried_bytes: int = 0
    _carry_until: int = 0
    _below_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_BELOW))
    _below_bytes: int = 0
    _next_seq: int = 0
    _pending: dict[int, str | None] = field(default_factory=dict)
    # Sizes of the ids of pending frames announced with `expect()`: they will be named.
    _expected: dict[int, int] = field(default_factory=dict)
    _expected_bytes: int = 0
    _finished: dict[int, tuple[str | None, int]] = field(default_factory=dict)
    _beyond_bytes: int = 0
    _low: int = 0

    def begin(self, sse_id: str | None) -> int:
        seq = self._next_seq
        self._next_seq += 1
        if sse_id is not None and len(sse_id) > MAX_WATERMARK_CHARS:
            self.long_watermarks += 1
            sse_id = None  # the frame counts, the watermark stays at the previous id
        self._pending[seq] = sse_id
        return seq

    def expect(self, seq: int, event_id: str) -> None:
        """Frame `seq` will finish with `event_id` (it waits for labels, or leaves now)."""
        size = id_bytes(event_id)
        self._expected[seq] = size
        self._expected_bytes += size

    def done(self, seq: int, event_id: str | None = None) -> None:
        size = self._expected.pop(seq, 0)
        self._expected_bytes -= size
        if event_id is None:
            size = 0  # dead-lettered or dropped: named nowhere
        elif not size:
            size = id_bytes(event_id)
        if event_id is not None and self._carried:
            carried = self._carried.pop(event_id, None)  # read again: named from now on
            if carried is not None:
                self._carried_bytes -= carried
        finished = self._finished
        finished[seq] = (event_id, size)
        self._beyond_bytes += size
        while self._low in finished:
            passed, passed_size = finished.pop(self._low)
            self._beyond_bytes -= passed_size
            if passed is not None:
                self._pass_below(passed, passed_size)
            sse_id = self._pending.pop(self._low)
            if sse_id is not None:
                self.position = sse_id
            self._low += 1

    def _pass_below(self, event_id: str, size: int) -> None:
        sizes = self._below_sizes
        if len(sizes) == sizes.maxlen:
            self._below_bytes -= sizes[0]
        sizes.append(size)
        self.below.append(event_id)
        self._below_bytes += size

    @property
    def finished_frames(self) -> int:
        """How many frames of this run are finished up to the watermark (all before it are)."""
        return self._low

    @property
    def beyond(self) -> int:
        """How many frames are finished past the watermark (each may add an id to the record)."""
        return len(self._finished)

    @property
    def full(self) -> bool:
        """The ids the record names (but carried ones) and those on their way fill the record:
        read no further until the parked events leave and the watermark moves."""
        return self._below_bytes + self._beyond_bytes + self._expected_bytes >= IDS_MAX_BYTES

    def beyond_ids(self) -> list[str]:
        return [event_id for event_id, _ in self._finished.values() if event_id is not None]

    def carry(self, ids: list[str], frames: int = CARRY_FRAMES) -> None:
        """Keep naming a resumed position's `ids` until each is read again, or until `frames`
        frames are finished."""
        self._carried = {event_id: id_bytes(event_id) for event_id in ids}
        self._carried_bytes = sum(self._carried.values())
        self._carry_until = frames

    def position_ids(self) -> list[str]:
        """What a position record must name: the ids a resume from `position` may meet again.

        At most POSITION_MAX_BYTES encoded: the recent and beyond ids always fit (`full`
        bounds them); carried ids beyond the rest of the budget are given up, oldest
        first (only a resume whose stream does not replay the same frames leaves so many).
        """
        if self._carried and self._low >= self._carry_until:
            self._carried, self._carried_bytes = {}, 0
        room = IDS_MAX_BYTES - self._below_bytes - self._beyond_bytes
        while self._carried and self._carried_bytes > room:
            dropped = next(iter(self._carried))
            self._carried_bytes -= self._carried.pop(dropped)
            self.trimmed += 1
        return list(dict.fromkeys([*self._carried, *self.below, *self.beyond_ids()]))

    @property
    def in_flight(self) -> int:
        return len(self._pending)
