import json
import time

import pytest

from producer.cache import SqliteLabelCache
from producer.decode import decode_event
from producer.enrich import Enricher, make_breaker
from producer.events import WikidataLabels
from producer.wikidata import WikidataClient
from tests.conftest import USER_AGENT


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


def enricher(wikidata, cache, **kw):
    client = WikidataClient(wikidata.url, USER_AGENT, timeout=1, max_retries=0)
    breaker = make_breaker(kw.pop("fail_max", 3), kw.pop("reset", 60))
    return Enricher(client, cache, breaker, **kw)


def test_one_call_serves_fifty_ids_and_order_is_kept(wikidata, cache):
    e = enricher(wikidata, cache, max_wait_seconds=60)
    titles = [f"Q{i}" for i in range(1000, 1120)] + ["Q42"]
    for i, title in enumerate(titles):
        e.add(i, change(title))
        e.add(f"en-{i}", change("Some page", wiki="enwiki"))
        if e.due():
            break
    # 50 distinct uncached ids make a batch due without waiting.
    assert e.due() and len(e) == 100
    out = e.flush()
    assert [item for item, _c, _e in out][:4] == [0, "en-0", 1, "en-1"]
    assert len(wikidata.behaviour.requests) == 1
    assert len(wikidata.behaviour.requests[0]["ids"].split("|")) == 50
    statuses = [ev.enrichment_status for _i, _c, ev in out]
    assert statuses.count("not_applicable") == 50 and "unavailable" not in statuses


def test_labels_come_from_api_then_cache(wikidata, cache):
    e = enricher(wikidata, cache, max_wait_seconds=0)
    e.add(1, change("Q42"))
    e.add(2, change("Property:P31", ns=120))
    e.add(3, change("Q6"))
    events = [ev for _i, _c, ev in e.flush()]
    assert events[0].wikidata_label_ko == "더글러스 애덤스"
    assert events[0].enrichment_status == "enriched"
    assert events[1].wikidata_id == "P31" and events[1].wikidata_label_en == "instance of"
    assert events[2].enrichment_status == "not_found"
    e.add(4, change("Q42", n=1))
    e.add(5, change("Q6", n=1))
    assert e.due(), "all ids cached: nothing to wait for"
    again = [ev for _i, _c, ev in e.flush()]
    assert again[0].wikidata_label_en == "Douglas Adams"
    assert again[1].enrichment_status == "not_found"
    assert len(wikidata.behaviour.requests) == 1
    assert (cache.hits, cache.misses) == (2, 3)


def test_breaker_opens_passes_events_through_and_recovers(wikidata, cache):
    e = enricher(wikidata, cache, fail_max=2, reset=0.5, max_wait_seconds=0)
    wikidata.behaviour.down = True
    for n in range(4):
        e.add(n, change(f"Q{100 + n}"))
        (_, _, event), *_ = e.flush()
        assert event.enrichment_status == "unavailable"
    assert e.breaker_state == "open"
    assert len(wikidata.behaviour.requests) == 2, "an open breaker makes no calls"
    wikidata.behaviour.down = False
    time.sleep(0.6)
    e.add(9, change("Q42"))
    (_, _, event), *_ = e.flush()
    assert event.enrichment_status == "enriched"
    assert e.breaker_state == "closed"
    stats = e.take_stats()
    assert stats["api_calls"] == 3 and stats["api_errors"] == 2


def test_unavailable_is_not_cached(wikidata, cache):
    e = enricher(wikidata, cache, max_wait_seconds=0)
    wikidata.behaviour.down = True
    e.add(1, change("Q42"))
    e.flush()
    assert cache.get_many(["Q42"]) == {}


def test_sqlite_cache_ttls(cache):
    cache.put_many({"Q1": WikidataLabels(label_en="universe", label_ko="우주")}, ["Q6"])
    got = cache.get_many(["Q1", "Q6", "Q7"])
    assert got["Q1"].label_ko == "우주" and got["Q6"] is None and "Q7" not in got
    cache.negative_ttl = -1  # expired on arrival
    cache.put_many({}, ["Q8"])
    assert "Q8" not in cache.get_many(["Q8"])
