"""The JSON files in var/run that say what runs: one per service process, keeper and one-shot.

`<name>.pid`     PidRecord: the service's current process (pid, process group, start time)
`<name>.keeper`  KeeperState: the keeper that restarts it (restarts, last exit, next start)
`<name>.result`  OneshotResult: how a one-shot service's last run ended

The key names are the ones every earlier launcher wrote, so services started by an older version
are still found and stopped. A file is replaced in one step (rename), so a concurrent `status`
never reads half of it, and a record counts only while its process runs with the recorded start
time: a recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wikistreams.native.paths import Paths
from wikistreams.native.procinfo import is_running, start_ticks


@dataclass
class PidRecord:
    """A started service process; it leads its own process group (`pgid`)."""

    pid: int
    pgid: int
    start_ticks: int | None
    started: float = 0.0
    argv: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, pid: int, argv: list[str]) -> PidRecord:
        return cls(pid, pid, start_ticks(pid), time.time(), argv)

    def alive(self) -> bool:
        return is_running(self.pid, self.start_ticks)


@dataclass
class KeeperState:
    """What a keeper publishes about itself and its service."""

    pid: int
    start_ticks: int | None
    restarts: int = 0
    last_exit: str | None = None
    last_exit_at: float | None = None
    next_start: float | None = None
    outcome: str | None = None

    @classmethod
    def mine(cls) -> KeeperState:
        me = os.getpid()
        return cls(me, start_ticks(me))

    def alive(self) -> bool:
        return is_running(self.pid, self.start_ticks)


@dataclass
class OneshotResult:
    """How the last run of a one-shot service ended (`ok`: exit 0 within its time)."""

    ok: bool
    exit: str
    code: int
    seconds: float
    finished: float


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace the file in one step (rename), so a concurrent `status` never reads half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, path)


def _load(cls: type[Any], data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
    try:
        return cls(**known)
    except TypeError:  # a required key is missing: not a record we can trust
        return None


def load_pid_file(path: Path) -> PidRecord | None:
    """The pid record in `path` as written (None when it is not one), running or not."""
    record: PidRecord | None = _load(PidRecord, read_json(path))
    return record


def load_pid(paths: Paths, name: str) -> PidRecord | None:
    """The service's pid record as written, whether or not its process still runs."""
    return load_pid_file(paths.pid_file(name))


def read_pid(paths: Paths, name: str) -> PidRecord | None:
    """The pid record of a running service process, or None.

    A stale file is left in place: while a keeper waits to restart its service it owns the file
    and overwrites it on the next start; `down` and `clean` remove what is left over.
    """
    record = load_pid(paths, name)
    return record if record is not None and record.alive() else None


def write_pid(paths: Paths, name: str, record: PidRecord) -> None:
    write_json(paths.pid_file(name), asdict(record))


def load_keeper(paths: Paths, name: str) -> KeeperState | None:
    """The keeper file as written (its final `outcome` stays after the keeper exited)."""
    state: KeeperState | None = _load(KeeperState, read_json(paths.keeper_file(name)))
    return state


def read_keeper(paths: Paths, name: str) -> KeeperState | None:
    """What a live keeper publishes (restarts, last exit, next start), or None if none runs."""
    state = load_keeper(paths, name)
    return state if state is not None and state.alive() else None


def write_keeper(paths: Paths, name: str, state: KeeperState) -> None:
    write_json(paths.keeper_file(name), asdict(state))


def read_result(paths: Paths, name: str) -> OneshotResult | None:
    result: OneshotResult | None = _load(OneshotResult, read_json(paths.result_file(name)))
    return result


def write_result(paths: Paths, name: str, result: OneshotResult) -> None:
    write_json(paths.result_file(name), asdict(result))


def service_running(paths: Paths, name: str) -> bool:
    """A service runs while its keeper or its process does (a keeper may be between restarts)."""
    return read_keeper(paths, name) is not None or read_pid(paths, name) is not None


def running_services(paths: Paths, names: list[str]) -> list[str]:
    """Those of `names` that run (or whose keeper is about to restart them)."""
    return [n for n in names if service_running(paths, n)]
