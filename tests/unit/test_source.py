import json
import threading
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
    }
    source = open_source(server.url, USER_AGENT, None, threading.Event())
    events = list(islice(source, 11))
    assert events[2].data == b'{"meta": {'
    assert events[6].event_type == "error"
    assert sum(1 for e in events if e.event_type == "message") == 10
