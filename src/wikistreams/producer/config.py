"""Producer settings: environment > `.env` > defaults, validated once at start.

Every setting is documented in `.env.example`; a test keeps the two and the README in step.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wikistreams.producer.contact import check_contact
from wikistreams.producer.sse import DEFAULT_MAX_FRAME_BYTES

PRODUCER_NAME = "WikiStreams"
PRODUCER_VERSION = "0.1.0"


class CacheBackend(str, Enum):
    sqlite = "sqlite"
    redis = "redis"


class ReplaySpeed(str, Enum):
    """How a `file://` recording is replayed: by event time, N times faster, or flat out."""

    realtime = "realtime"
    fast = "fast"


class KafkaSettings(BaseSettings):
    """Where the topics are: all that Kafka-only tools (`wikistreams-dlq list`) need."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- Kafka ---
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_topic: str = Field("wikimedia.recentchange.enriched", description="Enriched events topic")
    kafka_dlq_topic: str = Field("wikimedia.recentchange.dlq", description="Dead-letter topic")
    kafka_topic_partitions: int = Field(3, ge=1, description="Partitions when creating topics")
    kafka_topic_replication: int = Field(1, ge=1, description="Replication when creating topics")
    kafka_compression: str = Field("zstd", description="Producer compression codec")
    kafka_linger_ms: int = Field(50, ge=0, description="Producer linger.ms")


# The longest backfill: EventStreams keeps about 7 days of history (FACTS.md).
BACKFILL_HOURS_MAX = 168.0

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
MIB = 1024 * 1024


class TopicSettings(KafkaSettings):
    """Retention of the topics, applied by `producer.sink.ensure_topics` at creation and to
    existing topics alike: the producer does it at start, `wikistreams-druid submit` too.

    Kept out of `Settings` on purpose: both programs read them (from the environment and
    `.env`), and `.env.example` documents them in their own block.
    """

    kafka_topic_retention_ms: int = Field(
        7 * DAY_MS,
        description="retention.ms of the enriched topic (-1 = forever). It must outlast any "
        "Druid outage: the supervisor resumes from its stored offsets, and offsets Kafka has "
        "deleted stop ingestion (OffsetOutOfRange, then a reset that loses the gap)",
    )
    kafka_topic_retention_bytes: int = Field(
        -1,
        description="retention.bytes of the enriched topic, PER PARTITION (-1 = no size limit; "
        "the topic can then hold partitions x this). A limit deletes data sooner than "
        "retention.ms when the volume is high, i.e. exactly during a burst or replay",
    )
    kafka_dlq_topic_retention_ms: int = Field(
        30 * DAY_MS,
        description="retention.ms of the dead-letter topic: people inspect and replay it, "
        "so it keeps longer than the enriched topic",
    )
    kafka_dlq_topic_retention_bytes: int = Field(
        -1, description="retention.bytes of the dead-letter topic, per partition (-1 = none)"
    )

    @field_validator("kafka_topic_retention_ms", "kafka_dlq_topic_retention_ms")
    @classmethod
    def _retention_ms(cls, value: int) -> int:
        if value == -1 or value >= HOUR_MS:
            return value
        raise ValueError(f"use -1 (keep forever) or at least {HOUR_MS} (1 hour)")

    @field_validator("kafka_topic_retention_bytes", "kafka_dlq_topic_retention_bytes")
    @classmethod
    def _retention_bytes(cls, value: int) -> int:
        if value == -1 or value >= MIB:
            return value
        raise ValueError(f"use -1 (no size limit) or at least {MIB} (1 MiB) per partition")


class Settings(KafkaSettings):
    """All producer settings. Field descriptions become the README's configuration table."""

    # --- source ---
    sse_url: str = Field(
        "https://stream.wikimedia.org/v2/stream/recentchange",
        description="EventStreams URL, or file:///path to a recorded .sse/.jsonl file to replay",
    )
    user_agent_contact: str = Field(
        ...,
        description="Your own e-mail address or URL, sent in the User-Agent as Wikimedia's "
        "policy asks; placeholders and reserved domains (example.*, *.invalid) are refused",
    )
    replay_speed: str = Field(
        "fast",
        description="file:// replay pace: 'fast' (as fast as possible), 'realtime' or a "
        "multiplier such as '10' (10x event time)",
    )
    replay_at_end: Literal["exit", "wait"] = Field(
        "exit",
        description="When a file:// replay ends: 'exit' (batch jobs, tests) or 'wait' until "
        "stopped (a demo pipeline that keeps running; `make up` sets it)",
    )
    sse_connect_timeout_seconds: float = Field(10.0, gt=0, description="SSE connect timeout")
    sse_read_timeout_seconds: float = Field(
        60.0, gt=0, description="SSE read timeout; the stream sends a comment at least every 15 s"
    )
    sse_retry_after_max_seconds: float = Field(
        120.0,
        gt=0,
        description="Longest wait the stream's server can ask for (a Retry-After on 429/503, "
        "the SSE `retry:` field); a longer one waits this long, logged (sse_retry_after_capped, "
        "sse_retry_capped), an unreadable one is ignored. The Wikidata client has its own cap",
    )
    source_stall_seconds: float = Field(
        60.0,
        gt=0,
        description="/health turns `degraded` when the live stream has delivered neither a "
        "frame nor a keep-alive comment for this long (EventStreams sends one every ~15 s), "
        "with `source_cause` (dns, tls, http_status, refused, timeout, connection, stalled) "
        "and the error in `degraded_reason`",
    )
    sse_max_frame_bytes: int = Field(
        DEFAULT_MAX_FRAME_BYTES,
        ge=4096,
        description="Largest SSE frame kept; a bigger one is dead-lettered as a stub "
        "(FrameTooLarge: size, sha256, first 1 KiB) without being buffered. Real recentchange "
        "events are tens of KiB at most; Kafka's default max.message.bytes is about 1 MiB",
    )
    reconnect_backoff_max_seconds: float = Field(
        60.0, gt=0, description="Upper bound of the exponential reconnect backoff"
    )
    backfill_hours: float = Field(
        1.0,
        ge=0,
        le=BACKFILL_HOURS_MAX,
        description="On a first start (no stored position) read this much of EventStreams' "
        "history (`since`, counted back from each connect attempt) before going live, so "
        "dashboards are full at once; 0 = off. A restart resumes by position and never "
        "backfills again",
    )
    dedupe_window: int = Field(
        100_000, ge=0, description="How many recent meta.id values are kept to drop replays"
    )
    event_max_age_hours: float = Field(
        BACKFILL_HOURS_MAX + 24,
        ge=0,
        description="Events whose meta.dt is older than this are dead-lettered "
        "(EventTimeOutOfRange) instead of making Druid segments far in the past. The default, "
        "the longest backfill (168 h, about EventStreams' history) plus a day, still takes a "
        "resume after a week-long outage. Must exceed BACKFILL_HOURS; 0 = off (e.g. to replay "
        "older dead letters). Live stream only: a file:// replay keeps its recording's times, "
        "refusing only times before 2001-01-15 or in the future",
    )
    event_max_future_seconds: float = Field(
        3600.0,
        gt=0,
        description="Events whose meta.dt is further ahead of this host's clock are "
        "dead-lettered (EventTimeOutOfRange): Druid would keep their segments for ever. An "
        "hour absorbs any clock skew",
    )

    # --- enrichment ---
    wikidata_api_url: str = Field(
        "https://www.wikidata.org/w/api.php", description="Wikidata Action API endpoint"
    )
    enrichment_enabled: bool = Field(True, description="Enrich Wikidata entity edits with labels")
    enrich_batch_max_ids: int = Field(
        50, ge=1, le=50, description="Ids per wbgetentities call (50 is the API's anonymous limit)"
    )
    enrich_batch_max_wait_ms: int = Field(
        200,
        ge=0,
        description="Longest the API worker waits to fill a 50-id call once it holds one id "
        "(ids also gather while a call is in flight)",
    )
    enrich_max_delay_seconds: float = Field(
        2.0,
        gt=0,
        description="Longest an entity edit waits for its labels; then it is published with "
        "enrichment_status=unavailable. Other events never wait. 2 s covers a batch wait plus a "
        "slow (1 s) API answer, and keeps dashboards within seconds of live during an outage",
    )
    enrich_catchup_max_delay_seconds: float = Field(
        120.0,
        gt=0,
        description="Longest an entity edit waits for its labels while the producer catches up "
        "(a backfill, or a resume far behind now; never less than ENRICH_MAX_DELAY_SECONDS). "
        "At the polite API pace (one call of <= 50 ids per ~0.3 s, ~170 ids/s) an hour's ~18k "
        "new ids take ~110 s: 120 s lets a backfilled hour arrive labelled",
    )
    wikidata_timeout_seconds: float = Field(10.0, gt=0, description="Wikidata API request timeout")
    wikidata_maxlag_seconds: int = Field(5, ge=0, description="maxlag sent to the Wikidata API")
    wikidata_max_retries: int = Field(
        3, ge=0, description="Retries of one API call on maxlag/429/503/timeouts"
    )
    wikidata_retry_after_max_seconds: float = Field(
        30.0, gt=0, description="Cap on a server-sent Retry-After"
    )
    wikidata_retry_budget_seconds: float = Field(
        10.0,
        gt=0,
        description=(
            "Most time one API call may take, retries included; a longer server Retry-After ends"
            " the call at once and the caller pauses that long before its next call. 10 s fits"
            " one maxlag wait (the API asks 5 s) plus a retry; more only delays the ids queued"
            " behind the call"
        ),
    )
    breaker_failure_threshold: int = Field(
        3, ge=1, description="Failed API calls in a row that open the circuit breaker"
    )
    breaker_reset_seconds: float = Field(
        60.0, gt=0, description="How long the breaker stays open before one trial call"
    )

    # --- cache ---
    cache_backend: CacheBackend = Field(
        CacheBackend.sqlite, description="Label cache: 'sqlite' (local) or 'redis' (shared)"
    )
    cache_db_path: Path = Field(Path("var/data/producer/labels.sqlite3"), description="SQLite file")
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Redis URL for CACHE_BACKEND=redis"
    )
    cache_ttl_seconds: int = Field(7 * 24 * 3600, ge=1, description="TTL of a cached label")
    cache_negative_ttl_seconds: int = Field(
        3600, ge=1, description="TTL of a cached 'entity not found'"
    )
    cache_retry_seconds: float = Field(
        30.0,
        gt=0,
        description="While the label cache cannot be opened (Redis down, SQLite file not "
        "creatable), the producer runs without it (labels from the API only; /health names "
        "it) and tries to open it again this often",
    )

    # --- position, transactions, standby ---
    kafka_transactions: bool = Field(
        True,
        description="Write each batch of events, dead letters and the stream position in one "
        "Kafka transaction: exactly once into Kafka and Druid. false: idempotent writes, the "
        "position after them (at least once; for comparison)",
    )
    kafka_position_topic: str = Field(
        "wikistreams.producer.position",
        description="Compacted single-partition topic holding each stream's resume position",
    )
    kafka_lease_topic: str = Field(
        "wikistreams.producer.lease",
        description="Single-partition topic whose consumer-group owner is the active producer",
    )
    commit_interval_seconds: float = Field(
        1.0,
        gt=0,
        description="Longest a transaction stays open: events become visible to Druid (which "
        "reads committed records only) at most this late. 1 s measured in docs/benchmarks.md",
    )
    commit_max_events: int = Field(
        50_000,
        ge=1,
        description="Commit sooner once a transaction holds this many events (catch-up only: "
        "each commit pauses the stream for a round trip; 50,000 against 5,000 measured ~7 % "
        "faster catch-up, docs/benchmarks.md)",
    )
    lease_session_timeout_ms: int = Field(
        6000,
        ge=1000,
        description="How long a silent active producer keeps the lease before a standby takes "
        "over (Kafka's session.timeout.ms; brokers accept 6000 and up by default)",
    )

    # --- stats, logs ---
    stats_interval_seconds: float = Field(10.0, gt=0, description="Period of the 'stats' log line")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    health_bind: str = Field("127.0.0.1", description="Address of the /health endpoint")
    health_port: int = Field(8095, ge=0, le=65535, description="Port of /health (0 = off)")

    @model_validator(mode="after")
    def _age_bound_covers_the_backfill(self) -> Settings:
        if 0 < self.event_max_age_hours <= self.backfill_hours:
            raise ValueError(
                f"EVENT_MAX_AGE_HOURS ({self.event_max_age_hours:g}) must exceed BACKFILL_HOURS "
                f"({self.backfill_hours:g}), or the backfill is dead-lettered; 0 turns it off"
            )
        return self

    @field_validator("user_agent_contact")
    @classmethod
    def _contact_is_real(cls, value: str) -> str:
        return check_contact(value)  # ContactError is a ValueError: pydantic names the field

    @field_validator("replay_speed")
    @classmethod
    def _speed_is_known(cls, value: str) -> str:
        if value in {s.value for s in ReplaySpeed}:
            return value
        try:
            if float(value) > 0:
                return value
        except ValueError:
            pass
        raise ValueError("use 'fast', 'realtime' or a positive multiplier such as '10'")

    @field_validator("log_level")
    @classmethod
    def _level_is_known(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @property
    def user_agent(self) -> str:
        """`<client>/<version> (<contact>) <library>/<version>`, as Wikimedia's policy asks."""
        import requests

        return (
            f"{PRODUCER_NAME}/{PRODUCER_VERSION} ({self.user_agent_contact}) "
            f"python-requests/{requests.__version__}"
        )

    def masked(self) -> dict[str, Any]:
        """Settings for the startup log line, with credentials in URLs hidden."""
        data = self.model_dump(mode="json")
        for key in ("redis_url",):
            data[key] = _mask_url_password(data[key])
        return data


class SettingsError(SystemExit):
    """Raised at start for invalid settings: one readable message, exit code 2."""


def _mask_url_password(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


AnySettings = TypeVar("AnySettings", bound=KafkaSettings)


@overload
def load_settings(**overrides: Any) -> Settings: ...


@overload
def load_settings(model: type[AnySettings], **overrides: Any) -> AnySettings: ...


def load_settings(model: type[KafkaSettings] = Settings, **overrides: Any) -> KafkaSettings:
    """Build settings or exit with a message that names each bad setting by its env name."""
    try:
        return model(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            msg = "is required" if err["type"] == "missing" else err["msg"]
            lines.append(f"  {name}: {msg}")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None
