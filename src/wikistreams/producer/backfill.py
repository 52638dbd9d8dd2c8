"""Backfill: a first start reads the last `BACKFILL_HOURS` of EventStreams' history, then live.

EventStreams keeps about a week of history and starts a subscription at a past time with its
`since` parameter. The producer asks for it only when no position is stored: after that it
resumes by position as always, so a restart never backfills again and nothing is doubled.
The history goes through the same path as every event (validate, enrich, Kafka); its progress
is the event-time lag, and `CatchUp` turns two readings of it into an estimate of the time left.

`make up` runs this module twice: first it waits a short time for the producer's first event
(`--first-event-seconds`) and says in one line why none came (no internet, DNS, TLS, an HTTP
status) with the offline command; then, in the background, for the backfill's end.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TypedDict
from datetime import datetime, timedelta, timezone

import structlog

log = structlog.get_logger("producer.backfill")

# Within this lag of now the backfill counts as done: live events arrive a few seconds late.
CAUGHT_UP_LAG_SECONDS = 60.0


def since_for(hours: float, now: datetime | None = None) -> str | None:
    """The `since` value (ISO 8601, UTC) for a backfill of `hours`; None when it is off."""
    if hours <= 0:
        return None
    start = (now or datetime.now(timezone.utc)) - timedelta(hours=hours)
    return start.isoformat(timespec="seconds").replace("+00:00", "Z")


class BackfillFields(TypedDict):
    """What `CatchUp.observe` adds to /health and the stats line (docs/contracts.md)."""

    backfill: str
    backfill_since: NotRequired[str | None]
    backfill_eta_seconds: NotRequired[float | None]


@dataclass
class CatchUp:
    """The state of a backfill, read at each stats line: `catching_up` until the newest
    published event is within `CAUGHT_UP_LAG_SECONDS` of now, then `done` (once, logged)."""

    since: str | None
    started_at: float = field(default_factory=time.monotonic)
    state: str = "catching_up"
    _last: tuple[float, float] | None = None  # (monotonic now, lag) at the previous reading
    _events: int = 0

    def __post_init__(self) -> None:
        if self.since is None:
            self.state = "off"

    def observe(self, lag: float | None, events_out: int) -> BackfillFields:
        """Fields for /health and the stats line, from the current event-time lag."""
        if self.state != "catching_up":
            return {"backfill": self.state}
        self._events += events_out
        now = time.monotonic()
        eta = None
        if lag is not None and self._last is not None:
            then, lag_then = self._last
            shrink = (lag_then - lag) / (now - then) if now > then else 0.0
            eta = round(lag / shrink, 1) if shrink > 0 else None
        if lag is not None:
            self._last = (now, lag)
        if lag is not None and lag <= CAUGHT_UP_LAG_SECONDS:
            self.state = "done"
            log.info(
                "backfill_done",
                since=self.since,
                seconds=round(now - self.started_at, 1),
                events=self._events,
                lag_seconds=round(lag, 1),
            )
            return {"backfill": self.state, "backfill_eta_seconds": 0.0}
        return {"backfill": self.state, "backfill_since": self.since, "backfill_eta_seconds": eta}


def read_health(health_url: str) -> dict[str, Any]:
    """The producer's /health body; {} while it does not answer."""
    try:
        with urllib.request.urlopen(health_url, timeout=5) as response:
            body = json.load(response)
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def wait_for_backfill(health_url: str, timeout: float, poll: float = 2.0) -> str:
    """Poll the producer's /health until its backfill is over; one line saying how it ended."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    seen_active = False
    while time.monotonic() < deadline:
        health = read_health(health_url)
        state = health.get("backfill")
        seen_active = seen_active or health.get("role") == "active"
        if state == "done":
            took = round(time.monotonic() - started)
            return f"backfill done: dashboards hold the last hour(s) of edits (~{took} s); live now"
        if state == "off" and seen_active:
            return "no backfill: the producer resumed from its stored position (or it is off)"
        time.sleep(poll)
    return f"backfill still running after {timeout:g} s: see {health_url}"


# The README's offline demo, word for word (tests/unit/test_backfill.py keeps them in step).
OFFLINE_COMMAND = (
    "make up USER_AGENT_CONTACT='<your e-mail or URL>' "
    "SSE_URL=file://$PWD/samples/recentchange-enwiki-2023-07-29.jsonl DRUID_RETENTION_PERIOD=P20Y"
)
LOG_TAIL_BYTES = 65536  # of the producer's log, read for its last connection error


def wait_for_first_event(
    health_urls: list[str], timeout: float, log: Path, poll: float = 1.0
) -> str:
    """Poll /health until the producer's source has delivered a frame; one line either way.

    Without one within `timeout` the line names the cause, as /health gives it (DNS, TLS, an
    HTTP status, ...) or else as the producer's log last said it, and the offline command:
    without internet the live stream never delivers, and an empty dashboard does not say why.
    With a standby (`PRODUCERS=2`) the copy that reads the stream is whichever holds the lease.
    """
    deadline = time.monotonic() + timeout
    while True:
        answers = [read_health(url) for url in health_urls]
        health = next((h for h in answers if "source_url" in h), answers[0])
        url = health.get("source_url") or "the stream"
        if health.get("source_frames") or health.get("source_state") == "finished":
            return f"events are arriving from {url}"
        if time.monotonic() >= deadline:
            break
        time.sleep(poll)
    cause = health.get("source_error") or last_source_error(log)
    if not cause:
        cause = "no error reported yet" if health else f"{health_urls[0]} does not answer"
    return (
        f"no event from {url} within {timeout:g} s: {cause} (more in {log}). "
        f"Without internet, replay the sample: {OFFLINE_COMMAND}"
    )


def last_source_error(log: Path) -> str | None:
    """The `error` of the producer's last `sse_disconnected`/`source_failed` log line."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - LOG_TAIL_BYTES))
            tail = fh.read(LOG_TAIL_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("msg") in ("sse_disconnected", "source_failed"):
            return str(entry.get("error"))[:300]
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Wait for the producer's backfill, or with --first-event-seconds for its "
        "first event, then say so in one line."
    )
    parser.add_argument(
        "--health-url",
        action="append",
        help="the producer's /health (default http://127.0.0.1:8095/health); given twice "
        "with a standby, --first-event-seconds reads the active copy",
    )
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--first-event-seconds",
        type=float,
        help="wait this long for the source's first frame instead; without one, print the "
        "cause and the offline command",
    )
    parser.add_argument("--log", type=Path, default=Path("var/log/producer.log"))
    args = parser.parse_args(argv)
    urls = args.health_url or ["http://127.0.0.1:8095/health"]
    if args.first_event_seconds is not None:
        line = wait_for_first_event(urls, args.first_event_seconds, args.log)
        print(f"[producer] {line}", flush=True)
        return
    print(f"[backfill] {wait_for_backfill(urls[0], args.timeout)}", flush=True)


if __name__ == "__main__":
    main()
