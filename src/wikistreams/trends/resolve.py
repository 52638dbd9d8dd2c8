"""Candidate page -> story: the page's Wikidata item and its Korean/English labels.

Only candidate pages get here (a few per minute at live rate), and the answer is kept in the
page's state, so each page is asked about once per state TTL. The lookup runs on the stream's
thread, because the story id is the key the signal is re-keyed by: a page whose first signals
went out under `wiki:title` and later ones under its item would split one trend in two. What
keeps that from stalling the stream:

- a memory tier, then the shared label cache (`sitelink|wiki|title` -> item, item -> labels);
- one API call at a time (there is only this thread), `maxlag`, the producer's User-Agent, a
  retry budget of `TRENDS_RESOLVE_BUDGET_SECONDS`, the server's `Retry-After` honoured by
  pausing the API (answers are `None` meanwhile), and a circuit breaker that stops calling
  during an outage;
- batching: pages that are warming up (`hint`) ride along in the next call for their wiki,
  up to 50 titles, so when they become candidates their answer is already in memory.

`resolve` returns None when no answer could be had: the caller uses the page as its own story
for that signal and asks again at the next one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import pybreaker
import structlog

from wikistreams.producer.cache import LabelCache
from wikistreams.producer.events import WikidataLabels
from wikistreams.producer.wikidata import (
    MAX_IDS_PER_CALL,
    WikidataClient,
    WikidataUnavailable,
)
from wikistreams.trends.story import StoryRef

log = structlog.get_logger("trends.resolve")

MEMORY_ENTRIES = 50_000
HINTS_PER_WIKI = 200


@dataclass
class ResolveCounts:
    """Counters for the `stats` line (totals; the stats line reports differences)."""

    resolutions: int = 0  # resolve() calls
    items: int = 0  # answered with an item
    no_item: int = 0  # answered "the page has no item"
    unavailable: int = 0  # no answer: API down, paused or breaker open
    memory_hits: int = 0
    cache_hits: int = 0
    api_titles: int = 0  # titles asked for in API calls (hints included)


@dataclass
class StoryResolver:
    """`resolve(wiki, title)` -> the page's `StoryRef`, or None when unavailable."""

    client: WikidataClient | None
    cache: LabelCache | None
    breaker: pybreaker.CircuitBreaker
    memory_entries: int = MEMORY_ENTRIES
    counts: ResolveCounts = field(default_factory=ResolveCounts)
    _memory: OrderedDict[str, StoryRef] = field(default_factory=OrderedDict)
    _hints: dict[str, OrderedDict[str, None]] = field(default_factory=dict)
    _paused_until: float = 0.0

    def hint(self, wiki: str, title: str) -> None:
        """A page that may soon be a candidate: ask for it in the next call for its wiki."""
        if f"{wiki}:{title}" in self._memory or "|" in title or not title:
            return
        hints = self._hints.setdefault(wiki, OrderedDict())
        hints[title] = None
        hints.move_to_end(title)
        if len(hints) > HINTS_PER_WIKI:
            hints.popitem(last=False)

    def resolve(self, wiki: str, title: str) -> StoryRef | None:
        self.counts.resolutions += 1
        page = f"{wiki}:{title}"
        ref = self._memory.get(page)
        if ref is not None:
            self._memory.move_to_end(page)
            self.counts.memory_hits += 1
        else:
            ref = self._from_cache(wiki, title) or self._from_api(wiki, title)
        if ref is None:
            self.counts.unavailable += 1
        elif ref.wikidata_id is None:
            self.counts.no_item += 1
        else:
            self.counts.items += 1
        return ref

    @property
    def breaker_state(self) -> str:
        return str(self.breaker.current_state).replace("-", "_")

    def _remember(self, page: str, ref: StoryRef) -> StoryRef:
        self._memory[page] = ref
        self._memory.move_to_end(page)
        if len(self._memory) > self.memory_entries:
            self._memory.popitem(last=False)
        return ref

    def _from_cache(self, wiki: str, title: str) -> StoryRef | None:
        """The cached item and labels; None when either is not cached (or the cache fails)."""
        if self.cache is None:
            return None
        page = f"{wiki}:{title}"
        try:
            links = self.cache.get_sitelinks(wiki, [title])
            if title not in links:
                return None
            item = links[title]
            if item is None:
                self.counts.cache_hits += 1
                return self._remember(page, StoryRef(story_id=page))
            labels = self.cache.get_many([item]).get(item)
        except Exception as exc:  # noqa: BLE001 - a cache fault is a miss, never a stop
            log.warning("cache_error", error_class=type(exc).__name__, error=str(exc)[:300])
            return None
        if labels is None:
            return None
        self.counts.cache_hits += 1
        return self._remember(page, _ref(item, labels))

    def _from_api(self, wiki: str, title: str) -> StoryRef | None:
        if self.client is None or time.monotonic() < self._paused_until:
            return None
        titles = [title] + [t for t in self._hints.pop(wiki, {}) if t != title]
        titles = titles[:MAX_IDS_PER_CALL]
        self.counts.api_titles += len(titles)
        try:
            result = self.breaker.call(self.client.fetch_titles, wiki, titles)
        except pybreaker.CircuitBreakerError:
            return None
        except WikidataUnavailable as exc:
            if exc.retry_after:
                self._paused_until = time.monotonic() + exc.retry_after
                log.warning("wikidata_paused", retry_after_seconds=round(exc.retry_after, 1))
            return None
        for found_title, (item, labels) in result.found.items():
            self._remember(f"{wiki}:{found_title}", _ref(item, labels))
        for missing in result.not_found:
            self._remember(f"{wiki}:{missing}", StoryRef(story_id=f"{wiki}:{missing}"))
        self._store(wiki, result.found, result.not_found)
        return self._memory.get(f"{wiki}:{title}")

    def _store(
        self, wiki: str, found: dict[str, tuple[str, WikidataLabels]], not_found: list[str]
    ) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put_sitelinks(wiki, {t: item for t, (item, _) in found.items()}, not_found)
            self.cache.put_many({item: labels for item, labels in found.values()}, ())
        except Exception as exc:  # noqa: BLE001
            log.warning("cache_error", error_class=type(exc).__name__, error=str(exc)[:300])


def _ref(item: str, labels: WikidataLabels) -> StoryRef:
    return StoryRef(
        story_id=item, wikidata_id=item, label_ko=labels.label_ko, label_en=labels.label_en
    )
