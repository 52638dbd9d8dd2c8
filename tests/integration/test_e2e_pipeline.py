"""End to end on the real native stack: recorded events -> producer -> Kafka -> Druid -> SQL.

Each test gets its own topic, datasource and supervisor (`e2e_context` in conftest.py), and
leaves nothing behind.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import event_ids
from tests.integration.conftest import KAFKA
from tests.standins import REPO_ROOT, recentchange_dir

pytestmark = pytest.mark.integration


def test_submit_tool_updates_instead_of_duplicating(e2e_context):
    """`wikistreams-druid submit` twice: one supervisor, the second spec wins, compaction set."""
    ctx = e2e_context
    cmd = [
        sys.executable,
        "-m",
        "wikistreams.druid.supervisor",
        "submit",
        f"--topic={ctx.topic}",
        f"--datasource={ctx.datasource}",
        f"--overlord={ctx.druid.overlord}",
        "--partitions=2",
        "--no-trends",  # the shared trends supervisor is not this test's
    ]
    for duration in ("PT11M", "PT12M"):
        done = subprocess.run(
            [*cmd, f"--task-duration={duration}"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO_ROOT,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"supervisor {ctx.datasource} RUNNING" in done.stdout
    assert ctx.druid.supervisors().count(ctx.datasource) == 1
    assert ctx.druid.spec(ctx.datasource)["spec"]["ioConfig"]["taskDuration"] == "PT720S"  # 12 min
    compaction = ctx.druid.compaction(ctx.datasource)
    assert compaction["dataSource"] == ctx.datasource
    assert compaction["skipOffsetFromLatest"] == "PT2H"


def _recording(name: str) -> Path:
    return next(p for p in recentchange_dir().rglob(name))


@pytest.mark.e2e
@pytest.mark.smoke
def test_smoke_recorded_events_become_queryable(e2e_context, wikidata_api):
    """100 real enwiki events through the real producer; one assertion on the row count."""
    path = _recording("polars-book_wikimedia_enwiki_2023-07-29.jsonl")
    result = e2e_context.run_producer(path.as_uri(), wikidata_api.url)
    assert result.returncode == 0, result.stderr[-2000:]
    e2e_context.wait_for_count(len(set(event_ids(path))))


@pytest.mark.e2e
def test_full_replay_exact_rows_and_enrichment(e2e_context, wikidata_api):
    """A 3,818-event Wikidata batch: exact count, known rows by event id, labels from the API."""
    path = _recording("editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl")
    expected = set(event_ids(path))
    started = time.monotonic()
    result = e2e_context.run_producer(path.as_uri(), wikidata_api.url)
    assert result.returncode == 0, result.stderr[-2000:]
    e2e_context.wait_for_count(len(expected))
    print(f"produce-to-queryable: {time.monotonic() - started:.1f}s for {len(expected)} events")

    ds = e2e_context.datasource
    (row,) = e2e_context.sql(
        f'SELECT __time, wiki, title, "user", bot, length_delta, namespace, enrichment_status,'
        f' wikidata_id FROM "{ds}" WHERE event_id = ?',
        [{"type": "VARCHAR", "value": "dd8c5690-2222-11e8-a2ad-1418776134f3"}],
    )
    assert row["title"] == "Q3855005" and row["user"] == "MisterSynergy"
    assert row["length_delta"] == 431 and row["namespace"] == 0 and row["bot"] == "false"
    assert row["__time"].startswith("2018-03-07T16:16:17")
    assert row["wikidata_id"] == "Q3855005" and row["enrichment_status"] == "not_found"

    sandbox = e2e_context.sql(
        f'SELECT wikidata_label_en, enrichment_status, COUNT(*) AS n FROM "{ds}"'
        " WHERE wikidata_id = 'Q4115189' GROUP BY 1, 2"
    )
    assert sandbox == [
        {"wikidata_label_en": "Wikidata Sandbox", "enrichment_status": "enriched", "n": 4}
    ]
    by_type = {
        r["type"]: r["n"]
        for r in e2e_context.sql(f'SELECT type, COUNT(*) AS n FROM "{ds}" GROUP BY 1')
    }
    assert by_type == {"edit": 3754, "new": 42, "log": 22}


def test_parse_errors_are_reported(e2e_context):
    """A record Druid cannot parse is counted and reported by the supervisor tool, not lost."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": KAFKA})
    producer.produce(e2e_context.topic, b'{"event_time": "not a time", "wiki": "x"')
    producer.produce(e2e_context.topic, b'{"event_time": "2018-03-07T16:16:17Z", "wiki": "ok"}')
    assert producer.flush(30) == 0
    e2e_context.wait_for_count(1)
    deadline = time.monotonic() + 120
    errors: list[str] = []
    while not errors and time.monotonic() < deadline:
        errors = e2e_context.druid.parse_errors(e2e_context.datasource)
        time.sleep(2)
    assert errors, "the unparseable record was not reported"
    assert any("Unable to parse row" in e and "not a time" in e for e in errors), errors
