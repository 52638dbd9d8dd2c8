"""The native launcher with real processes: a service killed with SIGKILL comes back (new pid,
healthy, counted in `status`), `down` stops it for good, and `make up` with Druid down still
starts the producer, which publishes to Kafka.

The services come from a temporary services file (NATIVECTL_SERVICES_FILE) and a var/ folder of
their own (WIKISTREAMS_VAR_DIR), so no Druid is started and nobody else's services (such as the
shared Kafka) are touched. The producer is the real `[services.producer]` entry of
native/services.toml, with only its port moved; Kafka is a stand-in whose health check is the
shared broker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from tests.integration.conftest import KAFKA, delete_topics, producer_env
from tests.conftest import wait_until
from tests.ops_support import free_port
from tests.standins import REPO_ROOT

from wikistreams.native.config import SERVICES_ENV, load_config
from wikistreams.native.health import check_kafka
from wikistreams.native.paths import VAR_ENV, Paths
from wikistreams.native.procinfo import port_open, start_ticks

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "samples" / "recentchange-enwiki-2023-07-29.jsonl"
REAL_SERVICES = tomllib.loads((REPO_ROOT / "native" / "services.toml").read_text())["services"]


def wait_for(predicate, seconds: float = 60.0):
    return wait_until(predicate, seconds, interval=0.25)


def toml_value(value: Any) -> str:
    """TOML for the values services.toml uses (JSON strings are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"


def real_entry(name: str, **overrides: Any) -> str:
    """The `[services.<name>]` table of native/services.toml, with some keys replaced."""
    spec = {**REAL_SERVICES[name], **overrides}
    return f"[services.{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in spec.items())


def moved_producer(port: int) -> str:
    """The real producer entry; only its /health port differs (HEALTH_PORT in the test's env)."""
    health = {"http": f"http://127.0.0.1:{port}/health"}
    return real_entry("producer", ports=[port], health=health, url=health["http"])


SHARED_KAFKA = f"""
[services.kafka]
description = "stand-in: the shared Kafka these tests run against"
health = {{ kafka = "{KAFKA}" }}
command = ["sleep", "3600"]
stop_timeout = 5
"""


class Launcher:
    """`wikistreams-native` as a person runs it, on a throw-away services file and var/ folder."""

    def __init__(self, tmp_path: Path, toml: str, env: dict | None = None):
        self.tag = uuid.uuid4().hex[:6]
        services = tmp_path / "services.toml"
        services.write_text(textwrap.dedent(toml).replace("SUFFIX", self.tag))
        self.paths = Paths(tmp_path / "var")
        self.env = {
            **(env or os.environ),
            SERVICES_ENV: str(services),
            VAR_ENV: str(self.paths.var),
        }
        self.names = list(load_config(services, self.paths).services)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "wikistreams.native", *args]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=300)
        if check:
            assert done.returncode == 0, f"launcher {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done

    def status(self, name: str) -> dict[str, str]:
        """One row of `status` as {column: value}; columns are cut at the header's offsets."""
        lines = self.run("status", check=False).stdout.splitlines()
        header = lines[0]
        columns = [c.strip() for c in header.split("  ") if c.strip()]
        starts: list[int | None] = [header.index(c) for c in columns]
        starts.append(None)
        for line in lines[1:]:
            if line.split(" ", 1)[0] == name:
                cells = [line[a:b].strip() for a, b in zip(starts, starts[1:])]
                return dict(zip(columns, cells))
        raise AssertionError(f"{name} not in status:\n{lines}")

    def cleanup(self) -> None:
        self.run("down", check=False)


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


def require_kafka() -> None:
    if not check_kafka(KAFKA):
        pytest.fail(f"Kafka is not running on {KAFKA}; run the tests with `make test`")


def published(topic: str, at_least: int, seconds: float = 120.0) -> int:
    """How many committed events the topic holds, once it holds `at_least` (or the deadline)."""
    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        wait_for(lambda: topic in consumer.list_topics(timeout=5).topics, seconds)
        partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        count, deadline = 0, time.monotonic() + seconds
        while count < at_least and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and not message.error():
                json.loads(message.value())
                count += 1
        return count
    finally:
        consumer.close()


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
        assert f"{name} exited (SIGKILL)" in ctl.paths.log_file(name).read_text()

        again = ctl.run("up", name)  # a second `up` leaves it alone
        assert "already running" in again.stdout
        assert ctl.status(name)["PID"] == after["PID"]

        ctl.run("down", name)
        time.sleep(3)  # longer than the next backoff would have been (2 s)
        assert ctl.status(name)["STATE"] == "stopped"
        assert not port_open("127.0.0.1", port)
        assert not start_ticks(int(after["PID"]))
    finally:
        ctl.cleanup()


def test_killed_producer_is_restarted(tmp_path, wikidata_api):
    """The real producer entry of services.toml replaying the sample into a topic of its own on
    the shared Kafka: killed, it is back within the backoff and healthy."""
    require_kafka()
    port = free_port()
    topic = f"test.supervision.{uuid.uuid4().hex[:8]}"
    env = producer_env(tmp_path, SAMPLE.as_uri(), wikidata_api.url, topic, HEALTH_PORT=str(port))
    ctl = Launcher(tmp_path, SHARED_KAFKA + moved_producer(port), env)
    try:
        ctl.run("up", "producer")
        _before, after = killed_and_back(ctl, "producer")
        assert (after["RESTARTS"], after["LAST EXIT"]) == ("1", "SIGKILL")
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert health["status"] in ("ok", "degraded"), health

        ctl.run("down", "producer")
        assert ctl.status("producer")["STATE"] == "stopped"
        assert not start_ticks(int(after["PID"]))
    finally:
        ctl.cleanup()
        delete_topics(topic, f"{topic}.dlq")


def make_up_words() -> list[str]:
    """The service and group names `make up` hands to the launcher."""
    done = subprocess.run(
        ["make", "-n", "-C", str(REPO_ROOT), "up"],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k not in {"PRODUCERS", "SERVICES"}},
    )
    line = next(line for line in done.stdout.splitlines() if "wikistreams-native up" in line)
    return line.split("wikistreams-native up", 1)[1].split()


def test_make_up_with_druid_down_still_starts_the_producer_and_it_publishes(tmp_path, wikidata_api):
    """`make up`'s selection on a stack whose Druid cannot start: Kafka is the shared broker,
    the Druid coordinator and indexer exit at once, the druid-supervisor one-shot and the
    producer are the real entries. The producer starts anyway and its events reach Kafka; the
    supervisor submit is not run, and `up` fails naming Druid."""
    require_kafka()
    port, topic = free_port(), f"test.nodruid.{uuid.uuid4().hex[:8]}"
    env = producer_env(tmp_path, SAMPLE.as_uri(), wikidata_api.url, topic, HEALTH_PORT=str(port))
    broken_druid = "".join(f"""
        [services.{name}]
        group = "druid"
        health = {{ http = "http://127.0.0.1:{free_port()}/status/health" }}
        command = ["sh", "-c", "echo Druid is stopped; exit 1"]
        """ for name in ("druid-coordinator", "druid-indexer"))
    services = SHARED_KAFKA + textwrap.dedent(broken_druid)
    services += real_entry("druid-supervisor") + moved_producer(port)
    ctl = Launcher(tmp_path, services, env)
    words = [w for w in make_up_words() if w in ctl.names or w == "druid"]
    assert {"kafka", "druid", "druid-supervisor", "producer"} <= set(words)
    try:
        done = ctl.run("up", *words, check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "producer: healthy" in done.stdout
        assert "druid-coordinator exited during startup" in done.stderr
        assert "druid-supervisor not started: it needs druid-" in done.stderr
        assert not ctl.paths.log_file("druid-supervisor").exists()  # never ran
        assert ctl.status("producer")["STATE"] == "running"
        assert published(topic, at_least=50) >= 50  # of the sample's 100 events
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert health["status"] in ("ok", "degraded"), health
    finally:
        ctl.cleanup()
        delete_topics(topic, f"{topic}.dlq")
