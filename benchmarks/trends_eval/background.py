"""The background the scenarios are injected into: live-shaped records plus the real recording.

- `benchmarks.capacity.generate.records` (30 events/s, 920 wikis, Zipf pages and editors, bots,
  Wikidata items; see its docstring for every figure and where it comes from).
- One change, `sessions`: the generator draws each record's editor independently of its page
  (it was built for Druid's volume and cardinality), so every busy page looks edited by a crowd.
  People edit in sessions: the next edit of a page is often by its previous editor. Here a
  page's edit keeps the page's previous editor with probability `session` (0.6: an assumption,
  no licensed recording shows it; `quiet_day` also reports the generator as it is, 0.0).
- The 99 real enwiki edits of 2023-07-29 (polars-book recording), re-timed into the period:
  real titles, users and summaries among the generated ones.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime, timezone

from benchmarks.capacity.generate import records
from tests.standins import recentchange_dir
from wikistreams.producer.events import RecentChange, enriched_record, format_event_time

RATE = 30.0
SESSION = 0.6
RECORDED = "polars-book_wikimedia_enwiki_2023-07-29.jsonl"
_LAST_EDITORS = 200_000  # pages whose last editor is remembered (LRU)


def recorded_enwiki() -> list[dict]:
    """The real enwiki events as enriched records, in recorded order."""
    lines = (recentchange_dir() / RECORDED).read_text().splitlines()
    return [enriched_record(RecentChange.model_validate(json.loads(x))) for x in lines]


def _with_sessions(source: Iterator[dict], session: float, seed: int) -> Iterator[dict]:
    rng = random.Random(f"sessions:{seed}")
    last: OrderedDict[tuple[str, str], str] = OrderedDict()
    for event in source:
        if event["namespace"] == 0 and not event["bot"] and event["wiki"] != "wikidatawiki":
            key = (event["wiki"], event["title"])
            previous = last.pop(key, None)
            if previous is not None and rng.random() < session:
                event["user"] = previous
            last[key] = event["user"]
            if len(last) > _LAST_EDITORS:
                last.popitem(last=False)
        yield event


def _recorded_retimed(start: float, hours: float, seed: int) -> list[tuple[float, dict]]:
    """The recorded edits spread over the period, keeping their order and relative gaps."""
    events = recorded_enwiki()
    rng = random.Random(f"recorded:{seed}")
    offset = start + rng.uniform(0, max(0.0, hours * 3600 - 600))
    first = datetime.fromisoformat(events[0]["event_time"].replace("Z", "+00:00")).timestamp()
    out = []
    for event in events:
        ts = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).timestamp()
        out.append((offset + ts - first, event))
    return out


def background(
    start: datetime, hours: float, seed: int, session: float = SESSION
) -> Iterator[tuple[float, dict]]:
    """(event time, enriched record) of the background, in time order."""
    recorded = sorted(_recorded_retimed(start.timestamp(), hours, seed), key=lambda x: x[0])
    generated = _with_sessions(records(start, hours / 24, RATE, seed), session, seed)
    i = 0
    for event in generated:
        ts = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).timestamp()
        while i < len(recorded) and recorded[i][0] <= ts:
            yield recorded[i][0], retime(recorded[i][1], recorded[i][0])
            i += 1
        yield ts, event
    for ts, event in recorded[i:]:
        yield ts, retime(event, ts)


def retime(event: dict, ts: float) -> dict:
    return event | {"event_time": format_event_time(datetime.fromtimestamp(ts, tz=timezone.utc))}
