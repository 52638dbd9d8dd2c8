"""The periodic `stats` line of the trends processor, built from librdkafka's statistics.

librdkafka calls `stats_cb` from inside the consumer's `poll()`, on the stream's own thread and
every `STATS_INTERVAL_SECONDS`: that one callback is the heartbeat (it fires only while the run
loop turns, so `/health` turns 503 when the loop hangs), the consumer lag (`consumer_lag` per
assigned partition of the input topic: last stable offset minus committed offset, i.e. what a
`read_committed` reader has still to do) and the moment to write the line. Field names are
stable; docs/contracts.md lists them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from wikistreams.producer.health import Heartbeat
from wikistreams.producer.logs import LogFields
from wikistreams.trends.resolve import StoryResolver
from wikistreams.trends.steps import StepCounts

log = structlog.get_logger("trends.stats")


def input_lag(stats: dict[str, Any], topic: str) -> int | None:
    """Committed records of `topic` not yet handed to the processor, over its assigned
    partitions: last stable offset minus the next offset to process (`app_offset`). Kafka's
    committed-offset lag is no use here: with exactly-once, offsets are committed by the
    producer's transaction, which the consumer's statistics do not see."""
    partitions = stats.get("topics", {}).get(topic, {}).get("partitions", {})
    lags = []
    for key, p in partitions.items():
        if key == "-1" or not isinstance(p, dict):
            continue
        stable, position = p.get("ls_offset", -1), p.get("app_offset", -1)
        if isinstance(stable, int) and isinstance(position, int) and stable >= 0 <= position:
            lags.append(max(0, stable - position))
    return sum(lags) if lags else None


@dataclass
class StatsReporter:
    """`stats_cb` for the consumer: beats the heartbeat and writes one `stats` line."""

    topic: str
    counts: StepCounts
    resolver: StoryResolver | None
    heartbeat: Heartbeat
    _reported: dict[str, int] = field(default_factory=dict)
    _since: float = field(default_factory=time.monotonic)

    def __call__(self, stats_json: str) -> None:
        try:
            stats = json.loads(stats_json)
        except ValueError:
            stats = {}
        self.heartbeat.beat()
        log.info("stats", **self.line(input_lag(stats, self.topic)))

    def line(self, lag: int | None) -> LogFields:
        now = time.monotonic()
        seconds = max(now - self._since, 1e-9)
        totals: dict[str, int] = {
            "events_in": self.counts.events_in,
            "edits": self.counts.edits,
            "candidates": self.counts.signals,
            "trends_out": self.counts.trends_out,
        }
        resolver = self.resolver
        if resolver is not None:
            api = resolver.client.stats if resolver.client else None
            totals |= {
                "resolutions": resolver.counts.resolutions,
                "resolved_items": resolver.counts.items,
                "resolved_no_item": resolver.counts.no_item,
                "resolve_unavailable": resolver.counts.unavailable,
                "resolve_cache_hits": resolver.counts.cache_hits + resolver.counts.memory_hits,
                "api_calls": api.calls if api else 0,
                "api_errors": api.errors if api else 0,
                "api_titles": resolver.counts.api_titles,
            }
        line: LogFields = {"interval_seconds": round(seconds, 3)}
        line |= {name: value - self._reported.get(name, 0) for name, value in totals.items()}
        line["events_per_sec_in"] = round(line["events_in"] / seconds, 2)
        line["lag"] = lag
        newest = self.counts.newest_event_ts
        line["event_lag_seconds"] = round(time.time() - newest, 3) if newest else None
        line["breaker_state"] = resolver.breaker_state if resolver else "closed"
        if line["breaker_state"] == "closed":
            self.heartbeat.problems.pop("wikidata", None)
        else:  # degraded, not down: unresolved pages are their own stories meanwhile
            self.heartbeat.problems["wikidata"] = f"breaker {line['breaker_state']}"
        line |= {f"total_{name}": value for name, value in totals.items()}
        self.heartbeat.beat(**{k: v for k, v in line.items() if k.startswith("total_")}, lag=lag)
        self._reported, self._since = totals, now
        return line
