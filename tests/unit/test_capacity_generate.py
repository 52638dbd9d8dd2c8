"""benchmarks/capacity/generate.py: live-like enriched records for capacity tests."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from benchmarks.capacity import generate
from wikistreams.producer.events import EnrichedEvent, format_event_time
from wikistreams.producer.wikidata import entity_id_for

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SAMPLE_DAYS = 0.05  # 129,600 records at 30/s, about a second


def _parse(event_time: str) -> datetime:
    return datetime.fromisoformat(event_time.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def stats() -> dict:
    """One streamed pass over a sample: counts only, the records are not kept."""
    count = entity = bots = 0
    wikis, types, status, ids = Counter(), Counter(), Counter(), set()
    qids, missing = set(), set()
    previous, ordered, rc_up = "", True, True
    last_rc = 0
    for r in generate.records(START, SAMPLE_DAYS):
        count += 1
        ordered &= r["event_time"] >= previous
        previous = r["event_time"]
        rc_up &= r["rc_id"] > last_rc
        last_rc = r["rc_id"]
        wikis[r["wiki"]] += 1
        types[r["type"]] += 1
        status[r["enrichment_status"]] += 1
        bots += r["bot"]
        if r["wikidata_id"] is not None:
            entity += 1
            qids.add(r["wikidata_id"])
            if r["enrichment_status"] == "not_found":
                missing.add(r["wikidata_id"])
        ids.add(r["event_id"])
    return {
        "count": count,
        "entity": entity / count,
        "bots": bots / count,
        "wikis": wikis,
        "types": types,
        "status": status,
        "unique_ids": len(ids),
        "qids": len(qids),
        "missing_qids": len(missing),
        "ordered": ordered,
        "rc_up": rc_up,
        "last": previous,
    }


def test_records_are_the_enriched_contract():
    fields = list(EnrichedEvent.model_fields)
    for record in itertools.islice(generate.records(START, 0.01, seed=7), 3000):
        assert list(record) == fields
        event = EnrichedEvent.model_validate(record)
        assert event.model_dump() == record
        assert TIME.match(record["event_time"])
        assert format_event_time(_parse(record["event_time"])) == record["event_time"]
        assert UUID4.match(record["event_id"])
        length = (record["length_old"], record["length_new"], record["length_delta"])
        if length[1] is not None:
            assert length[2] == length[1] - (length[0] or 0)
        # The producer would have enriched exactly these: wikidatawiki item pages.
        assert record["wikidata_id"] == entity_id_for(
            record["wiki"], record["namespace"], record["title"]
        )
        if record["wikidata_id"] is None:
            assert record["enrichment_status"] == "not_applicable"
            assert not any(v for k, v in record.items() if k.startswith("wikidata_"))
        elif record["enrichment_status"] != "enriched":
            assert record["wikidata_label_en"] is record["wikidata_label_ko"] is None
        assert orjson.loads(orjson.dumps(record)) == record


def test_time_order_window_and_rate(stats):
    assert stats["count"] == round(SAMPLE_DAYS * 86400 * 30)
    assert stats["ordered"] and stats["rc_up"]
    assert stats["unique_ids"] == stats["count"]
    end = START + timedelta(days=SAMPLE_DAYS)
    assert end - timedelta(seconds=1) <= _parse(stats["last"]) < end
    for rate, days in ((21.0, 0.001), (34.0, 0.002), (0.5, 1.0)):
        times = [_parse(r["event_time"]) for r in generate.records(START, days, rate=rate)]
        assert len(times) == round(days * 86400 * rate)
        assert START <= times[0] and times[-1] < START + timedelta(days=days)
        # evenly spread: every tenth of the period holds a tenth of the records
        tenth = timedelta(days=days) / 10
        per_tenth = Counter(int((t - START) / tenth) for t in times)
        assert all(abs(n - len(times) / 10) <= 1 for n in per_tenth.values())


def test_shares_on_a_sample(stats):
    figures = generate.recorded_figures()
    assert stats["entity"] == pytest.approx(generate.ENTITY_SHARE, abs=0.005)
    expected_bots = (
        generate.ENTITY_SHARE * figures["entity_bot_share"]
        + (1 - generate.ENTITY_SHARE) * figures["other_bots"] / figures["other_events"]
    )
    assert stats["bots"] == pytest.approx(expected_bots, abs=0.01)
    # 920 wikis; at this sample size only a few of the rarest may be missing
    assert 900 <= len(stats["wikis"]) <= generate.WIKI_COUNT
    assert stats["wikis"][generate.WIKIDATA] == pytest.approx(
        generate.ENTITY_SHARE * stats["count"], rel=0.03
    )
    top = [w for w, _ in stats["wikis"].most_common(3)]
    assert top[:2] == [generate.WIKIDATA, "enwiki"]
    types = {t: n / stats["count"] for t, n in stats["types"].items()}
    # new pages come only with the entity edits: no licensed recording of another wiki has one
    assert set(types) == {"edit", "new", "log"}
    assert types["new"] == pytest.approx(0.18 * 0.013, abs=0.001)
    assert types["log"] == pytest.approx(0.18 * 0.006 + 0.82 * 0.006, abs=0.001)
    assert types["edit"] == pytest.approx(0.18 * 0.981 + 0.82 * 0.994, abs=0.01)
    status = {s: n / stats["count"] for s, n in stats["status"].items()}
    assert status["not_applicable"] == pytest.approx(0.82, abs=0.005)
    # not_found is a property of the item (the producer caches it): count items, not edits
    assert stats["missing_qids"] / stats["qids"] == pytest.approx(0.013, abs=0.004)
    assert status["unavailable"] == pytest.approx(0.18 * generate.UNAVAILABLE_SHARE, abs=0.001)
    assert status["enriched"] > 0.17


def test_titles_users_and_items_repeat_and_renew():
    """Zipf-like repetition within a day; every day brings titles not seen the day before."""
    days: list[dict[str, set]] = [
        {"titles": set(), "users": set(), "qids": set()} for _ in range(3)
    ]
    count = 0
    for r in generate.records(START, 3, rate=0.2):
        day = days[(_parse(r["event_time"]) - START).days]
        day["titles"].add((r["wiki"], r["title"]))
        day["users"].add(r["user"])
        if r["wikidata_id"]:
            day["qids"].add(r["wikidata_id"])
        count += 1
    per_day = count / 3
    for name in ("titles", "users", "qids"):
        first, second, third = (d[name] for d in days)
        assert len(first) < per_day  # repetition
        assert second - first and third - second  # new ones every day
        assert first & second  # and some come back
        assert len(first | second | third) > max(len(first), len(second), len(third))


def test_bad_arguments_fail_at_once():
    with pytest.raises(ValueError):
        generate.records(START, 1, rate=0)
    with pytest.raises(ValueError):
        generate.records(START, -1)
    assert list(generate.records(START, 0)) == []


def test_same_seed_same_records():
    def take(seed: int, start: datetime = START) -> list[dict]:
        return list(itertools.islice(generate.records(start, 0.01, seed=seed), 2000))

    assert take(3) == take(3)
    assert take(3) != take(4)
    # another period, same seed: other ids, counters continuing from the period before it
    first, later = take(3), take(3, START + timedelta(days=1))
    assert not {r["event_id"] for r in later} & {r["event_id"] for r in first}
    assert later[0]["rc_id"] == first[0]["rc_id"] + 86400 * 30
    assert later[0]["event_time"].startswith("2026-11-02T00:00:0")


def test_recorded_figures_are_the_documented_ones():
    """The numbers the module docstring quotes, recomputed from the recordings."""
    f = generate.recorded_figures()
    assert (f["recorded_events"], f["entity_templates"], f["wikidatawiki_events"]) == (
        5805,
        5690,
        5705,
    )
    assert f["entity_types"] == {"edit": 0.981, "new": 0.013, "log": 0.006}
    assert f["entity_bot_share"] == 0.804
    assert (f["other_events"], f["other_bots"], f["wikidatawiki_log_events"]) == (100, 2, 34)
    assert f["other_types"] == {"edit": 100}
    assert f["other_type_shares"] == {"edit": 0.994, "log": 0.006}
    assert f["templates_per_type"] == {"edit": 100, "log": 34}
    assert f["head_wikis"] == ["enwiki"]
    assert f["wikis"] == generate.WIKI_COUNT == 920
    assert (f["label_ids"], f["label_ids_missing"], f["permille"]["not_found"]) == (158, 2, 13)
    assert (f["found_entities"], f["labels_en"], f["permille"]["label_en"]) == (10, 147, 1000)
    assert f["with"] == {"label_ko": 8, "description_en": 8, "description_ko": 4}
    assert f["ip_permille"] == 135
    doc = generate.__doc__
    quoted = (
        "5,690",
        "98.1 %",
        "80.4 %",
        "1.3 %",
        "158 ids",
        "edit 99.4 %",
        "(all enwiki",
        "13.5 %",
    )
    for text in quoted:
        assert text in " ".join(doc.split()), text


class _FakeProducer:
    """Refuses every 7th produce once with BufferError, like a full librdkafka queue."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.calls = self.polls = 0

    def produce(self, topic, value, key):
        self.calls += 1
        if self.calls % 7 == 0:
            raise BufferError("queue full")
        self.sent.append((topic, value, key))

    def poll(self, timeout=0):
        self.polls += 1
        return 0

    def flush(self, timeout=0):
        return 0


def test_write_kafka_produces_every_record_with_the_producers_settings(monkeypatch):
    import confluent_kafka

    from wikistreams.producer import sink as producer_sink

    made: list[_FakeProducer] = []
    topics: list[tuple] = []

    def fake_producer(config):
        made.append(_FakeProducer(config))
        return made[-1]

    monkeypatch.setattr(confluent_kafka, "Producer", fake_producer)
    monkeypatch.setattr(producer_sink, "ensure_topics", lambda *a, **k: topics.append(a))
    result = generate.write_kafka("kafka:9092", "t", START, 0.001, rate=30.0, seed=2)
    fake = made[0]
    expected = list(generate.records(START, 0.001, rate=30.0, seed=2))
    assert result["records"] == len(expected) == len(fake.sent)
    assert result["bytes"] == sum(len(v) for _, v, _ in fake.sent)
    assert topics == [("kafka:9092", ["t"], 3)]
    config = {k: v for k, v in fake.config.items() if k != "on_delivery"}
    assert config == producer_sink.producer_config("kafka:9092", "zstd", 50)
    for (topic, value, key), record in zip(fake.sent, expected):
        assert topic == "t" and orjson.loads(value) == record
        assert key == f"{record['wiki']}:{record['title']}".encode()
    assert fake.polls >= len(expected) // 7


def test_write_parquet_round_trip(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "out.parquet"
    result = generate.write_parquet(path, START, 0.002, rate=30.0, seed=5, row_group=1000)
    expected = list(generate.records(START, 0.002, rate=30.0, seed=5))
    table = pq.read_table(path)
    assert result["records"] == table.num_rows == len(expected)
    assert pq.ParquetFile(path).metadata.num_row_groups == -(-len(expected) // 1000)
    assert table.column_names == list(EnrichedEvent.model_fields)
    assert table.to_pylist() == expected


def test_cli_generates_only(capsys):
    result = generate.main(["--days", "0.001", "--start", "2026-11-01T00:00:00"])
    assert result["records"] == 2592
    assert json.loads(capsys.readouterr().out)["records"] == 2592
