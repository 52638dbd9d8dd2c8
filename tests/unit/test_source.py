import hashlib
import inspect
import json
import socket
import threading
import time
from datetime import datetime
from dataclasses import astuple
from itertools import islice

import pytest

from wikistreams.producer.config import Settings
from wikistreams.producer.main import build_source
from wikistreams.producer.source import (
    EventStreamSource,
    FileSource,
    SourceOptions,
    SseSource,
    StreamRejected,
    file_offset,
    open_source,
)
from tests.standins import TEST_CONTACT
from tests.conftest import USER_AGENT, recorded_files, source_options
from tests.standins.sse_server import TOPIC, SseStandIn, filler, live_id, load_frames, recorded_sse


def _file(name):
    return next(p for p in recorded_files() if p.name.startswith(name))


def test_file_replay_of_jsonl_and_sse():
    stop = threading.Event()
    events = list(FileSource(_file("polars-book"), "fast", None, stop))
    assert len(events) == 100
    assert json.loads(events[0].data)["title"] == "EFL Championship"
    frames = list(FileSource(recorded_sse(), "fast", None, stop))
    assert len(frames) == 9 and all(f.event_type == "message" for f in frames)
    # Each frame's data is its recorded event byte for byte (the SSE file wraps polars-book's).
    assert [f.data for f in frames] == _file("polars-book").read_bytes().splitlines()[:9]
    # MediaWiki's section arrow "\u2192" and the invisible U+200E after it survive byte for byte.
    parsed = json.loads(frames[2].data)["parsedcomment"]
    assert '<a href="/wiki/Higher#Albums" title="Higher">\u2192\u200eAlbums</a>' in parsed
    # The stand-in serves the recorded ids: EventStreams' form, the eqiad time is meta.dt's.
    eqiad, codfw = json.loads(load_frames([recorded_sse()])[2].sse_id)
    assert json.loads(frames[2].data)["meta"]["dt"] == "2023-07-29T07:51:44Z"
    assert eqiad == {"topic": TOPIC, "partition": 0, "timestamp": 1690617104000}
    assert codfw == {"topic": "codfw.mediawiki.recentchange", "partition": 0, "offset": -1}


def test_file_replay_resumes_after_checkpoint():
    stop = threading.Event()
    first = list(islice(FileSource(_file("polars-book"), "fast", None, stop), 40))
    rest = list(FileSource(_file("polars-book"), "fast", first[-1].sse_id, stop))
    assert file_offset(first[-1].sse_id) == 39
    assert len(rest) == 60
    assert json.loads(rest[0].data)["meta"]["id"] != json.loads(first[-1].data)["meta"]["id"]


def test_a_checkpoint_of_another_source_does_not_apply(sse_server_factory):
    """Switching SSE_URL must not skip events: another file's or a file's id is ignored live."""
    stop = threading.Event()
    first = list(islice(FileSource(_file("polars-book"), "fast", None, stop), 99))
    other = list(FileSource(recorded_sse(), "fast", first[-1].sse_id, stop))
    assert len(other) == 9
    server = sse_server_factory([recorded_sse()])
    live = open_source(server.url, first[-1].sse_id, stop, source_options())
    assert len(list(islice(live, 9))) == 9
    assert server.behaviour.connections[0]["last_event_id"] is None


def test_missing_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="SSE_URL"):
        open_source("file:///nonexistent/rc.jsonl", None, threading.Event(), source_options())


def test_sse_reconnects_with_last_event_id(sse_server_factory):
    server = sse_server_factory([recorded_sse()])
    server.behaviour.cut_after = 4
    source = iter(
        open_source(
            server.url, None, threading.Event(), source_options(reconnect_backoff_max_seconds=0.1)
        )
    )
    events, ids = [], set()
    while len(ids) < 9 and len(events) < 40:
        events.append(next(source))
        ids.add(json.loads(events[-1].data)["meta"]["id"])
    assert len(ids) == 9, "every recorded frame arrives despite the cuts"
    conns = server.behaviour.connections
    assert conns[0]["last_event_id"] is None
    assert conns[1]["last_event_id"] == events[3].sse_id
    assert all(c["user_agent"] == USER_AGENT for c in conns)
    # Timestamp-based resume replays the frames at or after the checkpoint's time, as live.
    assert len(events) > 9


def test_sse_backs_off_on_429_and_recovers(sse_server_factory):
    server = sse_server_factory([recorded_sse()])
    server.behaviour.reject_next = 2
    server.behaviour.retry_after = "0"
    source = open_source(
        server.url, None, threading.Event(), source_options(reconnect_backoff_max_seconds=0.05)
    )
    assert len(list(islice(source, 9))) == 9
    assert len(server.behaviour.connections) == 3


def test_sse_without_policy_user_agent_is_rejected(sse_server_factory):
    server = sse_server_factory([recorded_sse()])
    source = open_source(
        server.url, None, threading.Event(), source_options("python-requests/2.32")
    )
    with pytest.raises(StreamRejected, match="USER_AGENT_CONTACT"):
        next(iter(source))


def test_malformed_frames_reach_the_consumer(sse_server_factory):
    """The source never drops a frame: bad ones are the decode stage's to dead-letter."""
    server = sse_server_factory([recorded_sse()])
    server.behaviour.inject = {
        2: b'event: message\nid: [{"topic":"x","partition":0,"timestamp":1}]\ndata: {"meta": {\n\n',
        5: b"event: error\ndata: upstream timeout\n\n",
        6: b"this line is not sse at all\n\n",
        8: b'event: message\ndata: {"meta": "\xff\xfe broken utf-8"}\n\n',
    }
    source = open_source(server.url, None, threading.Event(), source_options())
    events = list(islice(source, 12))
    assert events[2].data == b'{"meta": {'
    assert events[6].event_type == "error"
    assert events[10].data == '{"meta": "\ufffd\ufffd broken utf-8"}'.encode()
    assert sum(1 for e in events if e.event_type == "message") == 11
    assert len(server.behaviour.connections) == 1, "bad bytes do not break the connection"


class _RecordingStop(threading.Event):
    """Records how long the pacer asked to sleep instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout=None) -> bool:
        self.waits.append(timeout)
        return False


def test_replay_paces_by_event_time():
    """x10: 2018 events one second apart are released about 0.1 s apart."""
    stop = _RecordingStop()
    events = list(islice(FileSource(_file("editgroups_one_qs"), "10", None, stop), 200))
    times = [datetime.fromisoformat(json.loads(e.data)["meta"]["dt"]) for e in events]
    span = (max(times) - times[0]).total_seconds()
    assert span >= 2
    # The stub does not sleep, so each wait is the whole event-time offset divided by 10.
    assert stop.waits and abs(max(stop.waits) - span / 10) < 0.05
    assert len(list(islice(FileSource(_file("editgroups_one_qs"), "fast", None, stop), 5))) == 5


def test_unreachable_stream_retries_with_backoff_and_says_so(logged):
    """No internet: the source keeps retrying and logs each attempt with its delay."""
    stop = threading.Event()
    source = open_source(
        "http://127.0.0.1:9/v2/stream",
        None,
        stop,
        source_options(reconnect_backoff_max_seconds=0.05),
    )
    reader = threading.Thread(target=lambda: list(source), daemon=True)
    reader.start()
    deadline = threading.Event()
    deadline.wait(1.0)
    stop.set()
    reader.join(5)
    retries = logged("sse_disconnected")
    assert len(retries) >= 3
    assert all("ConnectionError" in r["error"] and "retry_in_seconds" in r for r in retries)
    assert not reader.is_alive()


def _until_every_id(source, want: int = 9, limit: int = 60) -> list:
    """Frames read until `want` distinct events arrived (resumes replay a few)."""
    events, ids = [], set()
    source = iter(source)
    while len(ids) < want and len(events) < limit:
        events.append(next(source))
        ids.add(json.loads(events[-1].data)["meta"]["id"])
    assert len(ids) == want, "every recorded frame arrives despite the faults"
    return events


@pytest.mark.parametrize(
    "faults, error",
    [
        # urllib3 raises these from `resp.raw`, past requests' exception wrapping.
        ([("cut_mid_chunk", 3)], "ProtocolError: ('Connection broken: IncompleteRead"),
        ([("stall", 3)], "ReadTimeoutError"),
        ([("bad_chunk", 3)], "ProtocolError"),  # invalid chunked encoding
        # A clean, empty 200 after a cut: it must back off too, and resume the same.
        ([("cut_mid_chunk", 3), ("empty", 0), ("empty", 0)], "ProtocolError"),
    ],
    ids=["cut-mid-chunk", "read-timeout", "bad-chunk", "empty-200"],
)
def test_sse_survives_network_faults_and_resumes(sse_server_factory, logged, faults, error):
    server = sse_server_factory([recorded_sse()])
    server.behaviour.faults = list(faults)
    source = open_source(
        server.url,
        None,
        threading.Event(),
        source_options(sse_read_timeout_seconds=1.0, reconnect_backoff_max_seconds=0.05),
    )
    events = _until_every_id(source)
    conns = server.behaviour.connections
    assert len(conns) == len(faults) + 1
    assert conns[0]["last_event_id"] is None
    assert all(c["last_event_id"] == events[2].sse_id for c in conns[1:]), "resumed each time"
    disconnects = logged("sse_disconnected")
    assert disconnects[0]["error"].startswith(error) and disconnects[0]["events"] == 3
    assert [d["error"] for d in disconnects[1:]] == ["ended with no event"] * (len(faults) - 1)
    assert all(d["retry_in_seconds"] > 0 for d in disconnects)


def test_sse_survives_connection_refused_and_resumes(logged):
    """The server is down at first (connection refused), then comes up: resume from the id."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    frames = load_frames([recorded_sse()])
    resume_from = frames[4].sse_id
    servers: list[SseStandIn] = []

    def start_once_refused() -> None:  # the port stays closed until a refusal was logged
        deadline = time.monotonic() + 10
        while not logged("sse_disconnected") and time.monotonic() < deadline:
            time.sleep(0.01)
        servers.append(SseStandIn(frames, port).start())

    starter = threading.Thread(target=start_once_refused)
    starter.start()
    try:
        url = f"http://127.0.0.1:{port}/v2/stream/recentchange"
        source = open_source(
            url, resume_from, threading.Event(), source_options(reconnect_backoff_max_seconds=0.05)
        )
        first = next(iter(source))
    finally:
        starter.join()
        for server in servers:
            server.stop()
    assert first.sse_id == resume_from
    assert servers[0].behaviour.connections[0]["last_event_id"] == resume_from
    refused = logged("sse_disconnected")
    assert refused and all("ConnectionError" in r["error"] for r in refused)


def test_empty_200_closes_back_off(sse_server_factory):
    """A 200 that closes with no event must not make a tight loop (3,505 connections in 3 s).

    With base 1 s and cap 0.2 s every delay is in [0.1, 0.2] s (equal jitter), so in `elapsed`
    seconds at most elapsed / 0.1 + 1 connections can start, however the scheduler runs.
    """
    server = sse_server_factory([recorded_sse()])
    server.behaviour.faults = [("empty", 0)] * 10_000
    stop = threading.Event()
    source = open_source(server.url, None, stop, source_options(reconnect_backoff_max_seconds=0.2))
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(source), daemon=True)
    started = time.monotonic()
    reader.start()
    stop.wait(1.0)
    stop.set()
    elapsed = time.monotonic() - started
    reader.join(5)
    assert not reader.is_alive() and got == []
    assert 3 <= len(server.behaviour.connections) <= elapsed / 0.1 + 1
    assert source.reconnects >= 2


def test_oversize_frames_arrive_as_stubs_and_the_stream_goes_on(sse_server_factory):
    """A 2 MB line, 640k short data lines and a 50 MB line: stubs, on the same connection."""
    server = sse_server_factory([recorded_sse()])
    server.behaviour.big_frames = {
        2: ("line", 2_000_000),
        4: ("lines", 640_000),
        6: ("line", 50_000_000),
    }
    source = open_source(server.url, None, threading.Event(), source_options())
    events = list(islice(source, 12))
    stubs = [e for e in events if e.oversize_bytes is not None]
    assert [events.index(s) for s in stubs] == [2, 5, 8]
    assert len(server.behaviour.connections) == 1, "big frames do not break the connection"
    # oversize_bytes is the size of the data, the bytes sha256 covers.
    data_sizes = (2_000_000, len(b"x\n") * 640_000 - 1, 50_000_000)
    for stub, index, data_size in zip(stubs, (2, 4, 6), data_sizes):
        assert stub.sse_id == live_id(server.frames[index].timestamp_ms - 1)
        assert stub.event_type == "message" and len(stub.data) == 1024
        assert stub.oversize_bytes == data_size
    digest = hashlib.sha256()
    for piece in filler(2_000_000):
        digest.update(piece)
    assert stubs[0].sha256 == digest.hexdigest()
    assert stubs[1].sha256 == hashlib.sha256(b"\n".join([b"x"] * 640_000)).hexdigest()
    assert stubs[1].data == b"x\n" * 512
    kept = [json.loads(e.data)["meta"]["id"] for e in events if e.oversize_bytes is None]
    assert len(set(kept)) == 9


def test_a_big_frame_under_the_limit_is_kept(sse_server_factory):
    server = sse_server_factory([recorded_sse()])
    server.behaviour.big_frames = {0: ("lines", 640_000)}
    source = open_source(
        server.url, None, threading.Event(), source_options(sse_max_frame_bytes=6_000_000)
    )
    big = next(iter(source))
    assert big.oversize_bytes is None and big.data == b"\n".join([b"x"] * 640_000)


def test_file_replay_stubs_oversize_frames(tmp_path):
    line = b'{"meta": {"dt": "2025-01-01T00:00:00Z"}, "x": "' + b"a" * 5000 + b'"}'
    path = tmp_path / "big.jsonl"
    path.write_bytes(b'{"small": 1}\n' + line + b"\n")
    small, big = FileSource(path, "fast", None, threading.Event(), max_frame_bytes=4096)
    assert small.data == b'{"small": 1}' and small.oversize_bytes is None
    assert big.oversize_bytes == len(line) and big.sha256 == hashlib.sha256(line).hexdigest()
    assert big.data == line[:1024]
    sse = tmp_path / "big.sse"
    sse.write_bytes(b"data: " + line + b"\n\ndata: after\n\n")
    big, after = FileSource(sse, "fast", None, threading.Event(), max_frame_bytes=4096)
    assert big.sha256 == hashlib.sha256(line).hexdigest() and after.data == b"after"


def test_source_settings_have_one_definition():
    """Issue 21: the SSE timeouts were written three times (the settings, `open_source`,
    `EventStreamSource`), so a default could drift. The sources now take every setting from
    `SourceOptions.from_settings` and have no default of their own for any of them."""
    settings = Settings(
        _env_file=None,
        user_agent_contact=TEST_CONTACT,
        sse_connect_timeout_seconds=3,
        sse_read_timeout_seconds=4,
        reconnect_backoff_max_seconds=5,
        sse_retry_after_max_seconds=6,
        source_stall_seconds=7,
        sse_max_frame_bytes=8192,
        backfill_hours=9,
        replay_speed="10",
        replay_at_end="wait",
    )
    options = build_source(settings).options
    assert options == SourceOptions.from_settings(settings)
    assert astuple(options) == (settings.user_agent, 3, 4, 5, 6, 7, 8192, 9, "10", True)
    taken = {"options", "connect_timeout", "read_timeout", "backoff_cap", "max_frame_bytes"}
    for build in (open_source, SseSource, EventStreamSource):
        params = inspect.signature(build).parameters
        defaulted = {n for n, p in params.items() if p.default is not inspect.Parameter.empty}
        assert not defaulted & (taken | {"backfill_hours", "since", "speed", "user_agent"})
