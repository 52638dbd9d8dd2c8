"""Retention as code on the real native servers.

Kafka: the topics carry the configured `retention.ms`/`retention.bytes` once created, and a value
changed by hand is set back by the next run (the producer's start, `wikistreams-druid submit`).
Druid: `submit` sets the datasource's rules from `druid/retention-rules.json`; rows older than the
period leave the queries, recent rows stay; the coordinator runs with the kill settings that
delete dropped segments from disk.

Every test uses its own topics and datasource and removes them afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

from wikistreams.producer.config import DAY_MS, HOUR_MS
from wikistreams.producer.decode import decode_event
from wikistreams.producer.events import (
    EnrichedEvent,
    encode_record,
    enriched_record,
    format_event_time,
)
from wikistreams.producer.sink import TopicRetention, ensure_topics
from tests.conftest import wait_until
from tests.integration.conftest import (
    BROKER,
    KAFKA,
    OVERLORD,
    delete_topics,
    producer_env,
    require_druid,
    run_producer,
)
from tests.standins import REPO_ROOT, recentchange_dir
from tests.standins.sse_server import recorded_sse
from wikistreams.druid.supervisor import DruidError

pytestmark = pytest.mark.integration

RETENTION_KEYS = ("retention.ms", "retention.bytes")
MIB = 1024 * 1024


def topic_retention(topic: str) -> dict[str, str]:
    """The topic's retention configs, each marked `(topic)` when set on the topic itself and
    `(inherited)` when it only follows the broker's default."""
    admin = AdminClient({"bootstrap.servers": KAFKA})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource], request_timeout=30)[resource].result(timeout=30)
    out = {}
    for key in RETENTION_KEYS:
        entry = entries[key]
        source = getattr(entry.source, "value", entry.source)
        own = source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        out[key] = f"{entry.value} ({'topic' if own else 'inherited'})"
    return out


def expected(ms: int, size: int) -> dict[str, str]:
    return {"retention.ms": f"{ms} (topic)", "retention.bytes": f"{size} (topic)"}


def change_by_hand(topic: str, **configs: str | None) -> None:
    """What an operator's `kafka-configs --alter` does: set a value, or None to remove the
    topic's own value (the broker's default applies again)."""
    entries = [
        ConfigEntry(
            name.replace("_", "."),
            value,
            incremental_operation=(
                AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
            ),
        )
        for name, value in configs.items()
    ]
    admin = AdminClient({"bootstrap.servers": KAFKA})
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    admin.incremental_alter_configs([resource], request_timeout=30)[resource].result(timeout=30)


@pytest.fixture
def topic():
    name = f"it-retention-{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(name, f"{name}.dlq")


# ── Kafka ───────────────────────────────────────────────────────────────────────────────────────


def test_topics_carry_their_retention_and_a_changed_value_is_set_back(topic):
    dlq = f"{topic}.dlq"
    retention = TopicRetention(
        retention_ms=2 * DAY_MS,
        retention_bytes=256 * MIB,
        dlq_topic=dlq,
        dlq_retention_ms=30 * DAY_MS,
        dlq_retention_bytes=-1,
    )
    assert ensure_topics(KAFKA, [topic, dlq], 2, 1, retention=retention) == {}
    assert topic_retention(topic) == expected(2 * DAY_MS, 256 * MIB)
    assert topic_retention(dlq) == expected(30 * DAY_MS, -1)

    change_by_hand(topic, retention_ms=str(HOUR_MS), retention_bytes=None)
    change_by_hand(dlq, retention_ms=str(DAY_MS))
    wait_until(lambda: topic_retention(topic)["retention.ms"] == f"{HOUR_MS} (topic)", 30)
    wait_until(lambda: topic_retention(dlq)["retention.ms"] == f"{DAY_MS} (topic)", 30)

    corrected = ensure_topics(KAFKA, [topic, dlq], 2, 1, retention=retention)
    assert set(corrected) == {topic, dlq}
    assert corrected[topic]["retention.ms"] == str(HOUR_MS)
    assert "retention.bytes" in corrected[topic]  # back to the broker's: set on the topic again
    assert corrected[dlq] == {"retention.ms": str(DAY_MS)}
    assert topic_retention(topic) == expected(2 * DAY_MS, 256 * MIB)
    assert topic_retention(dlq) == expected(30 * DAY_MS, -1)
    assert ensure_topics(KAFKA, [topic, dlq], 2, 1, retention=retention) == {}  # idempotent


def test_the_producer_applies_the_retention_settings_at_start(topic, tmp_path, wikidata_api):
    """The producer's start-up path: settings from the environment, existing topics corrected."""
    dlq = f"{topic}.dlq"
    stale = TopicRetention(HOUR_MS, -1, dlq, HOUR_MS, -1)
    ensure_topics(KAFKA, [topic, dlq], 1, 1, retention=stale)
    recording = recorded_sse()
    env = producer_env(
        tmp_path,
        recording.as_uri(),
        wikidata_api.url,
        topic,
        KAFKA_TOPIC_RETENTION_MS=str(3 * DAY_MS),
        KAFKA_TOPIC_RETENTION_BYTES=str(512 * MIB),
        KAFKA_DLQ_TOPIC_RETENTION_MS=str(40 * DAY_MS),
    )
    result = run_producer(tmp_path, env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert topic_retention(topic) == expected(3 * DAY_MS, 512 * MIB)
    assert topic_retention(dlq) == expected(40 * DAY_MS, -1)


# ── Druid ───────────────────────────────────────────────────────────────────────────────────────


def test_the_running_coordinator_kills_unused_segments():
    """The kill settings of druid/conf/coordinator-overlord/runtime.properties are live: without
    them dropped segments stay in deep storage for ever."""
    require_druid()
    props = requests.get(f"{OVERLORD}/status/properties", timeout=10).json()
    assert props.get("druid.coordinator.kill.on") == "true", (
        "the coordinator runs without druid.coordinator.kill.on=true; restart it so that it reads"
        " druid/conf/coordinator-overlord/runtime.properties"
    )
    assert props.get("druid.coordinator.kill.durationToRetain") == "PT0S"
    assert props.get("druid.coordinator.kill.bufferPeriod") == "PT12H"


OLD_ROWS, RECENT_ROWS = 20, 30


def enriched_records(now: datetime) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs on the enriched contract: a real enwiki event re-timed, OLD_ROWS of them
    40 days ago and RECENT_ROWS a few minutes ago, each with its own event id."""
    path = next(recentchange_dir().rglob("polars-book_wikimedia_enwiki_2023-07-29.jsonl"))
    template = json.loads(path.read_text().splitlines()[0])
    times = [now - timedelta(days=40, minutes=i) for i in range(OLD_ROWS)]
    times += [now - timedelta(minutes=5, seconds=i) for i in range(RECENT_ROWS)]
    records = []
    for i, dt in enumerate(times):
        template["meta"]["id"] = str(uuid.uuid4())
        template["meta"]["dt"] = format_event_time(dt)
        template["title"] = f"Retention test {i}"
        change = decode_event(json.dumps(template).encode())
        value = encode_record(enriched_record(change))
        EnrichedEvent.model_validate_json(value)  # the contract Druid's spec is built on
        records.append((f"{change.wiki}:{change.title}".encode(), value))
    return records


class RetentionContext:
    def __init__(self, suffix: str):
        self.topic = f"retention-{suffix}"
        self.datasource = f"retention_{suffix}"
        self.druid = require_druid()

    def submit(self, period: str) -> subprocess.CompletedProcess:
        """`wikistreams-druid submit` as production runs it, settings from the environment."""
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT / "src"),
            "DRUID_RETENTION_PERIOD": period,
            "KAFKA_TOPIC_RETENTION_MS": str(2 * DAY_MS),
            "KAFKA_TOPIC_RETENTION_BYTES": "-1",
        }
        cmd = [
            sys.executable,
            "-m",
            "wikistreams.druid.supervisor",
            "submit",
            f"--topic={self.topic}",
            f"--datasource={self.datasource}",
            f"--overlord={self.druid.overlord}",
            f"--bootstrap={KAFKA}",
            "--partitions=1",
            "--task-duration=PT1M",  # publish and hand off within a minute or two
            "--no-auto-compaction",  # compaction of the old hour would only add moving parts
            "--no-trends",  # the shared trends supervisor is not this test's
            "--timeout=240",
        ]
        done = subprocess.run(
            cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done

    def rows(self) -> dict[str, int]:
        """Queryable rows older and younger than 7 days (SQL on the broker)."""
        query = f"""
            SELECT
              COUNT(*) FILTER (WHERE __time < CURRENT_TIMESTAMP - INTERVAL '7' DAY) AS "old",
              COUNT(*) FILTER (WHERE __time >= CURRENT_TIMESTAMP - INTERVAL '7' DAY) AS "recent"
            FROM "{self.datasource}"
        """
        try:
            (row,) = self.druid.sql(BROKER, query)
        except DruidError:  # the table appears with the first row
            return {"old": 0, "recent": 0}
        return {"old": int(row["old"] or 0), "recent": int(row["recent"] or 0)}

    def segments(self) -> list[dict]:
        return self.druid.sql(
            BROKER,
            'SELECT "start", is_published, is_available, is_realtime FROM sys.segments'
            " WHERE datasource = ?",
            [{"type": "VARCHAR", "value": self.datasource}],
        )

    def on_historicals(self) -> bool:
        """Every row queryable and every segment published and served by a historical: what
        the rules act on (rows still in an ingestion task's memory are the task's)."""
        segments = self.segments()
        return (
            self.rows() == {"old": OLD_ROWS, "recent": RECENT_ROWS}
            and bool(segments)
            and all(s["is_published"] and s["is_available"] for s in segments)
            and not any(s["is_realtime"] for s in segments)
        )


@pytest.fixture
def retention_context():
    ctx = RetentionContext(uuid.uuid4().hex[:8])
    yield ctx
    try:
        ctx.druid.drop(ctx.datasource)
        ctx.druid.set_rules(ctx.datasource, [])  # no rules left behind for a datasource name
        wait_until(lambda: not ctx.druid.running_tasks(ctx.datasource), 120, interval=2)
        # The coordinator's view of used segments follows its metadata poll (5 s natively).
        wait_until(lambda: ctx.datasource not in ctx.druid.used_datasources(), 60, interval=2)
    finally:
        delete_topics(ctx.topic)


@pytest.mark.e2e
def test_rows_older_than_the_period_leave_druid(retention_context):
    ctx = retention_context
    # Retention long enough for the test's 40-day-old rows: they are loaded like any other.
    first = ctx.submit("P3650D")
    assert f"retention for {ctx.datasource}: load P3650D, then drop" in first.stdout
    assert topic_retention(ctx.topic) == expected(2 * DAY_MS, -1)

    producer = Producer({"bootstrap.servers": KAFKA, "enable.idempotence": True})
    for key, value in enriched_records(datetime.now(timezone.utc)):
        producer.produce(ctx.topic, key=key, value=value)
    assert producer.flush(30) == 0
    wait_until(ctx.on_historicals, 300, interval=3)

    # An operator shortened the topic's retention by hand; the next submit sets it back.
    change_by_hand(ctx.topic, retention_ms=str(HOUR_MS))
    wait_until(lambda: topic_retention(ctx.topic)["retention.ms"] == f"{HOUR_MS} (topic)", 30)
    second = ctx.submit("P7D")
    assert f"topic {ctx.topic}: {{'retention.ms': '{HOUR_MS}'}}" in second.stdout
    assert f"retention for {ctx.datasource}: load P7D, then drop" in second.stdout
    assert topic_retention(ctx.topic) == expected(2 * DAY_MS, -1)

    load, drop = ctx.druid.rules(ctx.datasource)
    assert load["type"] == "loadByPeriod" and load["period"] == "P7D"
    assert load["includeFuture"] is True and load["tieredReplicants"] == {"_default_tier": 1}
    assert drop["type"] == "dropForever"

    # The coordinator (period 5 s) marks the old hour's segment unused; the broker stops
    # querying it, and the recent rows stay.
    wait_until(lambda: ctx.rows() == {"old": 0, "recent": RECENT_ROWS}, 120, interval=2)
    cutoff = datetime.now(timezone.utc) - timedelta(days=7)
    starts = [datetime.fromisoformat(s["start"].replace("Z", "+00:00")) for s in ctx.segments()]
    assert starts and all(start >= cutoff - timedelta(hours=1) for start in starts), starts
