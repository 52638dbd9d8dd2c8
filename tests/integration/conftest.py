"""Fixtures for tests against the real native stack (Kafka, Druid, Superset).

``druid_with_data``: the Druid datasource ``wikimedia_recentchange`` holding the recorded
recentchange events, put there the way production does it: the Kafka supervisor from
``druid/ingestion-spec.json`` and ``python -m producer`` replaying ``shared/data`` recordings
(Wikidata labels from the local stand-in API, never the internet). Rows already there are reused,
so a session feeds the topic at most once. It skips, saying why, when the stack is not running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("DRUID_BROKER_URL", "http://127.0.0.1:8082")
OVERLORD = os.environ.get("DRUID_OVERLORD_URL", "http://127.0.0.1:8081")
DATASOURCE = "wikimedia_recentchange"
RECORDINGS = (
    "editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl",
    "editgroups_qs_batch_with_reverts_wikidatawiki_2018-03-07.jsonl",
    "polars-book_wikimedia_enwiki_2023-07-29.jsonl",
)
# The three recordings hold 5,706 events; a little slack for rows still being handed off.
MIN_RECORDED_ROWS = 5600
RECORDED_WINDOW = "__time >= TIMESTAMP '2018-03-07 00:00:00' AND __time < TIMESTAMP '2023-07-30'"


def druid_sql(query: str, timeout: float = 30) -> list[dict]:
    request = urllib.request.Request(
        f"{BROKER}/druid/v2/sql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def recorded_rows() -> int:
    try:
        rows = druid_sql(f"SELECT COUNT(*) AS n FROM {DATASOURCE} WHERE {RECORDED_WINDOW}")
    except urllib.error.HTTPError:  # datasource not created yet: no segment has been published
        return 0
    return int(rows[0]["n"]) if rows else 0


def submit_supervisor() -> None:
    """(Re)submit the Kafka supervisor; Druid treats an unchanged spec as a no-op update."""
    spec = (ROOT / "druid" / "ingestion-spec.json").read_bytes()
    request = urllib.request.Request(
        f"{OVERLORD}/druid/indexer/v1/supervisor",
        data=spec,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, response.read()


def replay_recordings(tmp_dir: Path, wikidata_url: str) -> None:
    from tests.standins import recentchange_dir

    for name in RECORDINGS:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "SSE_URL": (recentchange_dir() / name).as_uri(),
            "REPLAY_SPEED": "fast",
            "USER_AGENT_CONTACT": "tests@wikistreams.invalid",
            "WIKIDATA_API_URL": wikidata_url,
            "CHECKPOINT_PATH": str(tmp_dir / f"{name}.checkpoint.json"),
            "CACHE_DB_PATH": str(tmp_dir / "labels.sqlite3"),
        }
        result = subprocess.run(
            [sys.executable, "-m", "producer"],
            cwd=tmp_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"producer failed on {name}:\n{result.stderr[-3000:]}"


@pytest.fixture(scope="session")
def druid_with_data(tmp_path_factory, wikidata_api) -> dict:
    """Druid answering SQL with the recorded events in ``wikimedia_recentchange``."""
    if not _healthy(f"{BROKER}/status/health") or not _healthy(f"{OVERLORD}/status/health"):
        pytest.skip(
            f"Druid is not running ({BROKER}, {OVERLORD}): start the stack with `make up` "
            "or run through native/with_stack.py"
        )
    if recorded_rows() < MIN_RECORDED_ROWS:
        if not (ROOT / "src" / "producer" / "__main__.py").exists():
            pytest.skip("src/producer is not there yet: nothing can feed Druid")
        submit_supervisor()
        replay_recordings(tmp_path_factory.mktemp("producer"), wikidata_api.url)
        deadline = time.monotonic() + 300
        while recorded_rows() < MIN_RECORDED_ROWS:
            assert time.monotonic() < deadline, "Druid did not ingest the recorded events in 300 s"
            time.sleep(3)
    (summary,) = druid_sql(
        f"SELECT COUNT(*) AS n, MIN(__time) AS first, MAX(__time) AS last FROM {DATASOURCE}"
    )
    return summary
