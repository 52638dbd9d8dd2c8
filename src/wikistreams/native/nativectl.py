#!/usr/bin/env python3
"""Native (no-Docker) launcher for the WikiStreams servers: Kafka, ZooKeeper and Druid.

Why this exists: the target machines have Java and Maven but no container engine, so the real
servers run as plain JVM processes whose jars Maven resolves from Central. What runs, and how, is
data in native/services.toml; this file only knows how to resolve libs, start processes in
dependency order, check health, keep them running (a small keeper process per service restarts
it with exponential backoff after an unexpected exit, like compose's `restart: unless-stopped`),
and stop exactly the processes it started (pid and keeper files under var/run/). Standard library
only, so it works before any virtualenv exists.

    python3 src/wikistreams/native/nativectl.py up [NAME|GROUP ...]
    python3 src/wikistreams/native/nativectl.py down [NAME|GROUP ...]
    python3 src/wikistreams/native/nativectl.py status
    python3 src/wikistreams/native/nativectl.py clean
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VAR = ROOT / "var"
RUN_DIR = VAR / "run"
LOG_DIR = VAR / "log"
DATA_DIR = VAR / "data"
LIB_DIR = VAR / "lib"
# Overridable so tests can drive the launcher with throw-away service definitions.
SERVICES_FILE = Path(os.environ.get("NATIVECTL_SERVICES_FILE", ROOT / "native" / "services.toml"))
VERSIONS_FILE = ROOT / "native" / "versions.env"
MAVEN_SETTINGS = ROOT / "native" / "maven" / "settings.xml"

PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
POLL_SECONDS = 1.0
PROGRESS_EVERY = 10.0


class NativeError(Exception):
    """A problem the user can act on; printed without a traceback."""


# ─── configuration ─────────────────────────────────────────────────────────────────────────────


@dataclass
class Lib:
    """A Maven-resolved folder of jars (var/lib/<name>)."""

    name: str
    pom: str
    properties: dict[str, str]

    @property
    def dir(self) -> Path:
        return LIB_DIR / self.name


@dataclass
class Service:
    """One long-running process declared in services.toml."""

    name: str
    command: list
    description: str = ""
    default: bool = False
    group: str = ""
    needs: list[str] = field(default_factory=list)
    lib: str = ""
    cwd: str = "{root}"
    data: str = "{var}/data/{name}"
    mkdirs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)
    url: str = ""
    health: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 120
    stop_timeout: float = 30
    init: dict | None = None
    restart: dict = field(default_factory=dict)


@dataclass
class Config:
    """Everything services.toml and versions.env declare."""

    versions: dict[str, str]
    variables: dict
    libs: dict[str, Lib]
    services: dict[str, Service]
    path: Path = SERVICES_FILE

    def expand(self, value: str, svc: Service | None = None) -> str:
        """Replace {placeholders}; unknown names fail loudly so typos do not start broken JVMs."""
        context = self._context(svc)

        def repl(match: re.Match) -> str:
            key = match.group(1)
            if key not in context:
                where = f" (service {svc.name})" if svc else ""
                raise NativeError(f"unknown placeholder {{{key}}} in {value!r}{where}")
            found = context[key]
            if isinstance(found, list):
                raise NativeError(f"list variable {{{key}}} must be a whole command element")
            text = str(found)
            return self.expand(text, svc) if PLACEHOLDER.search(text) else text

        return PLACEHOLDER.sub(repl, value)

    def expand_argv(self, argv: list, svc: Service) -> list[str]:
        """Expand a command; an element that is exactly a list variable is spliced in."""
        out: list[str] = []
        for item in argv:
            whole = PLACEHOLDER.fullmatch(item)
            if whole and isinstance(self.variables.get(whole.group(1)), list):
                out.extend(self.expand(str(x), svc) for x in self.variables[whole.group(1)])
            else:
                out.append(self.expand(item, svc))
        return out

    def _context(self, svc: Service | None) -> dict:
        context: dict = dict(self.versions)
        context.update(self.variables)
        context.update(root=str(ROOT), var=str(VAR), log=str(LOG_DIR), run=str(RUN_DIR))
        context.update({f"lib_{name}": str(lib.dir) for name, lib in self.libs.items()})
        context["random_id"] = random_kafka_id()
        if svc is not None:
            context["name"] = svc.name
            if svc.lib:
                context["lib"] = str(self.libs[svc.lib].dir)
            context["data"] = PLACEHOLDER.sub(
                lambda m: str(context.get(m.group(1), m.group(0))), svc.data
            )
        return context


def random_kafka_id() -> str:
    """Kafka cluster ids are a random UUID in unpadded URL-safe base64 (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse KEY=VALUE lines; versions.env is shared with make and compose, so no TOML there."""
    versions = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key.strip()] = value.strip().strip('"')
    return versions


def load_config(path: Path = SERVICES_FILE) -> Config:
    """Read services.toml into typed objects and reject unknown keys and dangling references."""
    raw = tomllib.loads(path.read_text())
    libs = {
        name: Lib(name, spec["pom"], dict(spec.get("properties", {})))
        for name, spec in raw.get("libs", {}).items()
    }
    services = {}
    known = set(Service.__dataclass_fields__)
    for name, spec in raw.get("services", {}).items():
        unknown = set(spec) - known
        if unknown:
            raise NativeError(f"services.{name}: unknown keys {sorted(unknown)}")
        services[name] = Service(name=name, **spec)
    cfg = Config(read_versions(), dict(raw.get("vars", {})), libs, services, Path(path).resolve())
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Catch wiring mistakes in services.toml before anything starts."""
    for svc in cfg.services.values():
        for need in svc.needs:
            if need not in cfg.services:
                raise NativeError(f"{svc.name} needs unknown service {need!r}")
        if svc.lib and svc.lib not in cfg.libs:
            raise NativeError(f"{svc.name} uses unknown lib {svc.lib!r}")
        if len(svc.health) != 1 or next(iter(svc.health)) not in HEALTH_CHECKS:
            raise NativeError(f"{svc.name}: health must be one of {sorted(HEALTH_CHECKS)}")
        unknown = set(svc.restart) - {"backoff", "max_backoff", "reset_after"}
        if unknown:
            raise NativeError(f"{svc.name}: unknown restart keys {sorted(unknown)}")
    topo_order(cfg, list(cfg.services))


# ─── selection and ordering ────────────────────────────────────────────────────────────────────


def resolve_names(cfg: Config, names: list[str] | None) -> list[str]:
    """Map user words (service names or group names) to services; none = the default set."""
    if not names:
        return [n for n, s in cfg.services.items() if s.default]
    chosen: list[str] = []
    for word in names:
        for part in word.replace(",", " ").split():
            members = [n for n, s in cfg.services.items() if s.group == part]
            if part in cfg.services:
                members = [part]
            if not members:
                groups = sorted({s.group for s in cfg.services.values() if s.group})
                raise NativeError(
                    f"unknown service or group {part!r}; known: "
                    f"{', '.join(list(cfg.services) + groups)}"
                )
            chosen.extend(m for m in members if m not in chosen)
    return chosen


def with_needs(cfg: Config, names: list[str]) -> list[str]:
    """Add every transitive dependency, because `up druid` is useless without ZooKeeper."""
    result: list[str] = []

    def visit(name: str) -> None:
        if name in result:
            return
        for need in cfg.services[name].needs:
            visit(need)
        result.append(name)

    for name in names:
        visit(name)
    return result


def with_dependents(cfg: Config, names: list[str]) -> list[str]:
    """Add services that need the given ones: stopping ZooKeeper under Druid breaks Druid."""
    result = list(names)
    changed = True
    while changed:
        changed = False
        for svc in cfg.services.values():
            if svc.name not in result and any(n in result for n in svc.needs):
                result.append(svc.name)
                changed = True
    return result


def topo_order(cfg: Config, names: list[str]) -> list[str]:
    """Order names so that every service comes after what it needs (stable, cycle-checked)."""
    ordered: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise NativeError(f"dependency cycle: {' -> '.join(path + (name,))}")
        state[name] = "visiting"
        for need in cfg.services[name].needs:
            if need in names:
                visit(need, path + (name,))
        state[name] = "done"
        ordered.append(name)

    for name in names:
        visit(name, ())
    return ordered


# ─── Maven libs ────────────────────────────────────────────────────────────────────────────────


def lib_stamp(cfg: Config, lib: Lib) -> str:
    """Identity of a resolved lib: the POM bytes plus the properties it was resolved with."""
    import hashlib  # here, not at the top: OpenSSL costs each keeper process ~4 MiB of RSS

    pom = Path(cfg.expand(lib.pom))
    props = {k: cfg.expand(v) for k, v in sorted(lib.properties.items())}
    digest = hashlib.sha256(pom.read_bytes() + json.dumps(props).encode()).hexdigest()
    return digest


def lib_is_current(cfg: Config, lib: Lib) -> bool:
    """True when var/lib/<name> was resolved from the current POM and versions."""
    stamp = lib.dir / ".resolved"
    return stamp.is_file() and stamp.read_text().strip() == lib_stamp(cfg, lib)


def ensure_libs(cfg: Config, names: list[str]) -> None:
    """Resolve, with Maven, each lib the given services use and that is missing or outdated.

    A lib is never replaced under a running JVM (its classes load lazily from those jars), so an
    outdated lib that a running service still uses is an error asking for `down` first.
    """
    needed = []
    for name in names:
        lib = cfg.services[name].lib
        if lib and lib not in needed:
            needed.append(lib)
    for lib_name in needed:
        lib = cfg.libs[lib_name]
        if lib_is_current(cfg, lib):
            continue
        users = [n for n in running_services(cfg) if cfg.services[n].lib == lib_name]
        if users:
            raise NativeError(
                f"lib {lib_name!r} changed (POM/version) but {', '.join(users)} still run on the "
                f"old jars; run `nativectl.py down {' '.join(users)}` first"
            )
        resolve_lib(cfg, lib)


def maven_command(cfg: Config, lib: Lib, out_dir: Path) -> list[str]:
    """The mvn call; NATIVECTL_MAVEN_ARGS adds flags such as -Dmaven.repo.local=/tmp/m2."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise NativeError("mvn not found on PATH; install Maven 3.8+ to fetch the server jars")
    argv = [mvn, "-B", "-s", str(MAVEN_SETTINGS), "-f", cfg.expand(lib.pom)]
    argv += [f"-D{k}={cfg.expand(v)}" for k, v in lib.properties.items()]
    argv += shlex.split(os.environ.get("NATIVECTL_MAVEN_ARGS", ""))
    argv += [
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out_dir}",
    ]
    return argv


def resolve_lib(cfg: Config, lib: Lib) -> None:
    """Run Maven into a temp folder and swap it in, so a failed download never leaves half a lib."""
    tmp = lib.dir.with_name(lib.dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    argv = maven_command(cfg, lib, tmp)
    print(f"[lib] {lib.name}: resolving with Maven into {rel(lib.dir)}", flush=True)
    started = time.monotonic()
    downloads, tail = run_maven(argv)
    if not tmp.is_dir():
        print("\n".join(tail), file=sys.stderr)
        raise NativeError(f"Maven failed to resolve lib {lib.name!r} (command: {shlex.join(argv)})")
    (tmp / ".resolved").write_text(lib_stamp(cfg, lib) + "\n")
    shutil.rmtree(lib.dir, ignore_errors=True)
    tmp.rename(lib.dir)
    jars = list(lib.dir.glob("*.jar"))
    size = sum(j.stat().st_size for j in jars)
    print(
        f"[lib] {lib.name}: {len(jars)} jars, {size / 2**20:.0f} MiB in {rel(lib.dir)} "
        f"({downloads} files downloaded, {time.monotonic() - started:.0f}s)",
        flush=True,
    )


def run_maven(argv: list[str]) -> tuple[int, list[str]]:
    """Stream Maven's output, echoing each downloaded jar; returns (download count, last lines)."""
    downloads = 0
    tail: list[str] = []
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-40:]
        if "Downloaded from" in line:
            downloads += 1
            if ".jar " in line:
                url, _, size = line.split(": ", 1)[-1].partition(" ")
                print(f"  downloaded {url.rsplit('/', 1)[-1]} {size}", flush=True)
    if proc.wait() != 0:
        print("\n".join(tail), file=sys.stderr)
        raise NativeError(f"mvn exited with {proc.returncode}")
    return downloads, tail


# ─── processes ─────────────────────────────────────────────────────────────────────────────────


def pid_file(name: str) -> Path:
    return RUN_DIR / f"{name}.pid"


def log_file(name: str) -> Path:
    return LOG_DIR / f"{name}.log"


def proc_start_ticks(pid: int) -> int | None:
    """Kernel start time of a pid; recorded so a recycled pid is never mistaken for ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict) -> None:
    """Replace the file in one step (rename), so a concurrent `status` never reads half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, path)


def alive(record: dict) -> bool:
    """True while the recorded process runs: same pid *and* kernel start time, not a zombie."""
    reap(record["pid"])
    return proc_start_ticks(record["pid"]) == record.get("start_ticks")


def read_pid(name: str) -> dict | None:
    """The pid record of a running service process, or None.

    A stale file is left in place: while a keeper waits to restart its service it owns the file
    and overwrites it on the next start; `down` and `clean` remove what is left over.
    """
    record = read_json(pid_file(name))
    return record if record is not None and alive(record) else None


def reap(pid: int) -> None:
    """Collect our own exited child (with_stack.py keeps children), so it is not left a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def group_pids(pgid: int) -> list[int]:
    """Live processes in a process group (a service and anything it forked)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def rss_kib(pids: list[int]) -> int:
    """Resident memory of the given processes, in KiB (VmRSS from /proc)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_ports_free(svc: Service) -> None:
    for port in svc.ports:
        if port_open("127.0.0.1", port):
            raise NativeError(
                f"{svc.name}: port {port} is already in use by a process nativectl did not start "
                f"(see `ss -ltnp 'sport = :{port}'`)"
            )


def start_process(cfg: Config, svc: Service, argv: list[str]) -> tuple[subprocess.Popen, dict]:
    """Start the command in its own session (Ctrl-C in a terminal must not reach it); record it.

    Its own process group also lets `terminate` stop everything the service forked at once.
    """
    prepare_dirs(cfg, svc)
    banner = f"nativectl start {time.strftime('%Y-%m-%dT%H:%M:%S%z')} ===\n=== {shlex.join(argv)}"
    log = open_log(svc, banner)
    try:
        proc = subprocess.Popen(argv, start_new_session=True, **process_io(cfg, svc, log))
    finally:
        log.close()
    record = {
        "pid": proc.pid,
        "pgid": proc.pid,
        "start_ticks": proc_start_ticks(proc.pid),
        "started": time.time(),
        "argv": argv,
    }
    write_json(pid_file(svc.name), record)
    return proc, record


def prepare_dirs(cfg: Config, svc: Service) -> None:
    for path in [RUN_DIR, LOG_DIR, cfg.expand(svc.data, svc)] + svc.mkdirs:
        Path(cfg.expand(str(path), svc)).mkdir(parents=True, exist_ok=True)


def open_log(svc: Service, banner: str):
    """The service's log file, opened for appending, with a `=== banner ===` line written."""
    log = open(log_file(svc.name), "ab")
    log.write(f"\n=== {banner} ===\n".encode())
    log.flush()
    return log


def process_io(cfg: Config, svc: Service, log) -> dict:
    """Working dir, environment and stdio shared by a service and its init step."""
    return {
        "cwd": cfg.expand(svc.cwd, svc),
        "env": service_env(cfg, svc),
        "stdin": subprocess.DEVNULL,
        "stdout": log,
        "stderr": subprocess.STDOUT,
    }


def service_env(cfg: Config, svc: Service) -> dict[str, str]:
    env = dict(os.environ)
    env.update({k: cfg.expand(str(v), svc) for k, v in svc.env.items()})
    return env


def run_init(cfg: Config, svc: Service) -> None:
    """Run the one-time init step (e.g. Kafka's storage format) unless its marker file exists."""
    if not svc.init:
        return
    marker = Path(cfg.expand(svc.init["creates"], svc))
    if marker.exists():
        return
    argv = cfg.expand_argv(svc.init["command"], svc)
    print(f"[init] {svc.name}: {shlex.join(argv[-6:])}", flush=True)
    with open_log(svc, f"nativectl init: {shlex.join(argv)}") as log:
        code = subprocess.call(argv, **process_io(cfg, svc, log))
    if code != 0 or not marker.exists():
        raise NativeError(f"{svc.name}: init failed (exit {code}); see {rel(log_file(svc.name))}")


def terminate(svc: Service, record: dict) -> str:
    """SIGTERM the service's process group, wait, SIGKILL after stop_timeout; say how it ended."""
    pgid = record["pgid"]
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return "already gone"
    outcome = "stopped"
    if not wait_group_exit(record["pid"], pgid, svc.stop_timeout):
        outcome = f"killed after {svc.stop_timeout:.0f}s"
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_group_exit(record["pid"], pgid, 5)
    return outcome


def wait_group_exit(pid: int, pgid: int, seconds: float) -> bool:
    """Wait until no live process is left in the group; False on timeout."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reap(pid)
        if not group_pids(pgid):
            return True
        time.sleep(0.2)
    return False


def wait_reaped(pids: list[int], seconds: float) -> None:
    """Give init a moment to reap the exited JVMs, so `pgrep java` right after `down` is empty."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid in pids:
            reap(pid)
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return
        time.sleep(0.1)


# ─── supervision ───────────────────────────────────────────────────────────────────────────────


KEEPER_REGISTER_SECONDS = 15.0


def keeper_file(name: str) -> Path:
    return RUN_DIR / f"{name}.keeper"


def lock_file(name: str) -> Path:
    return RUN_DIR / f"{name}.lock"


def read_keeper(name: str) -> dict | None:
    """What a live keeper publishes (restarts, last exit, next start), or None if none runs."""
    state = read_json(keeper_file(name))
    return state if state is not None and alive(state) else None


def describe_exit(code: int) -> str:
    """`exit 3`, or the signal's name: Popen reports a death by signal N as -N."""
    if code >= 0:
        return f"exit {code}"
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


@dataclass
class Backoff:
    """Delay before a restart: `backoff` seconds, doubled per quick exit, at most `max_backoff`.

    A run that lasted `reset_after` seconds counts as a success, so a service that crashes once a
    day restarts after 1 s, while one that crashes on start is retried ever more slowly.
    """

    backoff: float = 1.0
    max_backoff: float = 60.0
    reset_after: float = 60.0
    failures: int = 0

    def delay(self, uptime: float) -> float:
        if uptime >= self.reset_after:
            self.failures = 0
        wait = min(self.max_backoff, self.backoff * 2**self.failures)
        if wait < self.max_backoff:
            self.failures += 1
        return wait


class Stop(Exception):
    """SIGTERM or SIGINT reached a keeper while it waits: stop the service for good."""


class Keeper:
    """`nativectl.py keep NAME`: runs one service and restarts it after every exit until SIGTERM.

    One keeper per service rather than one daemon for all: a service keeps the environment of the
    `up` that started it (e.g. SSE_URL), `down NAME` is one signal to that service's keeper, and a
    failing keeper affects one service only. Its state (restart count, last exit) is a JSON file
    in var/run that `status` reads; its messages go to the service's log.
    """

    def __init__(self, cfg: Config, svc: Service):
        self.cfg, self.svc = cfg, svc
        self.argv = cfg.expand_argv(svc.command, svc)
        self.backoff = Backoff(**svc.restart)
        self.record: dict | None = None  # pid record of the running service process
        self.stopping = False
        self.interruptible = False
        me = os.getpid()
        self.state = {
            "pid": me,
            "start_ticks": proc_start_ticks(me),
            "restarts": 0,
            "last_exit": None,
            "last_exit_at": None,
            "next_start": None,
            "outcome": None,
        }

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.save()
        try:
            while True:
                code, uptime = self.run_once()
                delay = self.backoff.delay(uptime)
                now = time.time()
                self.state.update(
                    last_exit=describe_exit(code), last_exit_at=now, next_start=now + delay
                )
                self.save()
                self.say(
                    f"{self.svc.name} exited ({describe_exit(code)}) after {uptime:.1f}s; "
                    f"restart #{self.state['restarts'] + 1} in {delay:g}s"
                )
                self.pause(time.sleep, delay)
                self.state["restarts"] += 1
        except Stop:
            pass
        finally:
            self.state.update(outcome=self.stop_child(), next_start=None)
            self.save()

    def run_once(self) -> tuple[int, float]:
        """Start the command, wait until it exits; returns (exit code, seconds it ran)."""
        began = time.monotonic()
        try:
            proc, self.record = start_process(self.cfg, self.svc, self.argv)
        except OSError as exc:
            self.say(f"cannot run {self.argv[0]!r}: {exc}")
            return 127, 0.0
        self.state["next_start"] = None
        self.save()
        code = self.pause(proc.wait)
        if group_pids(self.record["pgid"]):
            # Like a container: what the dead process forked must not keep its ports.
            self.say(f"stopping what is left of {self.svc.name}'s process group")
            terminate(self.svc, self.record)
        self.record = None
        pid_file(self.svc.name).unlink(missing_ok=True)
        return code, time.monotonic() - began

    def stop_child(self) -> str:
        """SIGTERM the service's process group, SIGKILL after stop_timeout; how it ended."""
        if self.record is None:
            outcome = "stopped (was waiting to restart)"
        else:
            outcome = terminate(self.svc, self.record)
        self.record = None
        pid_file(self.svc.name).unlink(missing_ok=True)
        return outcome

    def pause(self, wait, *args):
        """Block in `wait` (the service's exit, a backoff sleep) where a stop request may cut in.

        Elsewhere a signal only sets a flag, so it never interrupts the keeper half-way through
        starting a process or writing its state.
        """
        self.interruptible = True
        try:
            if self.stopping:
                raise Stop
            return wait(*args)
        finally:
            self.interruptible = False

    def _on_signal(self, _signum, _frame) -> None:
        self.stopping = True
        if self.interruptible:
            raise Stop

    def save(self) -> None:
        write_json(keeper_file(self.svc.name), self.state)

    def say(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        print(f"=== nativectl keeper {stamp}: {message} ===", flush=True)


@contextlib.contextmanager
def launch_lock(name: str):
    """Serialise starting one service across nativectl processes (two `up`s, `with_stack.py`).

    Without it both could find the service stopped and start a keeper each; the loser's clean-up
    would then orphan the winner's keeper.
    """
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(lock_file(name), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def launch(cfg: Config, svc: Service) -> dict | None:
    """Check ports, run the init step, start the service's keeper; return the service's pid record
    (None if it exited at once).

    Returns once the keeper has started the service (or recorded why it could not), so the
    caller's health polling sees either a process or its exit.
    """
    check_ports_free(svc)
    prepare_dirs(cfg, svc)
    run_init(cfg, svc)
    for stale in (pid_file(svc.name), keeper_file(svc.name)):
        stale.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "wikistreams.native.nativectl", "keep", svc.name]
    argv += ["--services", str(cfg.path)]
    with open(log_file(svc.name), "ab") as log:
        keeper = subprocess.Popen(
            argv,
            cwd=ROOT,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + KEEPER_REGISTER_SECONDS
    while time.monotonic() < deadline and keeper.poll() is None:
        state = read_keeper(svc.name)
        record = read_pid(svc.name)
        if state is not None and (record is not None or state["last_exit"]):
            return record
        time.sleep(0.05)
    if keeper.poll() is None:
        keeper.terminate()
    show_tail(svc.name)
    raise NativeError(f"{svc.name}: its keeper did not start; see {rel(log_file(svc.name))}")


def stop_service(cfg: Config, name: str, pids: list[int]) -> str | None:
    """Stop one service for good: its keeper first (so nothing restarts it), then any process
    left without one (started by an older nativectl, or its keeper was killed). None if nothing
    ran. Appends the pids that exited to `pids`."""
    svc = cfg.services[name]
    keeper, record = read_keeper(name), read_pid(name)
    outcome = None
    if keeper is not None:
        pids.append(keeper["pid"])
        outcome = stop_keeper(svc, keeper)
    record = read_pid(name) or record
    if record is not None:
        pids.append(record["pid"])
        if alive(record):
            outcome = terminate(svc, record)
    for path in (pid_file(name), keeper_file(name)):
        path.unlink(missing_ok=True)
    return outcome


def stop_keeper(svc: Service, keeper: dict) -> str:
    """SIGTERM the keeper, which stops its service and exits; SIGKILL it if it hangs."""
    try:
        os.kill(keeper["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + svc.stop_timeout + 10
    while alive(keeper):
        if time.monotonic() > deadline:
            os.kill(keeper["pid"], signal.SIGKILL)
            return "keeper did not exit; killed it"
        time.sleep(0.1)
    final = read_json(keeper_file(svc.name)) or {}
    return final.get("outcome") or "stopped"


def service_running(name: str) -> bool:
    """A service runs while its keeper or its process does (a keeper may be between restarts)."""
    return read_keeper(name) is not None or read_pid(name) is not None


# ─── health ────────────────────────────────────────────────────────────────────────────────────


def split_hostport(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host, int(port)


def check_http(url: str) -> bool:
    """Healthy when the URL answers 2xx quickly (Druid's /status/health)."""
    import urllib.error  # here, not at the top: keepers never check health, and urllib.request
    import urllib.request  # (ssl, http, email) would cost each of them ~7 MiB of RSS

    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def check_tcp(target: str) -> bool:
    host, port = split_hostport(target)
    return port_open(host, port)


def check_kafka(target: str) -> bool:
    """Send a real Kafka Metadata (v4) request; healthy when the broker lists at least one broker.

    An open port alone is not enough: the Kafka wire answer proves the KRaft broker has joined
    its controller and serves requests. v4 is the oldest Metadata version Kafka 4 still accepts.
    """
    host, port = split_hostport(target)
    client = b"nativectl"
    header = struct.pack(">hhih", 3, 4, 7, len(client)) + client
    body = struct.pack(">i?", -1, False)  # all topics, no auto-creation
    request = header + body
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.settimeout(3)
            sock.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", recv_exact(sock, 4))[0]
            payload = recv_exact(sock, size)
    except (OSError, struct.error):
        return False
    correlation, _throttle, brokers = struct.unpack(">iii", payload[:12])
    return correlation == 7 and brokers >= 1


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


HEALTH_CHECKS = {"http": check_http, "tcp": check_tcp, "kafka": check_kafka}


def healthy(cfg: Config, svc: Service) -> bool:
    kind, target = next(iter(svc.health.items()))
    return HEALTH_CHECKS[kind](cfg.expand(target, svc))


# ─── commands ──────────────────────────────────────────────────────────────────────────────────


def rel(path: Path | str) -> str:
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


def up(cfg: Config, names: list[str] | None = None, started: list[str] | None = None) -> list[str]:
    """Start what is not running (dependencies first), wait for health; returns what it started.

    Every service runs under its own keeper, which restarts it after an unexpected exit.
    Services start in waves: everything whose needs are healthy is launched together, so the
    Druid processes boot in parallel once ZooKeeper and the coordinator answer. `started` is
    filled in place, so a caller that is interrupted half-way still knows what to stop.
    """
    order = topo_order(cfg, with_needs(cfg, resolve_names(cfg, names)))
    started = [] if started is None else started
    launched: dict[str, float] = {}
    pending = [n for n in order if not service_running(n)]
    ensure_libs(cfg, pending)
    waiting = [n for n in order if n not in pending]
    if not pending:
        print(f"[up] already running: {', '.join(order)}")
    for name in waiting:
        if read_keeper(name) is None:
            print(f"[up] {name}: running without a keeper (no restarts); {RESUPERVISE}")
    try:
        wait_loop(cfg, pending, waiting, launched, started)
    except BaseException:
        if started:
            print(f"[up] interrupted; started before that: {', '.join(started)}", file=sys.stderr)
        raise
    print_endpoints(cfg, order)
    return started


def wait_loop(cfg, pending, waiting, launched, started) -> None:
    """Launch ready services and poll health until every selected service is healthy."""
    ok: set[str] = set()
    last_note: dict[str, float] = {}
    while pending or waiting:
        for name in list(pending):
            if all(need in ok for need in cfg.services[name].needs):
                pending.remove(name)
                waiting.append(name)
                with launch_lock(name):
                    if service_running(name):
                        print(f"[up] {name}: started meanwhile by another nativectl")
                        continue
                    record = launch(cfg, cfg.services[name])
                started.append(name)
                launched[name] = time.monotonic()
                what = f"pid {record['pid']}" if record else "and exited at once"
                print(f"[up] {name}: started {what} (supervised), log {rel(log_file(name))}")
        for name in list(waiting):
            poll_one(cfg, name, ok, waiting, launched, last_note)
        if pending or waiting:
            sys.stdout.flush()
            time.sleep(POLL_SECONDS)


def poll_one(cfg, name, ok, waiting, launched, last_note) -> None:
    """One health poll of one service: done, still waiting (with a progress line), or failed."""
    svc = cfg.services[name]
    ours = name in launched
    begun = launched.setdefault(name, time.monotonic())
    elapsed = time.monotonic() - begun
    if healthy(cfg, svc):
        ok.add(name)
        waiting.remove(name)
        note = f"healthy after {elapsed:.1f}s" if ours else "already running, healthy"
        print(f"[up] {name}: {note}", flush=True)
        return
    keeper = read_keeper(name)
    if keeper is None and read_pid(name) is None:
        show_tail(name)
        raise NativeError(f"{name} exited during startup; see {rel(log_file(name))}")
    if ours and keeper is not None and keeper["last_exit"]:
        # A crash before the first healthy answer is mostly configuration (a port, a missing
        # venv): fail `up` with the log instead of retrying it in the background.
        show_tail(name)
        stop_services(cfg, [name])
        raise NativeError(
            f"{name} exited during startup ({keeper['last_exit']}); stopped it instead of "
            f"restarting it, see {rel(log_file(name))}"
        )
    if elapsed > svc.start_timeout:
        show_tail(name)
        raise NativeError(
            f"{name} not healthy after {svc.start_timeout:.0f}s ({svc.health}); "
            f"it keeps running, see {rel(log_file(name))} or run `down`"
        )
    if elapsed - last_note.get(name, 0.0) >= PROGRESS_EVERY:
        last_note[name] = elapsed
        print(f"[up] {name}: waiting for health ... {elapsed:.0f}s", flush=True)


def show_tail(name: str, lines: int = 25) -> None:
    try:
        text = log_file(name).read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    print(f"--- last {len(text)} lines of {rel(log_file(name))} ---", file=sys.stderr)
    print("\n".join(text), file=sys.stderr)


def print_endpoints(cfg: Config, names: list[str]) -> None:
    print("[up] ready:")
    for name in names:
        svc = cfg.services[name]
        print(f"  {name:<20} {cfg.expand(svc.url, svc)}")


def down(cfg: Config, names: list[str] | None = None) -> None:
    """Stop services nativectl started, dependents first; a bare `down` stops every service."""
    chosen = resolve_names(cfg, names) if names else list(cfg.services)
    if not stop_services(cfg, with_dependents(cfg, chosen)):
        print("[down] nothing running")


def stop_services(cfg: Config, names: list[str]) -> bool:
    """Stop exactly these services (those that run), in reverse dependency order, for good."""
    stopped: list[int] = []
    for name in reversed(topo_order(cfg, names)):
        t0 = time.monotonic()
        pids: list[int] = []
        outcome = stop_service(cfg, name, pids)
        if outcome is None:
            continue
        stopped += pids
        print(f"[down] {name}: {outcome} (pid {pids[-1]}, {time.monotonic() - t0:.1f}s)")
    wait_reaped(stopped, 5)
    return bool(stopped)


RESUPERVISE = "`nativectl.py down NAME` then `up NAME` puts it under a keeper"


def status(cfg: Config) -> int:
    """Print one row per service; exit code 0 when every running service is healthy.

    RESTARTS counts restarts after unexpected exits since `up`; LAST EXIT is the latest such exit.
    """
    rows = [("SERVICE", "STATE", "PID", "HEALTH", "RESTARTS", "LAST EXIT", "RSS", "URL")]
    total = keepers = 0
    bad = 0
    unsupervised = []
    for name in topo_order(cfg, list(cfg.services)):
        svc = cfg.services[name]
        url = cfg.expand(svc.url, svc)
        keeper, record = read_keeper(name), read_pid(name)
        if keeper is None and record is None:
            rows.append((name, "stopped", "-", "-", "-", "-", "-", url))
            continue
        if keeper is None:
            unsupervised.append(name)
            restarts, last_exit = "-", "-"
        else:
            keepers += rss_kib([keeper["pid"]])
            restarts, last_exit = str(keeper["restarts"]), keeper["last_exit"] or "-"
        if record is None:  # between an exit and the restart
            wait = max(0.0, (keeper.get("next_start") or time.time()) - time.time())
            rows.append((name, "restarting", "-", f"in {wait:.0f}s", restarts, last_exit, "-", url))
            bad += 1
            continue
        rss = rss_kib(group_pids(record["pgid"]))
        total += rss
        health = "ok" if healthy(cfg, svc) else "FAIL"
        bad += health != "ok"
        pid = str(record["pid"])
        rows.append((name, "running", pid, health, restarts, last_exit, f"{rss // 1024}M", url))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    print(
        f"total RSS of running services: {total / 1024:.0f} MiB "
        f"(+ {keepers / 1024:.0f} MiB for their keepers)"
    )
    for name in unsupervised:
        print(f"note: {name} runs without a keeper (no restarts); {RESUPERVISE}")
    return 1 if bad else 0


def clean(cfg: Config) -> None:
    """Stop everything, then wipe data, logs and pid files; jars under var/lib stay."""
    down(cfg)
    alive_now = running_services(cfg)
    if alive_now:
        raise NativeError(f"still running, not wiping: {', '.join(alive_now)}")
    for path in (DATA_DIR, LOG_DIR, RUN_DIR, VAR / "tmp"):
        if path.exists():
            shutil.rmtree(path)
            print(f"[clean] removed {rel(path)}")


def running_services(cfg: Config) -> list[str]:
    """Names of services that run (or whose keeper is about to restart them)."""
    return [n for n in cfg.services if service_running(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nativectl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, help_text in (
        ("up", "start services (default: those marked default = true) and wait for health"),
        ("down", "stop services nativectl started (default: all)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("names", nargs="*", help="service or group names (e.g. kafka druid)")
    sub.add_parser("status", help="show state, pid, health, restarts, memory and URL per service")
    sub.add_parser("clean", help="down, then wipe var/data, var/log, var/run (keeps var/lib)")
    keep = sub.add_parser("keep", help="(internal, started by up) run one service, restart it")
    keep.add_argument("name")
    keep.add_argument("--services", type=Path, default=SERVICES_FILE)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "keep":
            cfg = load_config(args.services)
            Keeper(cfg, cfg.services[args.name]).run()
            return 0
        cfg = load_config()
        if args.cmd == "up":
            up(cfg, args.names)
        elif args.cmd == "down":
            down(cfg, args.names)
        elif args.cmd == "status":
            return status(cfg)
        elif args.cmd == "clean":
            clean(cfg)
    except NativeError as exc:
        print(f"nativectl: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nnativectl: interrupted; `nativectl.py down` stops what started", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
