"""The whole producer as a process against real Kafka, fed by the EventStreams stand-in.

Covers what only the assembled system shows: every valid event reaches Kafka, bad frames reach
the dead-letter topic with their reason, reconnects resume, SIGTERM exits cleanly with the
position committed, and dead letters can be replayed exactly once. Crashes, failover and broker
restarts: test_exactly_once.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from wikistreams.producer.decode import decode_event
from wikistreams.producer.sink import (
    KafkaSink,
    dead_letter_headers,
    decode_headers,
    producer_config,
)
from tests.conftest import event_ids
from tests.integration.conftest import KAFKA, committed_position, delete_topics, producer_env
from tests.standins import recentchange_dir
from tests.standins.sse_server import recorded_sse

pytestmark = pytest.mark.integration


def recording(name: str) -> Path:
    return next(recentchange_dir().rglob(name))


def read_topic(topic: str, expect: int = 0, timeout: float = 60.0, distinct: bool = False) -> list:
    """Every record of `topic`; waits until `expect` records (or distinct event ids) arrived."""
    consumer = Consumer(
        {"bootstrap.servers": KAFKA, "group.id": f"t-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    records, deadline = [], time.monotonic() + timeout
    while not (partitions := consumer.list_topics(topic, timeout=10).topics[topic].partitions):
        assert time.monotonic() < deadline, f"topic {topic} never appeared"
        time.sleep(0.5)  # the producer creates it at start
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    ids: set[str] = set()
    while time.monotonic() < deadline:
        enough = (len(ids) if distinct else len(records)) >= expect
        msg = consumer.poll(0.5 if enough else 1.0)
        if msg is None:
            if enough:
                break
            continue
        if distinct:
            ids.add(json.loads(msg.value())["event_id"])
        assert not msg.error(), msg.error()
        records.append(msg)
    consumer.close()
    return records


class Producer:
    """`python -m wikistreams.producer` in its own work dir, with settings for one test."""

    def __init__(self, tmp: Path, sse_url: str, wikidata_url: str, topic: str, **env: str):
        self.tmp = tmp
        self.env = producer_env(
            tmp,
            sse_url,
            wikidata_url,
            topic,
            **{
                "STATS_INTERVAL_SECONDS": "1",
                "COMMIT_INTERVAL_SECONDS": "0.2",
                "RECONNECT_BACKOFF_MAX_SECONDS": "0.5",
                **env,
            },
        )
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = (self.tmp / f"producer-{self.runs}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wikistreams.producer"], env=self.env, stdout=log, stderr=log
        )

    def logs(self, run: int | None = None) -> list[dict]:
        """The JSON log lines of every run so far, or of run number `run` only."""
        lines = []
        for path in sorted(self.tmp.glob(f"producer-{'*' if run is None else run}.log")):
            for line in path.read_text().splitlines():
                if line.startswith("{"):
                    lines.append(json.loads(line))
        return lines

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


@pytest.fixture
def topic():
    name = f"it-{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(name, f"{name}.dlq")


def canary_from(data: bytes) -> bytes:
    """DERIVED for the test: a real event re-labelled as Wikimedia's canary (meta.domain)."""
    event = json.loads(data)
    event["meta"]["domain"] = "canary"
    event["meta"]["id"] = str(uuid.uuid4())
    return json.dumps(event).encode()


def test_sse_to_kafka_with_dead_letters_and_reconnects(
    tmp_path, topic, sse_server_factory, wikidata
):
    polars = recording("polars-book_wikimedia_enwiki_2023-07-29.jsonl")
    # 82 wikidatawiki events of 2018 (JSON lines, stand-in ids), then the raw SSE recording's 9
    # enwiki events of 2023 with their own ids: both in time order, so resumes move forward.
    batch = recording("qs_batch_with_new_items.json")
    frames = recorded_sse()
    server = sse_server_factory([batch, frames])
    server.behaviour.cut_after = 30
    canary = canary_from(polars.read_bytes().splitlines()[0])
    server.behaviour.inject = {
        10: b'event: message\nid: [{"topic":"x","partition":0,"timestamp":1}]\n'
        b'data: {"meta": {\n\n',
        20: b'event: message\ndata: {"meta": {"id": "v-1", "dt": "2023-07-29T07:52:00Z"}}\n\n',
        40: b"event: message\ndata: " + canary + b"\n\n",
        60: b"event: error\ndata: upstream lag\n\n",
    }
    expected = event_ids(batch) + event_ids(frames)
    assert len(set(expected)) == 91
    producer = Producer(tmp_path, server.url, wikidata.url, topic)
    producer.start()
    records = read_topic(topic, expect=len(expected), timeout=90)
    dead = read_topic(f"{topic}.dlq", expect=3, timeout=30)
    assert producer.stop() == 0, "SIGTERM exits 0"

    delivered = Counter(json.loads(r.value())["event_id"] for r in records)
    assert set(delivered) == set(expected), "every valid event is in Kafka"
    assert all(n == 1 for n in delivered.values()), "timestamp replays are deduplicated"
    sample = json.loads(records[0].value())
    assert records[0].key().decode() == f"{sample['wiki']}:{sample['title']}"

    reasons = sorted(
        (h["stage"], h["exception.class.name"]) for h in (decode_headers(r.headers()) for r in dead)
    )
    assert reasons == [
        ("parse", "JSONDecodeError"),
        ("parse", "UnexpectedEventType"),
        ("validate", "ValidationError"),
    ]
    assert b'{"meta": {' in [r.value() for r in dead]
    assert len(server.behaviour.connections) >= 4, "cut every 30 frames, resumed each time"
    resumed = [c["last_event_id"] for c in server.behaviour.connections[1:]]
    assert all(resumed), "every reconnect sends Last-Event-ID"

    logs = producer.logs()
    stats = [line for line in logs if line["msg"] == "stats"]
    assert sum(s["canary_dropped"] for s in stats) == 1
    assert sum(s["dlq"] for s in stats) == 3
    assert {"ts", "level", "logger", "service"} <= set(stats[-1])
    assert committed_position(topic, server.url).last_event_id == server.frames[-1].sse_id


def test_dead_letters_replay_once(tmp_path, topic, wikidata):
    """A dead letter that passes now is delivered once; one that still fails is re-dead-lettered."""
    polars = recording("polars-book_wikimedia_enwiki_2023-07-29.jsonl")
    good = polars.read_bytes().splitlines()[5]
    sink = KafkaSink(producer_config(KAFKA, "zstd", 5), topic, f"{topic}.dlq")
    from wikistreams.producer.sink import ensure_topics

    ensure_topics(KAFKA, [topic, f"{topic}.dlq"], 1, 1)
    results = []
    for value, stage in ((good, "produce"), (b"{broken", "parse")):
        headers = dead_letter_headers(stage, "KafkaError", "simulated", None, "test")
        sink.dead_letter(value, headers, lambda err, _msg: results.append(err))
    assert sink.flush() == 0 and results == [None, None]

    env = Producer(tmp_path, "file:///dev/null", wikidata.url, topic).env
    cmd = [sys.executable, "-m", "wikistreams.producer.dlq_cli"]
    first = subprocess.run([*cmd, "replay"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "replayed 2: 1 delivered, 1 dead-lettered again" in first.stdout
    second = subprocess.run([*cmd, "replay"], env=env, capture_output=True, text=True, timeout=120)
    assert "replayed 1: 0 delivered, 1 dead-lettered again" in second.stdout

    delivered = read_topic(topic, expect=1, timeout=20)
    assert [json.loads(r.value())["event_id"] for r in delivered] == [decode_event(good).meta.id]
    listing = subprocess.run(
        [*cmd, "list", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [r["stage"] for r in rows] == ["produce", "parse", "parse", "parse"]
    assert rows[-1]["exception.class.name"] == "JSONDecodeError"
