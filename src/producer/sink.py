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
from dataclasses import dataclass
from datetime import datetime, timezone

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)
from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from producer.config import TopicSettings, load_settings

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


@dataclass(frozen=True)
class TopicRetention:
    """`retention.ms` and `retention.bytes` (per partition) of the pipeline's topics.

    The dead-letter topic keeps its own, longer retention (people inspect it); every other topic
    ensured here (the enriched topic, a test's topic) keeps the enriched topic's. The project has
    no state topics: the checkpoint is a file, the label cache SQLite or Redis, and consumer
    group offsets live in Kafka's internal `__consumer_offsets`.
    """

    retention_ms: int
    retention_bytes: int
    dlq_topic: str
    dlq_retention_ms: int
    dlq_retention_bytes: int

    @classmethod
    def from_settings(cls, settings: TopicSettings | None = None) -> TopicRetention:
        """From the settings (environment, `.env`); read now when not given."""
        s = settings if settings is not None else load_settings(TopicSettings)
        return cls(
            retention_ms=s.kafka_topic_retention_ms,
            retention_bytes=s.kafka_topic_retention_bytes,
            dlq_topic=s.kafka_dlq_topic,
            dlq_retention_ms=s.kafka_dlq_topic_retention_ms,
            dlq_retention_bytes=s.kafka_dlq_topic_retention_bytes,
        )

    def config(self, topic: str) -> dict[str, str]:
        """The topic-level configs `topic` must carry, as Kafka spells them."""
        if topic == self.dlq_topic:
            ms, size = self.dlq_retention_ms, self.dlq_retention_bytes
        else:
            ms, size = self.retention_ms, self.retention_bytes
        return {"retention.ms": str(ms), "retention.bytes": str(size)}


def _is_topic_override(entry: ConfigEntry | None, value: str) -> bool:
    """Set on the topic itself with this value (not inherited from a broker default, which a
    broker change would silently change too)."""
    if entry is None or entry.value != value:
        return False
    source = getattr(entry.source, "value", entry.source)
    return source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def ensure_topics(
    bootstrap: str,
    topics: list[str],
    partitions: int,
    replication: int,
    timeout: float = 30.0,
    retention: TopicRetention | None = None,
) -> dict[str, dict[str, str | None]]:
    """Create missing topics and make every topic carry its retention (idempotent).

    The one place topic configs are applied, used by the producer at start and by
    `wikistreams-druid submit`. A missing topic is created with its configs. An existing one
    (created by an older version, auto-created, or changed by hand) is compared config by config
    and any that differs, or is only inherited from the broker, is SET with
    `incremental_alter_configs`, which leaves the topic's other configs alone. Partitions and
    replication of an existing topic are never changed. `retention` defaults to the settings.

    Returns what was corrected on existing topics: {topic: {config: the value it had}}.
    """
    if retention is None:
        retention = TopicRetention.from_settings()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    to_check = [t for t in topics if t in existing]
    missing = [t for t in topics if t not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    t,
                    num_partitions=partitions,
                    replication_factor=replication,
                    config=retention.config(t),
                )
                for t in missing
            ],
            operation_timeout=timeout,
        )
        for topic, future in futures.items():
            try:
                future.result(timeout=timeout)
                log.info(
                    "topic_created",
                    topic=topic,
                    partitions=partitions,
                    **_log_fields(retention, topic),
                )
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                to_check.append(topic)  # created meanwhile by someone else: check it too
    return _correct_configs(admin, {t: retention.config(t) for t in to_check}, timeout)


def _correct_configs(
    admin: AdminClient, wanted: dict[str, dict[str, str]], timeout: float
) -> dict[str, dict[str, str | None]]:
    if not wanted:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, topic) for topic in wanted]
    corrected: dict[str, dict[str, str | None]] = {}
    changes = []
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        entries = future.result(timeout=timeout)
        topic = resource.name
        stale = {
            name: value
            for name, value in wanted[topic].items()
            if not _is_topic_override(entries.get(name), value)
        }
        if not stale:
            continue
        corrected[topic] = {name: getattr(entries.get(name), "value", None) for name in stale}
        changes.append(
            ConfigResource(
                ResourceType.TOPIC,
                topic,
                incremental_configs=[
                    ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                    for name, value in stale.items()
                ],
            )
        )
    if changes:
        futures = admin.incremental_alter_configs(changes, request_timeout=timeout)
        for resource, future in futures.items():
            future.result(timeout=timeout)
            topic = resource.name
            log.info(
                "topic_config_corrected",
                topic=topic,
                was=corrected[topic],
                now={name: wanted[topic][name] for name in corrected[topic]},
            )
    return corrected


def _log_fields(retention: TopicRetention, topic: str) -> dict[str, str]:
    """`retention.ms` -> `retention_ms`, as log fields."""
    return {k.replace(".", "_"): v for k, v in retention.config(topic).items()}


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
