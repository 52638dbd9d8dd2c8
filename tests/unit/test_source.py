import json
import threading
from datetime import datetime
from itertools import islice

import pytest

from producer.source import FileSource, StreamRejected, file_offset, open_source
from tests.conftest import USER_AGENT, recorded_files


def _file(name):
    return next(p for p in recorded_files() if p.name.startswith(name))


def test_file_replay_of_jsonl_and_sse():
    stop = threading.Event()
    events = list(FileSource(_file("polars-book"), "fast", None, stop))
    assert len(events) == 100
    assert json.loads(events[0].data)["title"] == "EFL Championship"
    frames = list(FileSource(_file("recentchange_9_frames"), "fast", None, stop))
    assert len(frames) == 9 and all(f.event_type == "message" for f in frames)
    # U+200E survives byte for byte.
    assert "\u200e" in json.loads(frames[1].data)["parsedcomment"]


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
    other = list(FileSource(_file("recentchange_9_frames"), "fast", first[-1].sse_id, stop))
    assert len(other) == 9
    server = sse_server_factory([_file("recentchange_9_frames")])
    live = open_source(server.url, USER_AGENT, first[-1].sse_id, stop)
    assert len(list(islice(live, 9))) == 9
    assert server.behaviour.connections[0]["last_event_id"] is None


def test_missing_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="SSE_URL"):
        open_source("file:///nonexistent/rc.jsonl", USER_AGENT, None, threading.Event())


def test_sse_reconnects_with_last_event_id(sse_server_factory):
    server = sse_server_factory([_file("recentchange_9_frames")])
    server.behaviour.cut_after = 4
    source = iter(open_source(server.url, USER_AGENT, None, threading.Event(), backoff_cap=0.1))
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
    server = sse_server_factory([_file("recentchange_9_frames")])
    server.behaviour.reject_next = 2
    server.behaviour.retry_after = "0"
    source = open_source(server.url, USER_AGENT, None, threading.Event(), backoff_cap=0.05)
    assert len(list(islice(source, 9))) == 9
    assert len(server.behaviour.connections) == 3


def test_sse_without_policy_user_agent_is_rejected(sse_server_factory):
    server = sse_server_factory([_file("recentchange_9_frames")])
    source = open_source(server.url, "python-requests/2.32", None, threading.Event())
    with pytest.raises(StreamRejected, match="USER_AGENT_CONTACT"):
        next(iter(source))


def test_malformed_frames_reach_the_consumer(sse_server_factory):
    """The source never drops a frame: bad ones are the decode stage's to dead-letter."""
    server = sse_server_factory([_file("recentchange_9_frames")])
    server.behaviour.inject = {
        2: b'event: message\nid: [{"topic":"x","partition":0,"timestamp":1}]\ndata: {"meta": {\n\n',
        5: b"event: error\ndata: upstream timeout\n\n",
        6: b"this line is not sse at all\n\n",
        8: b'event: message\ndata: {"meta": "\xff\xfe broken utf-8"}\n\n',
    }
    source = open_source(server.url, USER_AGENT, None, threading.Event())
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


def test_unreachable_stream_retries_with_backoff_and_says_so(capsys):
    """No internet: the source keeps retrying and logs each attempt with its delay."""
    from producer.logs import configure_logging

    configure_logging("INFO")
    stop = threading.Event()
    source = open_source("http://127.0.0.1:9/v2/stream", USER_AGENT, None, stop, backoff_cap=0.05)
    reader = threading.Thread(target=lambda: list(source), daemon=True)
    reader.start()
    deadline = threading.Event()
    deadline.wait(1.0)
    stop.set()
    reader.join(5)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    retries = [line for line in lines if line["msg"] == "sse_disconnected"]
    assert len(retries) >= 3
    assert all("ConnectionError" in r["error"] and "retry_in_seconds" in r for r in retries)
    assert not reader.is_alive()
