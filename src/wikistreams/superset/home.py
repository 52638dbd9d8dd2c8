"""Superset's home folder (SUPERSET_HOME): its SQLite database, caches and init records.

native.sh and the image always set SUPERSET_HOME; without it, var/data/superset below the working
directory (a checkout's root), like every other native path. Never the package's own location:
installed, that is inside a virtualenv.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = Path("var/data/superset")


def superset_home() -> Path:
    """The folder, absolute: a relative value must not mean another place per working directory."""
    return Path(os.environ.get("SUPERSET_HOME") or DEFAULT_HOME).resolve()
