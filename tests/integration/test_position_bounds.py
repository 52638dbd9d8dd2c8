"""The position record stays under Kafka's record limit, whatever the crashes and the input.

Real producer processes against the real Kafka, fed by the EventStreams stand-in. Each test
reads the position records as they are committed (`read_committed`, the producer's own view on
resume) from a position topic of its own, and checks every event once in the enriched topic.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from wikistreams.producer.events import MAX_EVENT_ID_CHARS
from wikistreams.producer.position import (
    POSITION_MAX_BYTES,
    POSITION_TOPIC_CONFIG,
    Position,
    StreamIdentity,
)
from wikistreams.producer.sink import SameConfig, ensure_topics
from tests.conftest import event_ids, recorded_events, wait_until
from tests.integration.conftest import KAFKA, delete_topics
from tests.integration.test_exactly_once import all_records, assert_exactly_once, wait_committed
from tests.integration.test_producer_faults import POLARS, by_reason, frame, real_event
from tests.integration.test_producer_kafka import Producer, read_topic, recording

pytestmark = pytest.mark.integration

WIKIDATA_EDITS = "editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl"
# The catch-up: BLOCKS entity edits, each followed by BLOCK events of another wiki. An entity
# edit waits API_DELAY seconds for its labels; meanwhile the producer reads on as fast as it can
# and publishes the events behind it, whose ids the position must name. A crash comes once a
# run has moved the watermark past the edit it resumed at and named NEW ids of its own.
BLOCKS = 5
BLOCK = 10_000
API_DELAY = 10.0
NEW = 5_000


class PositionRecords:
    """Every position record of one stream, in commit order, as `read_committed` sees them."""

    def __init__(self, topic: str, key: str) -> None:
        self.key = key.encode()
        self.sizes: list[int] = []
        self.records: list[Position] = []
        self._consumer = Consumer(
            {
                "bootstrap.servers": KAFKA,
                "group.id": f"t-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

    def read(self) -> list[Position]:
        while (msg := self._consumer.poll(0.5)) is not None:
            assert not msg.error(), msg.error()
            if msg.key() == self.key and msg.value():
                self.sizes.append(len(msg.value()))
                self.records.append(Position.model_validate_json(msg.value()))
        return self.records

    def close(self) -> None:
        self._consumer.close()


def catch_up_stream(path: Path) -> list[str]:
    """DERIVED for the test: BLOCKS x (one wikidatawiki entity edit, BLOCK enwiki events) from
    the recordings, each with a new meta.id and a meta.dt 1 ms after the one before (a
    timestamp resume then replays exactly). Returns the event ids in stream order."""
    edits = [json.loads(line) for line in recorded_events(recording(WIKIDATA_EDITS))]
    others = [json.loads(line) for line in recorded_events(recording(POLARS))]
    titles: set[str] = set()
    entity_edits = [e for e in edits if e["title"] not in titles and not titles.add(e["title"])]
    dt = datetime(2023, 7, 29, tzinfo=timezone.utc)
    ids, lines = [], []
    for block in range(BLOCKS):
        for event in [entity_edits[block], *(others[i % len(others)] for i in range(BLOCK))]:
            dt += timedelta(milliseconds=1)
            event = {**event, "meta": {**event["meta"], "id": str(uuid.uuid4())}}
            event["meta"]["dt"] = dt.isoformat()
            ids.append(event["meta"]["id"])
            lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n")
    return ids


@pytest.fixture
def topic():
    name = f"pos-{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(name, f"{name}.dlq", f"{name}.position")


def test_three_kill_9_during_a_catch_up_keep_the_position_record_bounded(
    tmp_path, topic, sse_server_factory, wikidata
):
    """Before: each resumed position's ids were carried into every record of the next run, so
    three crashes grew the record past Kafka's limit; the commit then failed and the producer
    rewound for ever. Now ids read again are named once, and every record stays under
    POSITION_MAX_BYTES."""
    stream = tmp_path / "catch-up.jsonl"
    expected = catch_up_stream(stream)
    server = sse_server_factory([stream])  # no frame delay: a catch-up, as fast as it reads
    wikidata.behaviour.delay_seconds = API_DELAY
    position_topic = f"{topic}.position"
    ensure_topics(KAFKA, [position_topic], 1, 1, retention=SameConfig(POSITION_TOPIC_CONFIG))
    positions = PositionRecords(position_topic, StreamIdentity.of(topic, server.url).key)
    producer = Producer(
        tmp_path, server.url, wikidata.url, topic, KAFKA_POSITION_TOPIC=position_topic
    )
    resumed: list[Position | None] = [None]
    try:
        for _crash in range(3):
            producer.start()
            mine = f":{producer.proc.pid}"
            before = resumed[-1]
            named_before = set(before.ids) if before else set()

            def moved_on_and_named_its_own() -> bool:
                return any(
                    p.producer.endswith(mine)
                    and p.last_event_id != (before.last_event_id if before else None)
                    and len(set(p.ids) - named_before) >= NEW
                    for p in positions.read()
                )

            wait_until(moved_on_and_named_its_own, 240, interval=0.2)
            producer.proc.send_signal(signal.SIGKILL)
            producer.proc.wait()
            resumed.append(positions.read()[-1])
        producer.start()
        wait_committed(topic, set(expected), timeout=300)
        assert producer.stop() == 0
        positions.read()
    finally:
        positions.close()

    assert_exactly_once(topic, set(expected))
    print(f"position records: {len(positions.sizes)}, largest {max(positions.sizes)} bytes")
    assert all(len(p.ids) >= NEW for p in resumed[1:]), "each crash left many ids to carry"
    assert max(positions.sizes) <= POSITION_MAX_BYTES
    last_run = [line["msg"] for line in producer.logs(producer.runs)]
    assert "pipeline_failed" not in last_run, "no commit failed, nothing was rewound"


def test_events_with_huge_ids_are_dead_lettered_and_the_stream_goes_on(
    tmp_path, topic, sse_server_factory, wikidata
):
    """Before: three events with 450 KB ids were published and made a 1.35 MB position
    record; Kafka refused it and the producer rewound for ever. Now a meta.id longer than
    MAX_EVENT_ID_CHARS is a dead letter with its reason."""
    polars = recording(POLARS)
    server = sse_server_factory([polars])
    huge = {
        at: frame(json.dumps(real_event(at, meta__id=f"{at}-" + "i" * 450_000)).encode())
        for at in (10, 20, 30)
    }
    server.behaviour.inject = huge
    expected = event_ids(polars)
    producer = Producer(tmp_path, server.url, wikidata.url, topic)
    producer.start()
    records = read_topic(topic, expect=len(expected), timeout=90)
    dead = read_topic(f"{topic}.dlq", expect=len(huge), timeout=30)
    assert producer.proc.poll() is None, "the producer is still running"
    assert producer.stop() == 0

    assert len(records) >= len(expected)
    committed = all_records(topic)  # read_committed, as Druid reads
    assert Counter(json.loads(r.value())["event_id"] for r in committed) == Counter(expected)
    [(reason, rejected)] = by_reason(dead).items()
    assert reason == ("validate", "ValidationError") and len(rejected) == len(huge)
    for headers, value in rejected:
        assert "meta.id" in headers["exception.message"]
        assert str(MAX_EVENT_ID_CHARS) in headers["exception.message"]
        assert value in {f[len(b"event: message\ndata: ") : -2] for f in huge.values()}
    stats = [line for line in producer.logs() if line["msg"] == "stats"]
    assert max(s["position_bytes_max"] for s in stats) <= POSITION_MAX_BYTES
