"""The launcher's pid records for shell scripts: `python -m wikistreams.native.pidfile`.

superset/native.sh starts and stops a gunicorn of its own (`start`, `stop`), outside the
launcher. A bare pid in a file, once stale, names whatever process the kernel gave that pid
next, and `stop` would signal it. The launcher's record (pid, process group, start time; see
records.PidRecord) names only the process that was started.

    python -m wikistreams.native.pidfile write FILE PID   record the running process PID
    python -m wikistreams.native.pidfile check FILE       print its pid; exit 1 unless it runs
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import psutil

from wikistreams.native.records import PidRecord, load_pid_file, write_json


def write(path: Path, pid: int) -> int:
    try:
        argv = psutil.Process(pid).cmdline()
    except psutil.Error:
        argv = []
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, asdict(PidRecord.of(pid, argv)))
    return 0


def check(path: Path) -> int:
    """0 and the pid while the recorded process runs; 1 (and why, on stderr) otherwise."""
    record = load_pid_file(path)
    if record is None:
        reason = "no pid record" if not path.exists() else "not a pid record (ignored)"
        print(f"{path}: {reason}", file=sys.stderr)
        return 1
    if not record.alive():
        print(f"{path}: stale, pid {record.pid} is gone or another process now", file=sys.stderr)
        return 1
    print(record.pid)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wikistreams.native.pidfile")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_write = sub.add_parser("write", help="record the running process PID in FILE")
    p_write.add_argument("file", type=Path)
    p_write.add_argument("pid", type=int)
    p_check = sub.add_parser("check", help="print the recorded pid; exit 1 unless it runs")
    p_check.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    return write(args.file, args.pid) if args.cmd == "write" else check(args.file)


if __name__ == "__main__":
    sys.exit(main())
