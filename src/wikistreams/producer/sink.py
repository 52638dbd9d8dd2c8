"""Kafka sink: the enriched, dead-letter and position topics, through one producer.

By default the producer is transactional (`transactional.id` per stream): the events, dead
letters and the position record of one commit interval become visible together, or, if the
transaction aborts, never; readers with `read_committed` (Druid's Kafka supervisor) see each
event once. Starting a transaction with the stream's id fences every older copy of the producer:
its next write fails with a fatal error (`Fenced`) and it steps down. Without transactions the
producer is idempotent and a commit is "flush, then write the position" (at least once).

Kafka being away is a state, not an error: records wait in librdkafka's bounded queue,
`produce()` blocks when that queue is full (which pushes back on the stream read), a commit
retries, and the sink reports `kafka_state` for /health and the logs until the broker returns.
A transaction the broker gave up on (longer than `transaction.timeout.ms`) is aborted and
`TransactionAborted` tells the caller to resume from the last committed position.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from datetime import datetime, timezone

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

from wikistreams.backoff import Backoff
from wikistreams.producer.config import TopicSettings, load_settings
from wikistreams.producer.limits import MAX_RECORD_BYTES
from wikistreams.producer.position import Position, read_position

log = structlog.get_logger("producer.sink")

# Dead-letter headers, after Kafka Connect's `__connect.errors.*` convention.
DLQ_HEADER_PREFIX = "wikistreams.errors."
DeliveryCallback = Callable[[KafkaError | None, Message], None]
# A librdkafka configuration (`bootstrap.servers`, `linger.ms`, ...).
KafkaConfig = dict[str, str | int | bool]
# Record headers as `Producer.produce` takes them (a list: a name may repeat).
KafkaHeaders = list[tuple[str, str | bytes | None]]
# A consumer's offsets to commit inside a transaction, with its group (`consumer_group_metadata()`).
ConsumerOffsets = tuple[list[TopicPartition], object]
# Connection-level errors that mean "the broker is away", reported by librdkafka's error_cb.
_UNREACHABLE = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}


class RecordTooLarge(ValueError):
    """A record Kafka would refuse for its size; the caller dead-letters a stub instead."""

    def __init__(self, size: int) -> None:
        super().__init__(f"record of {size} bytes exceeds Kafka's {MAX_RECORD_BYTES} bytes")
        self.size = size


# How long the broker keeps a transaction open without a commit before aborting it itself. Also
# the delivery deadline of a transactional record: a broker away longer aborts the batch, and the
# producer resumes from the committed position.
TRANSACTION_TIMEOUT_MS = 60_000
COMMIT_POLL_SECONDS = 1.0


class TransactionAborted(RuntimeError):
    """The open transaction was rolled back: nothing of it is visible. Resume from the position."""


class Fenced(RuntimeError):
    """A newer copy of this producer started a transaction with our id: never write again."""


def producer_config(
    bootstrap: str, compression: str, linger_ms: int, transactional_id: str | None = None
) -> KafkaConfig:
    config: KafkaConfig = {
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
    if transactional_id:
        # librdkafka bounds the delivery deadline by the transaction's (it must not exceed it).
        del config["message.timeout.ms"]
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
    return config


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
    backoff = Backoff(cap=backoff_cap)
    while not stop.is_set():
        try:
            admin.list_topics(timeout=timeout)
            return not stop.is_set()
        except KafkaException as exc:
            on_retry()
            backoff.wait(stop, log, "kafka_unreachable", bootstrap=bootstrap, error=str(exc)[:300])
    return False


@dataclass(frozen=True)
class TopicRetention:
    """`retention.ms` and `retention.bytes` (per partition) of the pipeline's topics.

    The dead-letter topic keeps its own, longer retention (people inspect it); every other topic
    ensured here (the enriched topic, a test's topic) keeps the enriched topic's. The producer's
    state topics (position, lease) are compacted instead: see `producer.position`.
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


class TopicConfigs(Protocol):
    """What `ensure_topics` asks of its configs: the topic-level configs a topic must carry."""

    def config(self, topic: str) -> dict[str, str]: ...


@dataclass(frozen=True)
class SameConfig:
    """The same configs for every topic (the producer's state topics: position and lease)."""

    configs: dict[str, str]

    def config(self, topic: str) -> dict[str, str]:
        return dict(self.configs)


def _is_topic_override(entry: ConfigEntry | None, value: str) -> bool:
    """Set on the topic itself with this value (not inherited from a broker default, which a
    broker change would silently change too)."""
    if entry is None or entry.value != value:
        return False
    source = getattr(entry.source, "value", entry.source)
    return bool(source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value)


def ensure_topics(
    bootstrap: str,
    topics: list[str],
    partitions: int,
    replication: int,
    timeout: float = 30.0,
    retention: TopicConfigs | None = None,
) -> dict[str, dict[str, str | None]]:
    """Create missing topics and make every topic carry its configs (idempotent).

    The one place topic configs are applied, used by the producer at start and by
    `wikistreams-druid submit`. A missing topic is created with its configs. An existing one
    (created by an older version, auto-created, or changed by hand) is compared config by config
    and any that differs, or is only inherited from the broker, is SET with
    `incremental_alter_configs`, which leaves the topic's other configs alone. Partitions and
    replication of an existing topic are never changed. `retention` defaults to the settings'
    retention (`TopicRetention`); the producer's state topics pass `SameConfig`.

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


def _log_fields(retention: TopicConfigs, topic: str) -> dict[str, str]:
    """`retention.ms` -> `retention_ms`, as log fields."""
    return {k.replace(".", "_"): v for k, v in retention.config(topic).items()}


def dead_letter_headers(
    stage: str,
    error_class: str,
    message: str,
    sse_id: str | None,
    source: str,
    extra: dict[str, str] | None = None,
) -> KafkaHeaders:
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


def decode_headers(
    headers: KafkaHeaders | Mapping[str, str | bytes | None] | None,
) -> dict[str, str]:
    """Dead-letter headers as a plain dict without the prefix (`Message.headers()` is typed
    to be a list or a dict; consumed records give the list)."""
    out = {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers or []
    for key, value in pairs:
        if key.startswith(DLQ_HEADER_PREFIX):
            text = value if isinstance(value, str) else (value or b"").decode("utf-8", "replace")
            out[key[len(DLQ_HEADER_PREFIX) :]] = text
    return out


def oversize_stub(value: bytes, limit: int = MAX_RECORD_BYTES // 2) -> tuple[bytes, dict[str, str]]:
    """What the dead-letter topic keeps of a record too big for Kafka: a prefix and its digest.

    The headers carry the original size and sha256, so the original can be found and compared
    (e.g. in EventStreams' history) without storing a megabyte per poison frame.
    """
    if len(value) <= limit:
        return value, {}
    meta = {"original.size": str(len(value)), "original.sha256": hashlib.sha256(value).hexdigest()}
    return value[:1024], meta


class KafkaSink:
    """The producer side of the pipeline: publish, dead-letter, commit, and Kafka's reachability.

    Records handed over between two `commit()` calls belong to one transaction (or, without
    transactions, are flushed before the position that covers them is written).
    """

    def __init__(
        self,
        config: KafkaConfig,
        topic: str,
        dlq_topic: str,
        position_topic: str = "",
        position_key: str = "",
    ) -> None:
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.position_topic = position_topic
        self.position_key = position_key
        self._position_key = position_key.encode("utf-8")
        self._bootstrap = str(config.get("bootstrap.servers", ""))
        transactional_id = config.get("transactional.id")
        self.transactional_id = str(transactional_id) if transactional_id else None
        self.transactional = self.transactional_id is not None
        self.state = "ok"  # ok | unreachable (shown by /health and the stats line)
        self.on_wait: Callable[[], None] = lambda: None
        # Commit attempts Kafka refused or left unanswered since the last commit that succeeded.
        self.commit_retries = 0
        # A consumer whose progress is part of this stream's position (a dead-letter replay):
        # its offsets go into each transaction, so they commit with the records or not at all.
        self.consumer_offsets: Callable[[], ConsumerOffsets] | None = None
        self._producer = Producer({**config, "error_cb": self._on_error})

    def start(self, timeout: float = 30.0) -> None:
        """Fence older copies with our transactional id and open the first transaction.

        `init_transactions` also completes (aborts) whatever transaction a crashed copy left
        open, so a position read after this returns is final.
        """
        if not self.transactional:
            return
        self._retrying(lambda: self._producer.init_transactions(timeout))
        self._producer.begin_transaction()

    def read_position(self) -> Position | None:
        """The stream's last committed position; after `start()` it is final (see there)."""
        if not self.position_topic:
            return None
        return read_position(self._bootstrap, self.position_topic, self.position_key)

    def publish(self, key: str, value: bytes, on_delivery: DeliveryCallback) -> None:
        """Raises `RecordTooLarge` for a record Kafka would refuse, `Fenced` once fenced."""
        if len(value) > MAX_RECORD_BYTES:
            raise RecordTooLarge(len(value))
        try:  # the per-event path: one call when librdkafka's queue has room
            self._producer.produce(
                self.topic, value=value, key=key.encode("utf-8"), on_delivery=on_delivery
            )
        except BufferError:
            self._produce(self.topic, key.encode("utf-8"), value, None, on_delivery)
        except KafkaException as exc:
            raise _classify(exc) from exc

    def dead_letter(
        self,
        value: bytes,
        headers: KafkaHeaders,
        on_delivery: DeliveryCallback,
        key: bytes | None = None,
    ) -> None:
        try:
            self._produce(self.dlq_topic, key, value, headers, on_delivery)
        except KafkaException as exc:
            raise _classify(exc) from exc

    def commit(self, position: bytes) -> None:
        """Make everything handed over since the last commit visible, with `position`.

        Blocks until Kafka confirms (serving `on_wait` meanwhile, so the heartbeat goes on while
        the broker is away). Raises `TransactionAborted` (nothing since the last commit is
        visible) or `Fenced` (a newer copy owns the stream).
        """
        if not self.transactional:
            while self._producer.flush(COMMIT_POLL_SECONDS):
                self.commit_retries += 1
                self.on_wait()
            self._write_position(position)
            self.commit_retries = 0
            return
        try:
            self._write_position(position)
            if self.consumer_offsets is not None:
                offsets, group = self.consumer_offsets()
                if offsets:
                    self._retrying(
                        lambda: self._producer.send_offsets_to_transaction(
                            offsets, group, COMMIT_POLL_SECONDS
                        )
                    )
            self._retrying(lambda: self._producer.commit_transaction(COMMIT_POLL_SECONDS))
            self._producer.begin_transaction()
        except KafkaException as exc:
            raise _classify(exc) from exc
        self.commit_retries = 0

    def _write_position(self, position: bytes) -> None:
        if self.position_topic:  # none: a tool or test that never resumes
            # Partition 0 by name: readers read only that one, whatever the topic was created with.
            self._produce(self.position_topic, self._position_key, position, None, None, 0)

    def abort(self) -> None:
        """Roll back the open transaction, if this copy still may (best effort on the way out)."""
        if not self.transactional:
            return
        try:
            self._producer.abort_transaction(10.0)
        except KafkaException as exc:
            log.warning("transaction_abort_failed", error=str(exc)[:300])

    def _retrying(self, call: Callable[[], None]) -> None:
        """Repeat `call` while Kafka says it may succeed later (broker away, timed out).

        No limit on the attempts, on purpose: giving up on a commit Kafka may still complete
        would resend what it made visible. Kafka itself ends the wait (an abortable or fatal
        error); meanwhile /health shows the retries and the heartbeat goes on.
        """
        backoff = Backoff(base=0.1, cap=COMMIT_POLL_SECONDS)
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or err.fatal() or err.txn_requires_abort():
                    raise
                self.commit_retries += 1
                self.on_wait()
                backoff.wait(None, log, "kafka_retrying", error=str(exc)[:300])

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: KafkaHeaders | None,
        on_delivery: DeliveryCallback | None,
        partition: int = -1,
    ) -> None:
        """`partition` -1: the partitioner chooses (librdkafka's RD_KAFKA_PARTITION_UA)."""
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=on_delivery,
                    partition=partition,
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
        """Serve delivery reports; raises `Fenced` once a newer copy took over."""
        try:
            self._producer.poll(timeout)
        except KafkaException as exc:
            raise _classify(exc) from exc

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        try:
            return int(self._producer.flush(timeout))
        except KafkaException as exc:
            raise _classify(exc) from exc


def _classify(exc: KafkaException) -> Exception:
    """A transactional failure as what the pipeline must do about it."""
    err = exc.args[0]
    # After a fatal error (fencing) produce() reports the generic _FATAL code, not the flag.
    if err.fatal() or err.code() in (KafkaError._FATAL, KafkaError._FENCED):
        return Fenced(f"{err.name()}: {err.str()}")
    if err.txn_requires_abort():
        return TransactionAborted(f"{err.name()}: {err.str()}")
    # confluent-kafka < 2.13 (quixstreams' bound) ships no types: KafkaException is Any there.
    kept: Exception = exc
    return kept
