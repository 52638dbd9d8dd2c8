"""The jars of the JVM services, resolved by Maven from Central into var/lib/<lib>.

Each [libs.<name>] in services.toml is a pom.xml whose runtime dependencies are a classpath.
`ensure_libs` resolves a lib when it is missing or its POM or version properties changed (a hash
of both is the `.resolved` stamp), into a `.partial` folder swapped in only when Maven succeeded,
so a failed download never leaves half a lib. NATIVECTL_MAVEN_ARGS adds mvn flags, e.g. `-o`
(offline) or `-Dmaven.repo.local=/some/dir`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from wikistreams.native.config import Config, Lib, NativeError
from wikistreams.native.paths import ROOT, rel

MAVEN_SETTINGS = ROOT / "native" / "maven" / "settings.xml"
MAVEN_ARGS_ENV = "NATIVECTL_MAVEN_ARGS"


def lib_stamp(cfg: Config, lib: Lib) -> str:
    """Identity of a resolved lib: the POM bytes plus the properties it was resolved with."""
    pom = Path(cfg.expand(lib.pom))
    props = {k: cfg.expand(v) for k, v in sorted(lib.properties.items())}
    return hashlib.sha256(pom.read_bytes() + json.dumps(props).encode()).hexdigest()


def lib_is_current(cfg: Config, lib: Lib) -> bool:
    """True when var/lib/<name> was resolved from the current POM and versions."""
    stamp = cfg.lib_dir(lib.name) / ".resolved"
    return stamp.is_file() and stamp.read_text().strip() == lib_stamp(cfg, lib)


def ensure_libs(cfg: Config, names: list[str], running: list[str]) -> None:
    """Resolve each lib the given services use and that is missing or outdated.

    A lib is never replaced under a running JVM (its classes load lazily from those jars), so an
    outdated lib that a running service (one of `running`) still uses is an error asking for
    `down` first.
    """
    needed: list[str] = []
    for name in names:
        lib_name = cfg.services[name].lib
        if lib_name and lib_name not in needed:
            needed.append(lib_name)
    for lib_name in needed:
        lib = cfg.libs[lib_name]
        if lib_is_current(cfg, lib):
            continue
        users = [n for n in running if cfg.services[n].lib == lib_name]
        if users:
            raise NativeError(
                f"lib {lib_name!r} changed (POM/version) but {', '.join(users)} still run on the "
                f"old jars; run `wikistreams-native down {' '.join(users)}` first"
            )
        resolve_lib(cfg, lib)


def maven_command(cfg: Config, lib: Lib, out_dir: Path) -> list[str]:
    """The mvn call; NATIVECTL_MAVEN_ARGS adds flags such as -Dmaven.repo.local=/tmp/m2."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise NativeError("mvn not found on PATH; install Maven 3.8+ to fetch the server jars")
    argv = [mvn, "-B", "-s", str(MAVEN_SETTINGS), "-f", cfg.expand(lib.pom)]
    argv += [f"-D{k}={cfg.expand(v)}" for k, v in lib.properties.items()]
    argv += shlex.split(os.environ.get(MAVEN_ARGS_ENV, ""))
    argv += [
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out_dir}",
    ]
    return argv


def resolve_lib(cfg: Config, lib: Lib) -> None:
    """Run Maven into a temp folder and swap it in, so a failed download never leaves half a lib."""
    target = cfg.lib_dir(lib.name)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    argv = maven_command(cfg, lib, tmp)
    print(f"[lib] {lib.name}: resolving with Maven into {rel(target)}", flush=True)
    started = time.monotonic()
    downloads, tail = run_maven(argv)
    if not tmp.is_dir():
        print("\n".join(tail), file=sys.stderr)
        raise NativeError(f"Maven failed to resolve lib {lib.name!r} (command: {shlex.join(argv)})")
    (tmp / ".resolved").write_text(lib_stamp(cfg, lib) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    jars = list(target.glob("*.jar"))
    size = sum(j.stat().st_size for j in jars)
    print(
        f"[lib] {lib.name}: {len(jars)} jars, {size / 2**20:.0f} MiB in {rel(target)} "
        f"({downloads} files downloaded, {time.monotonic() - started:.0f}s)",
        flush=True,
    )


def run_maven(argv: list[str]) -> tuple[int, list[str]]:
    """Stream Maven's output, echoing each downloaded jar; returns (download count, last lines)."""
    downloads = 0
    tail: list[str] = []
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-40:]
        if "Downloaded from" in line:
            downloads += 1
            if ".jar " in line:
                url, _, size = line.split(": ", 1)[-1].partition(" ")
                print(f"  downloaded {url.rsplit('/', 1)[-1]} {size}", flush=True)
    if proc.wait() != 0:
        print("\n".join(tail), file=sys.stderr)
        raise NativeError(f"mvn exited with {proc.returncode}")
    return downloads, tail
