"""Retention as code, without servers: Druid's rules, the coordinator's kill settings, Kafka's
topic retention settings and how `ensure_topics` and `wikistreams-druid submit` apply them."""

from __future__ import annotations

import json
import re
from concurrent.futures import Future
from datetime import timedelta

import pytest
from confluent_kafka.admin import ConfigEntry, ConfigSource
from typer.testing import CliRunner

from wikistreams.producer import sink
from wikistreams.producer.config import DAY_MS, SettingsError, TopicSettings, load_settings
from wikistreams.producer.sink import TopicRetention, ensure_topics
from tests.standins import REPO_ROOT
from wikistreams.druid import supervisor as druid_supervisor
from wikistreams.druid.supervisor import (
    DEFAULT_RETENTION_PERIOD,
    DEFAULT_RULES,
    app,
    render_rules,
)

RULES_FILE = REPO_ROOT / DEFAULT_RULES
COORDINATOR_PROPERTIES = REPO_ROOT / "druid/conf/coordinator-overlord/runtime.properties"
RETENTION_ENV = (
    "KAFKA_TOPIC",
    "KAFKA_DLQ_TOPIC",
    "KAFKA_TOPIC_RETENTION_MS",
    "KAFKA_TOPIC_RETENTION_BYTES",
    "KAFKA_DLQ_TOPIC_RETENTION_MS",
    "KAFKA_DLQ_TOPIC_RETENTION_BYTES",
    "DRUID_RETENTION_PERIOD",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    for name in RETENTION_ENV:
        monkeypatch.delenv(name, raising=False)


# ── Druid rules ─────────────────────────────────────────────────────────────────────────────────


def test_committed_rules_load_the_default_period_then_drop_everything_else():
    rules = json.loads(RULES_FILE.read_text())
    assert rules == [
        {
            "type": "loadByPeriod",
            "period": DEFAULT_RETENTION_PERIOD,
            "includeFuture": True,
            "tieredReplicants": {"_default_tier": 1},
        },
        {"type": "dropForever"},
    ]
    assert DEFAULT_RETENTION_PERIOD == "P30D"


def test_rendering_replaces_only_the_load_period():
    rules = render_rules(RULES_FILE, "P7D")
    assert rules[0] == {
        "type": "loadByPeriod",
        "period": "P7D",
        "includeFuture": True,
        "tieredReplicants": {"_default_tier": 1},
    }
    assert rules[1:] == [{"type": "dropForever"}]
    assert render_rules(RULES_FILE) == json.loads(RULES_FILE.read_text())  # None keeps the file's


@pytest.mark.parametrize("period", ["P30D", "P1Y", "P2W", "PT12H", "P1DT6H", "P1Y2M3DT4H5M6S"])
def test_iso_periods_are_accepted(period):
    assert render_rules(RULES_FILE, period)[0]["period"] == period


@pytest.mark.parametrize("period", ["", "30d", "P", "PT", "P1H", "P30", "30 days", "-P30D", "P1DT"])
def test_anything_else_is_refused(period):
    with pytest.raises(ValueError, match="ISO-8601"):
        render_rules(RULES_FILE, period)


def test_a_rules_file_without_a_period_rule_cannot_take_a_period(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text('[{"type": "loadForever", "tieredReplicants": {"_default_tier": 1}}]')
    assert render_rules(path)[0]["type"] == "loadForever"
    with pytest.raises(ValueError, match="no loadByPeriod"):
        render_rules(path, "P7D")


# ── the coordinator deletes what the rules drop ─────────────────────────────────────────────────


def _properties(path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _duration(iso: str) -> timedelta:
    """The few ISO-8601 durations the properties use: PnD, PTnH, PTnM, PTnS (and sums)."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", iso)
    assert match and iso not in {"P", "PT"}, f"unexpected duration {iso!r}"
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def test_coordinator_kills_dropped_segments_within_hours():
    props = _properties(COORDINATOR_PROPERTIES)
    assert props["druid.coordinator.kill.on"] == "true"
    indexing_period = _duration(props.get("druid.coordinator.period.indexingPeriod", "PT1800S"))
    kill_period = _duration(props["druid.coordinator.kill.period"])
    assert indexing_period <= kill_period <= timedelta(hours=6), "Druid refuses a shorter period"
    # The interval of a dropped segment is already older than the retention period: any
    # durationToRetain above zero only delays its deletion (the default P90D by two months).
    assert _duration(props["druid.coordinator.kill.durationToRetain"]) == timedelta(0)
    buffer = _duration(props["druid.coordinator.kill.bufferPeriod"])
    assert timedelta(hours=1) <= buffer <= timedelta(days=1), "an undo window of hours, not 30 d"


# ── Kafka topic retention settings ──────────────────────────────────────────────────────────────


def test_topic_retention_defaults():
    s = load_settings(TopicSettings)
    assert s.kafka_topic_retention_ms == 7 * DAY_MS
    assert s.kafka_topic_retention_bytes == -1
    assert s.kafka_dlq_topic_retention_ms == 30 * DAY_MS
    assert s.kafka_dlq_topic_retention_bytes == -1


def test_topic_retention_from_env_and_dotenv(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("KAFKA_TOPIC_RETENTION_MS=172800000\n")
    monkeypatch.setenv("KAFKA_DLQ_TOPIC_RETENTION_BYTES", "1073741824")
    monkeypatch.setenv("KAFKA_DLQ_TOPIC", "my.dlq")
    retention = TopicRetention.from_settings()
    assert retention.config("anything") == {"retention.ms": "172800000", "retention.bytes": "-1"}
    assert retention.config("my.dlq") == {
        "retention.ms": str(30 * DAY_MS),
        "retention.bytes": "1073741824",
    }


@pytest.mark.parametrize(
    "name, value",
    [
        ("KAFKA_TOPIC_RETENTION_MS", "0"),
        ("KAFKA_TOPIC_RETENTION_MS", "60000"),
        ("KAFKA_DLQ_TOPIC_RETENTION_MS", "-2"),
        ("KAFKA_TOPIC_RETENTION_BYTES", "0"),
        ("KAFKA_DLQ_TOPIC_RETENTION_BYTES", "1000"),
    ],
)
def test_retention_that_would_delete_at_once_is_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings(TopicSettings)


def test_forever_is_allowed(monkeypatch):
    monkeypatch.setenv("KAFKA_TOPIC_RETENTION_MS", "-1")
    assert load_settings(TopicSettings).kafka_topic_retention_ms == -1


# ── ensure_topics: create with the configs, correct existing topics, idempotently ──────────────


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


class FakeAdmin:
    """What `ensure_topics` uses of AdminClient, over an in-memory set of topic configs."""

    def __init__(self, topics: dict[str, dict[str, tuple[str, ConfigSource]]]):
        self.topics = topics
        self.created: dict[str, dict] = {}
        self.altered: dict[str, dict[str, str]] = {}

    def __call__(self, _conf):  # stands in for the AdminClient class
        return self

    def list_topics(self, timeout):
        return type("Metadata", (), {"topics": dict.fromkeys(self.topics)})()

    def create_topics(self, new_topics, operation_timeout):
        for t in new_topics:
            self.created[t.topic] = {"partitions": t.num_partitions, "config": dict(t.config)}
            self.topics[t.topic] = {
                k: (v, ConfigSource.DYNAMIC_TOPIC_CONFIG) for k, v in t.config.items()
            }
        return {t.topic: _done(None) for t in new_topics}

    def describe_configs(self, resources, request_timeout):
        return {
            r: _done(
                {
                    name: ConfigEntry(name, value, source=source)
                    for name, (value, source) in self.topics[r.name].items()
                }
            )
            for r in resources
        }

    def incremental_alter_configs(self, resources, request_timeout):
        for r in resources:
            for entry in r.incremental_configs:
                self.altered.setdefault(r.name, {})[entry.name] = entry.value
                self.topics[r.name][entry.name] = (entry.value, ConfigSource.DYNAMIC_TOPIC_CONFIG)
        return {r: _done(None) for r in resources}


RETENTION = TopicRetention(
    retention_ms=7 * DAY_MS,
    retention_bytes=-1,
    dlq_topic="t.dlq",
    dlq_retention_ms=30 * DAY_MS,
    dlq_retention_bytes=-1,
)
WEEK = {"retention.ms": str(7 * DAY_MS), "retention.bytes": "-1"}
MONTH = {"retention.ms": str(30 * DAY_MS), "retention.bytes": "-1"}


def test_missing_topics_are_created_with_their_retention(monkeypatch):
    admin = FakeAdmin({})
    monkeypatch.setattr(sink, "AdminClient", admin)
    assert ensure_topics("kafka:9092", ["t", "t.dlq"], 3, 1, retention=RETENTION) == {}
    assert admin.created == {
        "t": {"partitions": 3, "config": WEEK},
        "t.dlq": {"partitions": 3, "config": MONTH},
    }
    assert admin.altered == {}


def test_existing_topics_are_corrected_and_a_second_run_changes_nothing(monkeypatch):
    topic_set, broker_default = ConfigSource.DYNAMIC_TOPIC_CONFIG, ConfigSource.DEFAULT_CONFIG
    admin = FakeAdmin(
        {
            # changed by hand
            "t": {"retention.ms": ("3600000", topic_set), "retention.bytes": ("-1", topic_set)},
            # the right value, but only the broker's: a broker change would change it too
            "t.dlq": {
                "retention.ms": (str(30 * DAY_MS), topic_set),
                "retention.bytes": ("-1", broker_default),
            },
        }
    )
    monkeypatch.setattr(sink, "AdminClient", admin)
    corrected = ensure_topics("kafka:9092", ["t", "t.dlq"], 3, 1, retention=RETENTION)
    assert corrected == {"t": {"retention.ms": "3600000"}, "t.dlq": {"retention.bytes": "-1"}}
    assert admin.altered == {
        "t": {"retention.ms": str(7 * DAY_MS)},
        "t.dlq": {"retention.bytes": "-1"},
    }
    assert admin.created == {}
    admin.altered.clear()
    assert ensure_topics("kafka:9092", ["t", "t.dlq"], 3, 1, retention=RETENTION) == {}
    assert admin.altered == {}


def test_without_retention_the_settings_apply(monkeypatch):
    monkeypatch.setenv("KAFKA_TOPIC_RETENTION_MS", str(2 * DAY_MS))
    monkeypatch.setenv("KAFKA_DLQ_TOPIC", "t.dlq")
    admin = FakeAdmin({})
    monkeypatch.setattr(sink, "AdminClient", admin)
    ensure_topics("kafka:9092", ["t", "t.dlq"], 1, 1)
    assert admin.created["t"]["config"]["retention.ms"] == str(2 * DAY_MS)
    assert admin.created["t.dlq"]["config"] == MONTH


# ── wikistreams-druid submit applies both ───────────────────────────────────────────────────────


class FakeDruid:
    calls: list[tuple] = []

    def __init__(self, overlord: str, coordinator: str | None = None):
        pass

    def submit(self, spec):
        self.calls.append(("submit", spec["spec"]["ioConfig"]["topic"]))
        return spec["spec"]["dataSchema"]["dataSource"]

    def set_compaction(self, config):
        self.calls.append(("compaction", config["dataSource"]))

    def set_rules(self, datasource, rules):
        self.calls.append(("rules", datasource, rules))

    def parse_errors(self, supervisor_id):
        return []


@pytest.fixture
def fake_druid(monkeypatch):
    FakeDruid.calls = []
    topics = []
    monkeypatch.setattr(druid_supervisor, "DruidClient", FakeDruid)
    monkeypatch.setattr(
        druid_supervisor,
        "ensure_topics",
        lambda bootstrap, names, partitions, replication, retention: topics.append(
            (names, retention)
        )
        or {},
    )
    return FakeDruid.calls, topics


def _submit(*args: str):
    spec = str(REPO_ROOT / "druid/ingestion-spec.json")
    rules = str(RULES_FILE)
    compaction = str(REPO_ROOT / "druid/compaction-config.json")
    trends = str(REPO_ROOT / "druid/trends-ingestion-spec.json")
    return CliRunner().invoke(
        app,
        ["submit", f"--spec={spec}", f"--rules={rules}", f"--compaction={compaction}"]
        + [f"--trends-spec={trends}", "--no-wait", "--datasource=ds", "--topic=tp", *args],
    )


def test_submit_sets_topic_retention_and_rules_from_the_environment(monkeypatch, fake_druid):
    calls, topics = fake_druid
    monkeypatch.setenv("DRUID_RETENTION_PERIOD", "P90D")
    monkeypatch.setenv("TRENDS_TOPIC", "trends-tp")
    monkeypatch.setenv("KAFKA_TOPIC_RETENTION_MS", str(3 * DAY_MS))
    done = _submit()
    assert done.exit_code == 0, done.output
    assert "retention for ds: load P90D, then drop" in done.output
    ((names, retention),) = topics
    assert names == ["tp", "trends-tp"]
    assert retention.config("trends-tp")["retention.ms"] == str(3 * DAY_MS)
    assert [c for c in calls if c[0] == "submit"] == [("submit", "tp"), ("submit", "trends-tp")]
    for datasource in ("ds", "wikimedia_trends"):  # the trends datasource: the same retention
        assert ("rules", datasource, render_rules(RULES_FILE, "P90D")) in calls
        assert ("compaction", datasource) in calls


def test_submit_option_beats_the_default_and_no_retention_skips_the_rules(fake_druid):
    calls, _ = fake_druid
    assert _submit("--retention-period=P14D").exit_code == 0
    assert ("rules", "ds", render_rules(RULES_FILE, "P14D")) in calls
    calls.clear()
    assert _submit("--no-retention").exit_code == 0
    assert [c for c in calls if c[0] == "rules"] == []
    calls.clear()
    assert _submit("--no-trends").exit_code == 0
    assert [c for c in calls if c[0] == "submit"] == [("submit", "tp")]


def test_submit_refuses_a_bad_period_before_changing_anything(fake_druid):
    calls, topics = fake_druid
    done = _submit("--retention-period=30 days")
    assert done.exit_code == 2
    assert "ISO-8601" in done.output
    assert calls == [] and topics == []
