"""What `make test` needs on the machine, checked before anything is built or started.

Why: without this, a machine that lacks, say, `redis-server` builds the Go tools, installs
Superset, starts Kafka and Druid and fails only minutes later in the Redis tests. This names
every missing program (or too old a version) in one message, with the command that installs it.
The list is `.ci/run`'s and the tests': Java and Maven for Kafka and Druid, Go for the log
tools and the compose checker (at least the newest `go` line of their go.mod files), Python 3.11+
with venv for .venv and Superset's own virtualenv, make, Redis, Chromium and ChromeDriver for the
dashboard tests, a Korean font for their screenshots (without one Chromium draws Hangul as empty
boxes), and jq for deploy/render-env.sh.

    python3 src/wikistreams/native/prereq.py [--python python3] [--root .]   (`make prereq`)

Standard library only, and run with the system Python by its path, so it works before any
virtualenv exists. The Go version comes from the checkout's go.mod files: `--root`, by default
the working directory (make runs it from the checkout's root).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

GO_MODULES = ("logs/*/go.mod", "tools/*/go.mod")
PROBE_SECONDS = 30.0
Version = Tuple[int, ...]  # not tuple[...]: an old python3 must still get the message


@dataclass(frozen=True)
class Requirement:
    """A program on PATH, optionally at least `minimum` as `probe` prints it."""

    label: str  # as the message names it
    program: str
    install: str  # a shell command, or where to get it when no package fits
    apt: str = ""  # the Debian package, gathered into one apt-get line
    minimum: Version = ()
    probe: tuple[str, ...] = ()  # arguments that make the program print its version
    pattern: str = ""  # group 1 is the version in what the probe printed


class NotACheckout(Exception):
    """The folder holds none of the go.mod files the Go requirement is read from."""


def go_minimum(root: Path = Path(".")) -> Version:
    """The newest `go` directive of the project's go.mod files (a go older than that fails)."""
    found: list[Version] = []
    for pattern in GO_MODULES:
        for gomod in root.glob(pattern):
            match = re.search(r"^go (\d+(?:\.\d+)*)\s*$", gomod.read_text(), re.M)
            if match:
                found.append(parse_version(match.group(1)))
    if not found:
        raise NotACheckout(
            f"{root.resolve()} has no {' or '.join(GO_MODULES)}: run this from the WikiStreams "
            "checkout's root (or pass --root)"
        )
    return max(found)


def requirements(python: str = "python3", root: Path = Path(".")) -> list[Requirement]:
    go = go_minimum(root)
    go_text = ".".join(map(str, go))
    return [
        Requirement(
            "java 17+",
            "java",
            "apt-get install openjdk-17-jdk-headless",
            "openjdk-17-jdk-headless",
            (17,),
            ("-version",),
            r'version "(?:1\.)?(\d+(?:\.\d+)*)',  # "1.8.0" is Java 8
        ),
        Requirement(
            "mvn 3.8+",
            "mvn",
            "apt-get install maven",
            "maven",
            (3, 8),
            ("-v",),
            r"Apache Maven (\d+(?:\.\d+)*)",
        ),
        Requirement(
            f"go {go_text}+",
            "go",
            f"Go {go_text} or newer from go.dev/dl (Debian's golang-go is older), on PATH",
            "",
            go,
            ("env", "GOVERSION"),
            r"go(\d+(?:\.\d+)*)",
        ),
        Requirement(
            "python3 3.11+ with venv",
            python,
            "apt-get install python3 python3-venv",
            "python3-venv",
            (3, 11),
            ("-c", "import ensurepip, sys, venv; print('%d.%d.%d' % sys.version_info[:3])"),
            r"^(\d+\.\d+\.\d+)",
        ),
        Requirement("make", "make", "apt-get install make", "make"),
        Requirement("redis-server", "redis-server", "apt-get install redis-server", "redis-server"),
        Requirement("chromium", "chromium", "apt-get install chromium", "chromium"),
        Requirement(
            "chromedriver", "chromedriver", "apt-get install chromium-driver", "chromium-driver"
        ),
        Requirement(
            "a Korean font",
            "fc-list",
            "apt-get install fonts-noto-cjk",
            "fonts-noto-cjk",
            probe=(":lang=ko", "family"),
            pattern=r"^(\S.*)$",  # any family that covers Korean; no version to compare
        ),
        Requirement("jq", "jq", "apt-get install jq", "jq"),
    ]


def parse_version(text: str) -> Version:
    """ "17.0.15" -> (17, 0, 15)."""
    return tuple(int(p) for p in text.split("."))


@dataclass(frozen=True)
class Problem:
    requirement: Requirement
    found: str  # what was wrong: not on PATH, too old, did not answer


def check(req: Requirement, path: str | None = None) -> tuple[str, Problem | None]:
    """(the version found or "found", None) or ("", the problem)."""
    binary = shutil.which(req.program, path=path)
    if binary is None:
        return "", Problem(req, "not found on PATH")
    if not req.probe:
        return "found", None
    env = dict(os.environ, PATH=path) if path is not None else None
    try:
        done = subprocess.run(
            [binary, *req.probe],
            capture_output=True,
            text=True,
            timeout=PROBE_SECONDS,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", Problem(req, f"{binary} did not answer ({exc})")
    match = re.search(req.pattern, done.stdout + done.stderr, re.M)
    if done.returncode == 0 and not match and not req.minimum:
        return "", Problem(req, f"{binary} {' '.join(req.probe)} lists none")
    if done.returncode != 0 or not match:
        first = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return "", Problem(req, f"{binary} failed: {first[0][:120]}")
    version = match.group(1)
    if req.minimum and parse_version(version) < req.minimum:
        return "", Problem(req, f"{binary} is {version}")
    return version, None


def report(problems: list[Problem]) -> str:
    """One message naming every problem and how to fix it."""
    width = max(len(p.requirement.label) for p in problems)
    lines = [f"make test: {len(problems)} missing prerequisite(s); nothing was built or started:"]
    for problem in problems:
        req = problem.requirement
        lines.append(f"  {req.label:<{width}}  {problem.found}")
        lines.append(f"  {'':<{width}}  install: {req.install}")
    packages = [p.requirement.apt for p in problems if p.requirement.apt]
    if packages:
        lines.append("All Debian packages at once (as root, after `apt-get update`):")
        lines.append(f"  apt-get install -y {' '.join(dict.fromkeys(packages))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check what `make test` needs.")
    parser.add_argument("--python", default="python3", help="the Python make uses ($(PYTHON))")
    parser.add_argument("--root", type=Path, default=Path("."), help="the checkout (default: .)")
    args = parser.parse_args(argv)
    found: list[str] = []
    problems: list[Problem] = []
    try:
        wanted = requirements(args.python, args.root)
    except NotACheckout as exc:
        print(f"make test: {exc}", file=sys.stderr)
        return 2
    for req in wanted:
        version, problem = check(req)
        if problem is not None:
            problems.append(problem)
        else:
            found.append(f"{req.program} {version}" if version != "found" else req.program)
    if problems:
        print(report(problems), file=sys.stderr)
        return 1
    print(f"[prereq] ok: {', '.join(found)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
