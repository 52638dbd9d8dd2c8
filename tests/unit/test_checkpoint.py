import pytest

from producer.checkpoint import CheckpointStore, DeliveryTracker
from producer.dedupe import RecentIds


def test_position_moves_only_over_contiguous_deliveries():
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
    t = DeliveryTracker()
    a, b = t.begin("id-a"), t.begin(None)
    t.done(a)
    t.done(b)
    assert t.position == "id-a"


def test_store_roundtrip_and_corruption(tmp_path):
    store = CheckpointStore(tmp_path / "sub" / "cp.json")
    assert store.load() is None
    assert store.load_delivered_ids() == []
    store.save('[{"topic":"eqiad.mediawiki.recentchange","partition":0,"timestamp":1}]', ["a", "b"])
    assert store.load().startswith('[{"topic"')
    assert store.load_delivered_ids() == ["a", "b"]
    assert not list((tmp_path / "sub").glob("*.tmp"))
    store.path.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        store.load()


def test_recent_ids_can_be_seeded_after_a_restart():
    r = RecentIds(10)
    r.remember(["x", "y"])
    assert r.seen("x") and r.seen("y") and not r.seen("z")


def test_recent_ids_window_is_bounded():
    r = RecentIds(2)
    assert not r.seen("a") and not r.seen("b") and r.seen("a")
    assert not r.seen("c")  # evicts "a"
    assert not r.seen("a")
