"""The resume position: the watermark, the ids beyond it, and the record that carries both."""

import pytest

from wikistreams.producer.dedupe import RecentIds
from wikistreams.producer.position import DeliveryTracker, Position, StreamIdentity, new_position


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
