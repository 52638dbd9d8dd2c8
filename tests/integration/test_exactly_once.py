"""Exactly once from the stream to Kafka and Druid, through crashes, failover and a broker restart.

Real processes against the real native Kafka (and Druid for the crash test), fed by the
EventStreams stand-in at a live-like 300 events/s from the three recorded files (5,707 real
events) and the Wikidata stand-in answering in 0.3 s. Kafka is read as Druid reads it,
`read_committed`; each test also reads `read_uncommitted` to show that aborted records were
really written, so the exactness is the transactions' doing and not a lucky timing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from tests.conftest import event_ids, wait_until
from tests.integration.conftest import KAFKA, delete_topics
from tests.integration.test_producer_kafka import Producer, recording
from tests.kafka_support import read_to_end
from tests.ops_support import free_port
from tests.standins import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RECORDINGS = (
    "editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl",
    "editgroups_qs_batch_with_reverts_wikidatawiki_2018-03-07.jsonl",
    "polars-book_wikimedia_enwiki_2023-07-29.jsonl",
)
EVENTS_PER_SECOND = 300
FAILOVER_LIMIT_SECONDS = 15


def all_records(topic: str, isolation: str = "read_committed") -> list:
    """Every record of `topic` up to its end, as a reader with `isolation` sees it."""
    return read_to_end(KAFKA, topic, isolation)


def counts(records: list) -> Counter:
    return Counter(json.loads(r.value())["event_id"] for r in records)


def assert_exactly_once(topic: str, expected: set[str]) -> tuple[int, int]:
    """Committed: each expected event once. Returns (committed, physically written) records."""
    seen = counts(all_records(topic))
    missing = expected - set(seen)
    doubled = {k: n for k, n in seen.items() if n > 1}
    assert not missing, f"{len(missing)} events missing"
    assert not doubled, f"{len(doubled)} events more than once, e.g. {list(doubled)[:3]}"
    assert set(seen) == expected
    return sum(seen.values()), len(all_records(topic, "read_uncommitted"))


def wait_committed(topic: str, expected: set[str], timeout: float = 180) -> None:
    def all_there() -> bool:
        try:
            return expected <= set(counts(all_records(topic)))
        except KafkaException as exc:
            # Right after a broker restart its partitions may have no leader yet for a moment
            # (NOT_LEADER_FOR_PARTITION): not yet, as for any other reader. Anything else fails.
            if exc.args[0].retriable() or exc.args[0].code() in _LEADERLESS:
                return False
            raise

    wait_until(all_there, timeout, interval=2)


_LEADERLESS = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}


def health(port: int) -> dict:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
    except requests.RequestException:
        return {}


class Copy(Producer):
    """One copy of the producer, in its own directory, with its /health on a free port."""

    def __init__(self, tmp: Path, name: str, *args, **env: str):
        tmp = tmp / name
        tmp.mkdir()
        self.health_port = free_port()
        super().__init__(tmp, *args, HEALTH_PORT=str(self.health_port), **env)

    def role(self) -> str | None:
        return health(self.health_port).get("role")

    def messages(self) -> list[str]:
        return [line["msg"] for line in self.logs()]

    def this_run(self) -> list[str]:
        """Messages of the current run only (each start logs to a file of its own)."""
        return [line["msg"] for line in self.logs(self.runs)]


@pytest.fixture
def live_stream(sse_server_factory, wikidata):
    """The recordings at 300 events/s and a Wikidata API answering in 0.3 s."""
    paths = [recording(name) for name in RECORDINGS]
    server = sse_server_factory(paths)
    server.behaviour.frame_delay = 1 / EVENTS_PER_SECOND
    wikidata.behaviour.delay_seconds = 0.3
    expected = {event_id for path in paths for event_id in event_ids(path)}
    assert len(expected) >= 5000
    return server, wikidata, expected


@pytest.fixture
def copies(tmp_path):
    started: list[Copy] = []

    def make(name: str, *args, **env) -> Copy:
        started.append(Copy(tmp_path, name, *args, **env))
        return started[-1]

    yield make
    for copy in started:
        if copy.proc is not None:
            if copy.proc.poll() is None:
                copy.proc.send_signal(signal.SIGCONT)
                copy.proc.kill()
            copy.proc.wait()


@pytest.fixture
def topic():
    name = f"eo-{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(name, f"{name}.dlq")


def test_kill_9_three_times_exactly_once_in_kafka_and_druid(e2e_context, live_stream, copies):
    """kill -9 at three random points of a 300 events/s replay, then let it finish."""
    server, wikidata, expected = live_stream
    ctx = e2e_context
    # The production commit interval (the other tests commit every 0.2 s).
    producer = copies("producer", server.url, wikidata.url, ctx.topic, COMMIT_INTERVAL_SECONDS="1")
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    kills = []
    for _ in range(3):
        producer.start()
        wait_until(lambda: "active" in producer.this_run(), 60, interval=0.1)
        time.sleep(rng.uniform(1.0, 5.0))
        producer.proc.send_signal(signal.SIGKILL)
        producer.proc.wait()
        kills.append(len(counts(all_records(ctx.topic))))
    producer.start()
    wait_committed(ctx.topic, expected)
    assert producer.stop() == 0
    committed, written = assert_exactly_once(ctx.topic, expected)
    print(
        f"seed {seed}: kill -9 after {kills} committed events; {committed} committed,"
        f" {written} written (aborted: {written - committed})"
    )
    assert written > committed, "the kills left aborted records behind (read_uncommitted)"
    assert max(kills) < len(expected), "every kill happened mid-stream"

    ctx.wait_for_count(len(expected))
    (row,) = ctx.sql(
        f'SELECT COUNT(*) AS n, (SELECT COUNT(*) FROM (SELECT event_id FROM "{ctx.datasource}"'
        f' GROUP BY event_id)) AS distinct_ids FROM "{ctx.datasource}"'
    )
    assert row == {"n": len(expected), "distinct_ids": len(expected)}, "Druid: each event once"


def active_and_standby(topic: str, live_stream, copies) -> tuple[Copy, Copy, set[str]]:
    """Two copies with the same settings: the first active and publishing, the second standby."""
    server, wikidata, expected = live_stream
    first = copies("first", server.url, wikidata.url, topic)
    second = copies("second", server.url, wikidata.url, topic)
    first.start()
    wait_until(lambda: first.role() == "active", 60)
    second.start()
    wait_until(lambda: second.role() == "standby", 60)
    wait_until(lambda: len(all_records(topic)) > 500, 60, interval=0.5)
    return first, second, expected


def test_a_standby_takes_over_from_a_killed_active_copy(topic, live_stream, copies):
    first, second, expected = active_and_standby(topic, live_stream, copies)
    killed_at = time.time()
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    wait_until(lambda: second.role() == "active", 60, interval=0.1)
    active_after = time.time() - killed_at
    wait_committed(topic, expected)
    assert second.stop() == 0
    assert_exactly_once(topic, expected)
    # The standby's first record: the earliest CreateTime written after the kill.
    created = [r.timestamp()[1] / 1000 for r in all_records(topic)]
    published_after = min(t for t in created if t > killed_at) - killed_at
    print(f"failover: standby active {active_after:.1f} s, publishing {published_after:.1f} s")
    assert published_after <= FAILOVER_LIMIT_SECONDS
    takeover = [line for line in second.logs() if line["msg"] == "active"]
    assert takeover and takeover[0]["takeover"] is True


def test_a_paused_leader_is_fenced_and_steps_down(topic, live_stream, copies):
    """SIGSTOP the active copy: the standby takes over; SIGCONT: the old one writes nothing."""
    first, second, expected = active_and_standby(topic, live_stream, copies)
    first.proc.send_signal(signal.SIGSTOP)
    wait_until(lambda: second.role() == "active", 60, interval=0.2)
    wait_until(lambda: second.logs() and "stats" in second.messages(), 30)
    first.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: first.role() == "standby", 60, interval=0.2)
    assert first.proc.poll() is None, "the old leader steps down to standby, it does not die"
    wait_committed(topic, expected)
    assert second.stop() == 0
    assert first.stop() == 0
    assert_exactly_once(topic, expected)
    ended = [line for line in first.logs() if line["msg"] == "shutdown"]
    assert ended[0]["outcome"] == "stepped_down", ended[0]
    assert "stepped_down" in first.messages()


def kafka_pid() -> int | None:
    """The broker's pid as its keeper published it; None between a stop and the restart."""
    try:
        return int(json.loads((REPO_ROOT / "var" / "run" / "kafka.pid").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def kafka_answers() -> bool:
    try:
        AdminClient({"bootstrap.servers": KAFKA}).list_topics(timeout=3)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False


def test_a_broker_restart_mid_stream_loses_and_doubles_nothing(topic, live_stream, copies):
    server, wikidata, expected = live_stream
    producer = copies("producer", server.url, wikidata.url, topic)
    producer.start()
    wait_until(lambda: len(all_records(topic)) > 1000, 90, interval=0.5)
    old = kafka_pid()
    if old is None or not (REPO_ROOT / "var" / "run" / "kafka.keeper").exists():
        pytest.fail("Kafka is not running under its keeper; run the tests with `make test`")
    os.kill(old, signal.SIGTERM)
    try:
        wait_until(lambda: kafka_pid() not in (None, old), 120, interval=0.5)
    finally:
        wait_until(kafka_answers, 180, interval=1)
    wait_committed(topic, expected, timeout=240)
    assert producer.proc.poll() is None, "recovered without a restart"
    assert producer.stop() == 0
    committed, written = assert_exactly_once(topic, expected)
    print(f"broker restart: {committed} committed, {written} written")
