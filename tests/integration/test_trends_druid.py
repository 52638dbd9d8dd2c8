"""Trend records reach Druid through the real submit step, and the dashboard's stories query
reads them: the newest record per story, lists in order, Korean names, the 15-minute window.

The test's own topic and datasource (the trends spec with both replaced), submitted by
`wikistreams-druid submit` as `make up` does it; the teardown removes supervisor, tasks,
segments, compaction, rules and topic.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import BROKER, KAFKA, delete_topics, require_druid
from tests.trend_samples import ITEM_STORIES, iso, labels, publish, stories
from wikistreams.trends.record import TrendRecord

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STORIES_DATASET = ROOT / "superset/dashboards/wikimedia_live_trends/datasets/Druid"
STORIES_SQL, CURVES_SQL = (
    yaml.safe_load((STORIES_DATASET / f"{name}.yaml").read_text("utf-8"))["sql"]
    for name in ("trending_stories", "trend_curves")
)


@pytest.fixture
def trends_datasource():
    suffix = uuid.uuid4().hex[:8]
    topic, datasource = f"trends-{suffix}", f"trends_{suffix}"
    druid = require_druid()
    submit = [sys.executable, "-m", "wikistreams.druid.supervisor", "submit"]
    submit += ["--spec=druid/trends-ingestion-spec.json", "--no-trends", f"--topic={topic}"]
    submit += [f"--datasource={datasource}", "--task-duration=PT10M", "--partitions=1"]
    done = subprocess.run(
        submit,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "KAFKA_BOOTSTRAP_SERVERS": KAFKA},
    )
    try:
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"supervisor {datasource} RUNNING" in done.stdout, done.stdout
        yield topic, datasource, druid
    finally:
        druid.drop(datasource)
        druid.set_rules(datasource, [])  # back to the cluster default
        deadline = time.monotonic() + 120
        while druid.running_tasks(datasource) and time.monotonic() < deadline:
            time.sleep(2)
        delete_topics(topic)


def _wait_rows(druid, datasource: str, expected: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        try:
            seen = int(druid.sql(BROKER, f'SELECT COUNT(*) AS n FROM "{datasource}"')[0]["n"])
        except Exception:  # noqa: BLE001 - no table until the first row is queryable
            seen = 0
        if seen >= expected:
            break
        time.sleep(2)
    assert seen == expected, f"{seen} trend rows in Druid after {timeout}s, expected {expected}"


def test_trend_records_reach_druid_and_the_stories_query(trends_datasource):
    topic, datasource, druid = trends_datasource
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    records = stories(now)
    # A story whose only record is 30 minutes older than the newest: outside "Trending now".
    stale = records[0].model_copy(
        update={"story_id": "Q571", "name": "책", "window_end": iso(now - dt.timedelta(minutes=30))}
    )
    publish(KAFKA, topic, [*records, stale])
    _wait_rows(druid, datasource, len(records) + 1)

    (row,) = druid.sql(
        BROKER,
        "SELECT MV_TO_STRING(wikis, '|') AS w, MV_TO_STRING(titles, '|') AS t, "
        f"MV_TO_STRING(urls, '|') AS u, label_ko, languages, score FROM \"{datasource}\" "
        "WHERE story_id = 'Q131261' ORDER BY __time DESC LIMIT 1",
    )
    newest: TrendRecord = next(r for r in reversed(records) if r.story_id == "Q131261")
    assert row["w"].split("|") == newest.wikis  # kept in order, not sorted
    assert row["t"].split("|") == newest.titles and row["u"].split("|") == newest.urls
    assert row["label_ko"] == labels()["Q131261"]["ko"] == "올리버 칸"
    assert (row["languages"], row["score"]) == (3, newest.score)

    curves = druid.sql(BROKER, CURVES_SQL.replace("wikimedia_trends", f'"{datasource}"'))
    assert len(curves) == len(records)  # every emission but the stale one
    found = druid.sql(BROKER, STORIES_SQL.replace("wikimedia_trends", f'"{datasource}"'))
    by_id = {r["story_id"]: r for r in found}
    expected = {r.story_id: r for r in records}  # the last emission of each story wins
    assert set(by_id) == set(expected), "one row per story, none older than 15 minutes"
    for story_id, record in expected.items():
        got = by_id[story_id]
        assert (got["name"], got["edits"], got["editors"]) == (
            record.name,
            record.edits,
            record.editors,
        )
        assert got["wikis"] == ", ".join(record.wikis)
        assert f'href="{record.urls[0]}"' in got["link"]
        if "kowiki" in record.wikis:
            ko_title = record.titles[record.wikis.index("kowiki")]
            assert f">{ko_title}</a>" in got["ko_link"], got["ko_link"]
        else:
            assert got["ko_link"] is None
    assert by_id["Q42"]["name"] == "더글러스 애덤스"
    korean = {s.story_id for s in ITEM_STORIES if "kowiki" in s.wikis}
    assert {k for k, r in by_id.items() if r["ko_link"]} == korean
