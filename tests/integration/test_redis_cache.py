"""The shared label cache on a real Redis server (Debian's redis-server, started here)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest

from wikistreams.producer.cache import RedisLabelCache, open_cache
from wikistreams.producer.config import load_settings
from wikistreams.producer.events import WikidataLabels
from tests.conftest import event_ids, wait_until
from tests.integration.test_exactly_once import (
    Copy,
    all_records,
    assert_exactly_once,
    health,
    wait_committed,
)
from tests.integration.test_producer_kafka import recording
from tests.standins import TEST_CONTACT

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int, workdir) -> subprocess.Popen:
    """Debian's redis-server on `port`, answering once this returns."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed (.ci/run installs it: apt-get install redis-server)"
        )
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = _free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_two_producers_share_labels(redis_url):
    first = RedisLabelCache(redis_url, ttl_seconds=60, negative_ttl_seconds=1)
    second = RedisLabelCache(redis_url, ttl_seconds=60, negative_ttl_seconds=1)
    first.put_many(
        {"Q42": WikidataLabels(label_ko="더글러스 애덤스", label_en="Douglas Adams")}, ["Q6"]
    )
    got = second.get_many(["Q42", "Q6", "Q1"])
    assert got["Q42"].label_ko == "더글러스 애덤스"
    assert got["Q6"] is None and "Q1" not in got
    assert (second.hits, second.misses) == (2, 1)


def test_negative_entries_expire_sooner(redis_url):
    cache = RedisLabelCache(redis_url, ttl_seconds=60, negative_ttl_seconds=1)
    cache.put_many({"Q1": WikidataLabels(label_en="universe")}, ["Q10908976"])
    time.sleep(1.5)
    got = cache.get_many(["Q1", "Q10908976"])
    assert "Q1" in got and "Q10908976" not in got


def test_a_redis_that_is_down_is_run_without_then_used_once_it_is_up(tmp_path):
    port = _free_port()  # nothing listens there yet: Redis is down
    settings = load_settings(
        user_agent_contact=TEST_CONTACT,
        cache_backend="redis",
        redis_url=f"redis://127.0.0.1:{port}/0",
        cache_retry_seconds=0.2,
    )
    cache = open_cache(settings)  # no exception: the producer's term goes on without it
    assert "ConnectionError" in cache.problem
    cache.put_many({"Q42": WikidataLabels(label_en="Douglas Adams")}, [])
    assert cache.get_many(["Q42"]) == {}
    proc = start_redis(port, tmp_path)
    try:
        wait_until(lambda: cache.get_many(["Q42"]) == {} and cache.problem is None, seconds=30)
        cache.put_many({"Q42": WikidataLabels(label_en="Douglas Adams")}, [])
        other = RedisLabelCache(settings.redis_url, 60, 60)
        assert other.get_many(["Q42"])["Q42"].label_en == "Douglas Adams"
        other.close()
    finally:
        cache.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_the_producer_streams_with_labels_while_redis_is_down(tmp_path, topic, wikidata):
    """A term starting while Redis is down (a standby taking over, in compose) streams on, says
    so on /health, and uses Redis once it is up."""
    path = recording("editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl")
    port = _free_port()
    producer = Copy(
        tmp_path,
        "producer",
        path.as_uri(),
        wikidata.url,
        topic,
        CACHE_BACKEND="redis",
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        CACHE_RETRY_SECONDS="1",
        REPLAY_AT_END="wait",
    )
    producer.start()
    ids = set(event_ids(path))
    wait_committed(topic, ids)
    state = health(producer.health_port)
    assert state["status"] == "degraded" and state["label_cache"] == "unavailable", state
    assert "ConnectionError" in state["problems"]["label_cache"]
    redis = start_redis(port, tmp_path)
    try:
        wait_until(lambda: health(producer.health_port).get("label_cache") == "ok", seconds=60)
        assert "label_cache" not in health(producer.health_port)["problems"]
        assert producer.stop() == 0
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    assert_exactly_once(topic, ids)
    records = [json.loads(r.value()) for r in all_records(topic)]
    statuses = {r["enrichment_status"] for r in records if r["wikidata_id"]}
    assert "enriched" in statuses and "unavailable" not in statuses, statuses
    logged = [line["msg"] for line in producer.logs()]
    assert "cache_unavailable" in logged and "cache_opened" in logged
