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

from confluent_kafka import Consumer, KafkaException
from pydantic import BaseModel, ConfigDict, ValidationError

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


# Frames at or below the watermark whose ids every position record keeps (see `below`).
RECENT_BELOW = 200


@dataclass
class DeliveryTracker:
    """Turns out-of-order completions into a contiguous watermark, and the ids beyond it.

    Every frame read from the source gets a sequence number with `begin()`; `done()` marks it
    finished: handed to Kafka (in the open transaction), dead-lettered or deliberately dropped.
    `position` is the SSE id of the highest sequence number below which nothing is pending;
    `beyond_ids()` names the events finished past it (they overtook a parked entity edit).
    """

    position: str | None = None
    # Event ids of the newest frames at or below the watermark, in frame order: a timestamp
    # resume replays the frames of the watermark's last instant, whenever they were published.
    below: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_BELOW))
    # The resumed position's ids, named again until `_carry_until` frames have passed: their
    # frames come after the resumed watermark and may not have been read again yet.
    _carried: list[str] = field(default_factory=list)
    _carry_until: int = 0
    _next_seq: int = 0
    _pending: dict[int, str | None] = field(default_factory=dict)
    _finished: dict[int, str | None] = field(default_factory=dict)
    _low: int = 0

    def begin(self, sse_id: str | None) -> int:
        seq = self._next_seq
        self._next_seq += 1
        self._pending[seq] = sse_id
        return seq

    def done(self, seq: int, event_id: str | None = None) -> None:
        finished = self._finished
        finished[seq] = event_id
        while self._low in finished:
            passed = finished.pop(self._low)
            if passed is not None:
                self.below.append(passed)
            sse_id = self._pending.pop(self._low)
            if sse_id is not None:
                self.position = sse_id
            self._low += 1

    @property
    def beyond(self) -> int:
        """How many frames are finished past the watermark (each may add an id to the record)."""
        return len(self._finished)

    def beyond_ids(self) -> list[str]:
        return [event_id for event_id in self._finished.values() if event_id is not None]

    def carry(self, ids: list[str], frames: int) -> None:
        """Keep naming a resumed position's `ids` until `frames` frames are finished."""
        self._carried, self._carry_until = list(ids), frames

    def position_ids(self) -> list[str]:
        """What a position record must name: the ids a resume from `position` may meet again."""
        carried = self._carried if self._low < self._carry_until else []
        return list(dict.fromkeys([*carried, *self.below, *self.beyond_ids()]))

    @property
    def in_flight(self) -> int:
        return len(self._pending)
