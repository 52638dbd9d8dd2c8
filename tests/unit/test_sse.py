"""The SSE parser: WHATWG event-stream rules, any chunking, bounded frames, linear work."""

import hashlib
import random
import tracemalloc


import pytest

from wikistreams.producer.sse import MAX_FIELD_BYTES, PREFIX_BYTES, SseEvent, SseParser, parse
from tests.standins.sse_server import big_frame, filler, recorded_sse


def _recording() -> bytes:
    return recorded_sse().read_bytes()


def _frames(stream: bytes, max_frame_bytes: int = 1_000_000) -> list[tuple]:
    return [(e.event, e.data, e.id, e.last_event_id) for e in parse([stream], max_frame_bytes)]


def _bytewise(stream: bytes, max_frame_bytes: int = 1_000_000) -> list[SseEvent]:
    return list(parse((stream[i : i + 1] for i in range(len(stream))), max_frame_bytes))


@pytest.mark.parametrize(
    "stream, expected",
    [
        (b"data: hello\n\n", [("message", b"hello", None, "")]),
        (b"data: a\ndata: b\ndata:\n\n", [("message", b"a\nb\n", None, "")]),
        (b"data\n\ndata:\n\n", [("message", b"", None, "")] * 2),  # no colon: empty value
        (b"data:x\ndata:  two\n\n", [("message", b"x\n two", None, "")]),  # one space stripped
        (b": comment\n:\ndata: x\n: more\n\n", [("message", b"x", None, "")]),
        (
            b"event: error\ndata: e\n\ndata: m\n\n",
            [("error", b"e", None, ""), ("message", b"m", None, "")],
        ),
        (b"event\ndata: x\n\n", [("message", b"x", None, "")]),  # empty type is "message"
        (
            b"id: 1\ndata: a\n\ndata: b\n\n",
            [("message", b"a", "1", "1"), ("message", b"b", None, "1")],
        ),
        (
            b"id: 1\ndata: a\n\nid\ndata: b\n\n",
            [("message", b"a", "1", "1"), ("message", b"b", "", "")],
        ),
        (
            b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
            [("message", b"a", "1", "1"), ("message", b"b", None, "1")],
        ),
        (b"id: 7\n\ndata: b\n\n", [("message", b"b", None, "7")]),  # data-less frame moves the id
        (b"event: x\nid: 9\n\n", []),  # no data: nothing dispatched
        (b"Data: x\ndata : y\nfoo: z\n\n", []),  # names are exact; unknown ones ignored
        (
            b"data: a\r\ndata: b\r\n\r\ndata: c\rdata: d\r\rdata: e\n\r\n",
            [
                ("message", b"a\nb", None, ""),
                ("message", b"c\nd", None, ""),
                ("message", b"e", None, ""),
            ],
        ),
        (b"\xef\xbb\xbfdata: bom\n\n\xef\xbb\xbfdata: x\n\n", [("message", b"bom", None, "")]),
        (b"data: done\n\ndata: unfinished\n", [("message", b"done", None, "")]),  # EOF drops it
        (b"data: \xff\xfe\n\n", [("message", "\ufffd\ufffd".encode(), None, "")]),
    ],
)
def test_spec_cases(stream, expected):
    assert _frames(stream) == expected
    assert [(e.event, e.data, e.id, e.last_event_id) for e in _bytewise(stream)] == expected


def test_retry_and_last_event_id_state():
    parser = SseParser()
    assert parser.feed(b"retry: 2500\nretry: 1x\nid: a\n\n") == []
    assert (parser.retry_ms, parser.last_event_id) == (2500, "a")
    parser.feed(b"id: b\ndata: x")
    assert parser.last_event_id == "a", "an unfinished frame does not move the position"
    assert parser.feed(b"\n\n")[0].last_event_id == parser.last_event_id == "b"


def test_recorded_frames_parse_alike_at_every_chunk_boundary():
    stream = _recording()
    whole = list(parse([stream]))
    assert len(whole) == 9 and all(e.event == "message" and e.id for e in whole)
    assert sum(e.size for e in whole) + 9 + len(b":ok\n\n") == len(stream)
    for cut in range(len(stream) + 1):
        assert list(parse([stream[:cut], stream[cut:]])) == whole, f"split at byte {cut}"
    assert _bytewise(stream) == whole
    for ending in (b"\r\n", b"\r"):
        # Each recorded frame has three lines (event, id, data): CRLF adds a byte to each.
        extra = 3 * (len(ending) - 1)
        expected = [e._replace(size=e.size + extra) for e in whole]
        assert _bytewise(stream.replace(b"\n", ending)) == expected


def test_oversize_frame_is_hashed_not_kept_and_the_next_frames_still_parse():
    data = bytes(b for b in range(256) if b not in b"\r\n") * 40  # invalid UTF-8 on purpose
    frame = b"event: message\nid: big\ndata: " + data[:5000] + b"\ndata:" + data[5000:] + b"\n\n"
    stream = b"data: before\n\n" + frame + b"id: after\ndata: after\n\n"
    expected_sha = hashlib.sha256(data[:5000] + b"\n" + data[5000:]).hexdigest()
    for events in (list(parse([stream], max_frame_bytes=4096)), _bytewise(stream, 4096)):
        before, big, after = events
        assert before.data == b"before" and after.data == b"after" and after.id == "after"
        assert big.oversize and big.sha256 == expected_sha
        assert big.size == len(frame) - 1  # every byte but the closing blank line
        assert big.data_size == len(data) + 1  # two data lines joined by "\n"
        assert big.data == data[:PREFIX_BYTES], "the prefix is raw, not UTF-8 repaired"
        assert (big.event, big.id, big.last_event_id) == ("message", "big", "big")
    kept = list(parse([stream], max_frame_bytes=len(frame)))[1]
    joined = data[:5000] + b"\n" + data[5000:]
    assert not kept.oversize and kept.data == joined.decode("utf-8", "replace").encode()


def test_the_frame_budget_counts_every_line_and_chunking_never_changes_the_result():
    stream = _recording()
    for limit in (200, 700, 1000, 1500):
        whole = list(parse([stream], limit))
        assert any(e.oversize for e in whole) and len(whole) == 9
        for cut in range(0, len(stream), 7):
            assert list(parse([stream[:cut], stream[cut:]], limit)) == whole
        assert _bytewise(stream, limit) == whole
    long_id = b"id: " + b"7" * MAX_FIELD_BYTES + b"\ndata: x\n\n"
    assert [e.id for e in parse([long_id])] == [None] == [e.id for e in _bytewise(long_id)]


def test_a_50_mb_line_is_never_buffered():
    """Work and memory stay linear/bounded: the line streams through a 1 MB budget."""
    size = 50_000_000
    sha = hashlib.sha256()
    for piece in filler(size):
        sha.update(piece)
    tracemalloc.start()
    try:
        events = list(parse(big_frame("line", size, "big-1"), max_frame_bytes=1_000_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (event,) = events
    assert event.oversize and event.sha256 == sha.hexdigest() and event.id == "big-1"
    assert event.size == len(b"event: message\nid: big-1\ndata: \n") + size
    assert event.data_size == size
    assert event.data == next(filler(PREFIX_BYTES))
    # About two budgets (the buffered pieces and their join when hashing starts; 2.1 MB
    # measured), with room for other threads' allocations: far from the line's 50 MB.
    assert peak < 6_000_000, f"peak {peak} bytes while parsing a 50 MB line"


@pytest.mark.parametrize("limit", [1_000_000, 10_000_000])
def test_640k_short_data_lines_in_one_frame(limit):
    count = 640_000
    events = list(parse(big_frame("lines", count, "many"), max_frame_bytes=limit))
    (event,) = events
    data = b"\n".join([b"x"] * count)
    assert event.size == len(b"event: message\nid: many\n") + count * len(b"data: x\n")
    assert event.data_size == len(data)
    if limit > event.size:
        assert not event.oversize and event.data == data
    else:
        assert event.sha256 == hashlib.sha256(data).hexdigest()
        assert event.data == data[:PREFIX_BYTES]


def test_random_streams_parse_alike_however_they_are_chunked():
    """Never raises, and chunking never changes the result (budget small enough to overflow)."""
    rng = random.Random(7)
    tokens = [b"data", b"id", b"event", b"retry", b":", b" ", b"\r", b"\n", b"\n", b"x", b"12"]
    tokens += [b"data: ", b"id: ", b"\xff", b"\x00", b"\xef\xbb\xbf", b"y" * 40]
    for _ in range(400):
        stream = b"".join(rng.choice(tokens) for _ in range(rng.randint(0, 120)))
        whole = list(parse([stream], max_frame_bytes=32))
        assert _bytewise(stream, 32) == whole
        cut = rng.randint(0, len(stream))
        assert list(parse([stream[:cut], stream[cut:]], 32)) == whole
