"""The SQLite label cache under real faults: corrupt files, expiry, a full database."""

from __future__ import annotations

import os
import sqlite3

import pytest
from structlog.testing import capture_logs

from wikistreams.producer.cache import SqliteLabelCache, open_cache
from wikistreams.producer.config import load_settings
from wikistreams.producer.events import WikidataLabels
from tests.conftest import wait_until
from tests.standins import TEST_CONTACT


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def labels(n: int, size: int = 10) -> dict[str, WikidataLabels]:
    return {f"Q{i}": WikidataLabels(label_en=f"label {i} " + "x" * size) for i in range(1, n + 1)}


def corrupt_files(path):
    return sorted(p.name for p in path.parent.iterdir() if ".corrupt-" in p.name)


def test_garbage_file_is_moved_aside_and_replaced(tmp_path):
    path = tmp_path / "labels.sqlite3"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    with capture_logs() as logs:
        cache = SqliteLabelCache(path, 3600, 60)
    (moved,) = corrupt_files(path)
    assert moved.startswith("labels.sqlite3.corrupt-")
    assert (tmp_path / moved).read_bytes() == garbage, "the damaged file is kept for a post-mortem"
    (event,) = [e for e in logs if e["event"] == "cache_corrupt"]
    assert event["path"] == str(path) and event["moved_to"] == str(tmp_path / moved)
    assert "not a database" in event["error"]
    cache.put_many(labels(3), ["Q404"])
    got = cache.get_many(["Q1", "Q404"])
    assert got["Q1"].label_en.startswith("label 1") and got["Q404"] is None
    cache.close()


def test_truncated_file_is_moved_aside_and_replaced(tmp_path):
    path = tmp_path / "labels.sqlite3"
    cache = SqliteLabelCache(path, 3600, 60)
    cache.put_many(labels(3000, size=500), [])
    cache.close()
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    with capture_logs() as logs:
        cache = SqliteLabelCache(path, 3600, 60)
    assert len(corrupt_files(path)) == 1
    assert [e["error"] for e in logs if e["event"] == "cache_corrupt"] == [
        "database disk image is malformed"
    ]
    assert cache.get_many(["Q1"]) == {}
    cache.put_many(labels(1), [])
    assert "Q1" in cache.get_many(["Q1"])
    cache.close()


def test_corruption_found_by_a_query_is_handled_there(tmp_path):
    path = tmp_path / "labels.sqlite3"
    cache = SqliteLabelCache(path, 3600, 60)
    cache.put_many(labels(3000, size=500), [])
    db = cache._db  # test-only: checkpoint into the main file and read around the page cache
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA cache_size=0")
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.seek(size // 3)
        fh.write(os.urandom(size // 3))
    with capture_logs() as logs:
        got = cache.get_many([f"Q{i}" for i in range(1, 3001, 7)])
    assert got == {}, "a corrupt cache answers as empty"
    assert [e["event"] for e in logs] == ["cache_corrupt"]
    assert len(corrupt_files(path)) == 1
    cache.put_many(labels(2), [])
    assert set(cache.get_many(["Q1", "Q2", "Q3"])) == {"Q1", "Q2"}
    cache.close()


def test_a_directory_at_the_path_is_a_clear_error_not_moved(tmp_path):
    path = tmp_path / "labels.sqlite3"
    path.mkdir()
    with pytest.raises(sqlite3.OperationalError, match="cannot open label cache"):
        SqliteLabelCache(path, 3600, 60)
    assert path.is_dir() and not corrupt_files(path)


def rows(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM labels").fetchone()[0]


def test_expired_rows_are_evicted_at_open(tmp_path):
    path, clock = tmp_path / "labels.sqlite3", Clock()
    cache = SqliteLabelCache(path, 3600, 60, clock=clock)
    cache.put_many(labels(10), ["Q404"])
    cache.close()
    clock.now += 120  # the negative entry (60 s) has expired, the labels (1 h) have not
    with capture_logs() as logs:
        cache = SqliteLabelCache(path, 3600, 60, clock=clock)
    assert [(e["event"], e["rows"]) for e in logs] == [("cache_evicted", 1)]
    assert rows(path) == 10
    cache.close()


def test_expired_rows_are_evicted_every_n_puts_in_bounded_runs(tmp_path, monkeypatch):
    path, clock = tmp_path / "labels.sqlite3", Clock()
    monkeypatch.setattr(SqliteLabelCache, "EVICT_BATCH_ROWS", 7)
    monkeypatch.setattr(SqliteLabelCache, "EVICT_MAX_ROWS_PER_RUN", 20)
    cache = SqliteLabelCache(
        path, 3600, 60, clock=clock, evict_every_puts=3, evict_interval_seconds=10**9
    )
    cache.put_many(labels(50), [])
    clock.now += 7200
    cache.put_many({"Q1000": WikidataLabels(label_en="fresh")}, [])
    assert rows(path) == 51, "2 puts since the last run: nothing evicted yet"
    with capture_logs() as logs:
        cache.put_many({"Q1001": WikidataLabels(label_en="fresh")}, [])
    assert [(e["event"], e["rows"]) for e in logs] == [("cache_evicted", 20)]
    assert rows(path) == 52 - 20
    assert cache.evict_expired() == 30
    assert rows(path) == 2
    assert set(cache.get_many(["Q1", "Q1000", "Q1001"])) == {"Q1000", "Q1001"}
    cache.close()


def test_expired_rows_are_evicted_after_the_interval(tmp_path):
    path, clock = tmp_path / "labels.sqlite3", Clock()
    cache = SqliteLabelCache(path, 60, 60, clock=clock, evict_interval_seconds=600)
    cache.put_many(labels(5), [])
    clock.now += 601
    cache.put_many({"Q99": WikidataLabels(label_en="fresh")}, [])
    assert rows(path) == 1
    cache.close()


def test_a_full_database_fails_writes_until_space_returns(tmp_path):
    path = tmp_path / "labels.sqlite3"
    cache = SqliteLabelCache(path, 3600, 60)
    cache.put_many(labels(1), [])
    db = cache._db  # test-only: SQLITE_FULL for real, through the database's page limit
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={pages}")
    batch = {f"Q{i}": WikidataLabels(label_en="y" * 2000) for i in range(100, 150)}
    for _ in range(3):
        with pytest.raises(sqlite3.OperationalError, match="full"):
            cache.put_many(batch, [])
    got = cache.get_many(["Q1", "Q100"])
    assert set(got) == {"Q1"}, "reads go on; the failed write left nothing behind"
    db.execute("PRAGMA max_page_count=1073741823")
    cache.put_many(batch, [])
    assert len(cache.get_many(list(batch))) == 50
    assert not corrupt_files(path), "a full disk is not corruption"
    cache.close()


def test_an_undecodable_value_is_a_miss(tmp_path):
    path = tmp_path / "labels.sqlite3"
    cache = SqliteLabelCache(path, 3600, 60)
    cache.put_many(labels(2), [])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE labels SET value = '{not json' WHERE entity_id = 'Q1'")
    got = cache.get_many(["Q1", "Q2"])
    assert set(got) == {"Q2"} and (cache.hits, cache.misses) == (1, 1)
    cache.close()


def test_recent_gives_live_entries_newest_first_and_skips_expired(tmp_path):
    clock = Clock()
    cache = SqliteLabelCache(tmp_path / "labels.sqlite3", 3600, 60, clock=clock)
    cache.put_many(labels(3), [])
    clock.now += 10
    cache.put_many({"Q9": WikidataLabels(label_en="newest")}, ["Q404"])  # Q404: 60 s TTL
    # Ordered by expiry: Q9 (stored last), then Q1-Q3 (same expiry), then Q404 (short TTL).
    order = list(cache.recent(10))
    assert order[0] == "Q9" and set(order[1:4]) == {"Q1", "Q2", "Q3"} and order[4] == "Q404"
    assert list(cache.recent(2))[0] == "Q9" and len(cache.recent(2)) == 2
    clock.now += 61  # the negative entry has expired
    assert "Q404" not in cache.recent(10)
    assert cache.recent(10)["Q9"].label_en == "newest"
    cache.close()


def test_a_sqlite_file_that_cannot_be_opened_runs_without_the_cache_and_retries(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache's directory should be")
    settings = load_settings(
        user_agent_contact=TEST_CONTACT,
        cache_db_path=blocker / "labels.sqlite3",
        cache_retry_seconds=0.01,
    )
    with capture_logs() as logs:
        cache = open_cache(settings)  # does not raise: the producer's term goes on
    assert [e["event"] for e in logs] == ["cache_unavailable"]
    assert "labels from the API only" in cache.problem
    cache.put_many(labels(2), ["Q404"])  # skipped
    assert cache.get_many(["Q1", "Q404"]) == {} and cache.misses == 2
    assert cache.recent(10) == {}

    blocker.unlink()  # the disk is usable again: the next use opens the file
    wait_until(lambda: cache.get_many(["Q1"]) == {} and cache.problem is None, seconds=10)
    cache.put_many(labels(1), [])
    assert cache.get_many(["Q1"])["Q1"].label_en.startswith("label 1")
    assert rows(blocker / "labels.sqlite3") == 1
    cache.close()
