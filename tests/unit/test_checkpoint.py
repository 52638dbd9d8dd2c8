import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from producer.checkpoint import CheckpointError, CheckpointStore, DeliveryTracker
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


def test_corrupt_checkpoint_refuses_to_start_and_says_what_to_do(tmp_path):
    store = CheckpointStore(tmp_path / "cp.json")
    store.path.write_text(json.dumps({"last_event_id": 7}))
    with pytest.raises(ValueError, match="corrupt checkpoint .*move it away"):
        store.load()
    store.path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        store.load()
    assert store.path.exists(), "never moved aside silently: that would lose the position"


def tmp_files(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_save_fault_after_the_temp_file_is_written(tmp_path):
    """A directory where the checkpoint should be: the rename fails, even for root."""
    store = CheckpointStore(tmp_path / "cp.json")
    store.path.mkdir()
    (store.path / "keep").write_text("x")
    with pytest.raises(CheckpointError, match=f"cannot save checkpoint {store.path}") as caught:
        store.save("id-1", ["a"])
    assert isinstance(caught.value, OSError) and caught.value.errno is not None
    assert tmp_files(tmp_path) == [], "the temp file is removed"
    (store.path / "keep").unlink()
    store.path.rmdir()
    store.save("id-2", ["b"])
    assert store.load() == "id-2"


def test_save_into_a_parent_that_is_a_file(tmp_path):
    parent = tmp_path / "data"
    parent.write_text("not a directory")
    store = CheckpointStore(parent / "cp.json")
    with pytest.raises(CheckpointError, match="cannot save checkpoint"):
        store.save("id-1")
    parent.unlink()
    store.save("id-2")
    assert store.load() == "id-2"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_save_into_a_read_only_directory(tmp_path):
    store = CheckpointStore(tmp_path / "ro" / "cp.json")
    store.save("id-1")
    store.path.parent.chmod(0o500)
    try:
        with pytest.raises(CheckpointError, match="Permission denied") as caught:
            store.save("id-2")
        assert caught.value.errno == errno.EACCES
        assert tmp_files(store.path.parent) == []
    finally:
        store.path.parent.chmod(0o700)
    assert store.load() == "id-1", "a failed save leaves the previous checkpoint"
    store.save("id-3")
    assert store.load() == "id-3"


def test_save_on_a_full_disk(tmp_path):
    """A real write fault for any user: a file-size limit (EFBIG) in a child process."""
    script = textwrap.dedent("""
        import json, resource, signal, sys
        from pathlib import Path
        from producer.checkpoint import CheckpointError, CheckpointStore

        store = CheckpointStore(Path(sys.argv[1]))
        store.save("id-1", ["a"])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
        out = {}
        try:
            store.save("id-2", [f"delivered-{i}" for i in range(2000)])
        except CheckpointError as exc:
            out["error"], out["errno"] = str(exc), exc.errno
        out["tmp_left"] = [p.name for p in store.path.parent.glob("*.tmp")]
        out["after_fault"] = store.load()
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        store.save("id-3", [f"delivered-{i}" for i in range(2000)])
        out["after_recovery"] = store.load()
        print(json.dumps(out))
        """)
    path = tmp_path / "cp.json"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["errno"] == errno.EFBIG and f"cannot save checkpoint {path}" in out["error"]
    assert out["tmp_left"] == []
    assert out["after_fault"] == "id-1"
    assert out["after_recovery"] == "id-3"
