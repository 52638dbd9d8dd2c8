"""The native resource sampler on real processes: trees this test starts and registers the way
the native launcher does (tests/ops_support.NativeServices), sampled with the real psutil.

What is proven: a service is its whole process tree (a wrapper shell's children count), CPU is
percent of one CPU, memory is PSS (pages shared by forked workers are not counted once per
worker), block writes reach the line, stale pid records are ignored, and the line has exactly the
Docker path's fields, so one dashboard serves both modes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest

from wikistreams.native.paths import Paths
from wikistreams.native.records import PidRecord, write_pid
from wikistreams.resources import processes as pr
from wikistreams.resources.runner import Heartbeat, serve_health
from wikistreams.resources.stats import container_record
from tests.ops_support import (
    NativeServices,
    free_port,
    recorded_docker_stats,
    start_representative_services,
)

MIB = 1 << 20


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The representative services, running, with one sample of them (CPU window 2 s)."""
    workdir = tmp_path_factory.mktemp("native")
    with NativeServices(workdir / "var") as services:
        ready = start_representative_services(services, workdir)
        services.wait_ready(*ready.values())
        out = io.StringIO()
        logged = pr.NativeSampler(services.paths, window_seconds=2.0).poll(out=out)
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        yield services, logged, {line["container"]: line for line in lines}


def test_one_line_per_registered_service(stack):
    services, logged, lines = stack
    assert logged == 3
    assert set(lines) == {"busy", "forking", "idle"}
    for name, line in lines.items():
        assert line["msg"] == "container_stats" and line["service"] == "stats-logger"
        assert line["container_id"] == str(services.processes[name].pid)


def test_line_has_the_docker_fields_plus_the_network_scope(stack):
    _, _, lines = stack
    docker = container_record(next(iter(recorded_docker_stats().values())))
    for line in lines.values():
        envelope = {"ts", "level", "logger", "msg", "service"}
        assert set(line) - envelope == set(docker) | {"net_scope"}
        assert line["net_scope"] == "host"
        assert (line["net_rx_bytes"], line["net_tx_bytes"]) == (0, 0)


def test_cpu_of_a_busy_child_counts_for_its_wrapper_service(stack):
    _, _, lines = stack
    # One busy loop is ~100 % of one CPU; the machine is shared (other tests, a Druid), so only
    # a lower bound that an idle tree cannot reach.
    assert lines["busy"]["cpu_percent"] > 20
    assert lines["idle"]["cpu_percent"] < 5


def test_memory_and_block_writes_of_the_tree(stack):
    _, _, lines = stack
    assert lines["busy"]["mem_usage_bytes"] >= 64 * MIB  # the child's touched bytearray
    assert lines["busy"]["block_write_bytes"] >= 8 * MIB  # the child's fsync'ed file
    assert lines["idle"]["mem_usage_bytes"] < 16 * MIB


def test_forked_workers_share_memory_without_double_counting(stack):
    services, _, lines = stack
    tree = pr.process_tree(services.processes["forking"].pid)
    assert len(tree) == 4
    rss = sum(p.memory_info().rss for p in tree)
    assert rss >= 4 * 96 * MIB  # what summing RSS would have reported
    assert 96 * MIB <= lines["forking"]["mem_usage_bytes"] < 2 * 96 * MIB


def test_pids_counts_threads_of_the_tree(stack):
    _, _, lines = stack
    assert lines["busy"]["pids"] >= 3  # bash and its two python children
    assert lines["forking"]["pids"] == 4
    assert lines["idle"]["pids"] == 1


def test_limit_is_at_most_the_host_memory(stack):
    _, _, lines = stack
    for line in lines.values():
        assert 0 < line["mem_limit_bytes"] <= psutil.virtual_memory().total
        assert line["mem_percent"] == pytest.approx(
            line["mem_usage_bytes"] / line["mem_limit_bytes"] * 100, abs=1e-3
        )


def test_stale_and_foreign_pid_records_are_skipped(tmp_path):
    paths = Paths(tmp_path)
    paths.run.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    me = os.getpid()
    write_pid(paths, "crashed", PidRecord(gone.pid, gone.pid, 1))
    # our own pid with another start time: the pid was recycled for a different program
    write_pid(paths, "recycled", PidRecord(me, me, 1))
    paths.pid_file("half-written").write_text('{"pid": ')
    write_pid(paths, "alive", PidRecord.of(me, []))
    paths.keeper_file("alive").write_text(json.dumps({"pid": me}))  # not a pid record
    assert pr.launched_services(paths) == [pr.LaunchedService("alive", me)]


def test_cpu_percent_counts_processes_that_started_in_the_window():
    before = {(1, 0.0): 10.0, (2, 0.0): 5.0}
    after = {(1, 0.0): 10.5, (3, 1.0): 0.25}  # 2 exited, 3 started
    assert pr.cpu_percent(before, after, 0.5) == pytest.approx((0.5 + 0.25) / 0.5 * 100)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_health_is_ok_only_while_polls_finish():
    heartbeat = Heartbeat(max_age_seconds=0.5)
    server = serve_health(heartbeat, 0)
    url = f"http://127.0.0.1:{server.server_address[1]}/health"
    try:
        assert _get(url) == 503  # no poll yet
        heartbeat.beat()
        assert _get(url) == 200
        time.sleep(0.7)
        assert _get(url) == 503  # polls stopped finishing
    finally:
        server.shutdown()
        server.server_close()


def test_the_console_entry_point_samples_the_var_dir_and_serves_health(tmp_path):
    """The command services.toml runs, as a process: WIKISTREAMS_VAR_DIR picks the run dir."""
    port = free_port()
    with NativeServices(tmp_path / "var") as services:
        services.start("idle", ["sleep", "600"])
        logger = subprocess.Popen(
            [sys.executable, "-m", "wikistreams.resources", "--native", "--interval", "1"]
            + ["--cpu-window", "0.2", "--health-port", str(port)],
            env={**os.environ, "WIKISTREAMS_VAR_DIR": str(services.var_dir)},
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while _get_or_none(f"http://127.0.0.1:{port}/health") != 200:
                assert time.monotonic() < deadline, "no healthy /health"
                time.sleep(0.2)
        finally:
            logger.terminate()
            output, _ = logger.communicate(timeout=15)
    assert logger.returncode == 0
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines[0]["msg"] == "startup" and lines[-1]["msg"] == "shutdown"
    samples = [line for line in lines if line["msg"] == "container_stats"]
    assert samples and {line["container"] for line in samples} == {"idle"}


def _get_or_none(url: str) -> int | None:
    try:
        return _get(url)
    except OSError:
        return None
