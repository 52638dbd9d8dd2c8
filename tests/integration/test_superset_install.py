"""README's sequence in one clone: `make up` installs Superset's venv (native.sh setup), then
`make test` installs it again (native.sh install), or the other way round (issue 21).

Both end in `native.sh install` on a venv that already holds the project package, installed
without its producer dependencies on purpose; `pip check` refused that venv, so the second
command stopped before any test ran.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "superset" / "native.sh"
VENV = Path(os.environ.get("SUPERSET_VENV", ROOT / "var" / "superset-venv"))


def _install() -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(NATIVE), "install"],
        env={**os.environ, "SUPERSET_VENV": str(VENV)},
        capture_output=True,
        text=True,
        timeout=1800,
    )


def test_install_runs_again_on_an_installed_venv():
    for attempt in ("first", "second"):
        result = _install()
        assert result.returncode == 0, f"{attempt} install:\n{result.stderr[-3000:]}"
    python = VENV / "bin" / "python"
    found = subprocess.run(
        [str(python), "-c", "import wikistreams.superset.cli as m; print(m.__file__)"],
        env={**os.environ, "PYTHONSAFEPATH": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert found == str(ROOT / "src" / "wikistreams" / "superset" / "cli.py")
    # Superset's own pins stay consistent: only the project's deliberately absent producer
    # dependencies may be reported.
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    others = [line for line in check.stdout.splitlines() if not line.startswith("wikistreams ")]
    assert check.returncode == 0 or not others, check.stdout
