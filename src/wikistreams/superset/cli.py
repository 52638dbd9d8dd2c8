"""``wikistreams-superset``: dashboard-as-code and the config check, for scripts and people.

    python -m wikistreams.superset.cli build DIR OUT.zip          zip for Superset's UI / CLI
    python -m wikistreams.superset.cli normalise EXPORT.zip DIR   a Superset export back into DIR
    python -m wikistreams.superset.cli import DIR [--username U]  overwrite-import (Superset venv)
    python -m wikistreams.superset.cli export DIR [--zip OUT]     export + normalise (Superset venv)
    python -m wikistreams.superset.cli create-admin [--username U --email E]   (Superset venv)
                                      (creates it, or applies a changed SUPERSET_ADMIN_PASSWORD)
    python -m wikistreams.superset.cli check-config               exit 78 on a refused secret

``build`` and ``normalise`` need only PyYAML; ``import``, ``export`` and ``create-admin`` run in
Superset's venv (or image), where ``superset/init_superset.sh`` and ``superset/export.sh`` call
them. ``create-admin`` reads the password from ``SUPERSET_ADMIN_PASSWORD``, never from argv.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from wikistreams.superset.applied import AppliedPassword
from wikistreams.superset.app import SetupError, ensure_admin, export_bundle, import_bundle
from wikistreams.superset.assets import BundleError, build_zip, normalise

# EX_CONFIG from sysexits.h: what native.sh and a supervisor see when the config refuses.
EX_CONFIG = 78


def check_config() -> int:
    """Load the Superset config once, as gunicorn would, and turn a refusal into one line.

    Without this a missing or placeholder secret surfaces as a traceback in every worker.
    """
    try:
        importlib.import_module("wikistreams.superset.config")
    except Exception as exc:  # the config raises InsecureConfigError with the reason
        print(f"[superset] {exc}", file=sys.stderr)
        return EX_CONFIG
    return 0


def _create_admin(username: str, email: str) -> None:
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD", "")
    if not password:
        raise SetupError("SUPERSET_ADMIN_PASSWORD must be set")
    outcome = ensure_admin(username, email, password, AppliedPassword.in_home())
    said = {
        "created": f"created admin {username!r}",
        "updated": f"admin {username!r}: password set from SUPERSET_ADMIN_PASSWORD (changed)",
        "unchanged": f"admin {username!r} exists; SUPERSET_ADMIN_PASSWORD unchanged since the "
        "last init, so its password is left as is",
    }
    print(f"[superset-init] {said[outcome]}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wikistreams-superset", description="WikiStreams dashboard-as-code for Superset"
    )
    user = os.environ.get("SUPERSET_ADMIN_USER", "admin")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="render DIR into an importable zip")
    p_build.add_argument("bundle_dir", type=Path)
    p_build.add_argument("out", type=Path)
    p_norm = sub.add_parser("normalise", help="unzip a Superset export into DIR, normalised")
    p_norm.add_argument("export_zip", type=Path)
    p_norm.add_argument("bundle_dir", type=Path)
    p_import = sub.add_parser("import", help="overwrite-import DIR into Superset (by UUID)")
    p_import.add_argument("bundle_dir", type=Path)
    p_import.add_argument("--username", default=user)
    p_export = sub.add_parser("export", help="export the dashboard of DIR from Superset into DIR")
    p_export.add_argument("bundle_dir", type=Path)
    p_export.add_argument("--username", default=user)
    p_export.add_argument("--zip", type=Path, default=None, help="also keep the raw export zip")
    p_admin = sub.add_parser(
        "create-admin", help="create the admin, or set SUPERSET_ADMIN_PASSWORD when it changed"
    )
    p_admin.add_argument("--username", default=user)
    p_admin.add_argument(
        "--email", default=os.environ.get("SUPERSET_ADMIN_EMAIL", "admin@wikistreams.invalid")
    )
    sub.add_parser("check-config", help="load the Superset config; exit 78 when it refuses")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "check-config":
        return check_config()
    try:
        if args.cmd == "build":
            print(build_zip(args.bundle_dir, args.out))
        elif args.cmd == "normalise":
            print("\n".join(normalise(args.export_zip, args.bundle_dir)))
        elif args.cmd == "create-admin":
            _create_admin(args.username, args.email)
        elif args.cmd == "import":
            # One JSON line: init_superset.sh's log and the integration test read it.
            print(json.dumps(import_bundle(args.bundle_dir, args.username)))
        else:
            print("\n".join(export_bundle(args.bundle_dir, args.username, args.zip)))
    except (BundleError, SetupError) as exc:
        print(f"wikistreams-superset: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
