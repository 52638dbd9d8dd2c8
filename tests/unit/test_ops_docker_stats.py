"""docker-stats-logger parsing, checked on real recorded Docker stats responses.

The expected numbers are worked out by hand from the fixture values (shown in each assertion) with
the docker CLI's formulas, so a regression in the arithmetic cannot hide behind the same code
computing both sides. Fixture provenance: tests/fixtures/docker_stats/SOURCES.md.
"""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from wikistreams.resources import stats as st
from wikistreams.resources.__main__ import container_name, poll_once
from wikistreams.resources.engine import DockerEngine, parse_docker_host
from tests.ops_support import (
    DOCKER_STATS_FIXTURES,
    FakeDockerd,
    FakeDockerdTCP,
    recorded_docker_stats,
)


def _load(name: str) -> dict:
    return json.loads((DOCKER_STATS_FIXTURES / name).read_text())


V4 = _load("datadog_ecs_fargate_stats_linux_v4.json")
WRONG = _load("datadog_ecs_fargate_stats_wrong_system_delta.json")
DD_AGENT = V4["67cd8a22b533459696d4ccab5278e009-2860414825"]
APMTEST = V4["67cd8a22b533459696d4ccab5278e009-3344678718"]
SAME_SYSTEM = WRONG["39e13ccc425e7777187a603fe33f466a18515030707c4063de1dc1b63d14d411"]
SMALL = WRONG["c912d0f0f204360ee90ce67c0d083c3514975f149b854f38a48deac611e82e48"]
NEAR_LIMIT = WRONG["e8d4a9a20a0d931f8f632ec166b3f71a6ff00450aa7e99607f650e586df7d068"]


def test_cpu_percent_matches_docker_cli_formula():
    assert st.cpu_percent(DD_AGENT) == pytest.approx(
        (4817594472 - 4731035320) / (1039490000000 - 1019570000000) * 2 * 100
    )
    assert st.cpu_percent(APMTEST) == pytest.approx(
        (977249587 - 970577025) / (1039130000000 - 1019220000000) * 2 * 100
    )
    assert st.cpu_percent(SMALL) == pytest.approx(
        (34722128652 - 34721570779) / (60519620000000 - 60518620000000) * 4 * 100
    )


def test_cpu_percent_is_zero_when_system_counter_did_not_move():
    assert st.cpu_percent(SAME_SYSTEM) == 0.0


def test_cpu_falls_back_to_percpu_count_without_online_cpus():
    sample = json.loads(json.dumps(DD_AGENT))
    del sample["cpu_stats"]["online_cpus"]  # pre-1.27 daemons: len(percpu_usage) == 2 here
    assert st.cpu_percent(sample) == pytest.approx(st.cpu_percent(DD_AGENT))


def test_memory_excludes_inactive_file_cache_cgroup_v1():
    assert st.memory_used_bytes(DD_AGENT) == 160886784 - 3919872
    assert st.memory_used_bytes(APMTEST) == 34865152  # total_inactive_file is 0
    assert st.memory_used_bytes(NEAR_LIMIT) == 253894656 - 22790144
    assert st.memory_limit_bytes(NEAR_LIMIT) == 268435456


def test_memory_percent_near_limit():
    record = st.container_record(NEAR_LIMIT)
    assert record["mem_percent"] == pytest.approx(
        (253894656 - 22790144) / 268435456 * 100, abs=1e-3
    )
    assert record["mem_percent"] > 85


def test_network_sums_interfaces_and_tolerates_legacy_key():
    assert st.network_bytes(DD_AGENT) == (781187362, 971750)
    assert st.network_bytes(SAME_SYSTEM) == (5338 + 4641, 648 + 690)
    assert st.network_bytes(NEAR_LIMIT) == (0, 0)  # only the pre-1.21 "network": {} key


def test_block_io_sums_read_and_write_ops_only():
    assert st.block_io_bytes(DD_AGENT) == (0 + 143360, 57344 + 0)
    assert st.block_io_bytes(APMTEST) == (0, 0)
    assert st.block_io_bytes(SMALL) == (389120 * 3 + 6496256, 0)  # "Write" entries lack a value
    assert st.block_io_bytes(NEAR_LIMIT) == (5578752 * 3 + 95875072, 45666304 * 3 + 46002176)


def test_container_record_names_and_fields():
    record = st.container_record(DD_AGENT)
    assert record["container"] == "dd-agent"
    assert record["container_id"] == "67cd8a22b533"
    assert record["mem_limit_bytes"] == 922337
    assert set(record) == {
        "container",
        "container_id",
        "cpu_percent",
        "mem_usage_bytes",
        "mem_limit_bytes",
        "mem_percent",
        "net_rx_bytes",
        "net_tx_bytes",
        "block_read_bytes",
        "block_write_bytes",
        "pids",
    }


def test_compose_service_label_wins_over_container_name():
    summary = {"Id": "abc", "Names": ["/wikistreams-producer-1"], "Labels": {}}
    assert container_name(summary) == "wikistreams-producer-1"
    summary["Labels"] = {"com.docker.compose.service": "producer"}
    assert container_name(summary) == "producer"


@pytest.fixture
def fake_dockerd(tmp_path):
    path = str(tmp_path / "docker.sock")
    with FakeDockerd(path, recorded_docker_stats()):
        yield path


def test_poll_once_over_a_unix_socket_logs_one_line_per_container(fake_dockerd):
    out = io.StringIO()
    with ThreadPoolExecutor(max_workers=4) as pool:
        logged = poll_once(DockerEngine(fake_dockerd, timeout=5), pool, out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert logged == len(lines) == 5
    for line in lines:
        assert line["msg"] == "container_stats"
        assert line["level"] == "info"
        assert line["service"] == "docker-stats-logger"
        assert line["ts"].endswith("Z")
    by_id = {line["container_id"]: line for line in lines}
    assert by_id["e8d4a9a20a0d"]["mem_percent"] > 85


def test_engine_error_is_an_exception_not_a_silent_empty_poll(tmp_path):
    with pytest.raises(OSError):
        DockerEngine(str(tmp_path / "absent.sock"), timeout=1).running_containers()


# ── DOCKER_HOST: compose reaches the API through the GET-only socket proxy over TCP ─────────────


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tcp://docker-api-proxy:2375", ("tcp", "docker-api-proxy:2375")),
        ("tcp://127.0.0.1:2375/", ("tcp", "127.0.0.1:2375")),
        ("unix:///var/run/docker.sock", ("unix", "/var/run/docker.sock")),
    ],
)
def test_docker_host_forms(value, expected):
    assert parse_docker_host(value) == expected


@pytest.mark.parametrize(
    "value",
    ["docker-api-proxy:2375", "tcp://docker-api-proxy", "http://x:2375", "unix://", "ssh://h"],
)
def test_docker_host_refuses_what_it_cannot_speak(value):
    with pytest.raises(ValueError, match="DOCKER_HOST"):
        parse_docker_host(value)


def test_engine_from_env_prefers_docker_host_over_the_socket():
    tcp = DockerEngine.from_env(
        {"DOCKER_HOST": "tcp://docker-api-proxy:2375", "DOCKER_SOCKET": "/s"}
    )
    assert tcp.address == "tcp://docker-api-proxy:2375"
    assert DockerEngine.from_env({"DOCKER_SOCKET": "/run/d.sock"}).address == "unix:///run/d.sock"
    assert DockerEngine.from_env({}).address == "unix:///var/run/docker.sock"


def test_poll_once_over_tcp_as_through_the_socket_proxy():
    with FakeDockerdTCP(recorded_docker_stats()) as dockerd:
        engine = DockerEngine.from_env({"DOCKER_HOST": dockerd.docker_host}, timeout=5)
        engine.ping()  # the image's HEALTHCHECK
        out = io.StringIO()
        with ThreadPoolExecutor(max_workers=4) as pool:
            logged = poll_once(engine, pool, out=out)
    assert logged == len(out.getvalue().splitlines()) == 5
