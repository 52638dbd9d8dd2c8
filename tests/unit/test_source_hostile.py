"""Issue 21: what the stream's server sends can no longer stop the live source.

The real parser and `SseSource` against the EventStreams stand-in (recorded frames): a `retry:`
field of 400 digits, a huge `Retry-After`, ids that cannot be sent back as a header; and the
liveness /health reads (why no frame arrives: DNS, refused, an HTTP status, a silent server).
"""

from __future__ import annotations

import json
import threading

import pytest

from wikistreams.producer.liveness import Cause
from wikistreams.producer.source import EventStreamSource, SseSource, open_source
from wikistreams.producer.sse import SseParser
from wikistreams.producer.stream_limits import MAX_RESUME_ID_CHARS, unsendable
from tests.conftest import source_options, wait_until
from tests.ops_support import free_port
from tests.standins.sse_server import recorded_sse


def read_all(source, want: int = 9, seconds: float = 30.0) -> list:
    """Frames read (on a thread) until `want` distinct events arrived, or `seconds` passed: a
    source stuck in a reconnect loop or a day-long sleep fails the test instead of hanging it."""
    events: list = []
    ids: set[str] = set()
    done = threading.Event()

    def read() -> None:
        for raw in source:
            events.append(raw)
            ids.add(json.loads(raw.data)["meta"]["id"])
            if len(ids) >= want:
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(seconds)
    source._stop.set()
    assert len(ids) == want, f"{len(ids)} of {want} events in {seconds:g} s"
    return events


def test_a_retry_field_of_400_digits_is_capped_and_logged(sse_server_factory, logged):
    """It raised OverflowError (int / 1000 into a float) and ended the run; the restart met it
    again. Now the wait is capped by SSE_RETRY_AFTER_MAX_SECONDS and said once."""
    server = sse_server_factory([recorded_sse()])
    server.behaviour.inject = {2: b"retry: " + b"9" * 400 + b"\n\n"}
    server.behaviour.cut_after = 4  # a clean end: the next connection waits the `retry:` time
    options = source_options(sse_retry_after_max_seconds=0.05)
    read_all(open_source(server.url, None, threading.Event(), options))
    assert len(server.behaviour.connections) >= 2
    [capped] = logged("sse_retry_capped")
    assert capped["asked_ms"] == "400 digits" and capped["waits_seconds"] == 0.05
    assert all(e["retry_in_seconds"] <= 0.05 for e in logged("sse_ended"))


@pytest.mark.parametrize(
    "retry_after",
    ["86400", "9" * 400, "Fri, 31 Dec 9999 23:59:59 GMT"],
    ids=["a-day", "400-digits", "http-date-9999"],
)
def test_a_huge_retry_after_is_capped_and_logged(sse_server_factory, logged, retry_after):
    """86,400 slept a day; 400 digits overflowed `Event.wait`. Capped like the Wikidata
    client's, by its own setting."""
    server = sse_server_factory([recorded_sse()])
    server.behaviour.reject_next = 1
    server.behaviour.retry_after = retry_after
    options = source_options(sse_retry_after_max_seconds=0.1, reconnect_backoff_max_seconds=0.05)
    read_all(open_source(server.url, None, threading.Event(), options))
    assert len(server.behaviour.connections) == 2
    [capped] = logged("sse_retry_after_capped")
    assert capped["asked_seconds"] > 0.1 and capped["waits_seconds"] == 0.1
    [disconnected] = logged("sse_disconnected")
    assert disconnected["cause"] == "http_status" and disconnected["retry_in_seconds"] == 0.1


BAD_IDS = {
    "invalid-utf8": b"\xff\xfe[1]",
    "leading-space": b" [1]",  # `id:  [1]`: one space is the separator, the second is the id's
    "control-char": b"[1]\x01",
    "too-long": b"[" + b"1" * MAX_RESUME_ID_CHARS + b"]",
}


@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_an_unsendable_id_is_never_sent_back(sse_server_factory, logged, bad):
    """Frame 3's id cannot be a header value and the connection ends right after it: the
    reconnect sends frame 2's id (the last good one) instead of failing for ever before a
    request leaves, and frame 3 is delivered without a resume point of its own."""
    server = sse_server_factory([recorded_sse()])
    server.behaviour.ids = {3: bad}
    server.behaviour.cut_after = 4
    options = source_options(reconnect_backoff_max_seconds=0.05)
    events = read_all(open_source(server.url, None, threading.Event(), options))
    first, second = server.behaviour.connections[:2]
    assert second["last_event_id"] == server.frames[2].sse_id
    assert events[2].sse_id == server.frames[2].sse_id and events[3].sse_id is None
    assert not logged("sse_disconnected"), "no reconnect failed"
    [unusable] = logged("sse_id_unusable")  # once, though later frames carry the id on
    assert unusable["kept_last_event_id"] == server.frames[2].sse_id


def test_which_ids_can_be_sent_back():
    real = '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"timestamp":1690617104000}]'
    assert unsendable(real) is None and unsendable("a b") is None
    for bad in ("", " a", "a ", "a\tb", "\ufffd", "a\x7f", "x" * (MAX_RESUME_ID_CHARS + 1)):
        assert unsendable(bad), repr(bad)


def test_a_stored_unsendable_position_is_not_sent(sse_server_factory, logged):
    server = sse_server_factory([recorded_sse()])
    options = source_options(reconnect_backoff_max_seconds=0.05)
    read_all(open_source(server.url, " [1]", threading.Event(), options))
    assert server.behaviour.connections[0]["last_event_id"] is None
    assert logged("sse_id_unusable")[0]["reason"].startswith("not a header value")


def _silent_source(url: str, **settings) -> tuple[EventStreamSource, threading.Event]:
    """A live source opened on a thread, with SOURCE_STALL_SECONDS of 0.2 s."""
    source = EventStreamSource(url, source_options(source_stall_seconds=0.2, **settings))
    stop = threading.Event()
    frames = source.open(None, stop)
    threading.Thread(target=lambda: list(frames), daemon=True).start()
    return source, stop


def _problem(source: EventStreamSource) -> tuple[dict, str]:
    def found() -> tuple[dict, str] | None:
        fields, problem = source.health()
        return (fields, problem) if problem else None

    return wait_until(found, 30)


@pytest.mark.parametrize(
    "where, cause, says",
    [
        ("refused", Cause.refused, "connection refused"),
        ("dns", Cause.dns, "DNS"),
        ("tls", Cause.tls, "TLS handshake failed"),
        ("503", Cause.http_status, "HTTP 503"),
        ("stall", Cause.stalled, "connected, but the server sends nothing"),
    ],
)
def test_a_silent_stream_is_a_problem_with_its_cause(sse_server_factory, where, cause, says):
    """/health's `source` check: silent for SOURCE_STALL_SECONDS, and why, as people act on it."""
    server = sse_server_factory([recorded_sse()])
    url = {
        "refused": f"http://127.0.0.1:{free_port()}/v2/stream/recentchange",
        "dns": "http://stream.invalid/v2/stream/recentchange",
        "tls": server.url.replace("http://", "https://"),  # the stand-in speaks plain HTTP
    }.get(where, server.url)
    if where == "503":
        server.behaviour.reject_next, server.behaviour.reject_status = 10_000, 503
        server.behaviour.retry_after = "0"
    if where == "stall":
        server.behaviour.faults = [("stall", 0)]
        server.behaviour.live_from = len(server.frames)  # connected, then nothing at all
    source, stop = _silent_source(url, reconnect_backoff_max_seconds=0.1)
    try:
        fields, problem = _problem(source)
    finally:
        stop.set()
    assert fields["source_cause"] == cause.value and fields["source_frames"] == 0
    assert says in problem and "SOURCE_STALL_SECONDS=0.2" in problem
    assert fields["source_url"] == url


def test_keep_alives_keep_a_stream_healthy(sse_server_factory):
    """The stand-in holds the connection open with a `:` comment every second, like
    EventStreams: with no event at all, each comment still counts as a sign of life."""
    server = sse_server_factory([recorded_sse()])
    server.behaviour.live_from = len(server.frames)  # no event at all, only keep-alives
    stop = threading.Event()
    reader = SseSource(server.url, None, source_options(), stop)
    threading.Thread(target=lambda: list(reader), daemon=True).start()
    try:
        wait_until(lambda: reader.liveness.connected, 10)
        opened = reader.liveness.last_sign
        wait_until(lambda: reader.liveness.last_sign > opened, 10)
    finally:
        stop.set()
    assert reader.liveness.frames == 0


def test_the_parser_counts_comments_whole_or_split():
    parser = SseParser()
    parser.feed(b":ok\n\n: keep")
    parser.feed(b"-alive\n\ndata: x\n\n:")
    assert parser.comments == 3
