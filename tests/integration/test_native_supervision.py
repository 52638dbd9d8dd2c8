"""Supervision of natively started services, with real processes: a service killed with SIGKILL
comes back (new pid, healthy, counted in `status`), and `down` stops it for good.

The services come from a temporary services file (NATIVECTL_SERVICES_FILE) with names of their
own (with a random tag: var/run is shared by everybody using the checkout), so no Druid is
started and nobody else's services (such as a shared Kafka) are touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import KAFKA, delete_topics, producer_env
from tests.conftest import wait_until
from tests.standins import REPO_ROOT

from wikistreams.native import nativectl

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "samples" / "recentchange-enwiki-2023-07-29.jsonl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, seconds: float = 60.0):
    return wait_until(predicate, seconds, interval=0.25)


class Launcher:
    """`nativectl.py` as a person runs it, on one throw-away services file."""

    def __init__(self, tmp_path: Path, toml: str, env: dict | None = None):
        self.tag = uuid.uuid4().hex[:6]
        services = tmp_path / "services.toml"
        services.write_text(textwrap.dedent(toml).replace("SUFFIX", self.tag))
        self.names = list(nativectl.load_config(services).services)
        self.env = {**(env or os.environ), "NATIVECTL_SERVICES_FILE": str(services)}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "wikistreams.native.nativectl", *args]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=300)
        if check:
            assert done.returncode == 0, f"nativectl {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done

    def status(self, name: str) -> dict[str, str]:
        """One row of `status` as {column: value}; columns are cut at the header's offsets."""
        lines = self.run("status", check=False).stdout.splitlines()
        header = lines[0]
        columns = header.split("  ")
        columns = [c.strip() for c in columns if c.strip()]
        starts = [header.index(c) for c in columns] + [None]
        for line in lines[1:]:
            if line.split(" ", 1)[0] == name:
                cells = [line[a:b].strip() for a, b in zip(starts, starts[1:])]
                return dict(zip(columns, cells))
        raise AssertionError(f"{name} not in status:\n{lines}")

    def cleanup(self) -> None:
        self.run("down", check=False)
        for name in self.names:
            nativectl.log_file(name).unlink(missing_ok=True)
            nativectl.lock_file(name).unlink(missing_ok=True)
            shutil.rmtree(nativectl.DATA_DIR / name, ignore_errors=True)


def killed_and_back(ctl: Launcher, name: str) -> tuple[dict, dict]:
    """SIGKILL the service's process; wait until status shows a new, healthy one."""
    before = ctl.status(name)
    assert (before["STATE"], before["HEALTH"], before["RESTARTS"]) == ("running", "ok", "0")
    os.kill(int(before["PID"]), signal.SIGKILL)
    after = wait_for(
        lambda: (row := ctl.status(name))["PID"] not in ("-", before["PID"])
        and row["HEALTH"] == "ok"
        and row
    )
    return before, after


def test_killed_service_is_restarted_and_down_stops_it_for_good(tmp_path):
    port = free_port()
    ctl = Launcher(
        tmp_path,
        f"""
        [services.supervised-web-SUFFIX]
        ports = [{port}]
        url = "http://127.0.0.1:{port}/"
        health = {{ http = "http://127.0.0.1:{port}/" }}
        command = ["{sys.executable}", "-m", "http.server", "{port}", "--bind", "127.0.0.1",
                   "--directory", "{{data}}"]
        stop_timeout = 5
        """,
    )
    name = f"supervised-web-{ctl.tag}"
    try:
        ctl.run("up", name)
        _before, after = killed_and_back(ctl, name)
        assert (after["RESTARTS"], after["LAST EXIT"]) == ("1", "SIGKILL")
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).ok
        assert f"{name} exited (SIGKILL)" in nativectl.log_file(name).read_text()

        again = ctl.run("up", name)  # a second `up` leaves it alone
        assert "already running" in again.stdout
        assert ctl.status(name)["PID"] == after["PID"]

        ctl.run("down", name)
        time.sleep(3)  # longer than the next backoff would have been (2 s)
        assert ctl.status(name)["STATE"] == "stopped"
        assert not nativectl.port_open("127.0.0.1", port)
        assert not nativectl.proc_start_ticks(int(after["PID"]))
    finally:
        ctl.cleanup()


def test_killed_producer_is_restarted(tmp_path, wikidata_api):
    """The real producer (`python -m wikistreams.producer`, as services.toml runs it, without the
    Druid supervisor submit) replaying the sample into a topic of its own on the shared Kafka."""
    if not nativectl.check_kafka(KAFKA):
        pytest.fail(f"Kafka is not running on {KAFKA}; run the tests with `make test`")
    port = free_port()
    topic = f"test.supervision.{uuid.uuid4().hex[:8]}"
    env = producer_env(tmp_path, SAMPLE.as_uri(), wikidata_api.url, topic, HEALTH_PORT=str(port))
    ctl = Launcher(
        tmp_path,
        f"""
        [services.supervised-producer-SUFFIX]
        ports = [{port}]
        health = {{ http = "http://127.0.0.1:{port}/health" }}
        start_timeout = 120
        env = {{ PYTHONUNBUFFERED = "1", REPLAY_AT_END = "wait" }}
        command = ["{sys.executable}", "-m", "wikistreams.producer"]
        """,
        env,
    )
    name = f"supervised-producer-{ctl.tag}"
    try:
        ctl.run("up", name)
        _before, after = killed_and_back(ctl, name)
        assert (after["RESTARTS"], after["LAST EXIT"]) == ("1", "SIGKILL")
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert health["status"] in ("ok", "degraded"), health

        ctl.run("down", name)
        assert ctl.status(name)["STATE"] == "stopped"
        assert not nativectl.proc_start_ticks(int(after["PID"]))
    finally:
        ctl.cleanup()
        delete_topics(topic, f"{topic}.dlq")
