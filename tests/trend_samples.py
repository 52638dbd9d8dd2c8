"""Trend records for tests of the Druid datasource and the dashboard, built from recorded data.

Names are the real Korean and English labels of the recorded Wikidata answers
(tests/data/recorded/wikidata), pages without an item are real enwiki pages of the recorded
stream; the stories' wikis and counts are made up, since nothing recorded holds trend records.
Each story is emitted several times (as the processor re-emits a story that changes), with
`window_end` relative to `now`: "Trending now" reads the newest 15 minutes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from urllib.parse import quote

from tests.standins import data_dir
from wikistreams.trends.record import TrendRecord

LABELS_FILE = "wikidata/DERIVED_wbgetentities_labels_descriptions_ko_en.json"
ENWIKI_RECORDING = "recentchange/polars-book_wikimedia_enwiki_2023-07-29.jsonl"
HOSTS = {"enwiki": "en.wikipedia.org", "kowiki": "ko.wikipedia.org", "dewiki": "de.wikipedia.org"}


@dataclass(frozen=True)
class Story:
    story_id: str
    wikis: tuple[str, ...]  # most edited first
    edits: int  # in the newest record; earlier ones have fewer
    editors: int


# Items with both labels in the recording; kowiki pages are titled by the Korean label.
ITEM_STORIES = (
    Story("Q131261", ("dewiki", "enwiki", "kowiki"), 31, 9),  # 올리버 칸
    Story("Q42", ("enwiki", "kowiki"), 24, 7),  # 더글러스 애덤스
    Story("Q2112", ("dewiki", "enwiki"), 17, 5),  # 빌레펠트
    Story("Q1", ("kowiki",), 12, 4),  # 우주
    Story("Q328212", ("enwiki",), 9, 4),  # 베로니카 로스
)
EMISSIONS = 4  # records per story, one a minute, the newest at `now`


def labels() -> dict[str, dict[str, str]]:
    """item id -> {"ko": ..., "en": ...} from the recorded wbgetentities answer."""
    entities = json.loads((data_dir() / LABELS_FILE).read_text(encoding="utf-8"))["entities"]
    return {
        qid: {lang: label["value"] for lang, label in entity.get("labels", {}).items()}
        for qid, entity in entities.items()
    }


def recorded_enwiki_pages(count: int) -> list[str]:
    """The most edited main-namespace pages of the recorded enwiki stream."""
    edits: dict[str, int] = {}
    path = data_dir() / ENWIKI_RECORDING
    for line in path.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("namespace") == 0 and event.get("type") in ("edit", "new"):
            edits[event["title"]] = edits.get(event["title"], 0) + 1
    return sorted(edits, key=lambda title: (-edits[title], title))[:count]


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _url(wiki: str, title: str) -> str:
    return f"https://{HOSTS[wiki]}/wiki/{quote(title.replace(' ', '_'))}"


def _title(wiki: str, names: dict[str, str]) -> str:
    title = names["ko"] if wiki == "kowiki" else names["en"]
    return title[:1].upper() + title[1:]


def stories(now: dt.datetime) -> list[TrendRecord]:
    """Every emission of every story, oldest first; the last `len(stories)` are the newest."""
    known = labels()
    latest: list[tuple[Story, str | None, dict[str, str]]] = [
        (story, story.story_id, known[story.story_id]) for story in ITEM_STORIES
    ]
    for rank, title in enumerate(recorded_enwiki_pages(2)):
        latest.append((Story(f"enwiki:{title}", ("enwiki",), 8 - rank, 3), None, {"en": title}))
    records = []
    for step in range(EMISSIONS):
        age = EMISSIONS - 1 - step  # minutes before `now`
        for story, item, names in latest:
            titles = [_title(wiki, names) for wiki in story.wikis]
            records.append(
                TrendRecord(
                    story_id=story.story_id,
                    wikidata_id=item,
                    label_ko=names.get("ko") if item else None,
                    label_en=names.get("en") if item else None,
                    name=names.get("ko") or names["en"],
                    wikis=list(story.wikis),
                    titles=titles,
                    urls=[_url(wiki, title) for wiki, title in zip(story.wikis, titles)],
                    languages=len(story.wikis),
                    edits=story.edits - 2 * age,
                    editors=story.editors - age // 2,
                    score=round(story.edits / 2.5 - age, 2),
                    state="rising" if age else "steady",
                    flagged_at=iso(now - dt.timedelta(minutes=EMISSIONS)),
                    window_end=iso(now - dt.timedelta(minutes=age)),
                )
            )
    return records


def publish(bootstrap: str, topic: str, records: list[TrendRecord]) -> None:
    """Onto `topic` as the processor writes them: JSON, keyed by story_id."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for record in records:
        producer.produce(topic, key=record.story_id.encode(), value=record.model_dump_json())
    assert producer.flush(30) == 0
