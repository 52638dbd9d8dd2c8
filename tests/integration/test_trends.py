"""The trends processor as a real process (`wikistreams-trends`) on the real Kafka.

Input: the recorded enwiki sample as enriched records plus DERIVED bursts (tests/trends_support),
written to a unique input topic; the Wikidata stand-in answers page lookups from the recorded
entities' sitelinks (Q42's pages on enwiki, dewiki and jawiki are real sitelinks). The output
topic is read `read_committed`, as Druid reads it. Nothing is timed: each test waits until the
processor's committed offsets reach the end of its input.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

import pytest
import requests

from wikistreams.trends.detector import Detector, DetectorParams
from wikistreams.trends.edits import parse_time
from tests.conftest import wait_until
from tests.integration.conftest import KAFKA
from tests.standins import TEST_CONTACT
from tests.integration.trends_run import Run
from tests.trends_support import burst, by_time, derived_edit, produce, recorded_enriched

pytestmark = [pytest.mark.integration]


@pytest.fixture
def run(tmp_path, wikidata):
    runs = []

    def make() -> Run:
        runs.append(Run(tmp_path, wikidata.url))
        return runs[-1]

    yield make
    for r in runs:
        r.close()


def test_a_story_across_three_wikis_is_named_by_its_korean_label(run, wikidata):
    background = recorded_enriched()
    start = max(r["event_time"] for r in background)
    template = background[0]
    # Q42's real sitelinks on three wikis; six editors, fourteen edits in about five minutes.
    pages = [
        ("enwiki", "Douglas Adams"),
        ("dewiki", "Douglas Adams"),
        ("jawiki", "ダグラス・アダムズ"),
    ]
    editors = ["Aquila", "Birch", "Cedar", "Dune", "Elm", "Fjord"]
    story = burst(template, pages, editors, parse_time(start) + 10, edits=14)
    r = run()
    produce(KAFKA, r.input, by_time(background + story))
    r.start()
    wait_until(r.caught_up, seconds=180, interval=1)
    records = r.records()
    q42 = [rec for rec in records if rec["story_id"] == "Q42"]
    assert q42, f"no Q42 record in {records}\n{r.tail()}"
    for rec in q42:
        assert rec["label_ko"] == "더글러스 애덤스" and rec["name"] == "더글러스 애덤스"
        assert rec["label_en"] == "Douglas Adams" and rec["wikidata_id"] == "Q42"
        assert set(rec["wikis"]) <= {"enwiki", "dewiki", "jawiki"} and rec["editors"] <= 6
    # Pages of one story sit in different input partitions, and a replay of a filled topic
    # reads partition by partition: which of the three pages a given record already counts
    # depends on that interleaving. Together the records name the story's pages on >= 2 wikis.
    assert len({wiki for rec in q42 for wiki in rec["wikis"]}) >= 2
    # Resolved through the API as the etiquette asks: one wiki per call, the policy User-Agent.
    lookups = [q for q in wikidata.behaviour.requests if q.get("sites")]
    assert {q["sites"] for q in lookups} == {"enwiki", "dewiki", "jawiki"}
    assert all(len(q["titles"].split("|")) <= 50 and q.get("maxlag") for q in lookups)
    assert all(TEST_CONTACT in q["user_agent"] for q in lookups)
    # The recorded sample alone: a hundred edits of a hundred pages in two minutes, none a trend.
    assert {rec["story_id"] for rec in records} == {"Q42"}

    # /health: 200 while the loop turns, with the totals of the newest stats line.
    def health() -> dict | None:
        answer = requests.get(f"http://127.0.0.1:{r.health_port}/health", timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body if body["total_events_in"] == len(background) + len(story) else None

    body = wait_until(health, seconds=60, interval=0.5)
    assert body["status"] == "ok" and body["lag"] == 0, body


def kill_test_input(seed: int) -> list[dict]:
    """The recorded sample; 40 bursts of single pages (10 of them decoys: one editor), each
    page its own story; and 5,000 filler edits of 2,500 quiet pages, all interleaved in time
    over half an hour."""
    rng = random.Random(seed)
    background = recorded_enriched()
    template = background[0]
    start = parse_time(max(r["event_time"] for r in background))
    records = list(background)
    for n in range(40):
        page = [("enwiki", f"Trends kill test page {n}")]
        editors = [f"Editor{n}-{k}" for k in range(1 if n % 4 == 0 else 5)]
        records += burst(template, page, editors, start + rng.uniform(0, 1800), edits=12)
    for n in range(5000):
        title, user = f"Quiet page {rng.randrange(2500)}", f"Reader{rng.randrange(3000)}"
        ts = start + rng.uniform(0, 1800)
        records.append(derived_edit(template, "enwiki", title, user, ts, delta=5))
    return by_time(records)


def offline_records(records: list[dict]) -> dict[str, list[dict]]:
    """The pure detector over the same input in one process: the records per story."""
    detector = Detector(DetectorParams())
    out: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        for trend in detector.process(record):
            out[trend.story_id].append(trend.model_dump(mode="json"))
    return dict(out)


def test_kill_9_three_times_every_trend_count_equals_an_offline_recount(run):
    """Input is fed at ~150 records/s while the processor is killed with SIGKILL three times
    at random points and restarted; its state comes back from the changelogs each time.

    Each story here is one page, so its signals reach the story step in the page's own order
    (one partition), whatever the interleaving of partitions: the exact sequence of records
    per story is determined by the input and must equal the offline recount's."""
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    records = kill_test_input(seed)
    r = run()
    r.start()
    fed = threading.Event()

    def feed() -> None:  # ~150 records/s: the kills land while input still arrives
        for i in range(0, len(records), 15):
            produce(KAFKA, r.input, records[i : i + 15])
            time.sleep(0.1)
        fed.set()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    kills = []
    for _ in range(3):
        # Kill once the processor has committed a little more, at a random moment.
        before = r.committed()
        wait_until(lambda: r.committed() > before, seconds=180, interval=0.2)
        time.sleep(rng.uniform(0.0, 2.0))
        kills.append(r.committed())
        r.kill()
        r.start()
    feeder.join(300)
    assert fed.is_set()
    wait_until(r.caught_up, seconds=300, interval=1)
    online: dict[str, list[dict]] = defaultdict(list)
    for record in r.records():
        online[record["story_id"]].append(record)
    expected = offline_records(records)
    assert len(expected) >= 25, "the input has trends to count"
    assert kills[-1] < len(records), f"seed {seed}: the last kill was mid-stream ({kills})"
    assert expected, f"seed {seed}: the input makes no trend at all: nothing to compare"
    assert dict(online) == expected, f"seed {seed}, kills after {kills} committed\n{r.tail()}"
