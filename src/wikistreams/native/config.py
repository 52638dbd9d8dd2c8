"""native/services.toml and native/versions.env as typed objects.

What runs natively, and how, is data: the pydantic models below are its schema (native/services.toml
points here). They reject unknown keys, wrong types, dangling references, cycles and unknown
{placeholders} (see placeholders.py) before anything starts: a typo must not start a broken JVM.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from dotenv import dotenv_values
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError
from pydantic import ValidationInfo, model_validator

from wikistreams.native import placeholders
from wikistreams.native.paths import MARKER, ROOT, ROOT_ENV, Paths

# Overridable so tests can drive the launcher with throw-away service definitions.
SERVICES_ENV = "NATIVECTL_SERVICES_FILE"
DEFAULT_SERVICES_FILE = ROOT / MARKER
VERSIONS_FILE = ROOT / "native" / "versions.env"

HealthKind = Literal["http", "tcp", "kafka"]
HEALTH_KINDS: tuple[str, ...] = get_args(HealthKind)
Text = Annotated[str, BeforeValidator(lambda v: str(v) if type(v) in (int, float) else v)]  # 1="1"
Argv = Annotated[list[str], Field(min_length=1)]


class NativeError(Exception):
    """A problem the user can act on; printed without a traceback."""


class _Table(BaseModel):
    """A TOML table: strict types (no "yes" for true), no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Named(_Table):
    """A table whose name is its key in the parent table ([libs.<name>], [services.<name>])."""

    _name: str = PrivateAttr("")

    @property
    def name(self) -> str:
        return self._name


class Lib(_Named):
    """[libs.<name>]: jars Maven resolves into var/lib/<name> (again once pom or properties do)."""

    pom: str  # a pom.xml whose dependencies are the runtime classpath
    properties: dict[str, Text] = {}  # Maven -D properties, e.g. the version to resolve


class Health(_Table):
    """How to tell that a service serves, written { <kind> = "<target>" }: http = any 2xx within
    3 s, tcp = the port accepts, kafka = the admin client's metadata lists a broker."""

    kind: HealthKind
    target: str

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in HEALTH_KINDS:
            return {"kind": next(iter(value)), "target": next(iter(value.values()))}
        raise ValueError(f'health must be one of {sorted(HEALTH_KINDS)}, as {{ tcp = "h:p" }}')


class Init(_Table):
    """A one-time step before the first start; it runs while `creates` does not exist."""

    command: Argv
    creates: str


class Restart(_Table):
    """Seconds to wait after any exit (as compose's unless-stopped): from `backoff`, doubled up to
    `max_backoff`, jittered (wikistreams.backoff); back to `backoff` after a `reset_after` run."""

    backoff: float = 1.0
    max_backoff: float = 60.0
    reset_after: float = 60.0


class Service(_Named):
    """[services.<name>]: a long-running process, or a one-shot step (`oneshot`).

    A oneshot runs once per `up` that selects it, as soon as its `needs` are healthy; success is
    exit 0, it is never restarted (compose: `restart: "no"`), and what needs it waits for its
    success. Output goes to var/log/<name>.log, the pid to var/run/<name>.pid, the keeper's state
    to var/run/<name>.keeper, a oneshot's result to var/run/<name>.result.
    """

    command: Argv  # argv; the first element is looked up on PATH
    description: str = ""  # one line for `status`
    default: bool = False  # part of a bare `up` / `with_stack.py` run
    group: str = ""  # `up <group>` selects every service of the group
    needs: list[str] = []  # services that must be healthy (a oneshot: done) before this starts
    lib: str = ""  # a [libs] entry to resolve before starting
    cwd: str = "{root}"
    data: str = "{var}/data/{name}"  # created before start
    mkdirs: list[str] = []  # more directories to create before start
    env: dict[str, Text] = {}  # extra environment variables
    ports: list[int] = []  # 127.0.0.1 ports that must be free before start
    url: str = ""  # where it listens, printed by `up` and `status`
    health: Health | None = None  # required, except for a oneshot
    start_timeout: float = 120  # seconds to wait for health; a oneshot's longest run
    stop_timeout: float = 30  # seconds between SIGTERM and SIGKILL
    init: Init | None = None
    restart: Restart = Restart()
    oneshot: bool = False

    @model_validator(mode="after")
    def _server_or_step(self) -> Service:
        if self.oneshot:
            extra = [
                k for k in ("health", "restart", "init", "ports") if k in self.model_fields_set
            ]
            if extra:
                raise ValueError(f"a oneshot service takes no {', '.join(extra)}")
        elif self.health is None:
            raise ValueError(f"health must be one of {sorted(HEALTH_KINDS)} (or oneshot = true)")
        return self


class Config(_Table):
    """Everything services.toml and versions.env declare, plus the var/ folder in use."""

    variables: dict[str, Any] = Field({}, alias="vars")
    libs: dict[str, Lib] = {}
    services: dict[str, Service] = {}
    # Not in the TOML: load_config passes them as validation context.
    versions: dict[str, str] = {}
    path: Path = DEFAULT_SERVICES_FILE
    paths: Paths = Field(default_factory=Paths.from_env)

    @model_validator(mode="before")
    @classmethod
    def _add_context(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if set(data) & {"versions", "path", "paths"}:  # a TOML file is always a table
            raise ValueError(f"unknown keys {sorted(set(data) & {'versions', 'path', 'paths'})}")
        return {**data, **(info.context or {})}

    @model_validator(mode="after")
    def _wiring(self) -> Config:
        """Names, cycles and placeholders: what a field alone cannot check."""
        from wikistreams.native.order import topo_order

        for table in (self.libs, self.services):
            for name, item in table.items():
                item._name = name
        for lib in self.libs.values():
            list(map(self.expand, [lib.pom, *lib.properties.values()]))
        for svc in self.services.values():
            for need in svc.needs:
                if need not in self.services:
                    raise NativeError(f"{self.path}: services.{svc.name} needs unknown {need!r}")
            if svc.lib and svc.lib not in self.libs:
                raise NativeError(f"{self.path}: services.{svc.name} uses unknown lib {svc.lib!r}")
            init = svc.init or Init(command=["true"], creates="")
            texts = [svc.cwd, svc.data, svc.url, *svc.mkdirs, *svc.env.values(), init.creates]
            for text in texts + ([svc.health.target] if svc.health else []):
                self.expand(text, svc)
            self.expand_argv(svc.command + init.command, svc)
        topo_order(self, list(self.services))
        return self

    def lib_dir(self, name: str) -> Path:
        return self.paths.lib / name

    def expand(self, value: str, svc: Service | None = None) -> str:
        """`value` with its {placeholders} replaced (see the module's docstring)."""
        return placeholders.expand(
            value, placeholders.context(self, svc), svc.name if svc else None
        )

    def expand_argv(self, argv: list[str], svc: Service) -> list[str]:
        """A command, expanded; an element that is exactly a list variable is spliced in."""
        return placeholders.expand_argv(argv, placeholders.context(self, svc), svc.name)


def read_env_file(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """KEY=VALUE files shared with make, compose and shell scripts (versions.env,
    victorialogs.env), read by python-dotenv; a key without a value reads as ""."""
    if not path.is_file():
        raise NativeError(f"cannot read {path}: no such file")
    return {key: value or "" for key, value in dotenv_values(path).items()}


def load_config(path: Path | None = None, paths: Paths | None = None) -> Config:
    """Read services.toml into typed objects; every mistake is a NativeError naming its place."""
    path = Path(path or os.environ.get(SERVICES_ENV) or DEFAULT_SERVICES_FILE).resolve()
    if path == DEFAULT_SERVICES_FILE.resolve() and not path.is_file():
        raise NativeError(
            f"{ROOT} is not a WikiStreams checkout (no {MARKER}): the launcher runs the services "
            f"from a checkout's files; run it from the checkout's root or set {ROOT_ENV}"
        )
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NativeError(f"cannot read {path}: {exc}") from None
    context = {"versions": read_env_file(), "path": path, "paths": paths or Paths.from_env()}
    try:
        return Config.model_validate(raw, context=context)
    except ValidationError as exc:
        raise NativeError(f"{path}:\n" + "\n".join(map(_explain, exc.errors()))) from None


def _explain(error: Any) -> str:
    """One pydantic error as `  services.kafka.ports: <what is wrong>, got <value>`."""
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = {"extra_forbidden": "unknown key", "missing": "is required"}.get(error["type"])
    if error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    got = f", got {error['input']!r}"
    return f"  {where}: {message or error['msg'].lower() + got}"
