"""The trends processor's parts without Kafka: page lookups, the resolver, the steps, its logs.

The Wikidata API is the local stand-in answering from recorded entities (Q42's real sitelinks);
the label cache is a real SQLite file.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pybreaker
import pytest
import structlog

from wikistreams.producer.cache import SqliteLabelCache
from wikistreams.producer.logs import configure_logging
from wikistreams.producer.wikidata import WikidataClient, parse_sitelinks
from wikistreams.trends.detector import DetectorParams
from wikistreams.trends.resolve import StoryResolver
from wikistreams.trends.stats import input_lag
from wikistreams.trends.steps import PageStep, StepCounts, StoryStep, story_key
from tests.conftest import USER_AGENT
from tests.trends_support import burst, recorded_enriched

Q42_PAGES = [
    ("enwiki", "Douglas Adams"),
    ("dewiki", "Douglas Adams"),
    ("jawiki", "ダグラス・アダムズ"),
]


def client(server) -> WikidataClient:
    return WikidataClient(server.url, USER_AGENT, timeout=2.0, max_retries=0)


def resolver(server, tmp_path, **kw) -> StoryResolver:
    cache = SqliteLabelCache(tmp_path / "labels.sqlite3", 3600, 600)
    breaker = pybreaker.CircuitBreaker(fail_max=kw.pop("fail_max", 3), reset_timeout=60)
    return StoryResolver(client(server), cache, breaker, **kw)


def test_titles_lookup_asks_one_site_and_maps_titles_back_by_sitelink(wikidata):
    result = client(wikidata).fetch_titles("jawiki", ["ダグラス・アダムズ", "No such page 1"])
    item, labels = result.found["ダグラス・アダムズ"]
    assert item == "Q42" and labels.label_ko == "더글러스 애덤스"
    assert labels.label_en == "Douglas Adams" and result.not_found == ["No such page 1"]
    (request,) = wikidata.behaviour.requests
    assert request["sites"] == request["sitefilter"] == "jawiki"
    assert request["titles"] == "ダグラス・アダムズ|No such page 1"
    assert request["maxlag"] == "5" and request["user_agent"] == USER_AGENT
    assert request["languages"] == "ko|en|mul"


def test_titles_lookup_refuses_what_the_api_could_not_take(wikidata):
    with pytest.raises(ValueError):
        client(wikidata).fetch_titles("enwiki", [f"T{n}" for n in range(51)])
    with pytest.raises(ValueError):
        client(wikidata).fetch_titles("enwiki", ["A|B"])
    assert not wikidata.behaviour.requests


def test_an_answer_for_another_title_is_not_taken_for_the_one_asked():
    """A redirect or normalised title comes back with the target's sitelink: no match."""
    entities = {"Q1": {"id": "Q1", "sitelinks": {"enwiki": {"title": "Universe"}}, "labels": {}}}
    result = parse_sitelinks(entities, "enwiki", ["universe"])
    assert result.found == {} and result.not_found == ["universe"]


def test_resolver_asks_once_then_answers_from_memory_and_the_shared_cache(wikidata, tmp_path):
    first = resolver(wikidata, tmp_path)
    ref = first.resolve("enwiki", "Douglas Adams")
    assert ref is not None and (ref.story_id, ref.label_ko) == ("Q42", "더글러스 애덤스")
    assert first.resolve("enwiki", "Douglas Adams") == ref
    assert first.resolve("enwiki", "No such page") is not None  # no item: its own story
    assert len(wikidata.behaviour.requests) == 2
    # A restarted processor (empty memory) finds both in the SQLite cache, and the item's
    # labels are stored by id, as the producer stores them.
    second = resolver(wikidata, tmp_path)
    assert second.resolve("enwiki", "Douglas Adams") == ref
    assert second.resolve("enwiki", "No such page").story_id == "enwiki:No such page"
    assert len(wikidata.behaviour.requests) == 2
    assert second.cache.get_many(["Q42"])["Q42"].label_ko == "더글러스 애덤스"


def test_hints_ride_along_in_the_next_call_for_their_wiki_up_to_50(wikidata, tmp_path):
    r = resolver(wikidata, tmp_path)
    for n in range(80):
        r.hint("enwiki", f"Warm page {n}")
    r.hint("dewiki", "Douglas Adams")
    assert r.resolve("enwiki", "Douglas Adams").story_id == "Q42"
    (request,) = wikidata.behaviour.requests
    titles = request["titles"].split("|")
    assert request["sites"] == "enwiki" and len(titles) == 50 and titles[0] == "Douglas Adams"
    assert r.resolve("enwiki", titles[-1]).story_id == f"enwiki:{titles[-1]}"  # from memory
    assert len(wikidata.behaviour.requests) == 1


def test_an_api_outage_never_holds_the_stream_past_the_breaker(wikidata, tmp_path):
    wikidata.behaviour.down = True
    r = resolver(wikidata, tmp_path, fail_max=2)
    assert [r.resolve("enwiki", f"Page {n}") for n in range(5)] == [None] * 5
    assert len(wikidata.behaviour.requests) == 2  # then the breaker answers alone
    assert r.breaker_state == "open" and r.counts.unavailable == 5


def test_steps_carry_a_candidate_page_to_a_story_record_with_its_korean_name(wikidata, tmp_path):
    """The steps with plain dicts for state, as Quix calls them (state per key, TTL given)."""

    class State(dict):
        def set(self, key, value, ttl=None):
            assert isinstance(ttl, timedelta) and ttl.total_seconds() > 0
            json.dumps(value)  # what the store keeps must be JSON
            self[key] = value

    params, counts = DetectorParams(), StepCounts()
    page_step = PageStep(params, resolver(wikidata, tmp_path), counts)
    story_step = StoryStep(params, counts)
    pages: dict[str, State] = {}
    stories: dict[str, State] = {}
    records = []
    template = recorded_enriched()[0]
    editors = ["Aquila", "Birch", "Cedar", "Dune"]
    for event in burst(template, Q42_PAGES[:1], editors, 1_690_617_300.0, edits=8):
        out = page_step(event, pages.setdefault(f"{event['wiki']}:{event['title']}", State()))
        if out is not None:
            record = story_step(out, stories.setdefault(story_key(out), State()))
            records += [record] if record else []
    assert records and records[-1]["name"] == "더글러스 애덤스"
    assert records[-1]["story_id"] == "Q42" and set(stories) == {"Q42"}
    assert counts.events_in == counts.edits == 8 and counts.trends_out == len(records)


def test_input_lag_is_stable_offset_minus_the_next_offset_to_process():
    stats = {
        "topics": {
            "in": {
                "partitions": {
                    "0": {"ls_offset": 120, "app_offset": 100},
                    "1": {"ls_offset": 50, "app_offset": 50},
                    "2": {"ls_offset": 7, "app_offset": -1001},  # not fetched yet
                    "-1": {"ls_offset": -1, "app_offset": -1},
                }
            }
        }
    }
    assert input_lag(stats, "in") == 20 and input_lag(stats, "other") is None


def test_library_log_lines_are_json_with_the_service_name():
    handlers, level, config = logging.root.handlers[:], logging.root.level, structlog.get_config()
    buffer = io.StringIO()
    try:
        configure_logging("INFO", stream=buffer, service="trends")
        logging.getLogger("quixstreams.app").warning("The application started")
        structlog.get_logger("trends.main").info("startup", version="1")
    finally:
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
        structlog.configure(**config)
    library, own = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert library["msg"] == "The application started" and library["level"] == "warning"
    assert library["service"] == own["service"] == "trends" and library["ts"]
    assert own["msg"] == "startup" and own["logger"] == "trends.main"
