"""Input for the trends processor's tests and benchmark: recorded enriched events and bursts.

The background is the recorded enwiki sample (`polars-book_wikimedia_enwiki_2023-07-29.jsonl`,
MIT, tests/data/recorded/SOURCES.md 1b) turned into enriched records by the producer's own code
(`decode_event`, `enriched_record`). A burst is DERIVED from one of those real events: the same
record with another page, wiki, user, time and id, as several people editing one article would
write it. Keys are the producer's (`wiki:title`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

from confluent_kafka import Producer

from wikistreams.producer.decode import decode_event
from wikistreams.producer.events import enriched_record, format_event_time
from tests.conftest import recorded_events
from tests.standins import recentchange_dir

SAMPLE = "polars-book_wikimedia_enwiki_2023-07-29.jsonl"
SERVERS = {"enwiki": "en.wikipedia.org", "dewiki": "de.wikipedia.org", "jawiki": "ja.wikipedia.org"}


def recorded_enriched() -> list[dict]:
    """The recorded enwiki sample as the producer writes it to the enriched topic."""
    return [
        enriched_record(decode_event(data)) for data in recorded_events(recentchange_dir() / SAMPLE)
    ]


def at(ts: float) -> str:
    return format_event_time(datetime.fromtimestamp(ts, tz=timezone.utc))


# What people write when they edit an article about something that just happened: each their
# own words (one summary written by several editors is a sweep to the detector, not news).
SUMMARIES = (
    "update with latest reports",
    "copyedit",
    "add source",
    "expand lead",
    "fix infobox",
    "wording",
    "add reactions section",
    "update figures per press release",
    "clarify timeline",
    "ref formatting",
)


def derived_edit(
    template: dict, wiki: str, title: str, user: str, ts: float, delta: int, comment: str = "update"
) -> dict:
    """A human main-namespace edit of `wiki:title`, derived from a real recorded record."""
    length_old = 20_000 + (int(ts) % 997)
    return {
        **template,
        "event_id": str(uuid.uuid4()),
        "event_time": at(ts),
        "rc_id": None,
        "wiki": wiki,
        "server_name": SERVERS.get(wiki, f"{wiki.removesuffix('wiki')}.wikipedia.org"),
        "type": "edit",
        "namespace": 0,
        "title": title,
        "user": user,
        "bot": False,
        "comment": comment,
        "length_old": length_old,
        "length_new": length_old + delta,
        "length_delta": delta,
    }


def burst(
    template: dict,
    pages: Sequence[tuple[str, str]],
    editors: Sequence[str],
    start: float,
    edits: int,
    spacing: float = 20.0,
) -> list[dict]:
    """`edits` edits spread over `pages` by `editors` in turn, one every `spacing` seconds."""
    return [
        derived_edit(
            template,
            *pages[n % len(pages)],
            editors[n % len(editors)],
            start + n * spacing,
            delta=37 + 11 * n,
            comment=SUMMARIES[n % len(SUMMARIES)],
        )
        for n in range(edits)
    ]


def by_time(records: Iterable[dict]) -> list[dict]:
    return sorted(records, key=lambda r: r["event_time"])


def produce(bootstrap: str, topic: str, records: Iterable[dict]) -> int:
    """Write `records` keyed `wiki:title` (the producer's key), in order; returns how many."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    n = 0
    for record in records:
        key = f"{record['wiki']}:{record['title']}".encode()
        producer.produce(topic, key=key, value=json.dumps(record, ensure_ascii=False).encode())
        producer.poll(0)
        n += 1
    assert producer.flush(60) == 0
    return n
