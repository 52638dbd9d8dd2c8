"""native/services.toml and native/versions.env as typed objects, and their {placeholders}.

What runs natively, and how, is data: this module reads it, rejects unknown keys, wrong types and
dangling references before anything starts (a typo must not start a broken JVM), and expands
placeholders such as {root}, {var}, {lib} or {KAFKA_VERSION}. The schema is documented at the top
of native/services.toml.
"""

from __future__ import annotations

import base64
import os
import re
import tomllib
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from wikistreams.native.paths import MARKER, ROOT, ROOT_ENV, Paths

# Overridable so tests can drive the launcher with throw-away service definitions.
SERVICES_ENV = "NATIVECTL_SERVICES_FILE"
DEFAULT_SERVICES_FILE = ROOT / MARKER
VERSIONS_FILE = ROOT / "native" / "versions.env"

# Only [A-Za-z0-9_] names, so JSON such as [{"path":...}] passes through untouched.
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
HEALTH_KINDS = ("http", "tcp", "kafka")


class NativeError(Exception):
    """A problem the user can act on; printed without a traceback."""


def services_file() -> Path:
    """native/services.toml, or the file NATIVECTL_SERVICES_FILE names."""
    return Path(os.environ.get(SERVICES_ENV) or DEFAULT_SERVICES_FILE)


@dataclass(frozen=True)
class Lib:
    """A Maven-resolved folder of jars, var/lib/<name>."""

    name: str
    pom: str
    properties: dict[str, str]


@dataclass(frozen=True)
class Health:
    """How to tell that a service serves: `kind` is one of HEALTH_KINDS."""

    kind: str
    target: str


@dataclass(frozen=True)
class Init:
    """A one-time step before the first start; it runs while `creates` does not exist."""

    command: list[str]
    creates: str


@dataclass(frozen=True)
class Restart:
    """Restart delays after an unexpected exit, in seconds (see keeper.Backoff)."""

    backoff: float = 1.0
    max_backoff: float = 60.0
    reset_after: float = 60.0


@dataclass
class Service:
    """One [services.<name>] table: a long-running process, or a one-shot step (`oneshot`)."""

    name: str
    command: list[str]
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
    health: Health | None = None
    start_timeout: float = 120
    stop_timeout: float = 30
    init: Init | None = None
    restart: Restart = field(default_factory=Restart)
    oneshot: bool = False


@dataclass
class Config:
    """Everything services.toml and versions.env declare, plus the var/ folder in use."""

    versions: dict[str, str]
    variables: dict[str, Any]
    libs: dict[str, Lib]
    services: dict[str, Service]
    path: Path = DEFAULT_SERVICES_FILE
    paths: Paths = field(default_factory=Paths.from_env)

    def lib_dir(self, name: str) -> Path:
        return self.paths.lib / name

    def expand(self, value: str, svc: Service | None = None) -> str:
        """Replace {placeholders}; unknown names fail loudly so typos do not start broken JVMs."""
        context = self._context(svc)

        def sub(text: str) -> str:
            def repl(match: re.Match[str]) -> str:
                key = match.group(1)
                if key not in context:
                    where = f" (service {svc.name})" if svc else ""
                    raise NativeError(f"unknown placeholder {{{key}}} in {text!r}{where}")
                found = context[key]
                if isinstance(found, list):
                    raise NativeError(f"list variable {{{key}}} must be a whole command element")
                return sub(str(found))

            return PLACEHOLDER.sub(repl, text)

        return sub(value)

    def expand_argv(self, argv: list[str], svc: Service) -> list[str]:
        """Expand a command; an element that is exactly a list variable is spliced in."""
        out: list[str] = []
        for item in argv:
            whole = PLACEHOLDER.fullmatch(item)
            listed = self.variables.get(whole.group(1)) if whole else None
            if isinstance(listed, list):
                out.extend(self.expand(str(x), svc) for x in listed)
            else:
                out.append(self.expand(item, svc))
        return out

    def _context(self, svc: Service | None) -> dict[str, Any]:
        paths = self.paths
        context: dict[str, Any] = dict(self.versions)
        context.update(self.variables)
        context.update(root=str(ROOT), var=str(paths.var), log=str(paths.log), run=str(paths.run))
        context.update({f"lib_{name}": str(self.lib_dir(name)) for name in self.libs})
        context["random_id"] = random_kafka_id()
        if svc is not None:
            context["name"] = svc.name
            if svc.lib:
                context["lib"] = str(self.lib_dir(svc.lib))
            context["data"] = svc.data  # expanded where it is used, like any placeholder's value
        return context


def random_kafka_id() -> str:
    """Kafka cluster ids are a random UUID in unpadded URL-safe base64 (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def read_env_file(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse KEY=VALUE lines (versions.env, victorialogs.env): files shared with make, compose and
    shell scripts, so no TOML there."""
    versions = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key.strip()] = value.strip().strip('"')
    return versions


def load_config(path: Path | None = None, paths: Paths | None = None) -> Config:
    """Read services.toml into typed objects and reject unknown keys and dangling references."""
    path = Path(path or services_file()).resolve()
    if path == DEFAULT_SERVICES_FILE.resolve() and not path.is_file():
        raise NativeError(
            f"{ROOT} is not a WikiStreams checkout (no {MARKER}): the launcher runs the services "
            f"from a checkout's files; run it from the checkout's root or set {ROOT_ENV}"
        )
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NativeError(f"cannot read {path}: {exc}") from None
    libs = {}
    for name, spec in _table(raw, "libs", "").items():
        where = f"libs.{name}"
        _only(where, _table_value(where, spec), {"pom", "properties"})
        libs[name] = Lib(name, _str(where, "pom", spec["pom"]), _strs(where, spec, "properties"))
    services = {
        name: _service(name, _table_value(f"services.{name}", spec))
        for name, spec in _table(raw, "services", "").items()
    }
    cfg = Config(
        versions=read_env_file(),
        variables=_table(raw, "vars", ""),
        libs=libs,
        services=services,
        path=path,
        paths=paths or Paths.from_env(),
    )
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Catch wiring mistakes in services.toml before anything starts."""
    from wikistreams.native.order import topo_order

    for svc in cfg.services.values():
        for need in svc.needs:
            if need not in cfg.services:
                raise NativeError(f"{svc.name} needs unknown service {need!r}")
        if svc.lib and svc.lib not in cfg.libs:
            raise NativeError(f"{svc.name} uses unknown lib {svc.lib!r}")
    topo_order(cfg, list(cfg.services))


# ─── reading one [services.<name>] table ───────────────────────────────────────────────────────

_LONG_RUNNING_ONLY = ("health", "restart", "init", "ports")


def _service(name: str, spec: dict[str, Any]) -> Service:
    where = f"services.{name}"
    _only(where, spec, {f.name for f in fields(Service)} - {"name"})
    if "command" not in spec:
        raise NativeError(f"{where}: command is required")
    oneshot = _bool(where, "oneshot", spec.get("oneshot", False))
    if oneshot:
        extra = [key for key in _LONG_RUNNING_ONLY if key in spec]
        if extra:
            raise NativeError(f"{where}: a oneshot service takes no {', '.join(extra)}")
    elif "health" not in spec:
        raise NativeError(f"{where}: health must be one of {sorted(HEALTH_KINDS)}")
    kwargs: dict[str, Any] = {"oneshot": oneshot, "command": _str_list(where, "command", spec)}
    for key in ("description", "group", "lib", "cwd", "data", "url"):
        if key in spec:
            kwargs[key] = _str(where, key, spec[key])
    if "default" in spec:
        kwargs["default"] = _bool(where, "default", spec["default"])
    for key in ("needs", "mkdirs"):
        if key in spec:
            kwargs[key] = _str_list(where, key, spec)
    for key in ("start_timeout", "stop_timeout"):
        if key in spec:
            kwargs[key] = _number(where, key, spec[key])
    if "env" in spec:
        kwargs["env"] = _strs(where, spec, "env")
    if "ports" in spec:
        ports = spec["ports"]
        if not isinstance(ports, list) or not all(isinstance(p, int) for p in ports):
            raise NativeError(f"{where}.ports: expected a list of port numbers")
        kwargs["ports"] = ports
    if "health" in spec:
        kwargs["health"] = _health(where, spec["health"])
    if "init" in spec:
        init = _table_value(f"{where}.init", spec["init"])
        _only(f"{where}.init", init, {"command", "creates"})
        if set(init) != {"command", "creates"}:
            raise NativeError(f"{where}.init: needs command and creates")
        creates = _str(f"{where}.init", "creates", init["creates"])
        kwargs["init"] = Init(_str_list(f"{where}.init", "command", init), creates)
    if "restart" in spec:
        restart = _table_value(f"{where}.restart", spec["restart"])
        _only(f"{where}.restart", restart, {f.name for f in fields(Restart)})
        delays = {k: _number(f"{where}.restart", k, v) for k, v in restart.items()}
        kwargs["restart"] = Restart(**delays)
    return Service(name=name, **kwargs)


def _health(where: str, value: Any) -> Health:
    table = _table_value(f"{where}.health", value)
    if len(table) != 1 or next(iter(table)) not in HEALTH_KINDS:
        raise NativeError(f"{where}: health must be one of {sorted(HEALTH_KINDS)}")
    kind, target = next(iter(table.items()))
    return Health(kind, _str(f"{where}.health", kind, target))


def _table(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    return _table_value(f"{where}{key}", raw.get(key, {}))


def _table_value(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NativeError(f"{where}: expected a table")
    return value


def _only(where: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise NativeError(f"{where}: unknown keys {sorted(unknown)}")


def _str(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise NativeError(f"{where}.{key}: expected a string, got {value!r}")
    return value


def _bool(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise NativeError(f"{where}.{key}: expected true or false, got {value!r}")
    return value


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NativeError(f"{where}.{key}: expected a number, got {value!r}")
    return float(value)


def _str_list(where: str, key: str, spec: dict[str, Any]) -> list[str]:
    value = spec[key]
    if not isinstance(value, list) or not value and key == "command":
        raise NativeError(f"{where}.{key}: expected a non-empty list of strings")
    return [_str(where, key, item) for item in value]


def _strs(where: str, spec: dict[str, Any], key: str) -> dict[str, str]:
    """A table of strings; numbers are accepted and kept as their text (env = { PORT = 1 })."""
    table = _table_value(f"{where}.{key}", spec.get(key, {}))
    out = {}
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise NativeError(f"{where}.{key}.{name}: expected a string, got {value!r}")
        out[name] = str(value)
    return out
