"""The resume position: the watermark, the ids beyond it, and the record that carries both."""

import random

import pytest

from wikistreams.producer.dedupe import RecentIds
from wikistreams.producer.events import MAX_EVENT_ID_CHARS
from wikistreams.producer.position import (
    IDS_MAX_BYTES,
    MAX_ID_BYTES,
    MAX_WATERMARK_CHARS,
    POSITION_MAX_BYTES,
    RECENT_BELOW,
    DeliveryTracker,
    Position,
    StreamIdentity,
    id_bytes,
    new_position,
)


def test_position_moves_only_over_contiguous_completions():
    t = DeliveryTracker()
    seqs = [t.begin(f"id{i}") for i in range(5)]
    t.done(seqs[2])
    t.done(seqs[1])
    assert t.position is None, "seq 0 still pending"
    t.done(seqs[0])
    assert t.position == "id2"
    t.done(seqs[4])
    assert t.position == "id2"
    t.done(seqs[3])
    assert t.position == "id4" and t.in_flight == 0


def test_frames_without_id_keep_the_last_position():
    t = DeliveryTracker(position="resumed")
    a, b = t.begin(None), t.begin("id-b")
    t.done(a)
    assert t.position == "resumed", "a frame without an SSE id does not move the position"
    t.done(b)
    assert t.position == "id-b"


def test_ids_beyond_the_watermark_are_those_that_overtook_a_pending_frame():
    """An entity edit parked for labels holds the watermark; events after it that were already
    published must be named in the position, or a restart would publish them twice."""
    t = DeliveryTracker()
    parked = t.begin("sse-0")
    overtaking = [t.begin(f"sse-{i}") for i in range(1, 4)]
    for i, seq in enumerate(overtaking, start=1):
        t.done(seq, f"event-{i}")
    assert t.position is None and t.beyond == 3
    assert t.beyond_ids() == ["event-1", "event-2", "event-3"]
    t.done(parked, "event-0")
    assert t.position == "sse-3" and t.beyond_ids() == []


def test_dead_letters_and_drops_beyond_the_watermark_carry_no_id():
    t = DeliveryTracker()
    parked, dropped = t.begin("a"), t.begin("b")
    t.done(dropped)
    assert t.beyond_ids() == []
    t.done(parked, "event-a")
    assert t.position == "b"


def test_a_position_record_round_trips_and_rejects_garbage():
    position = new_position('[{"topic":"eqiad.mediawiki.recentchange","timestamp":1}]', ["x"])
    again = Position.model_validate_json(position.encode())
    assert again == position and again.producer and again.committed_at is not None
    with pytest.raises(ValueError):
        Position.model_validate_json(b'{"ids": "not a list"}')


def test_each_stream_has_its_own_identity_and_every_copy_shares_it():
    live = StreamIdentity.of("wikimedia.recentchange.enriched", "https://stream.wikimedia.org/x")
    same = StreamIdentity.of("wikimedia.recentchange.enriched", "https://stream.wikimedia.org/x")
    other = StreamIdentity.of("test-topic", "https://stream.wikimedia.org/x")
    assert live == same and live.transactional_id == same.transactional_id
    assert live.transactional_id != other.transactional_id
    assert live.lease_group != other.lease_group


def test_recent_ids_can_be_seeded_after_a_restart():
    r = RecentIds(10)
    r.remember(["x", "y"])
    assert r.seen("x") and r.seen("y") and not r.seen("z")


def test_recent_ids_window_is_bounded():
    r = RecentIds(2)
    assert not r.seen("a") and not r.seen("b") and r.seen("a")
    assert not r.seen("c")  # evicts "a"
    assert not r.seen("a")


def test_a_resumed_positions_ids_are_named_until_their_frames_are_surely_past():
    """Events past the old watermark may not be read again before the next commit: the next
    position must still name them, or a second crash would publish them twice."""
    t = DeliveryTracker(position="w1")
    t.carry(["old-beyond-1", "old-beyond-2"], frames=3)
    first = t.begin("sse-1")
    t.done(first, "new-1")
    assert t.position_ids() == ["old-beyond-1", "old-beyond-2", "new-1"]
    for i in range(2, 4):
        t.done(t.begin(f"sse-{i}"), f"new-{i}")
    assert "old-beyond-1" not in t.position_ids(), "three frames later they are behind"


def crash_and_resume(record_ids: list[str], watermark: int, overtaking: int) -> Position:
    """One run from a resumed record: the stream replays from the watermark (the ids the record
    named come again and are dropped, each done with its id as the pipeline does), then an
    entity edit parks and `overtaking` newer events are published past it. Then the crash:
    the last commit is what `position_ids` names now."""
    t = DeliveryTracker(position=f"sse-{watermark}")
    t.carry(record_ids)
    frame = watermark + 1
    for event_id in record_ids:  # read again: duplicates, dropped with their id
        t.done(t.begin(f"sse-{frame}"), event_id)
        frame += 1
    parked = t.begin(f"sse-{frame}")
    t.expect(parked, f"parked-{frame}")
    for i in range(frame + 1, frame + 1 + overtaking):
        t.done(t.begin(f"sse-{i}"), f"event-{i:08d}")
    assert t.position == f"sse-{frame - 1}"
    return new_position(t.position, t.position_ids())


def test_a_resumed_positions_ids_do_not_pile_up_over_crashes():
    """Three crashes during a catch-up, each while an entity edit is parked: every record names
    the events past its own watermark, not those of every earlier record too (issue 21: 390 KB,
    780 KB, 1.18 MB, then Kafka refused the record and the producer rewound for ever)."""
    record = crash_and_resume([], 0, 5000)
    sizes = [len(record.encode())]
    for _crash in range(3):
        watermark = int(record.last_event_id.removeprefix("sse-"))
        record = crash_and_resume(record.ids, watermark, 5000)
        sizes.append(len(record.encode()))
        assert len(record.ids) <= 5000 + RECENT_BELOW
    assert max(sizes) < 1.1 * sizes[0], sizes


def test_ids_past_the_watermark_are_bounded_by_their_bytes_not_their_count():
    """Reading stops once the ids past the watermark fill their budget; long ids fill it
    sooner, and so do the ids of events still parked (`expect`)."""
    short, long = DeliveryTracker(), DeliveryTracker()
    for t, width in ((short, 36), (long, MAX_EVENT_ID_CHARS)):
        t.expect(t.begin("sse-parked"), "p" * width)
        while not t.full:
            seq = t.begin("sse-x")
            t.done(seq, f"{seq:0{width}d}")
    assert long.beyond < short.beyond / 3
    for t in (short, long):
        record = new_position(t.position, t.position_ids()).encode()
        assert len(record) <= POSITION_MAX_BYTES


def test_the_recent_ids_alone_never_fill_the_record():
    """Once the parked events leave, only the recent ids are left: reading can always go on."""
    assert RECENT_BELOW * MAX_ID_BYTES < IDS_MAX_BYTES / 2


def test_carried_ids_that_never_come_back_give_way_to_the_rest():
    """A stream that does not replay the old frames leaves the carried ids unread: the record
    drops the oldest of them rather than grow past POSITION_MAX_BYTES."""
    t = DeliveryTracker(position="w")
    gone = [f"gone-{i:031d}" for i in range(POSITION_MAX_BYTES // 39)]  # ~a full record
    t.carry(gone)
    t.expect(t.begin("sse-parked"), "parked")
    for i in range(6000):  # half a record, past the parked event
        t.done(t.begin(f"sse-{i}"), f"new-{i:032d}")
    ids = t.position_ids()
    assert len(new_position(t.position, ids).encode()) <= POSITION_MAX_BYTES
    assert t.trimmed > 0 and gone[-1] in ids and gone[0] not in ids, "the oldest gave way"
    assert set(t.beyond_ids()) <= set(ids), "every id past the watermark is still named"


def test_an_sse_id_too_long_for_the_record_does_not_become_the_watermark():
    t = DeliveryTracker(position="resumed")
    t.done(t.begin("x" * (MAX_WATERMARK_CHARS + 1)), "event-1")
    assert t.position == "resumed" and t.long_watermarks == 1
    t.done(t.begin("sse-2"), "event-2")
    assert t.position == "sse-2"


def test_the_tracked_size_is_the_size_of_the_ids_named():
    """Out of order, with dead letters (no id) and parked events announced: what `full` adds
    up is what the record's ids take, so the bound holds for the bytes actually written."""
    rng = random.Random(21)
    t = DeliveryTracker()
    ids: dict[int, str] = {}
    open_seqs: list[int] = []
    for i in range(3000):
        seq = t.begin(f"sse-{i}")
        ids[seq] = f"event-{i}-" + "\x01" * rng.randrange(40)  # escaped: 6 bytes each
        if rng.random() < 0.3:
            t.expect(seq, ids[seq])
        open_seqs.append(seq)
        while open_seqs and rng.random() < 0.6:
            done = open_seqs.pop(rng.randrange(len(open_seqs)))
            t.done(done, None if rng.random() < 0.1 else ids[done])
    named = [*t.below, *t.beyond_ids()]
    assert t._below_bytes + t._beyond_bytes == sum(id_bytes(i) for i in named)
    record = new_position(t.position, named).encode()
    assert len(record) - len(new_position(t.position, []).encode()) == sum(map(id_bytes, named)) - 1
