"""The native launcher (src/wikistreams/native) without JVMs: the services file, placeholders,
ordering, the restart backoff, the keeper that supervises a service (driven with `sh`/`sleep`
processes), one-shot services, that `up` keeps going past a failed service, that with_stack.py
stops only what it started (two tiny Python HTTP servers), that records of the previous launcher
are still stopped, and the `make test` prerequisite check (with a PATH of its own).

Every test runs with WIKISTREAMS_VAR_DIR in its own temporary folder, so nothing here reads or
writes a developer's running stack under var/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.conftest import wait_until
from tests.ops_support import free_port
from wikistreams.backoff import Backoff
from wikistreams.native import (
    config,
    keeper,
    order,
    paths,
    placeholders,
    prereq,
    processes,
    records,
)
from wikistreams.native.config import NativeError
from wikistreams.native.health import HEALTH_CHECKS
from wikistreams.native.procinfo import group_pids
from wikistreams.native.shutdown import stop_services

ROOT = Path(__file__).resolve().parents[2]
CTL = [sys.executable, "-m", "wikistreams.native"]


@pytest.fixture(autouse=True)
def var_dir(tmp_path, monkeypatch) -> paths.Paths:
    """A var/ folder of the test's own (inherited by every launcher the test starts)."""
    var = tmp_path / "var"
    monkeypatch.setenv(paths.VAR_ENV, str(var))
    monkeypatch.delenv(config.SERVICES_ENV, raising=False)
    return paths.Paths(var)


def make_config(tmp_path: Path, toml: str) -> config.Config:
    path = tmp_path / "services.toml"
    path.write_text(textwrap.dedent(toml))
    return config.load_config(path)


def ctl(services: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, **{config.SERVICES_ENV: str(services)})
    kw.setdefault("timeout", 90)
    return subprocess.run(CTL + list(args), env=env, capture_output=True, text=True, **kw)


def status_rows(services: Path) -> dict[str, list[str]]:
    """`status` as {service: its cells} (cells split on runs of 2+ spaces)."""
    lines = ctl(services, "status").stdout.splitlines()
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:] if not line.startswith("total")]
    return {row[0]: row for row in rows if not row[0].startswith("note:")}


# ─── the real services file ────────────────────────────────────────────────────────────────────


def test_real_services_file_is_valid_and_ordered():
    cfg = config.load_config()
    ordered = order.topo_order(cfg, list(cfg.services))
    assert ordered.index("zookeeper") < ordered.index("druid-coordinator")
    assert ordered.index("druid-coordinator") < ordered.index("druid-broker")
    assert set(order.resolve_names(cfg, ["druid"])) == {
        "druid-coordinator",
        "druid-broker",
        "druid-historical",
        "druid-indexer",
    }
    assert "zookeeper" in order.with_needs(cfg, ["druid-broker"])


def test_real_commands_expand_without_unknown_placeholders(var_dir):
    cfg = config.load_config()
    for svc in cfg.services.values():
        argv = cfg.expand_argv(svc.command, svc)
        assert not any(placeholders.PLACEHOLDER.search(a) for a in argv), svc.name
    broker = cfg.services["druid-broker"]
    argv = cfg.expand_argv(broker.command, broker)
    assert "--add-opens=java.base/java.nio=ALL-UNNAMED" in argv  # list var spliced
    assert "-Ddruid.host=127.0.0.1" in argv
    historical = cfg.services["druid-historical"]
    cache = [a for a in cfg.expand_argv(historical.command, historical) if "segmentCache" in a]
    assert cache and '[{"path":"' in cache[0]  # JSON braces are not placeholders
    assert cfg.expand("{var}/data/{name}", broker) == f"{var_dir.var}/data/druid-broker"


def test_the_producer_needs_only_kafka_and_druid_is_a_one_shot_step():
    """The producer starts as soon as Kafka answers; the Druid supervisor is submitted by the
    one-shot `druid-supervisor` once Druid is up, which `make up` runs and nothing waits for."""
    cfg = config.load_config()
    producer, submit = cfg.services["producer"], cfg.services["druid-supervisor"]
    assert producer.needs == ["kafka"] and not producer.oneshot
    assert order.with_needs(cfg, ["producer"]) == ["kafka", "producer"]
    assert order.with_needs(cfg, ["producer-standby"]) == ["kafka", "producer", "producer-standby"]
    argv = cfg.expand_argv(producer.command, producer)
    assert argv[-2:] == ["-m", "wikistreams.producer"] and "druid" not in " ".join(argv)
    assert submit.oneshot and submit.health is None and not submit.default
    assert {"druid-coordinator", "druid-indexer"} <= set(submit.needs)
    assert cfg.expand_argv(submit.command, submit)[-2:] == [
        f"{ROOT}/.venv/bin/wikistreams-druid",
        "submit",
    ]
    assert set(order.resolve_names(cfg, ["pipeline"])) == {"producer", "druid-supervisor", "trends"}
    assert not [s.name for s in cfg.services.values() if "druid-supervisor" in s.needs]
    assert "druid-supervisor" in make_up_line()
    assert "druid-supervisor" in order.with_dependents(cfg, ["druid-indexer"])


def test_producer_standby_is_a_second_copy_on_its_own_health_port():
    """`make up PRODUCERS=2`: same command and settings as `producer` (same cwd, so the same
    SQLite label cache), its own /health port, started only on request and after `producer`,
    and stopped with it (`make down SERVICES=producer`)."""
    cfg = config.load_config()
    primary, standby = cfg.services["producer"], cfg.services["producer-standby"]
    assert not standby.default and not standby.group
    assert "producer-standby" not in order.resolve_names(cfg, ["pipeline"])
    assert "producer" in standby.needs
    assert "producer-standby" in order.with_dependents(cfg, ["producer"])
    assert standby.env["HEALTH_PORT"] == "8096" and "HEALTH_PORT" not in primary.env
    assert standby.health and standby.health.kind == "http" and "8096" in standby.health.target
    assert set(standby.ports).isdisjoint(primary.ports)
    assert cfg.expand(standby.cwd, standby) == cfg.expand(primary.cwd, primary)
    assert cfg.expand(standby.data, standby) == cfg.expand(primary.data, primary)
    assert "CACHE_DB_PATH" not in standby.env and "CACHE_DB_PATH" not in primary.env
    assert cfg.expand_argv(standby.command, standby) == cfg.expand_argv(primary.command, primary)


def make_up_line(*args: str) -> list[str]:
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "up", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k not in {"PRODUCERS", "SERVICES"}},
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if "wikistreams-native up" in line][0].split()


def test_make_up_adds_the_standby_only_with_producers_2():
    assert "producer-standby" not in make_up_line()
    assert "producer-standby" in make_up_line("PRODUCERS=2")
    assert "producer-standby" not in make_up_line("PRODUCERS=2", "SERVICES=kafka")


def test_console_script_and_module_are_the_same_command():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'wikistreams-native = "wikistreams.native.cli:main"' in text
    done = subprocess.run(CTL + ["--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "up" in done.stdout and "keep" in done.stdout


# ─── the services file's schema ────────────────────────────────────────────────────────────────


def test_unknown_placeholder_and_cycle_are_rejected(tmp_path):
    with pytest.raises(NativeError, match="unknown placeholder"):
        cfg = make_config(
            tmp_path,
            """
            [services.a]
            command = ["echo", "{nope}"]
            health = { tcp = "127.0.0.1:1" }
            """,
        )
        cfg.expand_argv(cfg.services["a"].command, cfg.services["a"])
    with pytest.raises(NativeError, match="cycle"):
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


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'command = ["true"]\nhealth = { tcp = "127.0.0.1:1" }\nrestart = { backof = 1 }',
            "restart",
        ),
        (
            'command = ["true"]\nhealth = { tcp = "127.0.0.1:1" }\ncomand = ["x"]',
            "comand: unknown key",
        ),
        ('command = ["true"]', "health must be one of"),
        ('command = ["true"]\nhealth = { ping = "x" }', "health must be one of"),
        ('command = ["true"]\nhealth = { tcp = "127.0.0.1:1" }\nports = "80"', "ports"),
        ('command = "true"\nhealth = { tcp = "127.0.0.1:1" }', "command"),
        ('command = ["true"]\nhealth = { tcp = "127.0.0.1:1" }\ndefault = "yes"', "default"),
        ('oneshot = true\ncommand = ["true"]\nhealth = { tcp = "127.0.0.1:1" }', "oneshot"),
        ('oneshot = true\ncommand = ["true"]\nrestart = { backoff = 1 }', "oneshot"),
        ('command = ["true"]\nhealth = { tcp = "127.0.0.1:1" }\nneeds = ["ghost"]', "ghost"),
        # Found while loading, not when the service starts:
        ('command = ["echo", "{nope}"]\nhealth = { tcp = "127.0.0.1:1" }', "unknown placeholder"),
        ('command = ["true"]\nhealth = { tcp = "{host}:1" }', "unknown placeholder {host}"),
        ('command = ["true"]\nhealth = { tcp = "127.0.0.1:1" }\n[servics.b]', "servics: unknown"),
    ],
)
def test_mistakes_in_the_services_file_are_rejected(tmp_path, table, message):
    with pytest.raises(NativeError, match=message):
        make_config(tmp_path, "[services.a]\n" + table + "\n")


def test_health_kinds_and_checks_agree():
    assert set(config.HEALTH_KINDS) == set(HEALTH_CHECKS)


def test_random_kafka_id_shape():
    cluster_id = placeholders.random_kafka_id()
    assert len(cluster_id) == 22 and "=" not in cluster_id


def test_random_kafka_id_never_starts_like_an_option(monkeypatch):
    """A UUID whose base64 starts with `-` (first byte 0xf8) is drawn again: `kafka-storage
    format -t -u7I...` took such an id for an option and the first start failed."""
    import uuid

    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    assert placeholders.random_kafka_id() == "AQEBAQEBAQEBAQEBAQEBAQ"


def test_var_dir_is_overridable(tmp_path):
    assert paths.Paths.from_env({}).var == ROOT / "var"
    moved = paths.Paths.from_env({paths.VAR_ENV: str(tmp_path / "elsewhere")})
    assert moved.pid_file("kafka") == tmp_path / "elsewhere" / "run" / "kafka.pid"
    assert moved.log_file("kafka") == tmp_path / "elsewhere" / "log" / "kafka.log"
    cfg = config.load_config()  # the fixture's WIKISTREAMS_VAR_DIR
    assert cfg.paths.var == tmp_path / "var"
    assert cfg.lib_dir("kafka") == tmp_path / "var" / "lib" / "kafka"


# ─── services on throw-away services files ─────────────────────────────────────────────────────


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


@pytest.fixture
def service_file(tmp_path):
    """Write a throw-away services.toml; afterwards stop its services.

    `SUFFIX` in the text becomes a random tag, so the keepers of two test runs at once (and
    `keeper_processes`) never meet under the same service names.
    """
    written: list[config.Config] = []
    tag = uuid.uuid4().hex[:6]

    def write(toml: str) -> tuple[Path, str]:
        path = tmp_path / "services.toml"
        path.write_text(textwrap.dedent(toml).replace("SUFFIX", tag))
        written.append(config.load_config(path))
        return path, tag

    yield write
    for cfg in written:
        stop_services(cfg, list(cfg.services))


def keeper_processes(name: str) -> list[int]:
    """Pids of live `wikistreams.native keep <name>` processes (what `down` must not leave)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        argv = proc.info["cmdline"] or []
        if "keep" in argv and name in argv and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc.pid)
    return found


def test_with_stack_stops_only_what_it_started(service_file):
    services, tag = service_file(FAKE.format(a=free_port(), b=free_port(), python=sys.executable))
    a, b = f"fake-web-a-{tag}", f"fake-web-b-{tag}"
    assert ctl(services, "up", a).returncode == 0
    stack = [sys.executable, "-m", "wikistreams.native.with_stack", "--"]
    env = dict(os.environ, **{config.SERVICES_ENV: str(services)})
    done = subprocess.run(
        stack + [sys.executable, "-c", "import sys; sys.exit(7)"], env=env, timeout=60
    )
    assert done.returncode == 7
    rows = status_rows(services)
    assert rows[a][1] == "running"  # started before: left running
    assert rows[b][1] == "stopped"  # started by with_stack: stopped again
    assert not keeper_processes(b)  # and its keeper is gone too
    assert keeper_processes(a)


# ─── supervision ───────────────────────────────────────────────────────────────────────────────


def test_restart_delays_double_up_to_the_cap_and_reset_after_a_long_run():
    restart = config.Restart(backoff=1, max_backoff=60, reset_after=60)
    backoff = Backoff(restart.backoff, restart.max_backoff)
    quick_exits = [keeper.restart_delay(backoff, restart, uptime=2) for _ in range(9)]
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert all(c / 2 <= d <= c for d, c in zip(quick_exits, ceilings, strict=True)), quick_exits
    assert keeper.restart_delay(backoff, restart, uptime=61) <= 1  # up a while: start over
    assert 1 <= keeper.restart_delay(backoff, restart, uptime=2) <= 2


def test_exit_descriptions():
    assert processes.describe_exit(-signal.SIGKILL) == "SIGKILL"
    assert processes.describe_exit(3) == "exit 3"


def keep(services: Path, name: str) -> subprocess.Popen:
    """The keeper as `up` starts it, but with its messages on a pipe for the test to read."""
    argv = CTL + ["keep", name, "--services", str(services)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_keeper_retries_a_crashing_service_ever_slower_until_sigterm(service_file, var_dir):
    services, tag = service_file("""
        [services.unit-crasher-SUFFIX]
        health = { tcp = "127.0.0.1:1" }
        command = ["sh", "-c", "echo crashing; exit 3"]
        restart = { backoff = 0.2, max_backoff = 0.8 }
        """)
    name = f"unit-crasher-{tag}"
    proc = keep(services, name)
    try:
        state = wait_until(
            lambda: (s := records.read_keeper(var_dir, name)) and s.restarts >= 4 and s
        )
        assert state.last_exit == "exit 3"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    delays = [float(d) for d in re.findall(r"restart #\d+ in ([\d.]+)s", output)[:4]]
    ceilings = [0.2, 0.4, 0.8, 0.8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert not var_dir.pid_file(name).exists()
    final = records.load_keeper(var_dir, name)
    assert final is not None and final.outcome
    assert var_dir.log_file(name).read_text().count("crashing") >= 5


def test_keeper_clears_the_dead_process_group_restarts_and_stops_it(service_file, var_dir):
    services, tag = service_file("""
        [services.unit-forker-SUFFIX]
        health = { tcp = "127.0.0.1:1" }
        command = ["sh", "-c", "sleep 300 & exec sleep 301"]
        restart = { backoff = 0.2 }
        stop_timeout = 5
        """)
    name = f"unit-forker-{tag}"
    proc = keep(services, name)
    try:
        first = wait_until(lambda: records.read_pid(var_dir, name))
        wait_until(lambda: len(group_pids(first.pgid)) == 2)  # sleep 300 + 301
        os.kill(first.pid, signal.SIGKILL)
        second = wait_until(
            lambda: (r := records.read_pid(var_dir, name)) and r.pid != first.pid and r
        )
        # The background `sleep 300` of the killed run did not survive into the next one.
        assert group_pids(first.pgid) == []
        state = records.read_keeper(var_dir, name)
        assert state is not None and (state.restarts, state.last_exit) == (1, "SIGKILL")
        wait_until(lambda: len(group_pids(second.pgid)) == 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, output
    assert group_pids(second.pgid) == []  # SIGTERM reached the whole group
    final = records.load_keeper(var_dir, name)
    assert final is not None and final.outcome == "stopped"
    assert not var_dir.pid_file(name).exists()


def test_up_fails_on_a_crash_during_startup_and_leaves_no_keeper(service_file, var_dir):
    services, tag = service_file("""
        [services.unit-broken-SUFFIX]
        default = true
        health = { tcp = "127.0.0.1:1" }
        command = ["sh", "-c", "echo no config; exit 2"]
        """)
    name = f"unit-broken-{tag}"
    done = ctl(services, "up")
    assert done.returncode == 1
    assert f"{name} exited during startup (exit 2)" in done.stderr
    assert "no config" in done.stderr  # the end of its log is shown
    assert not keeper_processes(name)
    assert records.read_keeper(var_dir, name) is None


def test_a_port_in_use_is_named_before_anything_starts(service_file, var_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        services, tag = service_file(f"""
            [services.unit-clash-SUFFIX]
            ports = [{port}]
            health = {{ tcp = "127.0.0.1:{port}" }}
            command = ["sleep", "300"]
            """)
        done = ctl(services, "up", f"unit-clash-{tag}")
    assert done.returncode == 1
    assert f"port {port} is already in use by a process the launcher did not start" in done.stderr
    assert f"pid {os.getpid()}" in done.stderr  # psutil names who holds it
    assert not var_dir.pid_file(f"unit-clash-{tag}").exists()


def detached_sleep() -> int:
    """A `sleep` in a session of its own, not our child: like a service of an older launcher."""
    shell = ["sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!"]
    pid = int(subprocess.run(shell, capture_output=True, text=True, check=True).stdout)
    wait_until(lambda: os.getpgid(pid) == pid)
    return pid


def proc_stat_ticks(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat, read the way the previous launcher read it."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def test_down_stops_what_the_previous_launcher_started(service_file, var_dir):
    """Services started by the launcher before this one (pid and keeper files with the same keys,
    start times as /proc ticks) are found, shown and stopped, with and without a keeper."""
    services, tag = service_file("""
        [services.unit-legacy-SUFFIX]
        health = { tcp = "127.0.0.1:1" }
        command = ["sleep", "300"]
        stop_timeout = 5
        [services.unit-kept-SUFFIX]
        health = { tcp = "127.0.0.1:1" }
        command = ["sleep", "300"]
        stop_timeout = 5
        """)
    legacy, kept = f"unit-legacy-{tag}", f"unit-kept-{tag}"
    service, other, old_keeper = detached_sleep(), detached_sleep(), detached_sleep()
    var_dir.run.mkdir(parents=True)
    for name, pid in ((legacy, service), (kept, other)):
        record = {"pid": pid, "pgid": pid, "start_ticks": proc_stat_ticks(pid), "started": 1.0}
        var_dir.pid_file(name).write_text(json.dumps({**record, "argv": ["sleep", "300"]}))
    state = {"pid": old_keeper, "start_ticks": proc_stat_ticks(old_keeper), "restarts": 2}
    state |= {"last_exit": "SIGKILL", "last_exit_at": 1.0, "next_start": None, "outcome": None}
    var_dir.keeper_file(kept).write_text(json.dumps(state))
    try:
        shown = ctl(services, "status")
        assert f"note: {legacy} runs without a keeper" in shown.stdout
        assert f"note: {kept} runs" not in shown.stdout
        assert status_rows(services)[kept][4:6] == ["2", "SIGKILL"]
        assert ctl(services, "down").returncode == 0
        assert not any(psutil.pid_exists(p) for p in (service, other, old_keeper))
    finally:
        for pid in (service, other, old_keeper):
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
    assert not list(var_dir.run.glob("unit-*.pid")) and not list(var_dir.run.glob("*.keeper"))


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
    env = dict(os.environ, **{config.SERVICES_ENV: str(services)})
    ups = [
        subprocess.Popen(CTL + ["up", name], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [up.communicate(timeout=60)[0] for up in ups]
    assert [up.returncode for up in ups] == [0, 0], outputs
    assert sum(f"{name}: started pid" in out for out in outputs) == 1, outputs
    assert len(keeper_processes(name)) == 1


# ─── one-shot services, and failures that do not stop the rest ─────────────────────────────────


ONESHOT = """
[services.unit-server-SUFFIX]
ports = [{port}]
health = {{ tcp = "127.0.0.1:{port}" }}
command = ["{python}", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
stop_timeout = 5

[services.unit-step-SUFFIX]
oneshot = true
group = "steps"
needs = ["unit-server-SUFFIX"]
command = ["sh", "-c", "echo step ran; exit {code}"]
"""


def test_a_one_shot_runs_once_per_up_after_its_needs_and_reports_its_result(service_file, var_dir):
    services, tag = service_file(ONESHOT.format(port=free_port(), python=sys.executable, code=0))
    server, step = f"unit-server-{tag}", f"unit-step-{tag}"
    done = ctl(services, "up", "steps")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.index(f"{server}: healthy") < out.index(f"{step}: started pid")  # after its needs
    assert f"{step}: done (exit 0)" in out
    assert var_dir.log_file(step).read_text().splitlines().count("step ran") == 1
    rows = status_rows(services)
    assert rows[step][1:3] == ["done", "-"] and rows[step][5] == "exit 0"
    assert not var_dir.pid_file(step).exists() and not keeper_processes(step)
    again = ctl(services, "up", "steps")  # the server is reused, the step runs again
    assert f"{server}: already running" in again.stdout and f"{step}: done" in again.stdout
    assert var_dir.log_file(step).read_text().splitlines().count("step ran") == 2


def test_a_failed_one_shot_fails_up_and_is_never_restarted(service_file, var_dir):
    services, tag = service_file(ONESHOT.format(port=free_port(), python=sys.executable, code=3))
    server, step = f"unit-server-{tag}", f"unit-step-{tag}"
    done = ctl(services, "up", "steps")
    assert done.returncode == 1
    assert f"{step} failed (exit 3)" in done.stderr and "step ran" in done.stderr
    time.sleep(2)  # a keeper would have restarted it by now
    assert var_dir.log_file(step).read_text().splitlines().count("step ran") == 1
    rows = status_rows(services)
    assert rows[step][1] == "failed" and rows[step][5] == "exit 3"
    assert rows[server][1] == "running"  # what it needed keeps running
    assert ctl(services, "status").returncode == 1


def test_up_starts_everything_that_does_not_need_a_failed_service(service_file, var_dir):
    """Like `make up` with Druid broken: what needs only the healthy part still starts."""
    port = free_port()
    services, tag = service_file(f"""
        [services.unit-base-SUFFIX]
        ports = [{port}]
        health = {{ tcp = "127.0.0.1:{port}" }}
        command = ["{sys.executable}", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
        stop_timeout = 5
        [services.unit-broken-SUFFIX]
        health = {{ tcp = "127.0.0.1:1" }}
        command = ["sh", "-c", "echo refusing; exit 1"]
        [services.unit-step-SUFFIX]
        oneshot = true
        needs = ["unit-base-SUFFIX", "unit-broken-SUFFIX"]
        command = ["sh", "-c", "echo must not run"]
        [services.unit-app-SUFFIX]
        needs = ["unit-base-SUFFIX"]
        health = {{ tcp = "127.0.0.1:{port}" }}
        command = ["sleep", "300"]
        stop_timeout = 5
        """)
    names = [f"unit-{n}-{tag}" for n in ("base", "broken", "step", "app")]
    base, broken, step, app = names
    done = ctl(services, "up", *names)
    assert done.returncode == 1
    assert f"{broken} exited during startup (exit 1)" in done.stderr
    assert f"{step} not started: it needs {broken}" in done.stderr
    assert f"{app}: healthy" in done.stdout
    rows = status_rows(services)
    assert [rows[n][1] for n in names] == ["running", "stopped", "stopped", "running"]
    assert not var_dir.log_file(step).exists()


# ─── `make test` prerequisites ─────────────────────────────────────────────────────────────────


def fake_bin(tmp_path: Path, **programs: str) -> Path:
    """A folder for PATH holding `make` and `python3` (the real ones) and the given programs,
    each a shell script running the given text."""
    folder = tmp_path / "bin"
    folder.mkdir(parents=True)
    for name, real in (("make", "/usr/bin/make"), ("python3", sys.executable)):
        (folder / name).symlink_to(real)
    for name, body in programs.items():
        script = folder / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return folder


def test_prereq_names_every_missing_program_with_its_install_command(tmp_path):
    folder = fake_bin(tmp_path, java="echo 'openjdk version \"11.0.2\" 2019-01-15' >&2")
    reqs = prereq.requirements(str(folder / "python3"), ROOT)
    problems = [p for p in (prereq.check(r, str(folder))[1] for r in reqs) if p]
    labels = [p.requirement.label for p in problems]
    go = ".".join(map(str, prereq.go_minimum(ROOT)))
    assert labels == [
        "java 17+",
        "mvn 3.8+",
        f"go {go}+",
        "redis-server",
        "chromium",
        "chromedriver",
        "a Korean font",
        "jq",
    ]
    assert "is 11.0.2" in problems[0].found and "not found" in problems[1].found
    message = prereq.report(problems)
    for install in (
        "apt-get install openjdk-17-jdk-headless",
        "apt-get install maven",
        "apt-get install redis-server",
        "apt-get install chromium-driver",
        "apt-get install jq",
        "apt-get install fonts-noto-cjk",
    ):
        assert install in message
    assert "apt-get install -y openjdk-17-jdk-headless maven redis-server chromium " in message


def test_prereq_reads_the_versions_the_real_programs_print(tmp_path):
    folder = fake_bin(
        tmp_path,
        java="echo 'openjdk version \"17.0.15\" 2025-04-15' >&2",
        mvn="printf '\\033[1mApache Maven 3.8.7\\033[m\\nMaven home: /usr/share/maven\\n'",
        go="echo go9.1.0",
        **{"redis-server": "", "chromium": "", "chromedriver": "", "jq": ""},
        **{"fc-list": "echo 'Noto Sans CJK KR,Noto Sans CJK KR Regular'"},
    )
    reqs = prereq.requirements(str(folder / "python3"), ROOT)
    results = [prereq.check(r, str(folder)) for r in reqs]
    assert [problem for _, problem in results] == [None] * len(results)
    assert [version for version, _ in results][:4] == [
        "17.0.15",
        "3.8.7",
        "9.1.0",
        ".".join(map(str, sys.version_info[:3])),
    ]
    old_java = fake_bin(tmp_path / "old", java="echo 'java version \"1.8.0_362\"' >&2")
    _, problem = prereq.check(prereq.requirements(root=ROOT)[0], str(old_java))
    assert problem is not None and problem.found.endswith("is 8.0")  # Java 8
    (font,) = [r for r in prereq.requirements() if r.apt == "fonts-noto-cjk"]
    assert prereq.check(font, str(folder))[0] == "Noto Sans CJK KR,Noto Sans CJK KR Regular"
    no_korean = fake_bin(tmp_path / "no-cjk", **{"fc-list": "true"})  # fontconfig, no such font
    _, problem = prereq.check(font, str(no_korean))
    assert problem is not None and problem.found.endswith("fc-list :lang=ko family lists none")


def test_make_test_checks_prerequisites_before_it_builds_or_starts_anything(tmp_path):
    folder = fake_bin(tmp_path, java="echo 'openjdk version \"17.0.15\"' >&2")
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "-C", str(ROOT), "test", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(folder), "HOME": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "missing prerequisite" in done.stderr
    assert "redis-server" in done.stderr and "apt-get install redis-server" in done.stderr
    assert "chromium-driver" in done.stderr and "java" not in done.stderr.split("\n", 1)[1]
    assert not venv.exists() and "build.sh" not in done.stdout  # nothing ran after it
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "test"], capture_output=True, text=True, timeout=60
    ).stdout.splitlines()
    first = next(i for i, line in enumerate(dry) if "native/prereq.py" in line)
    later = [i for i, line in enumerate(dry) if "build.sh" in line or "native.sh install" in line]
    assert later and first < min(later)


def test_checkout_is_found_by_its_files_never_assumed_from_the_install_location(
    tmp_path, monkeypatch
):
    """An editable install is in its checkout; a wheel's files sit in a virtualenv, which is no
    checkout: there the working directory (or WIKISTREAMS_ROOT) decides."""
    checkout = tmp_path / "checkout"
    (checkout / "native").mkdir(parents=True)
    (checkout / "native" / "services.toml").write_text("")
    editable = checkout / "src" / "wikistreams" / "native" / "paths.py"
    wheel = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "wikistreams" / "native"
    monkeypatch.chdir(tmp_path)
    assert paths.find_root({}, editable) == checkout
    assert paths.find_root({}, wheel / "paths.py") == tmp_path
    assert paths.find_root({"WIKISTREAMS_ROOT": str(checkout)}, wheel / "paths.py") == checkout
