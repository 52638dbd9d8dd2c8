"""Helpers shared by the ops tests: a stand-in Docker daemon, the native log stack, and the list of
every LogsQL query the Grafana provisioning contains.

The query list is read from the provisioned files themselves (not from the generator), so a panel
or alert rule added in any way is proven by the integration test without touching the test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import wait_until
from wikistreams.native.config import read_env_file
from wikistreams.native.paths import Paths
from wikistreams.native.records import PidRecord, write_pid

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("WIKISTREAMS_BIN", ROOT / "var" / "bin"))
VICTORIA_LOGS = BIN / "victoria-logs"
COLLECTOR = BIN / "wikistreams-otelcol"
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
ALERT_RULES = ROOT / "grafana" / "provisioning" / "alerting" / "rules.yaml"
DOCKER_STATS_FIXTURES = ROOT / "tests" / "fixtures" / "docker_stats"


# ── a Docker daemon stand-in serving recorded stats ─────────────────────────────────────────────


def recorded_docker_stats() -> dict[str, dict[str, Any]]:
    """container id -> real recorded stats response (tests/fixtures/docker_stats/SOURCES.md)."""
    samples: dict[str, dict[str, Any]] = {}
    for path in sorted(DOCKER_STATS_FIXTURES.glob("*.json")):
        samples.update(json.loads(path.read_text()))
    return samples


class _DockerdHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        samples = self.server.samples
        if self.path == "/_ping":
            body: Any = "OK"
        elif self.path == "/containers/json":
            body = [{"Id": cid, "Names": [f"/{cid[:8]}"], "Labels": {}} for cid in samples]
        elif self.path.startswith("/containers/") and self.path.endswith("/stats?stream=false"):
            body = samples.get(self.path.split("/")[2])
        else:
            body = None
        if body is None:
            self.send_error(404)
            return
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # keep test output clean
        pass


class _ServedInBackground:
    """`with server:` serves on a daemon thread and shuts it down on exit."""

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class FakeDockerd(_ServedInBackground, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Answers ``/containers/json`` and ``/containers/<id>/stats`` on a unix socket."""

    daemon_threads = True

    def __init__(self, socket_path: str, samples: dict[str, dict[str, Any]]) -> None:
        self.samples = samples
        super().__init__(socket_path, _DockerdHandler)

    def get_request(self):
        request, _ = super().get_request()
        return request, ("local", 0)


class FakeDockerdTCP(_ServedInBackground, socketserver.ThreadingMixIn, socketserver.TCPServer):
    """The same stand-in on 127.0.0.1:<free port>, as the socket proxy serves the API in compose."""

    daemon_threads = True

    def __init__(self, samples: dict[str, dict[str, Any]]) -> None:
        self.samples = samples
        super().__init__(("127.0.0.1", 0), _DockerdHandler)

    @property
    def docker_host(self) -> str:
        host, port = self.server_address[:2]
        return f"tcp://{host}:{port}"


# ── native services: real process trees registered the way the native launcher does it ───────

# Python snippets for the workloads (run with sys.executable -c). Each writes its ready file once
# its resource use is in place, so a sample taken afterwards must see it.
BURN_CPU = "import sys, pathlib; pathlib.Path(sys.argv[1]).touch()\nwhile True: pass"
HOLD_MEMORY_AND_WRITE = (
    "import os, sys, time, pathlib\n"
    "block = bytearray(int(sys.argv[2]) << 20)\n"
    "block[::4096] = b'x' * len(block[::4096])\n"  # touch every page: resident, not just mapped
    "fd = os.open(sys.argv[3], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n"
    "os.write(fd, os.urandom(int(sys.argv[4]) << 20)); os.fsync(fd); os.close(fd)\n"
    "pathlib.Path(sys.argv[1]).touch()\n"
    "time.sleep(600)"
)
# A parent that holds memory and forks children which only read nothing of it: the pages are
# shared copy-on-write, so RSS counts them once per process and PSS once in total.
FORK_SHARED_MEMORY = (
    "import os, sys, time, pathlib\n"
    "block = bytearray(int(sys.argv[2]) << 20)\n"
    "block[::4096] = b'x' * len(block[::4096])\n"
    "for _ in range(int(sys.argv[3])):\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(600); os._exit(0)\n"
    "pathlib.Path(sys.argv[1]).touch()\n"
    "time.sleep(600)"
)


class NativeServices:
    """Real processes started like the launcher starts services: a new session (own process group)
    and a pid record ``<var>/run/<name>.pid`` with the kernel start time. The native resource
    sampler reads exactly these records."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.paths = Paths(var_dir)
        self.paths.run.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
        write_pid(self.paths, name, PidRecord.of(proc.pid, argv))
        self.processes[name] = proc
        return proc

    def wait_ready(self, *paths: Path, timeout: float = 60) -> None:
        """Until every workload wrote its ready file."""
        wait_until(lambda: all(p.exists() for p in paths), timeout, interval=0.05)

    def stop_all(self) -> None:
        """SIGKILL each process group (children included), then reap the group leaders."""
        for proc in self.processes.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.processes.values():
            proc.wait(timeout=10)

    def __enter__(self) -> "NativeServices":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def start_representative_services(services: NativeServices, workdir: Path) -> dict[str, Path]:
    """Three services shaped like the native stack's: a wrapper shell with a CPU-bound and a
    memory/disk child (a JVM under bash), a forking server (gunicorn and its workers), and a
    single idle process. Returns the ready files to wait for, by service."""
    py = sys.executable
    ready = {name: workdir / f"ready-{name}" for name in ("busy", "forking")}
    services.start(
        "busy",
        [
            "bash",
            "-c",
            '"$0" -c "$1" "$2" & "$0" -c "$3" "$4" 64 "$5" 8 & wait',
            py,
            BURN_CPU,
            str(workdir / "ready-busy-cpu"),
            HOLD_MEMORY_AND_WRITE,
            str(ready["busy"]),
            str(workdir / "busy-written.bin"),
        ],
    )
    services.start("forking", [py, "-c", FORK_SHARED_MEMORY, str(ready["forking"]), "96", "3"])
    services.start("idle", ["sleep", "600"])
    ready["busy-cpu"] = workdir / "ready-busy-cpu"
    return ready


# ── the native log stack: VictoriaLogs + the collector, on free loopback ports ─────────────────


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def victorialogs_env() -> dict[str, str]:
    """logs/victorialogs.env as a dict (the same file compose and services.toml use)."""
    return read_env_file(ROOT / "logs" / "victorialogs.env")


def http_get(url: str, params: dict[str, Any], timeout: float = 30) -> Any:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}?{query}", timeout=timeout) as response:
        body = response.read().decode()
    return body


@dataclass
class LogStack:
    """Started VictoriaLogs and collector processes tailing ``log_dir``."""

    url: str
    log_dir: Path
    processes: list[subprocess.Popen]

    @classmethod
    def start(cls, workdir: Path) -> "LogStack":
        log_dir, data = workdir / "log", workdir / "victorialogs"
        log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, **victorialogs_env()}
        store = subprocess.Popen(
            [
                str(VICTORIA_LOGS),
                "-envflag.enable",
                "-envflag.prefix=VL_",
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={data}",
            ],
            env=env,
            stdout=open(workdir / "victorialogs.out", "wb"),
            stderr=subprocess.STDOUT,
        )
        stack = cls(url, log_dir, [store])
        stack._wait_healthy()
        collector_env = {
            **os.environ,
            "WIKISTREAMS_LOG_DIR": str(log_dir),
            "WIKISTREAMS_COLLECTOR_STATE": str(workdir / "collector-state"),
            "VICTORIALOGS_URL": url,
            "WIKISTREAMS_COLLECTOR_METRICS_PORT": str(free_port()),
        }
        stack.processes.append(
            subprocess.Popen(
                [str(COLLECTOR), "--config", str(ROOT / "logs" / "otelcol.yaml")],
                env=collector_env,
                stdout=open(workdir / "collector.out", "wb"),
                stderr=subprocess.STDOUT,
            )
        )
        return stack

    def _wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if http_get(f"{self.url}/health", {}, timeout=2).strip() == "OK":
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"VictoriaLogs did not become healthy at {self.url}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def lines_per_service(self, start: int, end: int) -> dict[str, int]:
        body = http_get(
            f"{self.url}/select/logsql/query",
            {"query": "* | stats by (service) count() as n", "start": start, "end": end},
        )
        rows = [json.loads(line) for line in body.splitlines() if line.strip()]
        return {row["service"]: int(row["n"]) for row in rows}

    def wait_ingested(self, services: set[str], start: int, timeout: float = 60) -> dict[str, int]:
        """Until every service has lines and the counts stopped growing (collector caught up)."""
        deadline = time.monotonic() + timeout
        previous: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = self.lines_per_service(start, int(time.time()) + 60)
            if services <= counts.keys() and counts == previous:
                return counts
            previous = counts
            time.sleep(1.5)
        raise AssertionError(f"collector did not ship every service's logs: {previous}")

    def stats_range(self, expr: str, start: int, end: int, step: str) -> list[dict[str, Any]]:
        body = http_get(
            f"{self.url}/select/logsql/stats_query_range",
            {"query": expr, "start": start, "end": end, "step": step},
        )
        answer = json.loads(body)
        assert answer.get("status") == "success", answer
        return answer["data"]["result"]

    def logs(self, expr: str, start: int, end: int, limit: int = 20) -> list[dict[str, Any]]:
        body = http_get(
            f"{self.url}/select/logsql/query",
            {"query": expr, "start": start, "end": end, "limit": limit},
        )
        return [json.loads(line) for line in body.splitlines() if line.strip()]


# ── every query of the provisioning ────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class ProvisionedQuery:
    where: str  # "<dashboard uid> / <panel title>" or "alert <uid>"
    expr: str
    query_type: str  # statsRange | instant
    step: str


def _query(where: str, target: dict) -> ProvisionedQuery:
    """A dashboard target and an alert model carry the query the same way."""
    return ProvisionedQuery(
        where, target["expr"], target.get("queryType", "instant"), target.get("step", "1m")
    )


def provisioned_queries() -> list[ProvisionedQuery]:
    """Every target of every dashboard panel and the datasource query of every alert rule."""
    found = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append(_query(f"{dashboard['uid']} / {panel['title']}", target))
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for data in rule["data"]:
                if data["datasourceUid"] != "__expr__":
                    found.append(_query(f"alert {rule['uid']}", data["model"]))
    return found
