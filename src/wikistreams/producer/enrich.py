"""Enrichment stage: Wikidata labels for entity edits, without ever holding up the stream.

The Wikidata API answers in 0.1-1 s, sometimes not at all; the stream must not wait for it. So
the stage is split in two:

- `LabelWorkers` run off the hot path, on two threads. The *lookup* thread asks the label cache
  (SQLite or Redis, either of which can be slow or down); ids it does not hold go to the *fetch*
  thread, which calls `wbgetentities` in series as the API etiquette asks (one request in
  flight, up to 50 ids a call) behind the circuit breaker. A `Retry-After` longer than the
  client's retry budget pauses that thread: ids asked meanwhile are answered `unavailable` at
  once. Every answer is handed back through `deliver` (the pipeline's inbox).
- `Enricher` runs on the pipeline's thread and only decides *when* an event may leave. Events
  without an entity id, and entity events whose labels are in its memory, leave at once. An entity
  event that needs an answer is parked for at most `max_delay` seconds, then leaves as
  `unavailable` (the answer still fills the cache for the next edit of that item). The pipeline
  lengthens `max_delay` while it catches up (a backfill, or a resume far behind now): then the
  API, not the deadline, paces the entity edits, and they arrive labelled. Events with the
  same key (`wiki:title`, the Kafka key) leave in arrival order, so a parked event holds back later
  edits of its own page and nothing else.

Both sides are bounded: an id asked for and not answered within `max_delay` is forgotten (the
next edit of that item asks again), at most `MAX_WAITING_IDS` ids wait at once (beyond that an
entity edit leaves `unavailable` without asking), and `LabelWorkers.stop` closes the API client,
which ends a call in flight, so the threads end with the producer's term.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Literal

import pybreaker
import structlog

from wikistreams.producer.cache import CachedLabels, LabelCache
from wikistreams.producer.events import EnrichmentStatus, RecentChange, WikidataLabels
from wikistreams.producer.wikidata import (
    MAX_IDS_PER_CALL,
    WikidataClient,
    WikidataUnavailable,
    entity_id_for,
)

log = structlog.get_logger("producer.enrich")

BREAKER_STATES = {"closed": "closed", "open": "open", "half-open": "half_open"}
# Labels kept in the pipeline's own memory: hot items (bots editing the same item in bursts)
# never leave the thread. 20k entries are a few MB.
MEMORY_ENTRIES = 20_000
# Ids asked for and not answered yet. Each waits at most `max_delay`; the cap only matters if
# answers stop while a catch-up parks entity edits faster than they expire.
MAX_WAITING_IDS = 20_000
# The lookup thread's idle turn: a label cache that could not be opened is retried then too,
# not only when ids are asked (so /health tells a quiet stream's cache is back).
CACHE_IDLE_SECONDS = 1.0


class _BreakerLog(pybreaker.CircuitBreakerListener):
    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        log.warning("breaker_state_changed", breaker_state=BREAKER_STATES[new_state.name])


def make_breaker(fail_max: int, reset_seconds: float) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_seconds,
        listeners=[_BreakerLog()],
        name="wikidata",
    )


@dataclass(frozen=True)
class Answer:
    """What the workers learned: labels (None = the entity does not exist) or no answer."""

    labels: dict[str, CachedLabels] = field(default_factory=dict)
    unavailable: tuple[str, ...] = ()


class _Stop(Enum):
    """The marker that ends a worker loop (an enum member, so the queues stay typed)."""

    STOP = "stop"


_STOP: Final = _Stop.STOP
_Ids = queue.SimpleQueue[str | Literal[_Stop.STOP]]


def _take(source: _Ids, max_items: int, wait: float, idle: float | None = None) -> list[str] | None:
    """Block for one item (an empty list after `idle` s without one), then gather more for up
    to `wait` s; None once told to stop."""
    try:
        first = source.get(timeout=idle)
    except queue.Empty:
        return []
    if first is _STOP:
        return None
    batch: dict[str, None] = {first: None}
    deadline = time.monotonic() + wait
    while len(batch) < max_items:
        remaining = deadline - time.monotonic()
        try:
            item = source.get(timeout=remaining) if remaining > 0 else source.get_nowait()
        except queue.Empty:
            break
        if item is _STOP:
            source.put(_STOP)  # seen again by the next call, which then ends the loop
            break
        batch[item] = None
    return list(batch)


class LabelWorkers:
    """The cache-lookup and API-fetch threads behind the enricher."""

    def __init__(
        self,
        client: WikidataClient,
        cache: LabelCache | None,
        breaker: pybreaker.CircuitBreaker,
        max_ids: int = MAX_IDS_PER_CALL,
        batch_wait_seconds: float = 0.2,
    ) -> None:
        self.client = client
        self.cache = cache
        self.breaker = breaker
        self._max_ids = max_ids
        self._batch_wait = batch_wait_seconds
        self._lookups: _Ids = queue.SimpleQueue()
        self._fetches: _Ids = queue.SimpleQueue()
        self._deliver: Callable[[Answer], None] = lambda _answer: None
        self._paused_until = 0.0
        self._stopping = False
        self._threads: list[threading.Thread] = []

    @property
    def breaker_state(self) -> str:
        return BREAKER_STATES[self.breaker.current_state]

    @property
    def paused_seconds(self) -> float:
        """How much longer the fetch thread honours the server's Retry-After."""
        return max(0.0, self._paused_until - time.monotonic())

    def start(self, deliver: Callable[[Answer], None]) -> None:
        self._deliver = deliver
        for name, target in (("labels-lookup", self._lookup_loop), ("labels-fetch", self._fetch)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def request(self, entity_id: str) -> None:
        self._lookups.put(entity_id)

    def stop(self, timeout: float = 5.0) -> None:
        """End both threads: ids still queued are answered `unavailable` without an API call
        (nobody waits for them any more), and a call in flight ends at once (the client is
        closed), so stopping waits neither for a backlog of calls nor for a slow server."""
        self._stopping = True
        self.client.close()
        self._lookups.put(_STOP)
        for thread in self._threads:
            thread.join(timeout)
        if self.cache is not None:
            self.cache.close()

    def _lookup_loop(self) -> None:
        idle = CACHE_IDLE_SECONDS
        while (batch := _take(self._lookups, self._max_ids, 0.0, idle)) is not None:
            if not batch:  # nothing asked for a while: a cache that is away may come back
                if self.cache is not None:
                    self.cache.keep_open()
                continue
            hits = self._cache_get(batch)
            if hits:
                self._deliver(Answer(hits))
            for entity_id in batch:
                if entity_id not in hits:
                    self._fetches.put(entity_id)
        self._fetches.put(_STOP)

    def _fetch(self) -> None:
        while (batch := _take(self._fetches, self._max_ids, self._batch_wait)) is not None:
            self._deliver(self._fetch_batch(batch))

    def _fetch_batch(self, ids: list[str]) -> Answer:
        if self._stopping or time.monotonic() < self._paused_until:
            return Answer(unavailable=tuple(ids))
        try:
            result = self.breaker.call(self.client.fetch, ids)
        except pybreaker.CircuitBreakerError:
            return Answer(unavailable=tuple(ids))
        except WikidataUnavailable as exc:
            retry_after = getattr(exc, "retry_after", None)
            if retry_after:
                self._paused_until = time.monotonic() + retry_after
                log.warning("wikidata_paused", retry_after_seconds=round(retry_after, 1))
            return Answer(unavailable=tuple(ids))
        except Exception as exc:  # noqa: BLE001 - a bug here must cost labels, not the stream
            log.error("enrich_worker_error", error_class=type(exc).__name__, error=str(exc)[:300])
            return Answer(unavailable=tuple(ids))
        labels: dict[str, CachedLabels] = dict(result.found)
        labels.update(dict.fromkeys(result.not_found))
        self._cache_put(result.found, result.not_found)
        return Answer(labels)

    def _cache_get(self, ids: list[str]) -> dict[str, CachedLabels]:
        """A cache failure is a miss: the cache speeds the stream up, it must never stop it."""
        if self.cache is None:
            return {}
        try:
            return self.cache.get_many(ids)
        except Exception as exc:  # noqa: BLE001 - any backend error degrades to a miss
            log.warning("cache_error", error_class=type(exc).__name__, error=str(exc)[:300])
            return {}

    def _cache_put(self, found: dict[str, WikidataLabels], not_found: list[str]) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put_many(found, not_found)
        except Exception as exc:  # noqa: BLE001
            log.warning("cache_error", error_class=type(exc).__name__, error=str(exc)[:300])


Emit = Callable[[Any, RecentChange, str | None, CachedLabels, EnrichmentStatus], None]


@dataclass(slots=True)
class _Ask:
    """An id asked of the workers: the keys waiting on it, until `deadline` at most."""

    deadline: float
    keys: list[str]


@dataclass(slots=True, eq=False)
class _Parked:
    item: Any
    change: RecentChange
    entity_id: str | None
    expired: bool = False
    released: bool = False


class Enricher:
    """Decides when each event may leave; `emit(item, change, entity_id, labels, status)`."""

    def __init__(
        self,
        workers: LabelWorkers | None,
        emit: Emit,
        max_delay_seconds: float = 2.0,
        memory_entries: int = MEMORY_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        max_waiting: int = MAX_WAITING_IDS,
    ) -> None:
        self.workers = workers
        self._emit = emit
        # The wait of an entity edit parked from now on (the pipeline sets it: live or catch-up).
        self.max_delay = max_delay_seconds
        self._memory_entries = memory_entries
        self._max_waiting = max_waiting
        self._clock = clock
        self._memory: OrderedDict[str, CachedLabels] = OrderedDict()
        self._queues: dict[str, deque[_Parked]] = {}
        self._waiting: dict[str, _Ask] = {}  # entity id asked for -> keys waiting on it
        # A heap by deadline: events parked under a catch-up deadline may be due after later
        # ones parked under the live deadline. The count keeps ties in parking order.
        self._deadlines: list[tuple[float, int, str, _Parked]] = []
        self._parked_count = itertools.count()
        self._failed: set[str] = set()
        self.counts = dict.fromkeys(
            (
                "enrich_memory_hits",
                "enrich_lookups",
                "enrich_timed_out",
                "enrich_unavailable",
                "enrich_not_asked",
            ),
            0,
        )
        self._reported: dict[str, float] = {}

    @property
    def breaker_state(self) -> str:
        return self.workers.breaker_state if self.workers else "closed"

    @property
    def cache_problem(self) -> str | None:
        """Why the label cache is not in use now (for /health); None while it is, or off."""
        cache = self.workers.cache if self.workers else None
        return cache.problem if cache is not None else None

    @property
    def cache_state(self) -> str:
        """For /health: `ok`, `unavailable` (running on the API alone) or `off`."""
        if self.workers is None or self.workers.cache is None:
            return "off"
        return "ok" if self.cache_problem is None else "unavailable"

    def __len__(self) -> int:
        """Events held back: waiting for labels, or behind such an event of the same key."""
        return sum(len(q) for q in self._queues.values())

    def add(self, item: Any, change: RecentChange) -> None:
        """Emit the event now, or park it until its labels arrive or its deadline passes."""
        entity_id = entity_id_for(change.wiki, change.namespace, change.title)
        if entity_id is None or self.workers is None:
            if self._queues:  # only then can an earlier event of this key be waiting
                pending = self._queues.get(f"{change.wiki}:{change.title}")
                if pending is not None:
                    pending.append(_Parked(item, change, None))
                    return
            self._emit(item, change, None, None, "not_applicable")
            return
        key = f"{change.wiki}:{change.title}"
        pending = self._queues.get(key)
        if entity_id in self._memory:
            self.counts["enrich_memory_hits"] += 1
            if pending is None:
                labels = self._memory[entity_id]
                self._memory.move_to_end(entity_id)
                self._emit(item, change, entity_id, labels, _status(labels))
            else:
                pending.append(_Parked(item, change, entity_id))
            return
        parked = _Parked(item, change, entity_id)
        if pending is None:
            self._queues[key] = deque((parked,))
        else:
            pending.append(parked)
        deadline = self._clock() + self.max_delay
        heapq.heappush(self._deadlines, (deadline, next(self._parked_count), key, parked))
        ask = self._waiting.get(entity_id)
        if ask is not None:
            ask.keys.append(key)
            ask.deadline = max(ask.deadline, deadline)
        elif len(self._waiting) >= self._max_waiting:
            # Too many questions open: this one is not asked, the event leaves in key order.
            self.counts["enrich_not_asked"] += 1
            parked.expired = True
            self._release(key)
        else:
            self._waiting[entity_id] = _Ask(deadline, [key])
            self.counts["enrich_lookups"] += 1
            self.workers.request(entity_id)

    def answered(self, answer: Answer) -> None:
        """Take the workers' answer and emit every event it unblocks, in key order."""
        for entity_id, labels in answer.labels.items():
            self._remember(entity_id, labels)
        self._failed.update(answer.unavailable)
        for entity_id in (*answer.labels, *answer.unavailable):
            ask = self._waiting.pop(entity_id, None)
            for key in ask.keys if ask is not None else ():
                self._release(key)
        # A failure answers the events waiting now; the next edit of that item asks again.
        self._failed.clear()

    def expire(self) -> None:
        """Emit, as `unavailable`, every event whose wait has reached `max_delay`, and forget
        the ids asked that long ago: an answer that never comes leaves nothing behind."""
        now = self._clock()
        deadlines = self._deadlines
        # Also drop the entries of events their answer released: under a catch-up deadline they
        # would hold each event's bytes and model for minutes (answers come in asking order).
        while deadlines and (deadlines[0][0] <= now or deadlines[0][3].released):
            deadline, _n, key, parked = heapq.heappop(deadlines)
            if deadline > now:
                continue
            entity_id = parked.entity_id
            ask = self._waiting.get(entity_id) if entity_id is not None else None
            if entity_id is not None and ask is not None and ask.deadline <= now:
                del self._waiting[entity_id]
            if not parked.released:
                parked.expired = True
                self.counts["enrich_timed_out"] += 1
                self._release(key)

    def seconds_to_next_deadline(self) -> float | None:
        if not self._deadlines:
            return None
        return max(0.0, self._deadlines[0][0] - self._clock())

    def release_all(self) -> None:
        """At shutdown: everything still parked leaves now, in order, as `unavailable`."""
        while self._deadlines:
            _deadline, _n, key, parked = heapq.heappop(self._deadlines)
            if not parked.released:
                parked.expired = True
                self._release(key)
        for key in list(self._queues):
            self._release(key)
        self._waiting.clear()

    def _release(self, key: str) -> None:
        pending = self._queues.get(key)
        while pending:
            head = pending[0]
            entity_id = head.entity_id
            labels: CachedLabels
            status: EnrichmentStatus
            if entity_id is None:
                labels, status = None, "not_applicable"
            elif entity_id in self._memory:
                labels = self._memory[entity_id]
                status = _status(labels)
            elif head.expired or entity_id in self._failed:
                labels, status = None, "unavailable"
                self.counts["enrich_unavailable"] += 1
            else:
                return
            head.released = True
            pending.popleft()
            self._emit(head.item, head.change, entity_id, labels, status)
        self._queues.pop(key, None)

    def warm_up(self) -> int:
        """Fill the memory tier from the persistent cache's newest entries, so that after a
        restart the usual items leave at once instead of each waiting for a cache lookup."""
        cache = self.workers.cache if self.workers is not None else None
        if cache is None:
            return 0
        entries = cache.recent(self._memory_entries)
        for entity_id in reversed(entries):  # oldest first: the newest end up most recent
            self._remember(entity_id, entries[entity_id])
        return len(entries)

    def _remember(self, entity_id: str, labels: CachedLabels) -> None:
        self._memory[entity_id] = labels
        self._memory.move_to_end(entity_id)
        if len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)

    def take_stats(self) -> dict[str, int | float | None]:
        """Enrichment counters since the previous call, for the `stats` log line."""
        workers = self.workers
        api = workers.client.stats if workers else None
        cache = workers.cache if workers else None
        now = {
            "cache_hits": cache.hits if cache else 0,
            "cache_misses": cache.misses if cache else 0,
            "api_calls": api.calls if api else 0,
            "api_errors": api.errors if api else 0,
            "latency": api.latency_ms_total if api else 0.0,
            **self.counts,
        }
        delta = {name: now[name] - self._reported.get(name, 0) for name in now}
        self._reported = now
        latency_max = api.latency_ms_max if api else 0.0
        if api:
            api.latency_ms_max = 0.0
        calls = delta["api_calls"]
        latency = delta.pop("latency")
        return {
            **{name: round(value) for name, value in delta.items()},
            "api_latency_ms_avg": round(latency / calls, 1) if calls else None,
            "api_latency_ms_max": round(latency_max, 1) if calls else None,
            "enrich_parked": len(self),
            "enrich_waiting": len(self._waiting),
            "wikidata_paused_seconds": round(workers.paused_seconds, 1) if workers else 0.0,
        }


def _status(labels: CachedLabels) -> EnrichmentStatus:
    return "not_found" if labels is None else "enriched"
