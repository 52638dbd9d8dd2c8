"""The dead-letter topic read back: a bounded reader, and the pipeline `Source` that replays it.

A replay runs through the same `Pipeline.run` as the live stream (validate -> enrich -> publish),
as a stream of its own (own transactional id and position key, so it never fences the live
producer). Its progress is the consumer group's committed offsets, committed once the run's
transactions are: records that now pass go to the enriched topic, records that still fail are
dead-lettered anew with their new reason, and the next replay starts after them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import ClassVar

from confluent_kafka import Consumer, TopicPartition

from wikistreams.producer.position import Position
from wikistreams.producer.sink import decode_headers
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

    The consumer group remembers where replays got to; its offsets are committed in `close`,
    only after a run that handled every record and committed all of its transactions. A crash
    before that replays those records once more (the group offset is not part of the
    transaction).
    """

    resumes: ClassVar[bool] = False  # its group is its position; a dead letter is no duplicate
    since: ClassVar[None] = None
    reconnects: ClassVar[int] = 0

    def __init__(self, bootstrap: str, topic: str, group: str = REPLAY_GROUP) -> None:
        self.topic = topic
        self.group = group
        self.state = "replaying"
        self.replayed = 0
        self._consumer = dead_letter_consumer(bootstrap, group)
        self._next: dict[int, TopicPartition] = {}  # per partition: after the last one read

    @property
    def name(self) -> str:
        return f"replay:{self.group}"

    def open(self, resume: Position | None, stop: threading.Event) -> Iterator[RawEvent]:
        # `stop` is the pipeline's to watch: its reader stops asking for records once it is set.
        for msg in read_to_end(self._consumer, self.topic, from_committed=True):
            headers = decode_headers(msg.headers())
            yield RawEvent(msg.value() or b"", headers.get("sse.id") or None)
            partition = msg.partition() or 0
            self._next[partition] = TopicPartition(self.topic, partition, (msg.offset() or 0) + 1)
            self.replayed += 1
        self.state = "finished"

    def close(self, complete: bool) -> None:
        if complete and self._next:
            self._consumer.commit(offsets=list(self._next.values()), asynchronous=False)
        self._consumer.close()
