"""The two stateful steps of the processor, as plain functions over a key-value `state`.

`PageStep` runs per page key (`wiki:title`, the enriched topic's key), `StoryStep` per story
after the re-keying. Both keep the detector's pydantic state as JSON in the state store, with a
TTL (counted by the store from the input's Kafka timestamps): state of a page idle for
`DetectorParams.ttl`, or of a story idle for two windows, is swept by the store, so state is
bounded by what was edited recently. Nothing here knows Quix: the state is anything with
`get`/`set(key, value, ttl)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from wikistreams.trends.detector import (
    DetectorParams,
    PageSignal,
    PageState,
    StoryRef,
    StoryState,
    edit_from_event,
    observe_page,
    observe_story,
)
from wikistreams.trends.resolve import StoryResolver

JsonDict = dict[str, Any]
# How much longer than its window a story's state stays: a late signal still finds it.
STORY_TTL_WINDOWS = 2


class KeyValueState(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, ttl: timedelta | None = None) -> None: ...


@dataclass
class StepCounts:
    events_in: int = 0
    edits: int = 0  # events that count (human, main namespace, article wikis)
    signals: int = 0  # page signals (candidate pages' edits, and their last one)
    trends_out: int = 0
    newest_event_ts: float | None = None


@dataclass
class PageStep:
    """Enriched event -> `{"signal", "ref"}` while its page is a candidate, else None."""

    params: DetectorParams
    resolver: StoryResolver | None
    counts: StepCounts = field(default_factory=StepCounts)

    def __call__(self, event: Mapping[str, Any], state: KeyValueState) -> JsonDict | None:
        self.counts.events_in += 1
        edit = edit_from_event(event)
        if edit is None:
            return None
        self.counts.edits += 1
        newest = self.counts.newest_event_ts
        self.counts.newest_event_ts = edit.ts if newest is None else max(newest, edit.ts)
        stored = state.get("page")
        page = PageState.model_validate(stored) if stored is not None else None
        page, signal = observe_page(page, edit, self.params)
        ttl = timedelta(seconds=self.params.ttl)
        state.set("page", page.model_dump(mode="json"), ttl=ttl)
        if signal is None:
            if self.resolver is not None and _warming(page, self.params):
                self.resolver.hint(edit.wiki, edit.title)
            return None
        self.counts.signals += 1
        return {"signal": signal.model_dump(mode="json"), "ref": self._ref(signal, state, ttl)}

    def _ref(self, signal: PageSignal, state: KeyValueState, ttl: timedelta) -> JsonDict:
        """The page's story, asked once and then kept with the page (an unavailable answer
        is not kept: the next signal asks again)."""
        stored = state.get("ref")
        if stored is not None:
            return dict(stored)
        ref = self.resolver.resolve(signal.wiki, signal.title) if self.resolver else None
        if ref is None:
            return StoryRef.of_page(signal).model_dump(mode="json")
        value = ref.model_dump(mode="json")
        state.set("ref", value, ttl=ttl)
        return value


def _warming(page: PageState, params: DetectorParams) -> bool:
    """One edit short of the cheap threshold, by at least two people: worth a ride-along."""
    recent = page.recent
    return len(recent) >= params.candidate_edits - 1 and len({e.user for e in recent}) >= 2


@dataclass
class StoryStep:
    """`{"signal", "ref"}` keyed by story -> a trend record (JSON) when the story changed."""

    params: DetectorParams
    counts: StepCounts

    def __call__(self, value: Mapping[str, Any], state: KeyValueState) -> JsonDict | None:
        signal = PageSignal.model_validate(value["signal"])
        ref = StoryRef.model_validate(value["ref"])
        stored = state.get("story")
        story = StoryState.model_validate(stored) if stored is not None else None
        story, record = observe_story(story, signal, ref, self.params)
        ttl = timedelta(seconds=self.params.window * STORY_TTL_WINDOWS)
        state.set("story", story.model_dump(mode="json"), ttl=ttl)
        if record is None:
            return None
        self.counts.trends_out += 1
        return record.model_dump(mode="json")


def story_key(value: Mapping[str, Any]) -> str:
    """The key a page signal is re-keyed by."""
    return str(value["ref"]["story_id"])
