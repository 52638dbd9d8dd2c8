"""Which recorded events count as human article edits (trends.edits.edit_from_event)."""

from __future__ import annotations

import json

import pytest

from tests.standins import recentchange_dir
from wikistreams.producer.events import RecentChange, enriched_record
from wikistreams.trends.detector import edit_from_event
from wikistreams.trends.edits import parse_time


def recorded(name: str) -> list[dict]:
    lines = (recentchange_dir() / name).read_text().splitlines()
    return [enriched_record(RecentChange.model_validate(json.loads(line))) for line in lines]


ENWIKI = "polars-book_wikimedia_enwiki_2023-07-29.jsonl"
WIKIDATA = "editgroups_qs_batch_with_reverts_wikidatawiki_2018-03-07.jsonl"


def test_recorded_enwiki_article_edits_by_people_count_and_the_rest_do_not() -> None:
    events = recorded(ENWIKI)
    counted = [e for e in events if edit_from_event(e)]
    for event in events:
        human_article = (
            event["type"] in ("edit", "new") and event["namespace"] == 0 and not event["bot"]
        )
        if not human_article:
            assert edit_from_event(event) is None
    assert 0 < len(counted) < len(events)
    ip = next(e for e in counted if e["user"].count(".") == 3)
    edit = edit_from_event(ip)
    assert edit is not None and edit.anonymous and edit.wiki == "enwiki"
    assert edit.ts == parse_time(ip["event_time"])


def test_wikidata_items_are_not_articles() -> None:
    assert all(edit_from_event(e) is None for e in recorded(WIKIDATA))


def _event(**changes: object) -> dict:
    event = recorded(ENWIKI)[0] | {"bot": False, "user": "Someone", "comment": "", "type": "edit"}
    return event | changes


@pytest.mark.parametrize(
    "user", ["ClueBot NG", "InternetArchiveBot", "AnomieBOT", "Bot1058", "Some-bot"]
)
def test_accounts_named_as_bots_do_not_count(user: str) -> None:
    assert edit_from_event(_event(user=user)) is None


@pytest.mark.parametrize("user", ["Talbot", "Abbott Smith", "Botany fan"])
def test_names_that_merely_contain_bot_count(user: str) -> None:
    assert edit_from_event(_event(user=user)) is not None


@pytest.mark.parametrize(
    "comment",
    [
        "Fixing links (using [[Project:AWB|AWB]])",
        "via JWB",
        "Rescuing 2 sources #IABot (v2.0.9.5)",
        "removed [[Category:X]] using [[WP:HC|HotCat]]",
        "Bot: replace template",
    ],
)
def test_mass_editing_tools_do_not_count(comment: str) -> None:
    assert edit_from_event(_event(comment=comment)) is None


@pytest.mark.parametrize(
    "comment",
    [
        "Reverted edits by 1.2.3.4 (talk) to last version by X",
        "Undid revision 1167689309 by X",
        "rv vandalism",
        "Änderungen von X rückgängig gemacht",
        "X의 편집을 되돌림",
    ],
)
def test_revert_summaries_are_reverts(comment: str) -> None:
    edit = edit_from_event(_event(comment=comment))
    assert edit is not None and edit.revert


def test_temporary_accounts_are_logged_out() -> None:
    edit = edit_from_event(_event(user="~2025-12345-67"))
    assert edit is not None and edit.anonymous
    named = edit_from_event(_event(user="Someone"))
    assert named is not None and not named.anonymous and not named.revert


def test_other_namespaces_types_and_bot_flags_do_not_count() -> None:
    assert edit_from_event(_event(namespace=1)) is None
    assert edit_from_event(_event(type="log")) is None
    assert edit_from_event(_event(type="categorize")) is None
    assert edit_from_event(_event(bot=True)) is None
    new = edit_from_event(_event(type="new"))
    assert new is not None and new.created
