"""Counters behind the periodic `stats` log line (field names in docs/contracts.md)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

KNOWN_TYPES = ("edit", "new", "log", "categorize")
COUNTERS = (
    "events_in",
    "events_out",
    "dlq",
    "delivery_errors",
    "duplicates_dropped",
    "canary_dropped",
)


@dataclass
class Stats:
    """Per-interval counts (reset at every report) plus running totals."""

    interval: Counter = field(default_factory=Counter)
    totals: Counter = field(default_factory=Counter)
    by_type: Counter = field(default_factory=Counter)
    last_event_time: float | None = None
    _since: float = field(default_factory=time.monotonic)

    def add(self, name: str, n: int = 1) -> None:
        self.interval[name] += n
        self.totals[name] += n

    def delivered(self, event_type: str, event_epoch: float) -> None:
        self.add("events_out")
        self.by_type[event_type if event_type in KNOWN_TYPES else "other"] += 1
        self.last_event_time = max(self.last_event_time or 0.0, event_epoch)

    def report(self, extra: dict) -> dict:
        """The fields of one `stats` line; starts the next interval."""
        now = time.monotonic()
        seconds = max(now - self._since, 1e-9)
        line = {"interval_seconds": round(seconds, 3)}
        line.update({name: self.interval[name] for name in COUNTERS})
        line["events_per_sec_in"] = round(self.interval["events_in"] / seconds, 2)
        line["events_per_sec_out"] = round(self.interval["events_out"] / seconds, 2)
        for name in (*KNOWN_TYPES, "other"):
            line[f"by_type_{name}"] = self.by_type[name]
        line["event_lag_seconds"] = (
            round(time.time() - self.last_event_time, 3) if self.last_event_time else None
        )
        line.update(extra)
        line.update({f"total_{name}": self.totals[name] for name in ("events_in", "events_out")})
        line["total_dlq"] = self.totals["dlq"]
        self.interval.clear()
        self.by_type.clear()
        self._since = now
        return line
