"""The DERIVED recordings are what tests/data/recorded/make_derived.py builds from the licensed
ones (SOURCES.md 1c and 4e): its `--check` mode, run by the tests."""

from __future__ import annotations

import subprocess
import sys

from tests.standins import REPO_ROOT


def test_the_derived_files_are_rebuilt_byte_for_byte():
    script = REPO_ROOT / "tests" / "data" / "recorded" / "make_derived.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
