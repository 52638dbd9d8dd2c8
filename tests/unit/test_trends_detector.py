"""The trend detector on edits built from a real recorded enwiki event: signals, baseline,
stories, every decoy kind, JSON state, bounds and determinism."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tests.standins import recentchange_dir
from wikistreams.producer.events import RecentChange, enriched_record, format_event_time
from wikistreams.trends.detector import (
    Detector,
    DetectorParams,
    PageState,
    StoryRef,
    StoryState,
    TrendRecord,
    edit_from_event,
    observe_page,
    observe_story,
)

T0 = 1_796_000_000.0  # 2026-11-30, event time
RECORDED = "polars-book_wikimedia_enwiki_2023-07-29.jsonl"


def _template() -> dict:
    line = (recentchange_dir() / RECORDED).read_text().splitlines()[0]
    return enriched_record(RecentChange.model_validate(json.loads(line)))


TEMPLATE = _template()


class Page:
    """Edits of one page from the recorded event, with consistent lengths."""

    def __init__(self, title: str = "Breaking story", wiki: str = "enwiki") -> None:
        self.title, self.wiki = title, wiki
        self.length = TEMPLATE["length_new"]
        self.last_delta = 0

    def edit(self, at: float, user: str, delta: int = 40, comment: str = "", **kw: object) -> dict:
        old = self.length
        self.length += delta
        self.last_delta = delta
        when = datetime.fromtimestamp(T0 + at, tz=timezone.utc)
        return (
            TEMPLATE
            | {
                "event_time": format_event_time(when),
                "wiki": self.wiki,
                "server_name": f"{self.wiki[:2]}.wikipedia.org",
                "title": self.title,
                "user": user,
                "bot": False,
                "comment": comment,
                "length_old": old,
                "length_new": self.length,
                "length_delta": delta,
            }
            | kw
        )

    def undo(self, at: float, user: str, comment: str = "") -> dict:
        return self.edit(at, user, -self.last_delta, comment)


def burst(page: Page, start: float, users: list[str], gap: float = 30.0) -> list[dict]:
    return [page.edit(start + i * gap, u, 30 + 7 * i) for i, u in enumerate(users)]


def run(events: list[dict], detector: Detector | None = None) -> list[TrendRecord]:
    detector = detector or Detector()
    return [r for e in sorted(events, key=lambda e: e["event_time"]) for r in detector.process(e)]


PEOPLE = ["Ann Editor", "Bo 22", "Cy Writes", "~2026-10001-11", "Dee", "Eli"]


def test_a_burst_by_several_editors_on_a_quiet_page_is_a_trend_with_its_figures() -> None:
    records = run(burst(Page(), 0, PEOPLE))
    assert records, "six editors in three minutes on an unseen page"
    first = records[0]
    assert first.state == "rising" and first.story_id == "enwiki:Breaking story"
    assert first.edits >= 5 and first.editors >= 3 and first.languages == 1
    assert first.urls == ["https://en.wikipedia.org/wiki/Breaking_story"]
    assert first.name == "Breaking story"  # no item: the title names it
    assert first.flagged_at <= first.window_end


def test_the_trend_comes_by_the_fifth_edit_when_five_people_make_them() -> None:
    detector = Detector()
    page = Page()
    flagged_at = None
    for i, event in enumerate(burst(page, 0, PEOPLE[:5] + ["Fay"])):
        if detector.process(event) and flagged_at is None:
            flagged_at = i + 1
    assert flagged_at == 5


def test_a_page_always_this_busy_is_not_trending_but_a_quiet_one_is() -> None:
    busy, quiet = Page("Busy page"), Page("Quiet page")
    events = []
    # Two days at 30 edits an hour by rotating regulars: its usual rate.
    for i in range(2 * 24 * 30):
        events.append(busy.edit(i * 120.0, PEOPLE[i % 5], 10))
    at = 2 * 86_400.0
    same_burst = [busy.edit(at + i * 30, u, 10) for i, u in enumerate(PEOPLE)]
    quiet_burst = [quiet.edit(at + i * 30, u, 10) for i, u in enumerate(PEOPLE)]
    records = run(events + same_burst + quiet_burst)
    stories = {r.story_id for r in records if r.flagged_at >= format_time(at)}
    assert stories == {"enwiki:Quiet page"}


def format_time(at: float) -> str:
    return format_event_time(datetime.fromtimestamp(T0 + at, tz=timezone.utc))


def test_the_baseline_learns_a_page_and_forgets_it_after_the_ttl() -> None:
    params = DetectorParams()
    edit = edit_from_event(Page().edit(0, "Ann Editor"))
    assert edit is not None
    state, _ = observe_page(None, edit, params)
    for i in range(1, 200):
        e = edit.model_copy(update={"ts": edit.ts + i * 60})
        state, _ = observe_page(state, e, params)
    assert len(state.recent) <= params.max_recent
    assert state.decayed > 150  # 200 edits in 3 h, barely decayed with tau = 24 h
    later = edit.model_copy(update={"ts": state.last_ts + params.ttl + 1})
    fresh, _ = observe_page(state, later, params)
    assert fresh.decayed == 1.0 and len(fresh.recent) == 1


def test_pages_of_one_item_on_several_wikis_are_one_story_named_in_korean() -> None:
    ref = StoryRef(story_id="Q42", wikidata_id="Q42", label_ko="더글러스 애덤스", label_en="DA")
    detector = Detector(resolve=lambda signal: ref)
    en, ko, de = (
        Page("Douglas Adams"),
        Page("더글러스 애덤스", "kowiki"),
        Page("Douglas A", "dewiki"),
    )
    events = (
        burst(en, 0, ["Ann Editor", "Bo 22", "Ann Editor"])
        + burst(ko, 10, ["Cy Writes", "Ann Editor"])
        + burst(de, 20, ["Dee", "Eli"])
    )
    records = run(events, detector)
    assert records
    last = records[-1]
    assert last.story_id == "Q42" and last.name == "더글러스 애덤스"
    assert set(last.wikis) == {"enwiki", "kowiki", "dewiki"} and last.languages == 3
    assert last.editors == 5  # Ann Editor on two wikis is one editor
    assert last.titles[last.wikis.index("kowiki")] == "더글러스 애덤스"
    # No page alone is a trend: enwiki has 2 editors, the others 2 edits each.
    for page_events in ([e for e in events if e["wiki"] == w] for w in ("enwiki", "kowiki")):
        assert run(page_events, Detector()) == []


def test_a_story_cools_when_the_edits_stop() -> None:
    page = Page()
    events = burst(page, 0, PEOPLE) + [page.edit(3_000, "Ann Editor"), page.edit(3_030, "Dee")]
    states = [r.state for r in run(events)]
    assert states[0] == "rising" and states[-1] == "cooling"


# -- decoys ---------------------------------------------------------------------------------


def test_an_edit_war_between_two_people_is_not_a_trend() -> None:
    page = Page("Contested")
    events = [page.edit(0, "Warrior A", 300)]
    for i in range(1, 25):
        user = "Warrior B" if i % 2 else "Warrior A"
        events.append(page.undo(i * 40, user, f"Undid revision {i} by [[Special:Contributions/x]]"))
    assert run(events) == []


def test_an_edit_war_without_summaries_is_seen_by_its_size_swings() -> None:
    page = Page("Contested")
    events = [page.edit(0, "Warrior A", 300), page.edit(5, "Third", 12)]
    for i in range(1, 25):
        events.append(page.undo(i * 40, "Warrior B" if i % 2 else "Warrior A"))
    assert run(events) == []
    edits = [edit_from_event(e) for e in events]
    params = DetectorParams()
    state = None
    reverts = []
    for edit in edits:
        assert edit is not None
        state, _ = observe_page(state, edit, params)
        reverts.append(state.recent[-1].revert)
    assert reverts[:2] == [False, False] and all(reverts[2:])  # each undoes the one before


def test_one_editor_making_fifty_edits_is_not_a_trend() -> None:
    page = Page("My draft")
    events = [page.edit(i * 20, "Prolific Person") for i in range(50)]
    events += [page.edit(101, "Typo Fixer", 1), page.edit(503, "Other", -2)]
    assert run(events) == []


def test_vandalism_reverted_by_patrollers_is_not_a_trend() -> None:
    page = Page("Target")
    events = []
    for i in range(8):
        vandal = f"203.0.113.{i % 3}"
        events.append(page.edit(i * 120, vandal, -900))
        patroller = ["Patrol One", "Patrol Two", "Patrol Three"][i % 3]
        summary = f"Reverted edits by [[Special:Contributions/{vandal}|{vandal}]] to last version"
        events.append(page.undo(i * 120 + 40, patroller, summary if i % 2 else ""))
    assert run(events) == []


def test_a_bot_flood_without_a_bot_flag_is_not_a_trend() -> None:
    named = [Page(f"Town {i}").edit(i * 3, "PopulationBot", 20) for i in range(200)]
    assert all(edit_from_event(e) is None for e in named)
    # A human-looking account flooding pages (a few twice) makes no page a trend either.
    pages = [Page(f"Village {i}") for i in range(50)]
    flood = [pages[i % 50].edit(i * 4, "Quiet Updater", 15, "update") for i in range(120)]
    assert run(flood) == []


def test_a_template_sweep_is_not_a_trend() -> None:
    awb, shared = [], []
    for i in range(30):
        a, b = Page(f"Article {i}"), Page(f"Other article {i}")
        for j, user in enumerate(["Sweeper One", "Sweeper Two", "Sweeper Three", "Sweeper One"]):
            at = i * 60 + j * 20
            awb.append(a.edit(at, user, 5, "Replace parameter (using [[Project:AWB|AWB]])"))
            shared.append(b.edit(at, user, 5, "Replace deprecated infobox parameter"))
    assert all(edit_from_event(e) is None for e in awb)
    assert run(shared) == []


# -- state ----------------------------------------------------------------------------------


def test_state_is_json_and_a_restored_state_gives_the_same_records() -> None:
    events = burst(Page(), 0, PEOPLE + ["Fay", "Gus"])
    params = DetectorParams()
    whole = Detector(params)
    expected = run(events, whole)
    half = Detector(params)
    run(events[:4], half)
    restored = Detector(params)
    restored.pages = {
        k: PageState.model_validate_json(v.model_dump_json()) for k, v in half.pages.items()
    }
    restored.stories = {
        k: StoryState.model_validate_json(v.model_dump_json()) for k, v in half.stories.items()
    }
    assert run(events[:4], Detector(params)) + run(events[4:], restored) == expected


def test_observe_story_ignores_signals_older_than_the_window() -> None:
    params = DetectorParams()
    edits = [edit_from_event(e) for e in burst(Page(), 0, PEOPLE)]
    state = None
    signal = None
    for edit in edits:
        assert edit is not None
        state, signal = observe_page(state, edit, params)
    assert signal is not None and signal.candidate
    story, record = observe_story(None, signal, StoryRef.of_page(signal), params)
    assert record is not None
    old = signal.model_copy(update={"page": "dewiki:Alt", "wiki": "dewiki", "ts": signal.ts})
    newer = signal.model_copy(update={"ts": signal.ts + params.window + 1})
    story, _ = observe_story(story, old, StoryRef.of_page(signal), params)
    story, _ = observe_story(story, newer, StoryRef.of_page(signal), params)
    assert set(story.pages) == {signal.page}


@pytest.mark.parametrize("field", ["ts", "user"])
def test_bad_events_are_errors_or_not_counted(field: str) -> None:
    event = Page().edit(0, "Ann Editor")
    if field == "ts":
        with pytest.raises(ValueError):
            edit_from_event(event | {"event_time": "yesterday"})
    else:
        edit = edit_from_event(event | {"user": ""})
        assert edit is not None and edit.anonymous


def test_vandalism_reverted_by_a_flagged_bot_is_not_a_trend() -> None:
    page = Page("Target")
    vandals = ["203.0.113.7", "New Account 1", "198.51.100.2", "New Account 2"]
    events = []
    for i in range(8):
        vandal = vandals[i % 4]
        events.append(page.edit(i * 90, vandal, -700))
        summary = (
            f"Reverting possible vandalism by {vandal} to version by X. Report False Positive?"
        )
        events.append(page.undo(i * 90 + 20, "ClueBot NG", summary) | {"bot": True})
    bot_revert = edit_from_event(events[1])
    assert bot_revert is not None and not bot_revert.counted and bot_revert.revert
    assert run(events) == []
    # Without the bot's reverts the same edits look like a crowd: the reverts are what tell.
    assert run(events[::2]) != []
