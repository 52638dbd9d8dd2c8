"""superset/native.sh with real processes: `stop` signals only what `start` started, and Superset
gets only its own settings from .env (issue 21).

The Superset venv is a stand-in whose gunicorn is a small real HTTP server (it answers /health
and prints its environment): what is under test is the script, not Superset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.ops_support import free_port
from tests.unit.test_superset_config import STRONG, fake_superset_venv
from wikistreams.native.procinfo import start_ticks

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "superset" / "native.sh"
# A gunicorn stand-in: prints its environment, then serves /health until stopped (when asked to).
GUNICORN = f"""#!{sys.executable}
import http.server, json, os, sys
print("ENV=" + json.dumps(dict(os.environ)), flush=True)
if os.environ.get("FAKE_GUNICORN_SERVE") != "1":
    sys.exit(0)
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["SUPERSET_PORT"])), Health).serve_forever()
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERSET_")}
    env.update(
        SUPERSET_VENV=str(fake_superset_venv(tmp_path, GUNICORN)),
        SUPERSET_HOME=str(tmp_path / "home"),
        SUPERSET_LOG_DIR=str(tmp_path / "log"),
        SUPERSET_ENV_FILE=str(tmp_path / "dot.env"),
        SUPERSET_SECRETS_FILE=str(tmp_path / "secrets.env"),
        SUPERSET_PORT=str(free_port()),
        WIKISTREAMS_PYTHON=sys.executable,
    )
    env.update(extra)
    return env


def _native(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(NATIVE), *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def stranger():
    """An unrelated process in a session of its own, as any other program on the machine."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_stop_leaves_alone_a_process_named_by_a_stale_bare_pid(tmp_path, stranger):
    """The old script's pid file (a bare number), left behind: the pid now belongs to another
    process, which `stop` used to SIGTERM (with its whole process group)."""
    env = _env(tmp_path)
    Path(env["SUPERSET_HOME"]).mkdir()
    pid_file = Path(env["SUPERSET_HOME"]) / "superset.pid"
    pid_file.write_text(f"{stranger.pid}\n")
    result = _native(env, "stop")
    assert result.returncode == 0, result.stderr
    assert "not running" in result.stderr
    assert stranger.poll() is None, "native.sh stop killed an unrelated process"
    assert not pid_file.exists()


def test_stop_leaves_alone_a_recycled_pid(tmp_path, stranger):
    """A record of our gunicorn whose pid the kernel has since given to another process: same
    pid, another start time."""
    env = _env(tmp_path)
    Path(env["SUPERSET_HOME"]).mkdir()
    pid_file = Path(env["SUPERSET_HOME"]) / "superset.pid"
    record = {"pid": stranger.pid, "pgid": stranger.pid, "start_ticks": start_ticks(stranger.pid)}
    record["start_ticks"] -= 1000  # ours started 10 s earlier and is gone
    pid_file.write_text(json.dumps(record))
    result = _native(env, "stop")
    assert result.returncode == 0, result.stderr
    assert "stale" in result.stderr
    assert stranger.poll() is None, "native.sh stop killed an unrelated process"


def test_start_then_stop_stops_what_it_started(tmp_path, stranger):
    env = _env(tmp_path, **STRONG, FAKE_GUNICORN_SERVE="1", SUPERSET_START_TIMEOUT="60")
    started = _native(env, "start")
    assert started.returncode == 0, started.stderr
    record = json.loads((Path(env["SUPERSET_HOME"]) / "superset.pid").read_text())
    assert record["start_ticks"] == start_ticks(record["pid"])
    assert "gunicorn" in " ".join(psutil.Process(record["pid"]).cmdline())
    assert _native(env, "status").returncode == 0
    stopped = _native(env, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert start_ticks(record["pid"]) != record["start_ticks"]  # gone (or a new process)
    assert stranger.poll() is None
    assert _native(env, "status").returncode == 3


def test_superset_gets_only_its_own_settings_from_dotenv(tmp_path):
    """.env holds every service's secrets; compose gives Superset only its own, so must this."""
    foreign = {
        "GRAFANA_ADMIN_PASSWORD": "grafana-Secret-9f2",
        "DRUID_METADATA_PASSWORD": "druid-Secret-7c1",
        "ALERT_WEBHOOK_URL": "https://alerts.wikistreams.dev/hook-5e8",
        "SUPERSET_DB_PASSWORD": "compose-postgres-only-3a9",
    }
    own = {**STRONG, "SUPERSET_ADMIN_EMAIL": "ops@wikistreams.dev"}
    lines = [f"{k}='{v}'" for k, v in {**foreign, **own}.items()]
    (tmp_path / "dot.env").write_text("\n".join(lines) + "\n")
    env = _env(tmp_path)
    for name in foreign:
        env.pop(name, None)
    result = _native(env, "run")
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("ENV=")]
    seen = json.loads(line[len("ENV=") :])
    for name, value in own.items():
        assert seen.get(name) == value, name
    leaked = {name for name in foreign if name in seen}
    leaked |= {k for k, v in seen.items() if v in foreign.values()}
    assert not leaked, f"Superset's environment holds other services' secrets: {sorted(leaked)}"
