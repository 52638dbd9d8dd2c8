"""Where the launcher keeps its state: the checkout it runs in and the `var/` folder.

The launcher needs a checkout (native/services.toml, the Druid and Superset folders). That is
WIKISTREAMS_ROOT when set; else the checkout this code is in, as `make venv`'s editable install
is; else the working directory. An installed wheel sits in a virtualenv, never in a checkout, so
it never writes there: it works in the folder it is run from, and config.load_config says so when
that folder is not a checkout.

`var/` is `<checkout>/var` unless WIKISTREAMS_VAR_DIR names another folder. Everything the
launcher writes lives below it (pid and keeper records, locks, logs, data, Maven-resolved jars),
so a test that points it at a temporary folder never meets a developer's running stack, and two
folders are two independent stacks (as long as their ports differ).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "WIKISTREAMS_ROOT"
# What makes a folder a checkout, for the launcher.
MARKER = Path("native/services.toml")


def find_root(environ: Mapping[str, str] = os.environ, source: Path = Path(__file__)) -> Path:
    """WIKISTREAMS_ROOT, else the checkout holding `source` (src/wikistreams/native/paths.py),
    else the working directory."""
    value = environ.get(ROOT_ENV, "")
    if value:
        return Path(value).resolve()
    checkout = source.resolve().parents[3]
    return checkout if (checkout / MARKER).is_file() else Path.cwd()


ROOT = find_root()
VAR_ENV = "WIKISTREAMS_VAR_DIR"


@dataclass(frozen=True)
class Paths:
    """The layout of one var/ folder."""

    var: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Paths:
        value = environ.get(VAR_ENV, "")
        return cls(Path(value).resolve() if value else ROOT / "var")

    @property
    def run(self) -> Path:
        return self.var / "run"

    @property
    def log(self) -> Path:
        return self.var / "log"

    @property
    def data(self) -> Path:
        return self.var / "data"

    @property
    def lib(self) -> Path:
        return self.var / "lib"

    @property
    def tmp(self) -> Path:
        return self.var / "tmp"

    def pid_file(self, name: str) -> Path:
        """The record of the service's current process (see records.PidRecord)."""
        return self.run / f"{name}.pid"

    def keeper_file(self, name: str) -> Path:
        """The state its keeper publishes (see records.KeeperState)."""
        return self.run / f"{name}.keeper"

    def result_file(self, name: str) -> Path:
        """How a one-shot service's last run ended (see records.OneshotResult)."""
        return self.run / f"{name}.result"

    def lock_file(self, name: str) -> Path:
        return self.run / f"{name}.lock"

    def log_file(self, name: str) -> Path:
        return self.log / f"{name}.log"


def rel(path: Path | str) -> str:
    """A path as people read it: relative to the repository when it is inside it."""
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)
