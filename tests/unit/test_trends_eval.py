"""The evaluation's pieces: the two published rules as written, seeded scenarios, scoring."""

from __future__ import annotations

from benchmarks.trends_eval.rules import LiveMonitor, WikimediaTrending
from benchmarks.trends_eval.run import START
from benchmarks.trends_eval.scenarios import draw

T0 = START.timestamp()


def edit(user: str, title: str = "Story", wiki: str = "enwiki", bot: bool = False) -> dict:
    return {"type": "edit", "namespace": 0, "wiki": wiki, "title": title, "user": user, "bot": bot}


def test_live_monitor_needs_five_edits_four_short_gaps_and_two_editors() -> None:
    rule = LiveMonitor(lambda page: page)
    users = ["A", "B", "A", "B", "A"]
    flags = [f for i, u in enumerate(users) for f in rule.process(T0 + i * 50, edit(u))]
    assert [f[0] for f in flags] == ["enwiki:Story"]
    slow = LiveMonitor(lambda page: page)
    assert not [f for i, u in enumerate(users) for f in slow.process(T0 + i * 61, edit(u))]
    alone = LiveMonitor(lambda page: page)
    assert not [f for i in range(8) for f in alone.process(T0 + i * 10, edit("A"))]
    bots = LiveMonitor(lambda page: page)
    assert not [f for i, u in enumerate(users) for f in bots.process(T0 + i, edit(u + "Bot"))]


def test_live_monitor_groups_languages_by_the_story() -> None:
    rule = LiveMonitor(lambda page: "Q1")
    wikis = ["enwiki", "dewiki", "frwiki", "jawiki", "kowiki"]
    flags = [f for i, w in enumerate(wikis) for f in rule.process(T0 + i * 30, edit(w, wiki=w))]
    assert [f[0] for f in flags] == ["Q1"]


def test_wikimedia_rule_thresholds() -> None:
    rule = WikimediaTrending(lambda page: page)
    users = ["A", "B", "C", "1.2.3.4", "A", "B", "C"]
    flags = [f for i, u in enumerate(users) for f in rule.process(T0 + i * 60, edit(u))]
    # 6th edit at 5 min: >= 6 edits, 4 contributors, 1 anonymous, top share 2/6.
    assert flags and flags[0][1] == T0 + 5 * 60
    no_anon = WikimediaTrending(lambda page: page)
    named = ["A", "B", "C", "D", "A", "B", "C"]
    assert not [f for i, u in enumerate(named) for f in no_anon.process(T0 + i * 60, edit(u))]
    too_soon = WikimediaTrending(lambda page: page)
    assert not [f for i, u in enumerate(users) for f in too_soon.process(T0 + i * 10, edit(u))]


def test_scenarios_are_seeded_and_vary_with_the_seed() -> None:
    per_kind = {"multi_language": 2, "single_wiki": 2, "edit_war": 1, "busy_page": 1}
    end = T0 + 3 * 3600
    a = draw(1, T0, T0 + 3600, end, per_kind)
    b = draw(1, T0, T0 + 3600, end, per_kind)
    c = draw(2, T0, T0 + 3600, end, per_kind)
    assert [s.events for s in a] == [s.events for s in b]
    assert [s.events for s in a] != [s.events for s in c]
    assert {s.kind for s in a if s.true} == {"multi_language", "single_wiki"}
    multi = [s for s in a if s.kind == "multi_language"]
    assert all(len({e["wiki"] for _, e in s.events}) >= 2 for s in multi)
    assert all(len(s.story_ids) == 1 for s in multi)  # one item across languages
