"""A first start backfills the last hour from EventStreams' history; a restart never does again.

The EventStreams stand-in holds real recorded events with their times moved (DERIVED for the
test: only `meta.dt` and `timestamp` change): some 90 minutes ago, most within the last hour,
and "live" ones after now. It implements `since` as the service does (`Last-Event-ID` wins over
`since`; with neither a connection starts at the live edge). The producer runs as a process
against the real Kafka, and Druid ingests through its supervisor.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import recorded_events, wait_until
from tests.integration.test_exactly_once import Copy, assert_exactly_once
from tests.integration.test_producer_kafka import recording
from tests.standins.sse_server import Frame, SseStandIn, live_id

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

OLD, HOUR, LIVE = 50, 1500, 200  # events before the hour, within it, and after now


def moved(data: bytes, at: datetime) -> Frame:
    """A recorded event, its time moved to `at`."""
    event = json.loads(data)
    event["meta"]["dt"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["timestamp"] = int(at.timestamp())
    ms = int(at.timestamp() * 1000)
    return Frame(json.dumps(event).encode(), live_id(ms), ms)


def test_first_start_backfills_the_hour_then_goes_live_and_a_restart_adds_nothing(
    e2e_context, wikidata, tmp_path
):
    ctx = e2e_context
    events = recorded_events(recording("editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl"))
    assert len(events) >= OLD + HOUR + LIVE
    now = datetime.now(timezone.utc)
    frames = [
        moved(e, now - timedelta(minutes=90) + timedelta(seconds=i))
        for i, e in enumerate(events[:OLD])
    ]
    hour = events[OLD : OLD + HOUR]
    step = timedelta(minutes=58) / HOUR  # from 59 minutes ago to a minute ago
    frames += [moved(e, now - timedelta(minutes=59) + i * step) for i, e in enumerate(hour)]
    live = events[OLD + HOUR : OLD + HOUR + LIVE]
    frames += [moved(e, now + timedelta(seconds=i * 0.01)) for i, e in enumerate(live)]
    server = SseStandIn(frames).start()
    server.behaviour.live_from = OLD + HOUR
    try:
        producer = Copy(
            tmp_path, "producer", server.url, wikidata.url, ctx.topic, BACKFILL_HOURS="1"
        )
        producer.start()
        expected = {json.loads(f.data)["meta"]["id"] for f in frames[OLD:]}
        wait_until(lambda: ctx.count() >= HOUR + LIVE, 300, interval=2)
        first = server.behaviour.connections[0]
        assert first["last_event_id"] is None and first["since"], "a first start asks `since`"
        assert producer.stop() == 0
        done = [line for line in producer.logs() if line["msg"] == "backfill_done"]
        assert done and done[0]["events"] >= HOUR, "the backfill reports when it caught up"

        producer.start()  # a restart resumes by position: no `since`, nothing read twice
        wait_until(lambda: len(server.behaviour.connections) >= 2, 60)
        time.sleep(3)
        producer.proc.send_signal(signal.SIGTERM)
        assert producer.proc.wait(60) == 0
        again = server.behaviour.connections[1]
        assert again["last_event_id"] and again["since"] is None
    finally:
        server.stop()
    assert_exactly_once(ctx.topic, expected)
    hour_start = (now - timedelta(minutes=60)).strftime("%Y-%m-%d %H:%M:%S")
    assert ctx.rows(f"__time < TIMESTAMP '{hour_start}'") == 0, "nothing before `since`"
    assert ctx.rows(f"__time >= TIMESTAMP '{hour_start}'") == HOUR + LIVE
