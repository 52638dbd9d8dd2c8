"""The native launcher's logic without JVMs: placeholders, ordering, selection, the restart
backoff, the keeper that supervises a service (driven with `sh`/`sleep` processes), and that
with_stack.py stops only what it started (driven with two tiny Python HTTP servers)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.conftest import wait_until
from wikistreams.native import nativectl

ROOT = Path(__file__).resolve().parents[2]

NATIVECTL = [sys.executable, "-m", "wikistreams.native.nativectl"]


def make_config(tmp_path: Path, toml: str) -> nativectl.Config:
    path = tmp_path / "services.toml"
    path.write_text(textwrap.dedent(toml))
    return nativectl.load_config(path)


def test_real_services_file_is_valid_and_ordered():
    cfg = nativectl.load_config()
    order = nativectl.topo_order(cfg, list(cfg.services))
    assert order.index("zookeeper") < order.index("druid-coordinator")
    assert order.index("druid-coordinator") < order.index("druid-broker")
    assert set(nativectl.resolve_names(cfg, ["druid"])) == {
        "druid-coordinator",
        "druid-broker",
        "druid-historical",
        "druid-indexer",
    }
    assert "zookeeper" in nativectl.with_needs(cfg, ["druid-broker"])


def test_real_commands_expand_without_unknown_placeholders():
    cfg = nativectl.load_config()
    for svc in cfg.services.values():
        argv = cfg.expand_argv(svc.command, svc)
        assert not any(nativectl.PLACEHOLDER.search(a) for a in argv), svc.name
    broker = cfg.services["druid-broker"]
    argv = cfg.expand_argv(broker.command, broker)
    assert "--add-opens=java.base/java.nio=ALL-UNNAMED" in argv  # list var spliced
    assert "-Ddruid.host=127.0.0.1" in argv
    historical = cfg.services["druid-historical"]
    cache = [a for a in cfg.expand_argv(historical.command, historical) if "segmentCache" in a]
    assert cache and '[{"path":"' in cache[0]  # JSON braces are not placeholders


def test_producer_standby_is_a_second_copy_on_its_own_health_port():
    """`make up PRODUCERS=2`: same command and settings as `producer` (same cwd, so the same
    SQLite label cache), its own /health port, started only on request and after `producer`,
    and stopped with it (`make down SERVICES=producer`)."""
    cfg = nativectl.load_config()
    primary, standby = cfg.services["producer"], cfg.services["producer-standby"]
    assert not standby.default and not standby.group
    assert "producer-standby" not in nativectl.resolve_names(cfg, ["pipeline"])
    assert "producer" in standby.needs
    assert "producer-standby" in nativectl.with_dependents(cfg, ["producer"])
    assert standby.env["HEALTH_PORT"] == "8096" and "HEALTH_PORT" not in primary.env
    assert set(standby.ports).isdisjoint(primary.ports) and "8096" in standby.health["http"]
    assert cfg.expand(standby.cwd, standby) == cfg.expand(primary.cwd, primary)
    assert cfg.expand(standby.data, standby) == cfg.expand(primary.data, primary)
    assert "CACHE_DB_PATH" not in standby.env and "CACHE_DB_PATH" not in primary.env
    assert cfg.expand_argv(standby.command, standby)[-2:] == ["-m", "wikistreams.producer"]


def test_make_up_adds_the_standby_only_with_producers_2():
    def up(*args: str) -> str:
        done = subprocess.run(
            ["make", "-n", "-C", str(ROOT), "up", *args],
            capture_output=True,
            text=True,
            timeout=30,
            env={k: v for k, v in os.environ.items() if k not in {"PRODUCERS", "SERVICES"}},
        )
        assert done.returncode == 0, done.stderr
        return [line for line in done.stdout.splitlines() if "wikistreams-native up" in line][0]

    assert "producer-standby" not in up().split()
    assert "producer-standby" in up("PRODUCERS=2").split()
    assert "producer-standby" not in up("PRODUCERS=2", "SERVICES=kafka").split()


def test_unknown_placeholder_and_cycle_are_rejected(tmp_path):
    with pytest.raises(nativectl.NativeError, match="unknown placeholder"):
        cfg = make_config(
            tmp_path,
            """
            [services.a]
            command = ["echo", "{nope}"]
            health = { tcp = "127.0.0.1:1" }
            """,
        )
        cfg.expand_argv(cfg.services["a"].command, cfg.services["a"])
    with pytest.raises(nativectl.NativeError, match="cycle"):
        make_config(
            tmp_path,
            """
            [services.a]
            needs = ["b"]
            command = ["true"]
            health = { tcp = "127.0.0.1:1" }
            [services.b]
            needs = ["a"]
            command = ["true"]
            health = { tcp = "127.0.0.1:1" }
            """,
        )


def test_random_kafka_id_shape():
    cluster_id = nativectl.random_kafka_id()
    assert len(cluster_id) == 22 and "=" not in cluster_id


FAKE = """
[services.fake-web-a-SUFFIX]
default = true
ports = [{a}]
health = {{ http = "http://127.0.0.1:{a}/" }}
command = ["{python}", "-m", "http.server", "{a}", "--bind", "127.0.0.1", "--directory", "{{data}}"]
stop_timeout = 5

[services.fake-web-b-SUFFIX]
default = true
needs = ["fake-web-a-SUFFIX"]
ports = [{b}]
health = {{ tcp = "127.0.0.1:{b}" }}
command = ["{python}", "-m", "http.server", "{b}", "--bind", "127.0.0.1"]
stop_timeout = 5
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def service_file(tmp_path):
    """Write a throw-away services.toml; afterwards stop its services and remove their files.

    `SUFFIX` in the text becomes a random tag: var/run is shared by everybody using this
    checkout, so two test runs at once must not meet under the same service names.
    """
    written: list[nativectl.Config] = []
    tag = uuid.uuid4().hex[:6]

    def write(toml: str) -> tuple[Path, str]:
        path = tmp_path / "services.toml"
        path.write_text(textwrap.dedent(toml).replace("SUFFIX", tag))
        written.append(nativectl.load_config(path))
        return path, tag

    yield write
    for cfg in written:
        nativectl.stop_services(cfg, list(cfg.services))
        for name in cfg.services:
            nativectl.log_file(name).unlink(missing_ok=True)
            nativectl.lock_file(name).unlink(missing_ok=True)
            shutil.rmtree(nativectl.DATA_DIR / name, ignore_errors=True)


def test_with_stack_stops_only_what_it_started(service_file):
    services, tag = service_file(FAKE.format(a=free_port(), b=free_port(), python=sys.executable))
    a, b = f"fake-web-a-{tag}", f"fake-web-b-{tag}"
    env = dict(os.environ, NATIVECTL_SERVICES_FILE=str(services))
    stack = [sys.executable, "-m", "wikistreams.native.with_stack", "--"]
    subprocess.run(NATIVECTL + ["up", a], env=env, check=True, timeout=60)
    done = subprocess.run(
        stack + [sys.executable, "-c", "import sys; sys.exit(7)"], env=env, timeout=60
    )
    assert done.returncode == 7
    status = subprocess.run(NATIVECTL + ["status"], env=env, capture_output=True, text=True)
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[1:-1]}
    assert " running " in lines[a]  # started before: left running
    assert " stopped " in lines[b]  # started by with_stack: stopped again
    assert not keeper_processes(b)  # and its keeper is gone too
    assert keeper_processes(a)


# ─── supervision ───────────────────────────────────────────────────────────────────────────────


def test_backoff_doubles_up_to_the_cap_and_resets_after_a_long_run():
    backoff = nativectl.Backoff(backoff=1, max_backoff=60, reset_after=60)
    quick_exits = [backoff.delay(uptime=2) for _ in range(9)]
    assert quick_exits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff.delay(uptime=61) == 1  # it had been up a while: start over
    assert backoff.delay(uptime=2) == 2


def test_exit_descriptions_and_restart_keys(tmp_path):
    assert nativectl.describe_exit(-signal.SIGKILL) == "SIGKILL"
    assert nativectl.describe_exit(3) == "exit 3"
    with pytest.raises(nativectl.NativeError, match="unknown restart keys"):
        make_config(
            tmp_path,
            """
            [services.a]
            command = ["true"]
            health = { tcp = "127.0.0.1:1" }
            restart = { backof = 1 }
            """,
        )


def keeper_processes(name: str) -> list[int]:
    """Pids of live `nativectl.py keep <name>` processes (what `down` must not leave behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"keep" in argv
            and name.encode() in argv
            and nativectl.proc_start_ticks(int(entry.name))
        ):
            found.append(int(entry.name))
    return found


def keep(services: Path, name: str) -> subprocess.Popen:
    """The keeper as `up` starts it, but with its messages on a pipe for the test to read."""
    argv = NATIVECTL + ["keep", name, "--services", str(services)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_keeper_retries_a_crashing_service_ever_slower_until_sigterm(service_file):
    services, tag = service_file("""
        [services.unit-crasher-SUFFIX]
        health = { tcp = "127.0.0.1:1" }
        command = ["sh", "-c", "echo crashing; exit 3"]
        restart = { backoff = 0.2, max_backoff = 0.8 }
        """)
    name = f"unit-crasher-{tag}"
    keeper = keep(services, name)
    try:
        state = wait_until(lambda: (s := nativectl.read_keeper(name)) and s["restarts"] >= 4 and s)
        assert state["last_exit"] == "exit 3"
    finally:
        keeper.send_signal(signal.SIGTERM)
        output, _ = keeper.communicate(timeout=15)
    assert keeper.returncode == 0
    assert re.findall(r"restart #\d+ in ([\d.]+)s", output)[:4] == ["0.2", "0.4", "0.8", "0.8"]
    assert not nativectl.pid_file(name).exists()
    assert nativectl.read_json(nativectl.keeper_file(name))["outcome"]
    assert nativectl.log_file(name).read_text().count("crashing") >= 5


def test_keeper_clears_the_dead_process_group_restarts_and_stops_it(service_file):
    services, tag = service_file("""
        [services.unit-forker-SUFFIX]
        health = { tcp = "127.0.0.1:1" }
        command = ["sh", "-c", "sleep 300 & exec sleep 301"]
        restart = { backoff = 0.2 }
        stop_timeout = 5
        """)
    name = f"unit-forker-{tag}"
    keeper = keep(services, name)
    try:
        first = wait_until(lambda: nativectl.read_pid(name))
        wait_until(lambda: len(nativectl.group_pids(first["pgid"])) == 2)  # sleep 300 + 301
        os.kill(first["pid"], signal.SIGKILL)
        second = wait_until(
            lambda: (r := nativectl.read_pid(name)) and r["pid"] != first["pid"] and r
        )
        # The background `sleep 300` of the killed run did not survive into the next one.
        assert nativectl.group_pids(first["pgid"]) == []
        assert nativectl.read_keeper(name)["restarts"] == 1
        assert nativectl.read_keeper(name)["last_exit"] == "SIGKILL"
        wait_until(lambda: len(nativectl.group_pids(second["pgid"])) == 2)
    finally:
        keeper.send_signal(signal.SIGTERM)
        output, _ = keeper.communicate(timeout=15)
    assert keeper.returncode == 0, output
    assert nativectl.group_pids(second["pgid"]) == []  # SIGTERM reached the whole group
    assert nativectl.read_json(nativectl.keeper_file(name))["outcome"] == "stopped"
    assert not nativectl.pid_file(name).exists()


def test_up_fails_on_a_crash_during_startup_and_leaves_no_keeper(service_file):
    services, tag = service_file("""
        [services.unit-broken-SUFFIX]
        default = true
        health = { tcp = "127.0.0.1:1" }
        command = ["sh", "-c", "echo no config; exit 2"]
        """)
    name = f"unit-broken-{tag}"
    env = dict(os.environ, NATIVECTL_SERVICES_FILE=str(services))
    done = subprocess.run(NATIVECTL + ["up"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{name} exited during startup (exit 2)" in done.stderr
    assert "no config" in done.stderr  # the end of its log is shown
    assert not keeper_processes(name)
    assert nativectl.read_keeper(name) is None


def test_down_stops_a_service_that_runs_without_a_keeper(service_file):
    """Services started by the launcher before supervision existed are still stopped by `down`."""
    services, tag = service_file("""
        [services.unit-legacy-SUFFIX]
        health = { tcp = "127.0.0.1:1" }
        command = ["sleep", "300"]
        stop_timeout = 5
        """)
    name = f"unit-legacy-{tag}"
    # Detached like a service of the old launcher: not our child, its own process group.
    shell = ["sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!"]
    pid = int(subprocess.run(shell, capture_output=True, text=True, check=True).stdout)
    wait_until(lambda: os.getpgid(pid) == pid)
    record = {"pid": pid, "pgid": pid, "start_ticks": nativectl.proc_start_ticks(pid)}
    nativectl.RUN_DIR.mkdir(parents=True, exist_ok=True)
    nativectl.pid_file(name).write_text(json.dumps(record))
    env = dict(os.environ, NATIVECTL_SERVICES_FILE=str(services))
    try:
        shown = subprocess.run(NATIVECTL + ["status"], env=env, capture_output=True, text=True)
        assert f"note: {name} runs without a keeper" in shown.stdout
        subprocess.run(NATIVECTL + ["down"], env=env, check=True, timeout=30)
        assert not nativectl.alive(record)
    finally:
        if nativectl.alive(record):
            os.kill(pid, signal.SIGKILL)
    assert not nativectl.pid_file(name).exists()


def test_two_ups_at_once_start_a_service_once(service_file):
    port = free_port()
    services, tag = service_file(f"""
        [services.unit-raced-SUFFIX]
        ports = [{port}]
        health = {{ tcp = "127.0.0.1:{port}" }}
        command = ["{sys.executable}", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
        stop_timeout = 5
        """)
    name = f"unit-raced-{tag}"
    env = dict(os.environ, NATIVECTL_SERVICES_FILE=str(services))
    ups = [
        subprocess.Popen(NATIVECTL + ["up", name], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [up.communicate(timeout=60)[0] for up in ups]
    assert [up.returncode for up in ups] == [0, 0], outputs
    assert sum(f"{name}: started pid" in out for out in outputs) == 1, outputs
    assert len(keeper_processes(name)) == 1
