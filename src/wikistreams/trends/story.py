"""Per story (one Wikidata item, or one page without one): pages across wikis become a trend.

The processor re-keys page signals by `StoryRef.story_id`; the story keeps the newest signal of
each of its pages and judges them together. Several languages editing the same item at once is
the strongest sign of news (Wikipedia Live Monitor's premise), so each language beyond the
first adds to the score; distinct editors are counted by name across pages, so one account
editing the item's page on ten wikis stays one editor.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from wikistreams.producer.events import format_event_time
from wikistreams.trends.page import PageSignal
from wikistreams.trends.params import DetectorParams
from wikistreams.trends.record import TrendRecord, TrendState


class StoryRef(BaseModel):
    """What a candidate page resolved to: its Wikidata item and the item's labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    story_id: str  # the Wikidata id, or `wiki:title` for a page without an item
    wikidata_id: str | None = None
    label_ko: str | None = None
    label_en: str | None = None

    @classmethod
    def of_page(cls, signal: PageSignal) -> StoryRef:
        """The story of a page without an item: the page alone."""
        return cls(story_id=signal.page)


class StoryState(BaseModel):
    """The newest signal of each page of a story, and what was last emitted."""

    model_config = ConfigDict(extra="forbid")

    pages: dict[str, PageSignal] = Field(default_factory=dict)
    flagged_at: float | None = None
    peak: float = 0.0
    last_state: TrendState | None = None
    last_emit: float = 0.0
    last_figures: tuple[int, int, int] = (0, 0, 0)  # edits, editors, languages emitted


class StoryFigures(BaseModel):
    """The story's pages taken together."""

    edits: int
    effective_edits: float
    editors: int
    top_share: float
    anon_share: float
    revert_share: float
    same_summary_share: float
    languages: int
    surprise: float  # summed over the pages: independent pages' log-chances add
    score: float


def story_figures(pages: list[PageSignal], params: DetectorParams) -> StoryFigures:
    edits = sum(p.edits for p in pages)
    by_editor: Counter[str] = Counter()
    for page in pages:
        by_editor.update(dict(zip(page.editors, page.editor_edits)))
    editors = max([len(by_editor)] + [p.editor_count for p in pages])
    languages = len({p.wiki for p in pages})
    return StoryFigures(
        edits=edits,
        effective_edits=sum(p.effective_edits for p in pages),
        editors=editors,
        top_share=max(by_editor.values()) / edits if edits else 1.0,
        anon_share=sum(p.anon_edits for p in pages) / edits if edits else 0.0,
        revert_share=sum(p.reverts for p in pages) / edits if edits else 0.0,
        same_summary_share=sum(p.same_summary for p in pages) / edits if edits else 0.0,
        languages=languages,
        surprise=sum(max(0.0, p.score) for p in pages if p.candidate),
        score=round(
            sum(max(0.0, p.score) for p in pages)
            + params.language_bonus * (languages - 1)
            + params.created_bonus * any(p.created for p in pages),
            3,
        ),
    )


def is_trend(f: StoryFigures, p: DetectorParams) -> bool:
    return (
        f.effective_edits >= p.story_edits
        and f.editors >= p.story_editors
        and f.surprise >= p.story_surprise
        and f.top_share <= p.max_top_share
        and f.anon_share <= p.max_anon_share
        and f.revert_share <= p.max_revert_share
        and f.same_summary_share <= p.max_same_summary_share
    )


def observe_story(
    state: StoryState | None, signal: PageSignal, ref: StoryRef, params: DetectorParams
) -> tuple[StoryState, TrendRecord | None]:
    """Take a page's newest signal; return the new state and a record when the story changed."""
    # Signals are replaced, never changed: a copy of the dict is enough (not a deep copy).
    state = state.model_copy(update={"pages": dict(state.pages)}) if state else StoryState()
    state.pages[signal.page] = signal
    now = max(p.ts for p in state.pages.values())
    state.pages = {k: p for k, p in state.pages.items() if p.ts > now - params.window}
    pages = list(state.pages.values())
    figures = story_figures(pages, params)
    trend = is_trend(figures, params)
    if state.flagged_at is None:
        if not trend:
            return state, None
        state.flagged_at = now
        new_state: TrendState = "rising"
    elif not trend:
        new_state = "cooling"
    elif figures.score >= state.peak:
        new_state = "rising"
    elif figures.score < params.cooling_share * state.peak:
        new_state = "cooling"
    else:
        new_state = "steady"
    state.peak = max(state.peak, figures.score if trend else 0.0)
    key = (figures.edits, figures.editors, figures.languages)
    changed = new_state != state.last_state or (
        key != state.last_figures and now - state.last_emit >= params.emit_interval
    )
    flagged_at = state.flagged_at
    if not trend and not any(p.candidate for p in pages):
        state = StoryState(pages=state.pages)  # over: a later burst is a new trend
    if not changed:
        return state, None
    if state.flagged_at is not None:
        state.last_state, state.last_emit, state.last_figures = new_state, now, key
    return state, _record(pages, ref, figures, new_state, flagged_at, now)


def story_expired(state: StoryState, now: float, params: DetectorParams) -> bool:
    """Whether a story's state can be dropped: no page signal in the last window."""
    return all(p.ts <= now - params.window for p in state.pages.values())


def _iso(ts: float) -> str:
    return format_event_time(datetime.fromtimestamp(ts, tz=timezone.utc))


def page_url(server_name: str, title: str) -> str:
    return f"https://{server_name}/wiki/{quote(title.replace(' ', '_'), safe='/:()_,')}"


def _record(
    pages: list[PageSignal],
    ref: StoryRef,
    figures: StoryFigures,
    state: TrendState,
    flagged_at: float,
    now: float,
) -> TrendRecord:
    ranked = sorted(pages, key=lambda p: (-p.edits, p.wiki))
    return TrendRecord(
        story_id=ref.story_id,
        wikidata_id=ref.wikidata_id,
        label_ko=ref.label_ko,
        label_en=ref.label_en,
        name=ref.label_ko or ref.label_en or ranked[0].title,
        wikis=[p.wiki for p in ranked],
        titles=[p.title for p in ranked],
        urls=[page_url(p.server_name, p.title) for p in ranked],
        languages=figures.languages,
        edits=figures.edits,
        editors=figures.editors,
        score=figures.score,
        state=state,
        flagged_at=_iso(flagged_at),
        window_end=_iso(now),
    )
