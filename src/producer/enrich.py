"""Enrichment stage: micro-batches Wikidata entity edits so one API call serves many events.

Events enter in stream order and leave in the same order. A batch is flushed when it holds 50
ids the cache could not answer (one full `wbgetentities` call), or when its oldest event has
waited `max_wait`. A circuit breaker guards the API: while it is open, events pass through with
`enrichment_status="unavailable"` instead of waiting, and a trial call later closes it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import pybreaker
import structlog

from producer.cache import CachedLabels, LabelCache
from producer.events import EnrichedEvent, RecentChange
from producer.wikidata import MAX_IDS_PER_CALL, WikidataClient, WikidataUnavailable, entity_id_for

log = structlog.get_logger("producer.enrich")

T = TypeVar("T")

BREAKER_STATES = {"closed": "closed", "open": "open", "half-open": "half_open"}


class _BreakerLog(pybreaker.CircuitBreakerListener):
    def state_change(self, cb, old_state, new_state) -> None:
        log.warning("breaker_state_changed", breaker_state=BREAKER_STATES[new_state.name])


def make_breaker(fail_max: int, reset_seconds: float) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_seconds,
        listeners=[_BreakerLog()],
        name="wikidata",
    )


@dataclass
class _Entry(Generic[T]):
    item: T
    change: RecentChange
    entity_id: str | None


class Enricher(Generic[T]):
    """Collects `(item, change)` pairs and hands them back enriched, in order, on `flush()`.

    `item` is whatever the caller needs to finish the event (its sequence number, raw bytes).
    """

    def __init__(
        self,
        client: WikidataClient | None,
        cache: LabelCache | None,
        breaker: pybreaker.CircuitBreaker,
        max_ids: int = MAX_IDS_PER_CALL,
        max_wait_seconds: float = 0.5,
        max_events: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._cache = cache
        self.breaker = breaker
        self._max_ids = max_ids
        self._max_wait = max_wait_seconds
        self._max_events = max_events
        self._clock = clock
        self._entries: list[_Entry[T]] = []
        self._resolved: dict[str, CachedLabels] = {}
        self._unresolved: set[str] = set()
        self._oldest: float | None = None
        self._reported = (0, 0, 0, 0, 0.0)

    @property
    def enabled(self) -> bool:
        return self._client is not None

    @property
    def breaker_state(self) -> str:
        return BREAKER_STATES[self.breaker.current_state]

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, item: T, change: RecentChange) -> None:
        entity_id = entity_id_for(change.wiki, change.namespace, change.title)
        if not self.enabled:
            entity_id = None
        if entity_id and entity_id not in self._resolved and entity_id not in self._unresolved:
            cached = self._cache_get(entity_id)
            if entity_id in cached:
                self._resolved[entity_id] = cached[entity_id]
            else:
                self._unresolved.add(entity_id)
        if self._oldest is None:
            self._oldest = self._clock()
        self._entries.append(_Entry(item, change, entity_id))

    def due(self) -> bool:
        """True when the batch should be flushed now."""
        if not self._entries:
            return False
        return (
            len(self._unresolved) >= self._max_ids
            or len(self._entries) >= self._max_events
            or not self._unresolved
            or self._clock() - (self._oldest or 0.0) >= self._max_wait
        )

    def seconds_until_due(self) -> float | None:
        """How long the caller may wait for more events before it must flush."""
        if not self._entries:
            return None
        if self.due():
            return 0.0
        return max(0.0, self._max_wait - (self._clock() - (self._oldest or 0.0)))

    def flush(self) -> list[tuple[T, RecentChange, EnrichedEvent]]:
        """Resolve what is missing (one API call per 50 ids) and return the batch in order."""
        unavailable = self._fetch_unresolved()
        out = []
        for entry in self._entries:
            out.append((entry.item, entry.change, self._build(entry, unavailable)))
        self._entries, self._resolved, self._unresolved, self._oldest = [], {}, set(), None
        return out

    def _build(self, entry: _Entry[T], unavailable: set[str]) -> EnrichedEvent:
        eid = entry.entity_id
        if eid is None:
            return EnrichedEvent.from_change(entry.change)
        if eid in unavailable:
            return EnrichedEvent.from_change(entry.change, eid, status="unavailable")
        labels = self._resolved.get(eid)
        if labels is None:
            return EnrichedEvent.from_change(entry.change, eid, status="not_found")
        return EnrichedEvent.from_change(entry.change, eid, labels, status="enriched")

    def _fetch_unresolved(self) -> set[str]:
        ids = sorted(self._unresolved)
        unavailable: set[str] = set()
        for start in range(0, len(ids), self._max_ids):
            chunk = ids[start : start + self._max_ids]
            try:
                result = self.breaker.call(self._client.fetch, chunk)
            except (pybreaker.CircuitBreakerError, WikidataUnavailable):
                unavailable.update(chunk)
                continue
            self._resolved.update(result.found)
            self._resolved.update({eid: None for eid in result.not_found})
            self._cache_put(result.found, result.not_found)
        return unavailable

    def take_stats(self) -> dict:
        """Cache and API counters since the previous call, for the `stats` log line."""
        api = self._client.stats if self._client else None
        now = (
            self._cache.hits if self._cache else 0,
            self._cache.misses if self._cache else 0,
            api.calls if api else 0,
            api.errors if api else 0,
            api.latency_ms_total if api else 0.0,
        )
        hits, misses, calls, errors, latency = (a - b for a, b in zip(now, self._reported))
        self._reported = now
        latency_max = api.latency_ms_max if api else 0.0
        if api:
            api.latency_ms_max = 0.0
        return {
            "cache_hits": hits,
            "cache_misses": misses,
            "api_calls": calls,
            "api_errors": errors,
            "api_latency_ms_avg": round(latency / calls, 1) if calls else None,
            "api_latency_ms_max": round(latency_max, 1) if calls else None,
        }

    def _cache_get(self, entity_id: str) -> dict[str, CachedLabels]:
        """A cache failure is a miss: the cache speeds the stream up, it must never stop it."""
        if self._cache is None:
            return {}
        try:
            return self._cache.get_many([entity_id])
        except Exception as exc:  # noqa: BLE001 - any backend error degrades to a miss
            log.warning("cache_error", error_class=type(exc).__name__, error=str(exc))
            return {}

    def _cache_put(self, found, not_found) -> None:
        if self._cache is None:
            return
        try:
            self._cache.put_many(found, not_found)
        except Exception as exc:  # noqa: BLE001
            log.warning("cache_error", error_class=type(exc).__name__, error=str(exc))
