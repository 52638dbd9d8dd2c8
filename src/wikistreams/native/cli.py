"""`wikistreams-native` (or `python -m wikistreams.native`): up, down, status, clean, keep.

    wikistreams-native up [NAME|GROUP ...]     start (default: services marked default = true)
    wikistreams-native down [NAME|GROUP ...]   stop for good (default: everything)
    wikistreams-native status                  state, pid, health, restarts, memory, URL
    wikistreams-native clean                   down, then wipe var/data, var/log, var/run
    wikistreams-native keep NAME               (internal, started by `up`) run one service

NATIVECTL_SERVICES_FILE replaces native/services.toml and WIKISTREAMS_VAR_DIR the var/ folder.
Each command imports only what it uses, so a keeper (one per service) stays small.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wikistreams.native.config import NativeError, load_config
from wikistreams.native.paths import Paths


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="wikistreams-native",
        description="Run the WikiStreams services natively (no Docker), each supervised.",
    )
    sub = root.add_subparsers(dest="cmd", required=True)
    for name, help_text in (
        ("up", "start services (default: those marked default = true) and wait for health"),
        ("down", "stop services the launcher started (default: all)"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("names", nargs="*", help="service or group names (e.g. kafka druid)")
    sub.add_parser("status", help="show state, pid, health, restarts, memory and URL per service")
    sub.add_parser("clean", help="down, then wipe var/data, var/log, var/run (keeps var/lib)")
    keep = sub.add_parser("keep", help="(internal, started by up) run one service, restart it")
    keep.add_argument("name")
    keep.add_argument("--services", type=Path, default=None)
    keep.add_argument("--var", type=Path, default=None, help="the var/ folder of the stack")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.cmd == "keep":
            return keep(args.name, args.services, args.var)
        cfg = load_config()
        if args.cmd == "up":
            from wikistreams.native.startup import up

            up(cfg, args.names)
        elif args.cmd == "down":
            from wikistreams.native.shutdown import down

            down(cfg, args.names)
        elif args.cmd == "status":
            from wikistreams.native.status import status

            return status(cfg)
        elif args.cmd == "clean":
            from wikistreams.native.shutdown import clean

            clean(cfg)
    except NativeError as exc:
        print(f"wikistreams-native: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "\nwikistreams-native: interrupted; `wikistreams-native down` stops what started",
            file=sys.stderr,
        )
        return 130
    return 0


def keep(name: str, services: Path | None, var: Path | None) -> int:
    from wikistreams.native.keeper import Keeper

    cfg = load_config(services, Paths(var.resolve()) if var else None)
    if name not in cfg.services:
        raise NativeError(f"unknown service {name!r} in {cfg.path}")
    Keeper(cfg, cfg.services[name]).run()
    return 0
