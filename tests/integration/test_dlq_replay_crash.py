"""`wikistreams-dlq replay` killed with SIGKILL at random points still publishes each dead letter
once: its consumer offsets commit inside its transactions, with the records they cover.

The dead letters are real recorded events (Wikidata entity edits, which wait for their labels,
interleaved with English Wikipedia edits, which overtake them), so the replay's position has
events past its watermark when it is killed.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from itertools import zip_longest

from confluent_kafka import Producer as KafkaProducer

from tests.conftest import event_ids, recorded_events
from tests.integration.conftest import KAFKA
from tests.integration.test_producer_kafka import Producer, recording
from tests.kafka_support import read_to_end
from wikistreams.producer.sink import dead_letter_headers, ensure_topics
from wikistreams.producer.topic_reader import TopicUnreadable

RECORDINGS = (
    "editgroups_qs_batch_with_reverts_wikidatawiki_2018-03-07.jsonl",
    "polars-book_wikimedia_enwiki_2023-07-29.jsonl",
)
CMD = [sys.executable, "-m", "wikistreams.producer.dlq_cli", "replay"]
KILLS = 3


def put_dead_letters(dlq: str) -> set[str]:
    """Every recorded event of RECORDINGS as a dead letter; returns their event ids."""
    wikidata, enwiki = (list(recorded_events(recording(name))) for name in RECORDINGS)
    values = [v for pair in zip_longest(wikidata, enwiki) for v in pair if v]
    producer = KafkaProducer({"bootstrap.servers": KAFKA})
    for value in values:
        headers = dead_letter_headers("enrich", "KafkaError", "simulated", None, "test")
        producer.produce(dlq, value=value, headers=headers)
    assert producer.flush(30) == 0
    expected = set(event_ids(recording(RECORDINGS[0]))) | set(event_ids(recording(RECORDINGS[1])))
    assert len(expected) > 1500
    return expected


def delivered(topic: str) -> Counter[str]:
    """Event ids in `topic` as `read_committed` consumers (Druid) see them."""
    try:
        records = read_to_end(KAFKA, topic, timeout=5)
    except TopicUnreadable:  # not created yet
        return Counter()
    return Counter(json.loads(r.value())["event_id"] for r in records)


def test_a_replay_killed_three_times_publishes_each_dead_letter_once(tmp_path, topic, wikidata):
    dlq = f"{topic}.dlq"
    ensure_topics(KAFKA, [topic, dlq], 1, 1)
    expected = put_dead_letters(dlq)
    # Labels come slowly (entity edits wait for them, the others overtake), and transactions
    # are small: a kill lands between two commits with records past the watermark.
    wikidata.behaviour.delay_seconds = 0.3
    env = Producer(tmp_path, "file:///dev/null", wikidata.url, topic, COMMIT_MAX_EVENTS="25").env
    group = ["--group", f"it-replay-{uuid.uuid4().hex[:8]}"]
    rng = random.Random()
    progress = []
    for _ in range(KILLS):
        before = sum(delivered(topic).values())
        replay = subprocess.Popen(
            [*CMD, *group], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while sum(delivered(topic).values()) <= before:  # it committed something of its own
            assert replay.poll() is None, "the replay ended before it could be killed"
            assert time.monotonic() < deadline, "the replay published nothing"
            time.sleep(0.2)
        time.sleep(rng.uniform(0, 1.0))
        assert replay.poll() is None, "the replay ended before it could be killed"
        replay.send_signal(signal.SIGKILL)
        replay.wait(30)
        progress.append(sum(delivered(topic).values()))

    last = subprocess.run([*CMD, *group], env=env, capture_output=True, text=True, timeout=300)
    assert last.returncode == 0, last.stderr[-2000:]
    counts = delivered(topic)
    assert progress[-1] < len(expected), "the kills interrupted the replay"
    assert set(counts) == expected, "every dead letter is in the output"
    doubled = {event_id: n for event_id, n in counts.items() if n > 1}
    assert not doubled, f"{len(doubled)} published more than once (after {progress})"
