"""The package as the Dockerfile ships it: a wheel, installed into a clean virtualenv (issue 21).

Built from pyproject.toml, README.md and src/ only (what the Dockerfile copies), installed with its
dependencies from the package index, and run from a folder that is not a checkout: every console
script answers --help, and nothing finds or writes files through the package's own location
(inside the virtualenv) as if it were a checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist")]
        + [str(source)]
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (work / "dist").glob("wikistreams-*.whl")
    venv = work / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    pip = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], env=env)
    assert pip.returncode == 0, pip.stderr[-3000:]
    elsewhere = work / "elsewhere"  # the working directory: not a checkout
    elsewhere.mkdir()
    return {"venv": venv, "env": env, "cwd": elsewhere}


def _in_venv(installed: dict, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return _run(list(argv), env=installed["env"], cwd=cwd or installed["cwd"])


def test_the_package_is_the_installed_one(installed):
    python = str(installed["venv"] / "bin" / "python")
    found = _in_venv(installed, python, "-c", "import wikistreams; print(wikistreams.__file__)")
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).is_relative_to(installed["venv"])


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_console_script_answers_help(installed, script):
    result = _in_venv(installed, str(installed["venv"] / "bin" / script), "--help")
    assert result.returncode == 0, f"{script} --help:\n{result.stderr[-3000:]}"
    assert "usage" in result.stdout.lower(), result.stdout


def test_grafana_writes_into_the_chosen_folder(installed, tmp_path):
    out = tmp_path / "chosen"
    result = _in_venv(
        installed, str(installed["venv"] / "bin" / "wikistreams-grafana"), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    expected = sorted(
        p.relative_to(ROOT)
        for p in [*(ROOT / "grafana" / "dashboards").glob("*.json")]
        + [ROOT / "grafana" / "provisioning" / "alerting" / "rules.yaml"]
    )
    assert written == expected
    for path in written:  # the same files the checkout holds (and a unit test keeps current)
        assert (out / path).read_text() == (ROOT / path).read_text(), path
    assert not list(installed["venv"].rglob("ws-error-monitor.json")), "wrote into the venv"
    assert not (installed["cwd"] / "grafana").exists()


def test_launcher_outside_a_checkout_says_so(installed):
    result = _in_venv(installed, str(installed["venv"] / "bin" / "wikistreams-native"), "status")
    assert result.returncode == 1
    assert "is not a WikiStreams checkout" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_contact_check_refuses_the_documented_placeholders_when_installed(installed):
    """No README or .env.example next to an installed package: the rules alone refuse them."""
    probe = (
        "from wikistreams.producer.contact import ContactError, check_contact\n"
        "for value in ('<your e-mail or URL>', 'you@example.org'):\n"
        "    try:\n"
        "        check_contact(value)\n"
        "    except ContactError as exc:\n"
        "        print(exc)\n"
        "    else:\n"
        "        raise SystemExit(f'accepted {value!r}')\n"
    )
    result = _in_venv(installed, str(installed["venv"] / "bin" / "python"), "-c", probe)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(result.stdout.splitlines()) == 2
