"""The enrichment stage against the Wikidata stand-in (real HTTP over loopback, recorded data).

The `Enricher` runs on the test's thread as it does on the pipeline's; the `LabelWorkers` threads
answer through a queue that the test pumps, like the pipeline's inbox.
"""

import json
import queue
import time

import pytest

from wikistreams.producer.cache import SqliteLabelCache
from wikistreams.producer.decode import decode_event
from wikistreams.producer.enrich import Answer, Enricher, LabelWorkers, make_breaker
from wikistreams.producer.events import WikidataLabels
from wikistreams.producer.wikidata import WikidataClient
from tests.conftest import USER_AGENT, wait_until


def change(title, wiki="wikidatawiki", ns=0, n=0):
    return decode_event(
        json.dumps(
            {
                "meta": {"id": f"{title}-{n}", "dt": "2018-03-07T16:16:17+00:00"},
                "type": "edit",
                "namespace": ns,
                "title": title,
                "wiki": wiki,
                "server_name": "www.wikidata.org",
            }
        ).encode()
    )


@pytest.fixture
def cache(tmp_path):
    c = SqliteLabelCache(tmp_path / "labels.sqlite3", ttl_seconds=3600, negative_ttl_seconds=60)
    yield c
    c.close()


class Stage:
    """An enricher with real workers, and what it emitted, in order."""

    def __init__(self, wikidata, cache, max_delay=5.0, fail_max=3, reset=60.0, **client_kw):
        client_kw.setdefault("timeout", 2)
        client_kw.setdefault("max_retries", 0)
        client = WikidataClient(wikidata.url, USER_AGENT, **client_kw)
        self.workers = LabelWorkers(
            client, cache, make_breaker(fail_max, reset), batch_wait_seconds=0.05
        )
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.emitted: list[tuple] = []
        self.enricher = Enricher(self.workers, self._emit, max_delay_seconds=max_delay)
        self.workers.start(self.inbox.put)

    def _emit(self, item, change_, entity_id, labels, status):
        self.emitted.append((item, entity_id, labels, status))

    def pump(self, until, timeout=10.0):
        """Feed answers to the enricher until `until()` holds; fails the test on timeout."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"timed out; emitted {self.emitted}"
            try:
                self.enricher.answered(self.inbox.get(timeout=0.05))
            except queue.Empty:
                pass
            self.enricher.expire()

    def statuses(self):
        return {item: status for item, _eid, _labels, status in self.emitted}

    def close(self):
        self.workers.stop()


@pytest.fixture
def stage_factory(wikidata, cache):
    stages = []

    def make(**kw):
        stages.append(Stage(wikidata, cache, **kw))
        return stages[-1]

    yield make
    for s in stages:
        s.close()


def test_events_without_an_entity_leave_at_once_even_while_the_api_is_slow(wikidata, stage_factory):
    wikidata.behaviour.delay_seconds = 1.0
    stage = stage_factory()
    stage.enricher.add("q", change("Q42"))
    stage.enricher.add("en", change("Some page", wiki="enwiki"))
    stage.enricher.add("p", change("Wikidata:Project chat", ns=4))
    # Emitted inside add(): nothing waited for the API call in flight.
    assert [item for item, *_ in stage.emitted] == ["en", "p"]
    stage.pump(lambda: len(stage.emitted) == 3)
    item, entity_id, labels, status = stage.emitted[-1]
    assert (item, entity_id, status) == ("q", "Q42", "enriched")
    assert labels.label_en == "Douglas Adams"


def test_edits_of_one_page_leave_in_order(wikidata, stage_factory):
    wikidata.behaviour.delay_seconds = 0.3
    stage = stage_factory()
    stage.enricher.add("q42-a", change("Q42", n=1))
    stage.enricher.add("other", change("Other", wiki="enwiki"))
    stage.enricher.add("q42-b", change("Q42", n=2))
    # A later log entry on the same page (no entity lookup of its own) waits behind it too.
    stage.enricher.add("q42-log", change("Q42", ns=0, n=3))
    assert [item for item, *_ in stage.emitted] == ["other"]
    stage.pump(lambda: len(stage.emitted) == 4)
    assert [item for item, *_ in stage.emitted] == ["other", "q42-a", "q42-b", "q42-log"]
    assert len(wikidata.behaviour.requests) == 1


def test_one_call_serves_up_to_fifty_ids_in_series(wikidata, stage_factory):
    wikidata.behaviour.delay_seconds = 0.2
    stage = stage_factory()
    titles = [f"Q{i}" for i in range(1000, 1120)]
    for i, title in enumerate(titles):
        stage.enricher.add(i, change(title))
    stage.pump(lambda: len(stage.emitted) == len(titles))
    sizes = [len(r["ids"].split("|")) for r in wikidata.behaviour.requests]
    assert sum(sizes) == len(titles) and max(sizes) == 50
    assert set(stage.statuses().values()) <= {"enriched", "not_found"}


def test_a_late_answer_makes_the_event_unavailable_but_fills_memory(wikidata, stage_factory):
    wikidata.behaviour.delay_seconds = 1.0
    stage = stage_factory(max_delay=0.2)
    stage.enricher.add("first", change("Q42", n=1))
    stage.pump(lambda: stage.emitted)
    assert stage.emitted[0][3] == "unavailable"
    # The answer still arrives and is remembered: the next edit of Q42 needs no call.
    stage.pump(lambda: "Q42" in stage.enricher._memory)
    calls = len(wikidata.behaviour.requests)
    stage.enricher.add("second", change("Q42", n=2))
    assert stage.emitted[-1][0] == "second" and stage.emitted[-1][3] == "enriched"
    assert len(wikidata.behaviour.requests) == calls


def test_cache_answers_without_the_api(wikidata, cache, stage_factory):
    cache.put_many({"Q5": WikidataLabels(label_en="human")}, ["Q999999999"])
    stage = stage_factory()
    stage.enricher.add("q5", change("Q5"))
    stage.enricher.add("gone", change("Q999999999"))
    stage.pump(lambda: len(stage.emitted) == 2)
    assert stage.statuses() == {"q5": "enriched", "gone": "not_found"}
    assert stage.emitted[0][2].label_en == "human"
    assert wikidata.behaviour.requests == []


def test_outage_opens_the_breaker_and_events_go_on_unavailable(wikidata, stage_factory):
    wikidata.behaviour.down = True
    stage = stage_factory(fail_max=2, reset=60.0)
    for i in range(6):
        stage.enricher.add(i, change(f"Q{2000 + i}"))
        stage.pump(lambda: len(stage.emitted) == i + 1)
    assert set(stage.statuses().values()) == {"unavailable"}
    assert stage.workers.breaker_state == "open"
    # Two failed calls opened it; after that no request reaches the API.
    assert len(wikidata.behaviour.requests) == 2


def test_retry_after_beyond_the_budget_pauses_the_worker_not_the_stream(wikidata, stage_factory):
    wikidata.behaviour.maxlag_next = 1
    wikidata.behaviour.retry_after = "30"
    stage = stage_factory(max_retries=3, retry_budget_seconds=5.0)
    stage.enricher.add("a", change("Q42"))
    stage.pump(lambda: stage.emitted)
    assert stage.emitted[0][3] == "unavailable"
    assert stage.workers.paused_seconds > 20
    # While paused, new ids are answered at once without calling the API.
    stage.enricher.add("b", change("Q5"))
    stage.pump(lambda: len(stage.emitted) == 2, timeout=2.0)
    assert stage.emitted[1][3] == "unavailable"
    assert len(wikidata.behaviour.requests) == 1


def test_release_all_emits_everything_in_order(wikidata, stage_factory):
    wikidata.behaviour.delay_seconds = 2.0
    stage = stage_factory()
    stage.enricher.add("a", change("Q42", n=1))
    stage.enricher.add("b", change("Q42", n=2))
    stage.enricher.release_all()
    emitted = [(i, s) for i, _e, _l, s in stage.emitted]
    assert emitted == [("a", "unavailable"), ("b", "unavailable")]
    assert len(stage.enricher) == 0


def test_answers_for_ids_nobody_waits_on_are_harmless(wikidata, stage_factory):
    stage = stage_factory()
    stage.enricher.answered(Answer({"Q1": None}, ("Q2",)))
    stage.enricher.add("q1", change("Q1"))
    assert stage.emitted == [("q1", "Q1", None, "not_found")]


def test_warm_up_fills_memory_from_the_persistent_cache(wikidata, cache, stage_factory):
    """After a restart, items the cache holds leave inside add(): no lookup, no wait."""
    cache.put_many({"Q5": WikidataLabels(label_en="human")}, ["Q999999999"])
    stage = stage_factory()
    assert stage.enricher.warm_up() == 2
    stage.enricher.add("q5", change("Q5"))
    stage.enricher.add("gone", change("Q999999999"))
    assert stage.statuses() == {"q5": "enriched", "gone": "not_found"}
    assert stage.enricher.counts["enrich_memory_hits"] == 2
    assert stage.enricher.counts["enrich_lookups"] == 0


def _stuck_api(wikidata) -> dict:
    """Every call's answer drips in a byte every 0.5 s: no answer within any test's time."""
    wikidata.behaviour.garbage, wikidata.behaviour.drip_seconds = "slow_drip", 0.5
    return {"timeout": 600, "retry_budget_seconds": 600}


def test_ids_never_answered_are_forgotten_at_their_deadline(wikidata, stage_factory):
    stage = stage_factory(max_delay=0.2, **_stuck_api(wikidata))
    titles = [f"Q{i}" for i in range(3000, 3200)]
    for i, title in enumerate(titles):
        stage.enricher.add(i, change(title))
    stage.pump(lambda: len(stage.emitted) == len(titles))
    assert set(stage.statuses().values()) == {"unavailable"}
    assert len(stage.enricher._waiting) == 0, "ids asked and never answered are kept"
    # The next edit of such an item asks again instead of joining a question nobody answers.
    lookups = stage.enricher.counts["enrich_lookups"]
    stage.enricher.add("again", change("Q3000", n=1))
    assert stage.enricher.counts["enrich_lookups"] == lookups + 1


def test_at_most_max_waiting_ids_are_asked_at_once(wikidata, cache):
    client = WikidataClient(wikidata.url, USER_AGENT, **_stuck_api(wikidata))
    workers = LabelWorkers(client, cache, make_breaker(3, 60))
    emitted = []
    enricher = Enricher(
        workers, lambda item, *rest: emitted.append((item, rest[-1])), 60.0, max_waiting=5
    )
    workers.start(lambda _answer: None)
    try:
        for i in range(12):
            enricher.add(i, change(f"Q{4000 + i}"))
        assert len(enricher._waiting) == 5
        assert emitted == [(i, "unavailable") for i in range(5, 12)]
        assert enricher.counts["enrich_not_asked"] == 7
    finally:
        workers.stop()


def test_stopping_the_workers_ends_a_call_in_flight(wikidata, stage_factory):
    stage = stage_factory(**_stuck_api(wikidata))
    stage.enricher.add("q", change("Q42"))
    wait_until(lambda: wikidata.behaviour.requests, seconds=10)
    stage.workers.stop()
    alive = [t.name for t in stage.workers._threads if t.is_alive()]
    assert alive == [], f"threads outlive their term: {alive}"


def test_a_live_deadline_is_kept_behind_a_catch_up_one():
    """The pipeline shortens `max_delay` when a catch-up ends: an edit parked after that leaves
    at its own (live) deadline, not behind the catch-up edits parked before it."""
    from tests.fakes import SilentWorkers

    now = [0.0]
    emitted = []
    enricher = Enricher(
        SilentWorkers(),  # never answers: only deadlines release
        lambda item, *rest: emitted.append((item, rest[-1])),
        max_delay_seconds=120.0,
        clock=lambda: now[0],
    )
    enricher.add("catching-up", change("Q5000"))
    enricher.max_delay = 2.0
    enricher.add("live", change("Q5001"))
    now[0] = 3.0
    enricher.expire()
    assert emitted == [("live", "unavailable")]
    now[0] = 121.0
    enricher.expire()
    assert emitted[-1] == ("catching-up", "unavailable")
