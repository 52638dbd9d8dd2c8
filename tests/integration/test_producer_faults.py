"""What production does to a producer, against real Kafka: every fault contained.

Each test runs `python -m wikistreams.producer` as a process, fed by the EventStreams stand-in
(recorded events) and the Wikidata stand-in, and checks the same three things: good events are
delivered, bad ones are dead-lettered with a reason, and the process keeps running and exits 0 on
SIGTERM.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import threading
import uuid
from collections import Counter

import pytest
import requests

from wikistreams.producer.sink import decode_headers
from tests.conftest import event_ids, wait_until
from tests.ops_support import free_port
from tests.integration.conftest import KAFKA, committed_position, delete_topics
from tests.integration.test_producer_kafka import Producer, read_topic, recording, topic  # noqa

pytestmark = pytest.mark.integration

POLARS = "polars-book_wikimedia_enwiki_2023-07-29.jsonl"
WIKIDATA_EDITS = "editgroups_qs_batch_with_reverts_wikidatawiki_2018-03-07.jsonl"


def frame(data: bytes, event_id: str | None = None) -> bytes:
    """One SSE frame around `data` (which must hold no newline)."""
    head = b"event: message\n" + (f"id: {event_id}\n".encode() if event_id else b"")
    return head + b"data: " + data + b"\n\n"


def real_event(n: int = 0, **changes) -> dict:
    """DERIVED for the test: a recorded enwiki event with a new meta.id and the given changes."""
    event = json.loads(recording(POLARS).read_bytes().splitlines()[n])
    event["meta"]["id"] = f"derived-{n}-{sorted(changes)}"
    for path, value in changes.items():
        target = event
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return event


def health(port: int) -> dict:
    return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    try:
        return wait_until(condition, timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.fixture
def spawn(tmp_path):
    """Producers for one test; any still running at the end (a failed test) are killed."""
    started: list[Producer] = []

    def make(*args, **env) -> Producer:
        started.append(Producer(tmp_path, *args, **env))
        return started[-1]

    yield make
    for producer in started:
        if producer.proc is not None and producer.proc.poll() is None:
            producer.proc.kill()
            producer.proc.wait()


def by_reason(dead: list) -> dict[tuple[str, str], list]:
    out: dict[tuple[str, str], list] = {}
    for record in dead:
        headers = decode_headers(record.headers())
        out.setdefault((headers["stage"], headers["exception.class.name"]), []).append(
            (headers, record.value())
        )
    return out


def test_poison_frames_are_dead_lettered_and_the_stream_goes_on(
    tmp_path, spawn, topic, sse_server_factory, wikidata  # noqa: F811
):
    polars = recording(POLARS)
    server = sse_server_factory([polars])
    # SSE_MAX_FRAME_BYTES is 1,150,000 here: the first is over it, the second under it but over
    # Kafka's 1,000,000-byte record limit.
    huge_title = real_event(3, title="T" * 1_200_000)
    big_title = real_event(4, title="B" * 1_050_000)
    many_digits = json.dumps(real_event(1, namespace=123456789)).replace("123456789", "9" * 5000)
    poison = {
        5: frame(b"[" * 100_000 + b"]" * 100_000),
        10: frame(many_digits.encode()),
        15: frame(json.dumps(real_event(2, meta__dt="0001-01-01T00:30:00+01:00")).encode()),
        20: frame(json.dumps(huge_title).encode()),  # over SSE_MAX_FRAME_BYTES: a source stub
        25: frame(json.dumps(big_title).encode()),  # under it, but over Kafka's record limit
        30: frame(json.dumps(real_event(5, namespace=2**70)).encode()),
    }
    server.behaviour.inject = poison
    expected = event_ids(polars)
    producer = spawn(server.url, wikidata.url, topic, SSE_MAX_FRAME_BYTES="1150000")
    producer.start()
    records = read_topic(topic, expect=len(expected), timeout=90)
    dead = read_topic(f"{topic}.dlq", expect=len(poison), timeout=30)
    assert producer.proc.poll() is None, "the producer is still running"
    assert producer.stop() == 0

    assert Counter(json.loads(r.value())["event_id"] for r in records) == Counter(expected)
    reasons = by_reason(dead)
    assert len(dead) == len(poison)
    assert len(reasons[("parse", "JSONDecodeError")]) == 2  # nesting, 5,000 digits
    assert len(reasons[("validate", "ValidationError")]) == 2  # year 1 in UTC, 2**70
    [(headers, value)] = reasons[("source", "FrameTooLarge")]
    payload = json.dumps(huge_title).encode()
    assert headers["original.size"] == str(len(payload))
    assert headers["original.sha256"] == hashlib.sha256(payload).hexdigest()
    assert len(value) <= 1024
    [(headers, value)] = reasons[("produce", "RecordTooLarge")]
    assert int(headers["original.size"]) > 1_000_000 and len(value) <= 1024
    # The position moved past every poison frame: a restart does not meet them again.
    assert committed_position(topic, server.url).last_event_id == server.frames[-1].sse_id


@pytest.mark.parametrize(
    "garbage",
    [
        "truncated",
        "bad_gzip",
        "redirect_loop",
        "null",
        "list",
        "entities_list",
        "label_number",
        "entity_string",
        "html",
        "empty",
    ],
)
def test_wikidata_garbage_makes_events_unavailable_not_a_crash(
    tmp_path, spawn, topic, sse_server_factory, wikidata, garbage  # noqa: F811
):
    edits = recording(WIKIDATA_EDITS)
    expected = event_ids(edits)[:300]
    server = sse_server_factory([edits])
    server.frames = server.frames[:300]
    wikidata.behaviour.garbage = garbage
    producer = spawn(
        server.url,
        wikidata.url,
        topic,
        ENRICH_MAX_DELAY_SECONDS="1",
        BREAKER_FAILURE_THRESHOLD="1000",
    )
    producer.start()
    records = read_topic(topic, expect=len(set(expected)), timeout=90, distinct=True)
    assert producer.proc.poll() is None
    assert producer.stop() == 0
    statuses = Counter(json.loads(r.value())["enrichment_status"] for r in records)
    assert {json.loads(r.value())["event_id"] for r in records} == set(expected)
    assert len(wikidata.behaviour.requests) >= 1
    if garbage in ("label_number", "entity_string"):
        # One bad term or entity costs only that entity's labels; the rest of the answer counts.
        assert statuses["unavailable"] == 0 and statuses["not_found"] > 0, statuses
    else:
        assert statuses["unavailable"] > 0 and statuses["enriched"] == 0
    assert not [line for line in producer.logs() if line.get("msg") == "internal_error"]


def test_an_api_that_hangs_never_holds_the_stream(
    tmp_path, spawn, topic, sse_server_factory, wikidata  # noqa: F811
):
    """The API hangs 120 s per request: if any event waited for it, none would arrive in time."""
    edits = recording(WIKIDATA_EDITS)
    polars = recording(POLARS)
    server = sse_server_factory([edits, polars])
    expected = set(event_ids(edits) + event_ids(polars))
    wikidata.behaviour.outage = True
    wikidata.behaviour.outage_hang_seconds = 120
    producer = spawn(
        server.url,
        wikidata.url,
        topic,
        ENRICH_MAX_DELAY_SECONDS="1",
        WIKIDATA_TIMEOUT_SECONDS="100",
    )
    producer.start()
    records = read_topic(topic, expect=len(expected), timeout=60, distinct=True)
    assert {json.loads(r.value())["event_id"] for r in records} == expected
    statuses = Counter(json.loads(r.value())["enrichment_status"] for r in records)
    assert statuses["unavailable"] > 0 and statuses["enriched"] == 0
    assert producer.stop() == 0


class _Forwarder:
    """A TCP relay to the real Kafka that a test can open late: Kafka 'unreachable' at start."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.port = free_port()
        self.target = target
        self._server: socket.socket | None = None

    def open(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self) -> None:
        if self._server:
            self._server.close()


def test_kafka_unreachable_at_start_waits_then_delivers(
    tmp_path, spawn, topic, sse_server_factory, wikidata  # noqa: F811
):
    polars = recording(POLARS)
    server = sse_server_factory([polars])
    host, port = KAFKA.split(":")
    relay = _Forwarder((host, int(port)))
    health_port = free_port()
    producer = spawn(
        server.url,
        wikidata.url,
        topic,
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{relay.port}",
        HEALTH_PORT=str(health_port),
    )
    producer.start()
    try:
        wait_for(
            lambda: any(line["msg"] == "kafka_unreachable" for line in producer.logs()),
            what="a kafka_unreachable line",
        )
        state = health(health_port)
        assert state["status"] == "degraded" and "kafka" in state["problems"]
        assert producer.proc.poll() is None, "still waiting, not dead"
        relay.open()
        records = read_topic(topic, expect=len(event_ids(polars)), timeout=90)
        assert len(records) == len(event_ids(polars))
        wait_for(lambda: health(health_port)["status"] == "ok", what="/health ok")
    finally:
        code = producer.stop()
        relay.close()
    assert code == 0
    text = "".join(p.read_text() for p in tmp_path.glob("producer-*.log"))
    assert "Traceback" not in text


def test_a_corrupt_cache_does_not_stop_the_stream(
    tmp_path, spawn, topic, sse_server_factory, wikidata  # noqa: F811
):
    edits = recording(WIKIDATA_EDITS)
    expected = set(event_ids(edits))
    server = sse_server_factory([edits])
    (tmp_path / "labels.sqlite3").write_bytes(b"this is not a database, it is garbage" * 100)
    producer = spawn(server.url, wikidata.url, topic)
    producer.start()
    records = read_topic(topic, expect=len(expected), timeout=90, distinct=True)
    assert {json.loads(r.value())["event_id"] for r in records} == expected
    assert producer.stop() == 0
    messages = [line["msg"] for line in producer.logs()]
    assert "cache_corrupt" in messages
    assert list(tmp_path.glob("labels.sqlite3.corrupt-*")), "the corrupt file is kept aside"
    with sqlite3.connect(tmp_path / "labels.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM labels").fetchone()[0] > 0


def test_network_faults_on_the_stream_reconnect_and_resume(
    tmp_path, spawn, topic, sse_server_factory, wikidata  # noqa: F811
):
    """Cut mid-chunk, a malformed chunk, a stalled connection, 200s with nothing: the producer
    reconnects with Last-Event-ID after each and delivers every event once."""
    polars = recording(POLARS)
    server = sse_server_factory([polars])
    server.behaviour.faults = [
        ("cut_mid_chunk", 10),
        ("bad_chunk", 20),
        ("stall", 30),
        ("empty", 0),
        ("empty", 0),
        ("cut_mid_chunk", 60),
    ]
    server.behaviour.stall_seconds = 30
    expected = event_ids(polars)
    producer = spawn(server.url, wikidata.url, topic, SSE_READ_TIMEOUT_SECONDS="2")
    producer.start()
    records = read_topic(topic, expect=len(expected), timeout=90)
    assert producer.proc.poll() is None
    assert producer.stop() == 0
    assert Counter(json.loads(r.value())["event_id"] for r in records) == Counter(expected)
    connections = server.behaviour.connections
    assert len(connections) >= 7
    assert all(c["last_event_id"] for c in connections[1:]), "every reconnect resumes"
    disconnects = [line for line in producer.logs() if line["msg"] == "sse_disconnected"]
    assert len(disconnects) >= 6
    assert all(line["retry_in_seconds"] > 0 for line in disconnects), "each one backs off"


def test_records_wait_for_kafka_instead_of_failing():
    """No delivery deadline: while no broker answers, a record neither fails nor is dropped;
    the sink says `unreachable`; when the broker appears, the record is delivered."""
    from wikistreams.producer.sink import KafkaSink, ensure_topics, producer_config

    host, port = KAFKA.split(":")
    relay = _Forwarder((host, int(port)))
    name = f"it-wait-{uuid.uuid4().hex[:8]}"
    ensure_topics(KAFKA, [name], 1, 1)
    sink = KafkaSink(producer_config(f"127.0.0.1:{relay.port}", "zstd", 5), name, f"{name}.dlq")
    results: list = []
    try:
        sink.publish("k", b'{"x": 1}', lambda err, _msg: results.append(err))
        wait_for(lambda: sink.poll(0.2) or sink.state == "unreachable", 60, "unreachable state")
        sink.poll(2.0)
        assert results == [], "nothing failed while Kafka was away"
        relay.open()
        wait_for(lambda: sink.poll(0.2) or results, 90, "the delivery")
        assert results == [None]
        assert [json.loads(r.value()) for r in read_topic(name, expect=1)] == [{"x": 1}]
    finally:
        relay.close()
        delete_topics(name)
