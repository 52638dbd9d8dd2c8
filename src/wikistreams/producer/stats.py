"""Counters behind the periodic `stats` log line (field names in docs/contracts.md)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from wikistreams.producer.logs import LogFields

KNOWN_TYPES = ("edit", "new", "log", "categorize")
COUNTERS = (
    "events_in",
    "events_out",
    "dlq",
    "delivery_errors",
    "duplicates_dropped",
    "canary_dropped",
    "position_full_waits",  # inbox rounds skipped: the ids past the oldest parked event fill
    # their share of the position record (`position.IDS_MAX_BYTES`)
)


@dataclass
class Stats:
    """Per-interval counts (reset at every report) plus running totals.

    The two per-event counters (`received`, `delivered`) are plain attribute updates that
    `report` folds into the counters: they run for every event, the rest for a few.
    """

    interval: Counter[str] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    last_event_dt: datetime | None = None
    received: int = 0
    _delivered_types: Counter[str] = field(default_factory=Counter)
    _since: float = field(default_factory=time.monotonic)

    def add(self, name: str, n: int = 1) -> None:
        self.interval[name] += n
        self.totals[name] += n

    def delivered(self, event_type: str, event_dt: datetime) -> None:
        self._delivered_types[event_type] += 1
        if self.last_event_dt is None or event_dt > self.last_event_dt:
            self.last_event_dt = event_dt

    def fold(self) -> None:
        """Move the per-event counts into `interval` and `totals` (before reading them)."""
        self.add("events_in", self.received)
        self.received = 0
        for event_type, n in self._delivered_types.items():
            self.add("events_out", n)
            self.by_type[event_type if event_type in KNOWN_TYPES else "other"] += n
        self._delivered_types.clear()

    def report(self, extra: LogFields) -> LogFields:
        """The fields of one `stats` line; starts the next interval."""
        self.fold()
        now = time.monotonic()
        seconds = max(now - self._since, 1e-9)
        line: LogFields = {"interval_seconds": round(seconds, 3)}
        line.update({name: self.interval[name] for name in COUNTERS})
        line["events_per_sec_in"] = round(self.interval["events_in"] / seconds, 2)
        line["events_per_sec_out"] = round(self.interval["events_out"] / seconds, 2)
        for name in (*KNOWN_TYPES, "other"):
            line[f"by_type_{name}"] = self.by_type[name]
        last = self.last_event_dt
        line["event_lag_seconds"] = round(time.time() - last.timestamp(), 3) if last else None
        line["event_time"] = last.isoformat() if last else None  # the newest published event
        line.update(extra)
        line.update({f"total_{name}": self.totals[name] for name in ("events_in", "events_out")})
        line["total_dlq"] = self.totals["dlq"]
        self.interval.clear()
        self.by_type.clear()
        self._since = now
        return line
