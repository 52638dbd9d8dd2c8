"""Kafka sink: the enriched topic and the dead-letter topic, through one idempotent producer.

librdkafka does not enable idempotence by default; with it on (acks=all, at most 5 requests in
flight) retries can neither duplicate nor reorder messages within a partition. Delivery reports
arrive only inside `poll()`/`flush()`, and they are what moves the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import structlog
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

log = structlog.get_logger("producer.sink")

# Dead-letter headers, after Kafka Connect's `__connect.errors.*` convention.
DLQ_HEADER_PREFIX = "wikistreams.errors."
DeliveryCallback = Callable[[KafkaError | None], None]


def producer_config(bootstrap: str, compression: str, linger_ms: int) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": compression,
        "linger.ms": linger_ms,
        "message.timeout.ms": 300_000,
        "client.id": "wikistreams-producer",
    }


def ensure_topics(
    bootstrap: str, topics: list[str], partitions: int, replication: int, timeout: float = 30.0
) -> None:
    """Create missing topics; an existing topic is left as it is."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    missing = [t for t in topics if t not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in missing],
        operation_timeout=timeout,
    )
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout)
            log.info("topic_created", topic=topic, partitions=partitions)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def dead_letter_headers(
    stage: str,
    error_class: str,
    message: str,
    sse_id: str | None,
    source: str,
    extra: dict[str, str] | None = None,
) -> list[tuple[str, bytes]]:
    """Why a record is in the dead-letter topic, readable without decoding its value."""
    values = {
        "stage": stage,
        "exception.class.name": error_class,
        "exception.message": message[:4000],
        "sse.id": sse_id or "",
        "source": source,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        **(extra or {}),
    }
    return [(DLQ_HEADER_PREFIX + key, value.encode("utf-8")) for key, value in values.items()]


def decode_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """Dead-letter headers as a plain dict without the prefix."""
    out = {}
    for key, value in headers or []:
        if key.startswith(DLQ_HEADER_PREFIX):
            out[key[len(DLQ_HEADER_PREFIX) :]] = (value or b"").decode("utf-8", "replace")
    return out


class KafkaSink:
    def __init__(self, config: dict, topic: str, dlq_topic: str) -> None:
        self._producer = Producer(config)
        self.topic = topic
        self.dlq_topic = dlq_topic

    def publish(self, key: str, value: bytes, on_delivery: DeliveryCallback) -> None:
        self._produce(self.topic, key.encode("utf-8"), value, None, on_delivery)

    def dead_letter(
        self,
        value: bytes,
        headers: list[tuple[str, bytes]],
        on_delivery: DeliveryCallback,
        key: bytes | None = None,
    ) -> None:
        self._produce(self.dlq_topic, key, value, headers, on_delivery)

    def _produce(self, topic, key, value, headers, on_delivery: DeliveryCallback) -> None:
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=lambda err, _msg: on_delivery(err),
                )
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.5)

    def poll(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        remaining = self._producer.flush(timeout)
        while remaining and timeout > 0:
            remaining = self._producer.flush(1.0)
            timeout -= 1.0
        return remaining
