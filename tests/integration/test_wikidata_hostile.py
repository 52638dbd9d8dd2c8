"""Hostile Wikidata answers cost the labels of one call at most, never the stream.

The producer runs as a process against the real Kafka, replaying a recording of Wikidata edits;
the Wikidata stand-in spoils its first answer (a gzip bomb, a body that drips in a byte every
0.5 s, a label of two million characters, control characters) and answers truly afterwards.
Every event must still arrive exactly once, only the ids of that first call may lack labels,
and no published label may be longer than Wikidata's 250 characters or hold control characters.
"""

from __future__ import annotations

import json
import time
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import event_ids
from tests.integration.test_exactly_once import all_records, assert_exactly_once
from tests.integration.test_producer_kafka import Producer, recording
from tests.standins.wikidata_api import _gzip_bomb

pytestmark = pytest.mark.integration

RECORDING = "editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl"
LABELS = ("wikidata_label_ko", "wikidata_label_en", "wikidata_description_ko")


def _peak_rss_kb(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0
    )


@pytest.mark.parametrize("kind", ["gzip_bomb", "slow_drip", "huge_label", "control_chars"])
def test_the_producer_delivers_every_event_after_a_hostile_answer(tmp_path, topic, wikidata, kind):
    b = wikidata.behaviour
    b.garbage, b.garbage_next = kind, 1
    _gzip_bomb(b.bomb_bytes)  # built now: building it must not delay the first answer
    path = recording(RECORDING)
    producer = Producer(
        tmp_path,
        path.as_uri(),
        wikidata.url,
        topic,
        WIKIDATA_TIMEOUT_SECONDS="1",
        WIKIDATA_RETRY_BUDGET_SECONDS="2",
    )
    producer.start()
    peak_kb = 0
    while producer.proc.poll() is None:  # the replay ends by itself
        peak_kb = max(peak_kb, _peak_rss_kb(producer.proc.pid))
        time.sleep(0.2)
    assert producer.proc.wait(timeout=300) == 0, producer.logs()[-5:]
    assert peak_kb < 600_000, f"the producer peaked at {peak_kb / 1024:.0f} MB"

    assert_exactly_once(topic, set(event_ids(path)))
    records = [json.loads(r.value()) for r in all_records(topic)]
    entity = [r for r in records if r["wikidata_id"]]
    first_call = set(b.requests[0]["ids"].split("|"))
    unavailable = {r["wikidata_id"] for r in entity if r["enrichment_status"] == "unavailable"}
    assert unavailable <= first_call, "only the spoiled call's ids may lack labels"
    # ... and in the one term that met the hostile answer (no failover, no second reading).
    logs = producer.logs()
    assert [line["msg"] for line in logs].count("active") == 1
    first_call_events = sum(r["wikidata_id"] in first_call for r in entity)
    assert sum(line.get("enrich_unavailable", 0) for line in logs) <= first_call_events
    if kind == "control_chars":  # the spoiled labels arrive, cleaned
        assert any((r["wikidata_label_en"] or "").startswith("[31m") for r in entity)
    later = [r for r in entity if r["wikidata_id"] not in first_call]
    assert later, "the recording asks more than the first call's ids"
    assert all(r["enrichment_status"] in ("enriched", "not_found") for r in later)
    for record in records:
        for name in LABELS:
            value = record.get(name)
            assert value is None or len(value) <= 250, (name, len(value))
            assert value is None or not any(unicodedata.category(c) == "Cc" for c in value)
