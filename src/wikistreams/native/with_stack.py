"""Run a command against the native stack and leave the stack exactly as it was found.

Why: `make test` must work both on a fresh checkout (nothing running: start the servers, run the
tests, stop them again) and while a developer already has `make up` running (reuse it, and do not
shut the developer's servers down afterwards). Only services this script started are stopped,
also when the command fails or the user presses Ctrl-C; the command's exit code is passed on.

    python -m wikistreams.native.with_stack -- pytest tests/integration

STACK_SERVICES (space or comma separated service/group names) narrows which services are
needed; by default every service marked `default = true` in native/services.toml.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

from wikistreams.native.config import Config, NativeError, load_config
from wikistreams.native.shutdown import stop_services
from wikistreams.native.startup import up


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived while no command was running."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_child: subprocess.Popen[bytes] | None = None


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    """Forward the signal to the running command, or abort start-up if there is none yet."""
    if _child is not None and _child.poll() is None:
        if signum == signal.SIGTERM:
            _child.send_signal(signum)
        # SIGINT from a terminal already reached the command (same process group).
        return
    raise Interrupted(signum)


def parse_command(argv: list[str]) -> list[str]:
    """Everything after `--` (or every argument, if there is no `--`)."""
    if "--" in argv:
        return argv[argv.index("--") + 1 :]
    return argv


def run_command(cmd: list[str]) -> int:
    """Run the command in the foreground; exit code in shell convention (128+N for signal N)."""
    global _child
    try:
        _child = subprocess.Popen(cmd)
    except OSError as exc:
        print(f"with_stack: cannot run {cmd[0]!r}: {exc}", file=sys.stderr)
        return 127
    code = _child.wait()
    _child = None
    return 128 - code if code < 0 else code


def teardown(cfg: Config, started: list[str]) -> None:
    """Stop what we started; a second Ctrl-C must not leave half the stack running."""
    if not started:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"[with_stack] stopping what it started: {', '.join(started)}", flush=True)
    stop_services(cfg, started)


def main(argv: list[str]) -> int:
    cmd = parse_command(argv)
    if not cmd:
        print(
            "usage: python -m wikistreams.native.with_stack -- COMMAND [ARGS...]", file=sys.stderr
        )
        return 2
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    wanted = os.environ.get("STACK_SERVICES", "").split() or None
    started: list[str] = []
    cfg: Config | None = None
    code = 1
    try:
        cfg = load_config()
        up(cfg, wanted, started)
        print(f"[with_stack] running: {' '.join(cmd)}", flush=True)
        code = run_command(cmd)
    except NativeError as exc:
        print(f"with_stack: {exc}", file=sys.stderr)
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"\nwith_stack: interrupted by signal {signum}", file=sys.stderr)
        code = 128 + signum
    finally:
        if cfg is not None and started:
            teardown(cfg, started)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
