"""Event times out of range are dead-lettered with their reason; the stream goes on, exactly once.

`meta.dt` of year 1 or 9999 used to reach Druid (a segment per hour of event time, future ones
kept for ever). The producer runs as a process against the real Kafka, fed by the EventStreams
stand-in (live: the age bound applies) or by a recording (file://: its own times are kept).
Hostile events are DERIVED from recorded ones: only `meta.id` and `meta.dt` change.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from wikistreams.producer.sink import decode_headers
from tests.conftest import recorded_events
from tests.integration.conftest import run_producer
from tests.integration.test_exactly_once import assert_exactly_once
from tests.integration.test_producer_kafka import Producer, read_topic, recording
from tests.standins.sse_server import Frame, SseStandIn, live_id

pytestmark = pytest.mark.integration

GOOD = 300
RECORDING = "editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl"


def retimed(data: bytes, dt: str, new_id: bool = False) -> bytes:
    event = json.loads(data)
    event["meta"]["dt"] = dt
    if new_id:
        event["meta"]["id"] = str(uuid.uuid4())
    return json.dumps(event).encode()


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_reasons(topic: str, expect: int) -> list[tuple[str, str, str]]:
    dead = read_topic(f"{topic}.dlq", expect=expect, timeout=60)
    headers = [decode_headers(r.headers()) for r in dead]
    return sorted((h["stage"], h["exception.class.name"], h["exception.message"]) for h in headers)


def test_live_events_too_old_or_in_the_future_are_dead_lettered(tmp_path, topic, wikidata):
    now = datetime.now(timezone.utc)
    events = recorded_events(recording(RECORDING))[:GOOD]
    good = [
        retimed(e, iso(now - timedelta(minutes=10) + i * timedelta(seconds=1)))
        for i, e in enumerate(events)
    ]
    hostile = {
        50: retimed(events[0], "0001-01-03T00:00:00Z", new_id=True),
        100: retimed(events[1], "9999-12-29T00:00:00Z", new_id=True),
        150: retimed(events[2], iso(now - timedelta(days=10)), new_id=True),
        200: retimed(events[3], iso(now + timedelta(hours=2)), new_id=True),
    }
    stream = list(good)
    for at in sorted(hostile, reverse=True):
        stream.insert(at, hostile[at])
    # Stand-in ids follow stream order (resumes move forward), whatever `meta.dt` claims.
    start_ms = int((now - timedelta(minutes=10)).timestamp() * 1000)
    frames = [Frame(data, live_id(start_ms + i), start_ms + i) for i, data in enumerate(stream)]
    server = SseStandIn(frames).start()
    try:
        producer = Producer(tmp_path, server.url, wikidata.url, topic)
        del producer.env["EVENT_MAX_AGE_HOURS"]  # the default bound, as a user runs it
        producer.start()
        read_topic(topic, expect=GOOD, timeout=120)
        reasons = dead_reasons(topic, expect=len(hostile))
        assert producer.stop() == 0
    finally:
        server.stop()
    assert_exactly_once(topic, {json.loads(e)["meta"]["id"] for e in good})
    assert [(stage, kind) for stage, kind, _ in reasons] == [
        ("validate", "EventTimeOutOfRange")
    ] * len(hostile)
    messages = " | ".join(message for *_, message in reasons)
    assert messages.count("more than 192 h old (EVENT_MAX_AGE_HOURS)") == 2, messages
    assert messages.count("in the future (EVENT_MAX_FUTURE_SECONDS)") == 2, messages


def test_a_replayed_recording_keeps_its_times_but_not_impossible_ones(tmp_path, topic, wikidata):
    events = recorded_events(recording(RECORDING))[:GOOD]
    hostile = [
        retimed(events[0], "0001-01-03T00:00:00Z", new_id=True),
        retimed(events[1], "9999-12-29T00:00:00Z", new_id=True),
    ]
    replay = tmp_path / "recording.jsonl"
    replay.write_bytes(
        b"\n".join(events[:100] + hostile[:1] + events[100:200] + hostile[1:] + events[200:])
        + b"\n"
    )
    env = Producer(tmp_path, replay.as_uri(), wikidata.url, topic).env
    del env["EVENT_MAX_AGE_HOURS"]  # the default: it does not apply to a file:// replay
    result = run_producer(tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_exactly_once(topic, {json.loads(e)["meta"]["id"] for e in events})
    reasons = dead_reasons(topic, expect=2)
    assert [kind for _, kind, _ in reasons] == ["EventTimeOutOfRange"] * 2
    assert "before the first wiki edit" in reasons[0][2]
    assert "in the future" in reasons[1][2]
