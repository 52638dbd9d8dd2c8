"""Issue 21, against real Kafka: what the stream's server sends, or the lack of a stream, can no
longer stop or silently idle the producer.

Each test runs `python -m wikistreams.producer` as a process fed by the EventStreams stand-in
(recorded events): hostile `retry:`, `Retry-After` and ids, then every good event is in Kafka
exactly once; an unreachable stream (refused, DNS) makes /health `degraded` with the cause, and
the line `make up` prints names it with the offline command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from wikistreams.producer.backfill import OFFLINE_COMMAND
from tests.conftest import event_ids
from tests.integration.conftest import committed_position
from tests.integration.test_producer_faults import POLARS, health, spawn, wait_for  # noqa: F401
from tests.integration.test_producer_kafka import read_topic, recording, topic  # noqa: F401
from tests.ops_support import free_port
from tests.standins.sse_server import SseStandIn, load_frames, resume_index

pytestmark = pytest.mark.integration

CUT_AFTER = 25
BAD_IDS = (b"\xff\xfe[1]", b" [1]", b"[1]\x01", b"[" + b"1" * 2000 + b"]")


def bad_last_ids(frames) -> dict[int, bytes]:
    """Hostile ids placed on the last frame of each of the first connections (the stand-in
    cuts every CUT_AFTER frames; a reconnect resumes at the last good id's time), so that each
    reconnect follows an id that cannot be sent back."""
    ids, start = {}, 0
    for bad in BAD_IDS:
        last = start + CUT_AFTER - 1
        ids[last] = bad
        start = resume_index(frames, frames[last - 1].sse_id)
        assert start > last - CUT_AFTER, "each connection gets further"
    assert max(ids) < len(frames) - 1
    return ids


def test_hostile_stream_fields_and_every_event_once(
    tmp_path, spawn, topic, sse_server_factory, wikidata  # noqa: F811
):
    """A 429 asking for a day, a `retry:` of 400 digits, four ids that are no header value
    (invalid UTF-8, a leading space, a control character, 2,000 characters), each the last of
    its connection: every event arrives once, every reconnect sends a good id."""
    polars = recording(POLARS)
    server = sse_server_factory([polars])
    server.behaviour.reject_next, server.behaviour.retry_after = 1, "86400"
    server.behaviour.inject = {5: b"retry: " + b"9" * 400 + b"\n\n"}
    server.behaviour.cut_after = CUT_AFTER
    server.behaviour.ids = bad_last_ids(server.frames)
    expected = event_ids(polars)
    producer = spawn(server.url, wikidata.url, topic, SSE_RETRY_AFTER_MAX_SECONDS="1")
    producer.start()
    records = read_topic(topic, expect=len(expected), timeout=90)
    assert producer.proc.poll() is None, "the producer is still running"
    assert producer.stop() == 0
    assert Counter(json.loads(r.value())["event_id"] for r in records) == Counter(expected)

    sent = [c["last_event_id"] for c in server.behaviour.connections]
    assert len(sent) >= 2 + len(BAD_IDS)
    good = {frame.sse_id for frame in server.frames}
    assert sent[:2] == [None, None], "a 429, then the first connection"
    assert all(event_id in good for event_id in sent[2:]), "every reconnect resumes by a good id"
    logs = producer.logs()
    said = Counter(line["msg"] for line in logs)
    assert said["sse_retry_after_capped"] == 1 and said["sse_retry_capped"] == 1
    assert said["sse_id_unusable"] >= len(BAD_IDS)
    assert not said["source_failed"] and said["sse_disconnected"] == 1, "only the 429 failed"
    assert committed_position(topic, server.url).last_event_id == server.frames[-1].sse_id


def first_event_line(port: int, seconds: float, log) -> str:
    """What `make up` prints after starting the producer (the Makefile's command)."""
    out = subprocess.run(
        [sys.executable, "-m", "wikistreams.producer.backfill"]
        + ["--first-event-seconds", str(seconds), "--log", str(log)]
        + ["--health-url", f"http://127.0.0.1:{port}/health"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    [line] = out.splitlines()
    return line


@pytest.mark.parametrize(
    "where, cause, says",
    [("refused", "refused", "connection refused"), ("dns", "dns", "DNS")],
)
def test_no_stream_makes_health_degraded_and_make_up_say_why(
    tmp_path, spawn, topic, wikidata, where, cause, says  # noqa: F811
):
    """No internet: /health said `ok` and `make up` "ready", with an empty dashboard. Now
    /health is `degraded` after SOURCE_STALL_SECONDS with the cause, `make up`'s line names it
    and the offline command; and when the stream appears the producer delivers every event."""
    stream_port = free_port()
    url = {
        "refused": f"http://127.0.0.1:{stream_port}/v2/stream/recentchange",
        "dns": "http://stream.invalid/v2/stream/recentchange",
    }[where]
    port = free_port()
    producer = spawn(url, wikidata.url, topic, HEALTH_PORT=str(port), SOURCE_STALL_SECONDS="1")
    producer.start()
    state = wait_for(
        lambda: (lambda h: h if "source" in h.get("problems", {}) else None)(_health(port)),
        what="/health degraded by the source",
    )
    assert state["status"] == "degraded"
    assert state["source_cause"] == cause and state["source_frames"] == 0
    assert state["degraded_reason"].startswith("source: no frame or keep-alive for")
    assert says in state["degraded_reason"] and says in state["problems"]["source"]

    line = first_event_line(port, 1, tmp_path / "producer-1.log")
    assert line.startswith(f"[producer] no event from {url} within 1 s: ")
    assert says in line and line.endswith(OFFLINE_COMMAND)

    if where == "refused":  # the stream comes up: every event once, /health ok again
        polars = recording(POLARS)
        server = SseStandIn(load_frames([polars]), stream_port).start()
        try:
            records = read_topic(topic, expect=len(event_ids(polars)), timeout=90)
            assert Counter(json.loads(r.value())["event_id"] for r in records) == Counter(
                event_ids(polars)
            )
            healthy = wait_for(lambda: (lambda h: h["status"] == "ok" and h)(_health(port)))
            assert healthy["source_cause"] is None and healthy["source_frames"] >= 100
            assert first_event_line(port, 1, tmp_path / "producer-1.log") == (
                f"[producer] events are arriving from {url}"
            )
        finally:
            server.stop()
    assert producer.proc.poll() is None
    assert producer.stop() == 0


def _health(port: int) -> dict:
    try:
        return health(port)
    except OSError:
        return {}
