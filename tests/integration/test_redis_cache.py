"""The shared label cache on a real Redis server (Debian's redis-server, started here)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from wikistreams.producer.cache import RedisLabelCache
from wikistreams.producer.events import WikidataLabels

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed (.ci/run installs it: apt-get install redis-server)"
        )
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
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
