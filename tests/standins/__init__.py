"""Local stand-ins for the two internet services (EventStreams, the Wikidata API).

They replay real recorded data from `../shared/data/` (see its SOURCES.md); set
`WIKISTREAMS_DATA_DIR` to use another copy.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    configured = os.environ.get("WIKISTREAMS_DATA_DIR")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"recorded data not found at {path}; set WIKISTREAMS_DATA_DIR to shared/data"
        )
    return path


def recentchange_dir() -> Path:
    return data_dir() / "recentchange"
