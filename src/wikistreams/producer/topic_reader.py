"""Reading a Kafka topic up to its end: the one loop the position reader and the dead-letter
tools share.

"The end" is where the topic ended when the read started (records appended meanwhile wait for
the next read) or where a `read_committed` consumer stops, whichever comes first. End-of-partition
events mark it, because transaction markers take offsets too: "offset + 1 == high watermark" may
never be seen.
"""

from __future__ import annotations

from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition


class TopicUnreadable(RuntimeError):
    """Kafka did not answer in time, or answered with an error."""


def read_to_end(
    consumer: Consumer, topic: str, from_committed: bool = False, timeout: float = 10.0
) -> Iterator[Message]:
    """Records of every partition of `topic`, from the consumer group's committed offsets
    (`from_committed`) or the start, up to the end. The consumer must have
    `enable.partition.eof` set."""
    partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
    tps = [TopicPartition(topic, p) for p in partitions]
    starts = consumer.committed(tps, timeout=timeout) if from_committed else tps
    ends: dict[int, int] = {}
    for tp in starts:
        if tp.offset < 0:
            tp.offset = OFFSET_BEGINNING
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        if high > max(tp.offset, low):
            ends[tp.partition] = high
    consumer.assign([tp for tp in starts if tp.partition in ends])
    while ends:
        msg = consumer.poll(timeout)
        if msg is None:
            raise TopicUnreadable(f"no record from {topic} within {timeout:g} s; is Kafka up?")
        partition, offset, error = msg.partition() or 0, msg.offset() or 0, msg.error()
        if error is not None and error.code() == KafkaError._PARTITION_EOF:
            ends.pop(partition, None)
            continue
        if error is not None:
            raise TopicUnreadable(f"cannot read {topic}: {error.str()}")
        if offset >= ends.get(partition, 0):  # written after we started
            ends.pop(partition, None)
            continue
        if offset + 1 >= ends[partition]:
            ends.pop(partition, None)
        yield msg
