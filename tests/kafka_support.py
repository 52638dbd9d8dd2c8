"""Reading what a producer wrote, for the integration tests and the benchmarks: a topic from
its start to its end, through the producer's own reader (`wikistreams.producer.topic_reader`),
as a consumer with a given isolation level sees it."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Message

from wikistreams.producer import topic_reader


def read_to_end(
    bootstrap: str, topic: str, isolation: str = "read_committed", timeout: float = 10.0
) -> list[Message]:
    """Every record of every partition of `topic`, from the start up to its end. Raises
    `TopicUnreadable` on a read error, or when no record arrives for `timeout` seconds."""
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
        return list(topic_reader.read_to_end(consumer, topic, timeout=timeout))
    finally:
        consumer.close()
