"""The native launcher's logic without JVMs: placeholders, ordering, selection, and that
with_stack.py stops only what it started (driven with two tiny Python HTTP servers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "native"))

import nativectl  # noqa: E402


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
[services.fake-web-a]
default = true
ports = [{a}]
health = {{ http = "http://127.0.0.1:{a}/" }}
command = ["{python}", "-m", "http.server", "{a}", "--bind", "127.0.0.1", "--directory", "{{data}}"]
stop_timeout = 5

[services.fake-web-b]
default = true
needs = ["fake-web-a"]
ports = [{b}]
health = {{ tcp = "127.0.0.1:{b}" }}
command = ["{python}", "-m", "http.server", "{b}", "--bind", "127.0.0.1"]
stop_timeout = 5
"""


def test_with_stack_stops_only_what_it_started(tmp_path):
    services = tmp_path / "services.toml"
    services.write_text(FAKE.format(a=18971, b=18972, python=sys.executable))
    env = dict(os.environ, NATIVECTL_SERVICES_FILE=str(services))
    ctl = [sys.executable, str(ROOT / "native" / "nativectl.py")]
    stack = [sys.executable, str(ROOT / "native" / "with_stack.py"), "--"]
    try:
        subprocess.run(ctl + ["up", "fake-web-a"], env=env, check=True, timeout=60)
        done = subprocess.run(
            stack + [sys.executable, "-c", "import sys; sys.exit(7)"], env=env, timeout=60
        )
        assert done.returncode == 7
        status = subprocess.run(ctl + ["status"], env=env, capture_output=True, text=True)
        lines = {line.split()[0]: line for line in status.stdout.splitlines()[1:-1]}
        assert " running " in lines["fake-web-a"]  # started before: left running
        assert " stopped " in lines["fake-web-b"]  # started by with_stack: stopped again
    finally:
        subprocess.run(ctl + ["down"], env=env, timeout=60)
        for name in ("fake-web-a", "fake-web-b"):
            (ROOT / "var" / "log" / f"{name}.log").unlink(missing_ok=True)
            shutil.rmtree(ROOT / "var" / "data" / name, ignore_errors=True)
