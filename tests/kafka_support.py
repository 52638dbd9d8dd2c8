"""Reading what a producer wrote: a Kafka topic from its start to its end.

One reader for the integration tests and the benchmarks. "The end" of a partition is its
end-of-partition event, not its high watermark: transaction markers take offsets too, so under
transactions "offset + 1 == high watermark" may never be seen.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition


def read_to_end(
    bootstrap: str, topic: str, isolation: str = "read_committed", timeout: float = 60.0
) -> list[Message]:
    """Every record of every partition of `topic`, from the start up to its end, as a reader
    with `isolation` sees it. Fails on a read error, or when the end is not reached in
    `timeout` seconds."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Message] = []
        open_partitions = set(partitions)
        deadline = time.monotonic() + timeout
        while open_partitions and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=5000, timeout=1.0):
                error = msg.error()
                if error is None:
                    records.append(msg)
                elif error.code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(msg.partition())
                else:
                    raise AssertionError(f"cannot read {topic}: {error}")
    finally:
        consumer.close()
    assert not open_partitions, f"could not read {topic} to its end in {timeout:g} s"
    return records
