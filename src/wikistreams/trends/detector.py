"""The trend detector: pure functions over JSON-serialisable state, and an in-memory wiring.

The processor (Quix Streams) calls `edit_from_event` and `observe_page` per page key
(`wiki:title`), resolves the signal's page to a `StoryRef`, re-keys by `story_id` and calls
`observe_story`. `Detector` does the same with dicts, for the evaluation and the tests.
Everything is driven by event time, so a replay gives the same records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from wikistreams.trends.edits import Edit, edit_from_event
from wikistreams.trends.page import PageSignal, PageState, observe_page, page_expired
from wikistreams.trends.params import DetectorParams
from wikistreams.trends.record import TrendRecord
from wikistreams.trends.story import StoryRef, StoryState, observe_story, story_expired

__all__ = [
    "Detector",
    "DetectorParams",
    "Edit",
    "PageSignal",
    "PageState",
    "StoryRef",
    "StoryState",
    "TrendRecord",
    "edit_from_event",
    "observe_page",
    "observe_story",
    "page_expired",
    "story_expired",
]

Resolver = Callable[[PageSignal], StoryRef]


class Detector:
    """`process(event) -> records`, keeping page and story state in dicts."""

    def __init__(
        self, params: DetectorParams | None = None, resolve: Resolver = StoryRef.of_page
    ) -> None:
        self.params = params or DetectorParams()
        self.resolve = resolve
        self.pages: dict[str, PageState] = {}
        self.stories: dict[str, StoryState] = {}
        self.signals = 0  # page signals, i.e. resolutions the processor would ask for

    def process(self, event: Mapping[str, Any]) -> list[TrendRecord]:
        edit = edit_from_event(event)
        return [] if edit is None else self.process_edit(edit)

    def process_edit(self, edit: Edit) -> list[TrendRecord]:
        page, signal = observe_page(self.pages.get(edit.page), edit, self.params)
        self.pages[edit.page] = page
        if signal is None:
            return []
        self.signals += 1
        ref = self.resolve(signal)
        story, record = observe_story(self.stories.get(ref.story_id), signal, ref, self.params)
        self.stories[ref.story_id] = story
        return [] if record is None else [record]

    def expire(self, now: float) -> int:
        """Drop page and story state idle past their TTL; returns how many were dropped."""
        pages = [k for k, s in self.pages.items() if page_expired(s, now, self.params)]
        stories = [k for k, s in self.stories.items() if story_expired(s, now, self.params)]
        for key in pages:
            del self.pages[key]
        for key in stories:
            del self.stories[key]
        return len(pages) + len(stories)
