"""Fixtures for tests against the real native stack (Kafka, Druid, Superset).

The stack is started by `make test` (`wikistreams.native.with_stack`). A server that is not
there is a broken setup, so these fixtures fail with the command to run instead of skipping.

``druid_with_data``: the Druid datasource ``wikimedia_recentchange`` holding the recorded
recentchange events, put there the way production does it: the Kafka supervisor from
``druid/ingestion-spec.json`` and ``python -m wikistreams.producer`` replaying the recordings in
``tests/data/recorded`` (Wikidata labels from the local stand-in API, never the internet).
Rows already there are reused, so a session feeds the topic at most once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from wikistreams.producer.config import Settings
from wikistreams.producer.position import Position, StreamIdentity, read_position
from wikistreams.producer.sink import ensure_topics
from tests.standins import REPO_ROOT, TEST_CONTACT, recentchange_dir
from wikistreams.druid.supervisor import DruidClient, DruidError, render_spec

ROOT = REPO_ROOT
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
BROKER = os.environ.get("DRUID_BROKER_URL", "http://127.0.0.1:8082")
OVERLORD = os.environ.get("DRUID_OVERLORD_URL", "http://127.0.0.1:8081")
DATASOURCE = "wikimedia_recentchange"
RECORDINGS = (
    "editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl",
    "editgroups_qs_batch_with_reverts_wikidatawiki_2018-03-07.jsonl",
    "polars-book_wikimedia_enwiki_2023-07-29.jsonl",
)
# The three recordings hold 5,706 events; a little slack for rows still being handed off.
MIN_RECORDED_ROWS = 5600
RECORDED_WINDOW = "__time >= TIMESTAMP '2018-03-07 00:00:00' AND __time < TIMESTAMP '2023-07-30'"


def producer_env(workdir: Path, sse_url: str, wikidata_url: str, topic: str, **extra: str) -> dict:
    """Environment for `python -m wikistreams.producer` in a test: its own topic (so its own
    position, keyed by topic and source) and label cache."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "USER_AGENT_CONTACT": TEST_CONTACT,
        "SSE_URL": sse_url,
        "WIKIDATA_API_URL": wikidata_url,
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "KAFKA_TOPIC": topic,
        "KAFKA_DLQ_TOPIC": f"{topic}.dlq",
        "CACHE_DB_PATH": str(workdir / "labels.sqlite3"),
        "HEALTH_PORT": "0",
        # Replays of recordings run flat out, far ahead of the API worker: give every entity edit
        # its labels (tests compare them), not the live default of 2 s. Tests of the deadline
        # set their own.
        "ENRICH_MAX_DELAY_SECONDS": "60",
        # The stand-in's recordings are years old: a `since` of an hour ago would skip them all.
        # Tests replay them as the live edge; test_backfill.py sets its own.
        "BACKFILL_HOURS": "0",
        # For the same reason the stand-in's stream (http://, so "live") has no age bound;
        # file:// replays never have one, and test_event_times.py tests the default.
        "EVENT_MAX_AGE_HOURS": "0",
        **extra,
    }


POSITION_TOPIC = Settings.model_fields["kafka_position_topic"].default


def committed_position(topic: str, sse_url: str) -> Position | None:
    """The position the producer of `sse_url` into `topic` committed last (read_committed)."""
    return read_position(KAFKA, POSITION_TOPIC, StreamIdentity.of(topic, sse_url).key)


def forget_position(topic: str, sse_url: str) -> None:
    """A tombstone for the stream's position: its next producer starts from the beginning."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": KAFKA})
    producer.produce(POSITION_TOPIC, key=StreamIdentity.of(topic, sse_url).key.encode(), value=None)
    assert producer.flush(30) == 0


def delete_topics(*topics: str) -> None:
    """Tests create throw-away topics; this keeps the developer's Kafka tidy afterwards."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA})
    for future in admin.delete_topics(list(topics), operation_timeout=30).values():
        try:
            future.result(timeout=30)
        except Exception:  # noqa: BLE001 - a topic that was never created is fine
            pass


@pytest.fixture
def topic():
    """A topic name of the test's own (and its dead-letter topic), deleted afterwards."""
    name = f"it-{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(name, f"{name}.dlq")


def run_producer(workdir: Path, env: dict) -> subprocess.CompletedProcess:
    """The real producer as a process, replaying a file until it ends."""
    return subprocess.run(
        [sys.executable, "-m", "wikistreams.producer"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


def druid_sql(query: str) -> list[dict]:
    return DruidClient(OVERLORD).sql(BROKER, query)


def require_druid() -> DruidClient:
    for url in (f"{BROKER}/status/health", f"{OVERLORD}/status/health"):
        try:
            requests.get(url, timeout=5).raise_for_status()
        except requests.RequestException as exc:
            pytest.fail(f"Druid is not running ({url}: {exc}); run the tests with `make test`")
    return DruidClient(OVERLORD)


def recorded_rows() -> int:
    try:
        rows = druid_sql(f"SELECT COUNT(*) AS n FROM {DATASOURCE} WHERE {RECORDED_WINDOW}")
    except DruidError:  # datasource not created yet: no segment has been published
        return 0
    return int(rows[0]["n"]) if rows else 0


@pytest.fixture(scope="session")
def druid_with_data(tmp_path_factory, wikidata_api) -> dict:
    """Druid answering SQL with the recorded events in ``wikimedia_recentchange``."""
    druid = require_druid()
    if recorded_rows() < MIN_RECORDED_ROWS:
        spec = render_spec(ROOT / "druid" / "ingestion-spec.json")
        druid.submit(spec)
        topic = spec["spec"]["ioConfig"]["topic"]
        workdir = tmp_path_factory.mktemp("producer")
        for name in RECORDINGS:
            sse_url = (recentchange_dir() / name).as_uri()
            env = producer_env(workdir, sse_url, wikidata_api.url, topic)
            env.pop("KAFKA_DLQ_TOPIC")  # the default dead-letter topic, not a new one
            forget_position(topic, sse_url)  # rows gone from Druid: feed the topic again
            result = run_producer(workdir, env)
            assert result.returncode == 0, f"producer failed on {name}:\n{result.stderr[-3000:]}"
        deadline = time.monotonic() + 300
        while recorded_rows() < MIN_RECORDED_ROWS:
            assert time.monotonic() < deadline, "Druid did not ingest the recorded events in 300 s"
            time.sleep(3)
    (summary,) = druid_sql(
        f"SELECT COUNT(*) AS n, MIN(__time) AS first, MAX(__time) AS last FROM {DATASOURCE}"
    )
    return summary


QUERYABLE_TIMEOUT = 300


@dataclass
class E2EContext:
    topic: str
    datasource: str
    druid: DruidClient
    workdir: Path

    def sql(self, query: str, parameters: list | None = None) -> list[dict]:
        return self.druid.sql(BROKER, query, parameters)

    def rows(self, where: str | None = None) -> int:
        """Rows queryable now (that match the SQL condition `where`); fails if Druid cannot say."""
        query = f'SELECT COUNT(*) AS n FROM "{self.datasource}"'
        return int(self.sql(query + (f" WHERE {where}" if where else ""))[0]["n"])

    def count(self) -> int:
        """Rows queryable now; 0 while there is no table yet (or Druid does not answer)."""
        try:
            return self.rows()
        except Exception:  # noqa: BLE001 - the table appears with the first row
            return 0

    def wait_for_count(self, expected: int, timeout: float = QUERYABLE_TIMEOUT) -> float:
        """Seconds until exactly `expected` rows are queryable."""
        started = time.monotonic()
        seen = 0
        while time.monotonic() - started < timeout:
            seen = self.count()
            if seen >= expected:
                break
            time.sleep(1)
        assert seen == expected, f"{seen} rows in Druid after {timeout}s, expected {expected}"
        return time.monotonic() - started

    def run_producer(self, sse_url: str, wikidata_url: str) -> subprocess.CompletedProcess:
        """The real producer as a process, replaying until its source ends."""
        env = producer_env(self.workdir, sse_url, wikidata_url, self.topic)
        return run_producer(self.workdir, env)


@pytest.fixture
def e2e_context(tmp_path):
    """A topic, datasource and supervisor of the test's own; teardown terminates the supervisor,
    kills its tasks and marks the segments unused, then checks that nothing is left."""
    suffix = uuid.uuid4().hex[:8]
    druid = require_druid()
    ctx = E2EContext(f"e2e-{suffix}", f"e2e_{suffix}", druid, tmp_path)
    ensure_topics(KAFKA, [ctx.topic, f"{ctx.topic}.dlq"], partitions=2, replication=1)
    spec = render_spec(topic=ctx.topic, datasource=ctx.datasource, task_duration="PT10M")
    druid.submit(spec)
    druid.wait_running(ctx.datasource, timeout=240)
    yield ctx
    druid.drop(ctx.datasource)
    assert ctx.datasource not in druid.supervisors()
    deadline = time.monotonic() + 120
    while druid.running_tasks(ctx.datasource) and time.monotonic() < deadline:
        time.sleep(2)
    assert druid.running_tasks(ctx.datasource) == [], "ingestion task left running"
    assert ctx.datasource not in druid.used_datasources(), "datasource still has used segments"
    assert druid.compaction(ctx.datasource) is None, "auto-compaction config left behind"
    delete_topics(ctx.topic, f"{ctx.topic}.dlq")
