"""The dead-letter topic read back: a bounded reader, and the pipeline `Source` that replays it.

A replay runs through the same `Pipeline.run` as the live stream (validate -> enrich -> publish),
as a stream of its own (own transactional id and position key, so it never fences the live
producer): records that now pass go to the enriched topic, records that still fail are
dead-lettered anew with their new reason, and the next replay starts after them.

Its progress is the consumer group's offsets, committed inside each of its transactions
(`send_offsets_to_transaction`, as confluent-kafka's examples/eos-transactions.py does): the
records a transaction publishes and the offsets past them become visible together, so a replay
killed at any point starts again exactly after what it published. The offsets stop at the
position's watermark; records that overtook a parked entity edit are named in the position
record, and a resumed replay drops them as duplicates, as the live stream does.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import ClassVar

from confluent_kafka import Consumer, TopicPartition

from wikistreams.producer.position import Position
from wikistreams.producer.sink import ConsumerOffsets, decode_headers
from wikistreams.producer.source import RawEvent
from wikistreams.producer.topic_reader import read_to_end

REPLAY_GROUP = "wikistreams-dlq-replay"


def dead_letter_consumer(bootstrap: str, group: str | None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or "wikistreams-dlq-list",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # The end of a partition is where committed records stop: transaction markers
            # take offsets too, so "offset + 1 == high watermark" may never be seen.
            "enable.partition.eof": True,
        }
    )


class DeadLetterSource:
    """The dead letters as a pipeline source: each record's original bytes and SSE id.

    The consumer group remembers where replays got to. With a transactional sink its offsets
    go into every transaction (`offsets`, see the module's docstring); without one they are
    committed in `close`, after a run that handled every record (a crash before that replays
    those records once more).
    """

    # The group's offsets are where it reads from; the position record names the events
    # published past them (overtaking a parked one), dropped if read again.
    resumes: ClassVar[bool] = True
    since: ClassVar[None] = None
    reconnects: ClassVar[int] = 0

    def __init__(self, bootstrap: str, topic: str, group: str = REPLAY_GROUP) -> None:
        self.topic = topic
        self.group = group
        self.state = "replaying"
        self.replayed = 0
        self._consumer = dead_letter_consumer(bootstrap, group)
        # Per partition: the offset after the last record finished (in read order).
        self._next: dict[int, TopicPartition] = {}
        # (partition, offset) of the records read and not yet finished, in read order: the
        # reader thread appends, the pipeline's thread takes (a deque is safe for that).
        self._read: deque[tuple[int, int]] = deque()
        self._finished = 0  # records read in this run whose offsets are in `_next`
        self._in_transactions = False

    @property
    def name(self) -> str:
        return f"replay:{self.group}"

    def open(self, resume: Position | None, stop: threading.Event) -> Iterator[RawEvent]:
        # `stop` is the pipeline's to watch: its reader stops asking for records once it is set.
        for msg in read_to_end(self._consumer, self.topic, from_committed=True):
            headers = decode_headers(msg.headers())
            self._read.append((msg.partition() or 0, msg.offset() or 0))
            yield RawEvent(msg.value() or b"", headers.get("sse.id") or None)
            self.replayed += 1
        self.state = "finished"

    def commit_within(self, finished: Callable[[], int]) -> Callable[[], ConsumerOffsets]:
        """The sink's `consumer_offsets` hook: the group's offsets after the first `finished()`
        records of this run (the pipeline's watermark: every one of them is handed over)."""
        self._in_transactions = True
        return lambda: self.offsets(finished())

    def offsets(self, finished: int) -> ConsumerOffsets:
        while self._finished < finished and self._read:
            partition, offset = self._read.popleft()
            self._next[partition] = TopicPartition(self.topic, partition, offset + 1)
            self._finished += 1
        return list(self._next.values()), self._consumer.consumer_group_metadata()

    def close(self, complete: bool) -> None:
        if complete and not self._in_transactions:
            offsets, _group = self.offsets(self.replayed)
            if offsets:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        self._consumer.close()
