"""Kafka sink: the enriched topic and the dead-letter topic, through one idempotent producer.

librdkafka does not enable idempotence by default; with it on (acks=all, at most 5 requests in
flight) retries can neither duplicate nor reorder messages within a partition. Delivery reports
arrive only inside `poll()`/`flush()`, and they are what moves the checkpoint.

Kafka being away is a state, not an error: records wait in librdkafka's bounded queue with no
delivery timeout, `produce()` blocks when that queue is full (which pushes back on the stream
read), and the sink reports `kafka_state` for /health and the logs until the broker returns.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import datetime, timezone

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

log = structlog.get_logger("producer.sink")

# Dead-letter headers, after Kafka Connect's `__connect.errors.*` convention.
DLQ_HEADER_PREFIX = "wikistreams.errors."
DeliveryCallback = Callable[[KafkaError | None, Message], None]
# librdkafka's default message.max.bytes; a bigger record is refused by produce() itself.
MAX_RECORD_BYTES = 1_000_000
# Connection-level errors that mean "the broker is away", reported by librdkafka's error_cb.
_UNREACHABLE = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}


class RecordTooLarge(ValueError):
    """A record Kafka would refuse for its size; the caller dead-letters a stub instead."""

    def __init__(self, size: int) -> None:
        super().__init__(f"record of {size} bytes exceeds Kafka's {MAX_RECORD_BYTES} bytes")
        self.size = size


def producer_config(bootstrap: str, compression: str, linger_ms: int) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": compression,
        "linger.ms": linger_ms,
        # No delivery deadline: while Kafka is away records wait (bounded below) instead of
        # failing, and the stream waits with them. Nothing is dropped for being late.
        "message.timeout.ms": 0,
        "queue.buffering.max.kbytes": 65_536,
        "message.max.bytes": MAX_RECORD_BYTES,
        "client.id": "wikistreams-producer",
    }


def wait_for_kafka(
    bootstrap: str,
    stop: threading.Event,
    on_retry: Callable[[], None] = lambda: None,
    backoff_cap: float = 15.0,
    timeout: float = 10.0,
) -> bool:
    """Block until the cluster answers a metadata request (or `stop` is set); False if stopped.

    A producer started before Kafka (or during its restart) waits with jittered backoff and
    says so in one `kafka_unreachable` line per attempt, instead of dying with a traceback.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})

    def before_sleep(state) -> None:
        on_retry()
        log.warning(
            "kafka_unreachable",
            bootstrap=bootstrap,
            attempt=state.attempt_number,
            error=str(state.outcome.exception())[:300],
            retry_in_seconds=round(state.upcoming_sleep, 1),
        )

    retrying = Retrying(
        retry=retry_if_exception_type(KafkaException),
        wait=wait_random_exponential(multiplier=1, max=backoff_cap),
        stop=lambda _state: stop.is_set(),
        sleep=stop.wait,
        before_sleep=before_sleep,
        retry_error_callback=lambda _state: None,
    )
    return retrying(admin.list_topics, timeout=timeout) is not None and not stop.is_set()


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


def oversize_stub(value: bytes, limit: int = MAX_RECORD_BYTES // 2) -> tuple[bytes, dict]:
    """What the dead-letter topic keeps of a record too big for Kafka: a prefix and its digest.

    The headers carry the original size and sha256, so the original can be found and compared
    (e.g. in EventStreams' history) without storing a megabyte per poison frame.
    """
    if len(value) <= limit:
        return value, {}
    meta = {"original.size": str(len(value)), "original.sha256": hashlib.sha256(value).hexdigest()}
    return value[:1024], meta


class KafkaSink:
    """The producer side of the pipeline: publish, dead-letter, and Kafka's reachability."""

    def __init__(self, config: dict, topic: str, dlq_topic: str) -> None:
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.state = "ok"  # ok | unreachable (shown by /health and the stats line)
        self.on_wait: Callable[[], None] = lambda: None
        self._producer = Producer({**config, "error_cb": self._on_error})

    def publish(self, key: str, value: bytes, on_delivery: DeliveryCallback) -> None:
        """Raises `RecordTooLarge` for a record Kafka would refuse."""
        if len(value) > MAX_RECORD_BYTES:
            raise RecordTooLarge(len(value))
        try:  # the per-event path: one call when librdkafka's queue has room
            self._producer.produce(
                self.topic, value=value, key=key.encode("utf-8"), on_delivery=on_delivery
            )
        except BufferError:
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
                    topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                )
                return
            except BufferError:
                # The local queue is full (Kafka slow or away): serve delivery reports until
                # there is room, and keep the heartbeat going meanwhile.
                self.on_wait()
                self._producer.poll(0.5)

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka's error callback: log state changes once, not every reconnect attempt."""
        if err.code() in _UNREACHABLE:
            if self.state != "unreachable":
                log.warning("kafka_unreachable", error=err.str())
            self.state = "unreachable"
        else:
            log.warning("kafka_error", error=err.str(), fatal=err.fatal())

    def reachable(self) -> None:
        """Called on a successful delivery: Kafka is back if it was away."""
        if self.state != "ok":
            log.info("kafka_reachable")
            self.state = "ok"

    def poll(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        return self._producer.flush(timeout)
