"""Superset on the real native stack: init/import, Druid connection, chart data, browser, restart.

The session starts its own Superset (native.sh, port 18088, a fresh SQLite home in
var/data/superset-test, random secrets), so it never touches a developer's instance on 8088 and
proves a first install works from nothing. Measurements (import time, chart query times) are
printed and written to ``var/log/superset-measurements.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import wait_until
from tests.integration.conftest import BROKER, KAFKA, require_druid
from tests.integration.superset_api import SupersetApi
from tests.trend_samples import ITEM_STORIES, labels, publish, stories
from wikistreams.druid.supervisor import TRENDS_SPEC, render_spec
from wikistreams.producer.sink import ensure_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "superset" / "native.sh"
VENV = Path(os.environ.get("SUPERSET_VENV", ROOT / "var" / "superset-venv"))
BUNDLE = ROOT / "superset" / "dashboards" / "wikimedia_live_trends"
# The README's picture is refreshed only on request (UPDATE_SCREENSHOT=1), so a test run leaves
# the work tree clean; otherwise the screenshot goes under var/.
SCREENSHOT = (
    ROOT / "docs" / "images" / "superset-dashboard.png"
    if os.environ.get("UPDATE_SCREENSHOT") == "1"
    else ROOT / "var" / "screenshots" / "superset-dashboard.png"
)
MEASUREMENTS = ROOT / "var" / "log" / "superset-measurements.json"
PORT = int(os.environ.get("SUPERSET_TEST_PORT", "18088"))
BASE_URL = f"http://127.0.0.1:{PORT}"
EXPECTED_CHARTS = len(list((BUNDLE / "charts").glob("*.yaml")))
DASHBOARD_UUID = yaml.safe_load(next((BUNDLE / "dashboards").glob("*.yaml")).read_text())["uuid"]
MEASURED: dict = {}


def _native(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", str(NATIVE), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"native.sh {' '.join(args)}:\n{result.stderr[-4000:]}"
    return result


def _import_summary(result: subprocess.CompletedProcess) -> dict:
    """init_superset.sh prints one JSON line with the counts after the import."""
    line = next(x for x in result.stdout.splitlines()[::-1] if x.startswith('{"import_seconds"'))
    return json.loads(line)


@pytest.fixture(scope="session")
def superset():
    if not (VENV / "bin" / "superset").exists():
        # A fresh checkout (CI) installs the pinned venv here rather than skipping silently.
        subprocess.run(
            ["bash", str(NATIVE), "install"],
            env={**os.environ, "SUPERSET_VENV": str(VENV)},
            check=True,
            timeout=1800,
        )
    # Not under pytest's tmp dir: concurrent pytest sessions on the machine prune old tmp dirs,
    # which would delete this instance's SQLite file while it runs.
    home = ROOT / "var" / "data" / "superset-test"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERSET_")}
    env.update(
        SUPERSET_HOME=str(home),
        SUPERSET_PORT=str(PORT),
        SUPERSET_LOG_DIR=str(home / "log"),
        SUPERSET_ENV_FILE=str(home / "no.env"),
        SUPERSET_SECRETS_FILE=str(home / "secrets.env"),
        SUPERSET_SECRET_KEY=secrets.token_urlsafe(48),
        SUPERSET_ADMIN_PASSWORD=secrets.token_urlsafe(18),
        SUPERSET_VENV=str(VENV),
    )
    first_password = env["SUPERSET_ADMIN_PASSWORD"]
    imports = []
    for attempt in range(2):  # the second run must change nothing but the timestamps...
        if attempt:  # ...and the admin's password, changed in between as an operator does
            env["SUPERSET_ADMIN_PASSWORD"] = secrets.token_urlsafe(18)
        started = time.monotonic()
        result = _native(env, "init")
        summary = _import_summary(result)
        summary["init_seconds"] = round(time.monotonic() - started, 2)
        imports.append(summary)
    MEASURED["imports"] = imports
    _native(env, "start", timeout=300)
    state = {"env": env, "imports": imports, "first_password": first_password}
    state["api"] = SupersetApi("admin", env["SUPERSET_ADMIN_PASSWORD"], BASE_URL)
    yield state
    subprocess.run(["bash", str(NATIVE), "stop"], env=env, capture_output=True, timeout=120)
    MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
    MEASUREMENTS.write_text(json.dumps(MEASURED, indent=2) + "\n", encoding="utf-8")
    print(f"\nSuperset measurements: {json.dumps(MEASURED)}")


@pytest.fixture(scope="session")
def druid_with_trends() -> list:
    """Trend records in Druid's `wikimedia_trends`, as "now": the recorded events are years old
    and no trend record is recorded, so the session publishes the stories of tests/trend_samples
    (recorded names and pages, current times) the way the processor does, through the
    production supervisor (as `druid_with_data` does for the events)."""
    druid = require_druid()
    spec = render_spec(ROOT / TRENDS_SPEC)
    topic = spec["spec"]["ioConfig"]["topic"]
    ensure_topics(KAFKA, [topic], 3, 1)
    druid.submit(spec)
    records = stories(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    publish(KAFKA, topic, records)
    newest = records[-1].window_end.replace("T", " ").rstrip("Z")
    query = f"SELECT COUNT(*) AS n FROM wikimedia_trends WHERE __time >= TIMESTAMP '{newest}'"

    def published() -> bool:
        try:
            return int(druid.sql(BROKER, query)[0]["n"]) >= len(ITEM_STORIES)
        except Exception:  # noqa: BLE001 - no table until the first row is queryable
            return False

    wait_until(published, 300, 2)
    return records


def _dashboard_id(api: SupersetApi) -> int:
    (dashboard,) = [d for d in api.list_all("dashboard") if d.get("uuid") == DASHBOARD_UUID] or [
        d for d in api.list_all("dashboard") if d["dashboard_title"] == "Wikimedia live trends"
    ]
    return dashboard["id"]


def test_import_twice_leaves_exactly_one_of_each(superset):
    for summary in superset["imports"]:
        assert (summary["dashboards"], summary["charts"], summary["datasets"]) == (
            1,
            EXPECTED_CHARTS,
            4,
        )
    api = superset["api"]
    assert [d["dashboard_title"] for d in api.list_all("dashboard")] == ["Wikimedia live trends"]
    assert len(api.list_all("chart")) == EXPECTED_CHARTS
    assert sorted(d["table_name"] for d in api.list_all("dataset")) == [
        "trend_curves",
        "trending_stories",
        "wikimedia_recentchange",
        "wikimedia_trends",
    ]
    assert [d["database_name"] for d in api.list_all("database")] == ["Druid"]


def test_init_applies_a_changed_admin_password(superset):
    """The second init ran with a new SUPERSET_ADMIN_PASSWORD: the account has it, not the old."""
    current = superset["env"]["SUPERSET_ADMIN_PASSWORD"]
    assert superset["first_password"] != current
    old = requests.post(
        f"{BASE_URL}/api/v1/security/login",
        json={"username": "admin", "password": superset["first_password"], "provider": "db"},
        timeout=30,
    )
    assert old.status_code == 401, old.text
    assert SupersetApi("admin", current, BASE_URL).list_all("dashboard")


def _test_connection(api: SupersetApi) -> None:
    (database,) = api.list_all("database")
    stored = api.get(f"/api/v1/database/{database['id']}/connection")
    assert stored.status_code == 200, stored.text
    uri = stored.json()["result"]["sqlalchemy_uri"]
    assert uri == "druid://127.0.0.1:8082/druid/v2/sql/"
    response = api.post(
        "/api/v1/database/test_connection/",
        {"database_name": database["database_name"], "sqlalchemy_uri": uri},
    )
    assert response.status_code == 200 and response.json() == {"message": "OK"}, response.text


def test_druid_connection_is_ok(superset, druid_with_data):
    _test_connection(superset["api"])


def test_every_chart_returns_rows(superset, druid_with_data, druid_with_trends):
    api = superset["api"]
    timings = {}
    results = {}
    for chart in api.list_all("chart"):
        body, seconds = api.chart_data(chart["id"])
        (result,) = body["result"]
        assert not result.get("error"), (chart["slice_name"], result["error"])
        assert result["rowcount"] > 0 and result["data"], chart["slice_name"]
        timings[chart["slice_name"]] = round(seconds, 3)
        results[chart["slice_name"]] = result["data"]
    assert len(results) == EXPECTED_CHARTS
    # Spot checks against what the recordings contain.
    assert {row["wiki"] for row in results["Top wikis"]} >= {"wikidatawiki", "enwiki"}
    assert {row["editor_kind"] for row in results["Bot vs human share"]} == {"bot", "human"}
    entities = [row["wikidata_entity"] for row in results["Top Wikidata entities"]]
    assert all(re.search(r"(^|\()[QPL]\d+\)?$", e or "") for e in entities), entities
    assert results["Events in window"][0]["edits"] >= 5600
    # Trending now: the newest record of each story, strongest first, named in Korean.
    top = results["Trending now"]
    assert [row["name"] for row in top[:2]] == [labels()["Q131261"]["ko"], "더글러스 애덤스"]
    korean = {labels()[s.story_id]["ko"] for s in ITEM_STORIES if "kowiki" in s.wikis}
    ko_rows = results["Trending now on Korean Wikipedia"]
    assert {row["name"] for row in ko_rows} == korean
    assert all('href="https://ko.wikipedia.org/wiki/' in row["ko_link"] for row in ko_rows)
    series = {key for row in results["Edit curves of the top stories"] for key in row}
    assert {f"story_edits, {name}" for name in korean} <= series, series  # one per story
    values = sorted(timings.values())
    MEASURED["chart_data_seconds"] = timings
    MEASURED["chart_data_median_seconds"] = round(statistics.median(values), 3)
    MEASURED["chart_data_max_seconds"] = values[-1]


def _time_filter_default() -> str:
    """The dashboard's default window, as its YAML sets it for the native time filter."""
    dashboard = yaml.safe_load(next((BUNDLE / "dashboards").glob("*.yaml")).read_text())
    (time_filter,) = [
        f
        for f in dashboard["metadata"]["native_filter_configuration"]
        if f["filterType"] == "filter_time"
    ]
    return time_filter["defaultDataMask"]["extraFormData"]["time_range"]


# The recordings are from 2018-2025, outside any recent window: the data check widens the time
# filter the way a shared link does (Superset's `native_filters` URL parameter, rison).
NO_TIME_FILTER = urllib.parse.urlencode(
    {
        "native_filters": "(NATIVE_FILTER-time_range:(id:NATIVE_FILTER-time_range,"
        "extraFormData:(time_range:'No filter'),filterState:(value:'No filter')))"
    }
)


def _open_dashboard(
    superset, url_params: str = "", screenshot: Path | None = None, wait_for_text: str = ""
) -> dict:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Debian chromium + chromium-driver not installed (apt-get install ...)")
    env = {**superset["env"], "SUPERSET_ADMIN_USER": "admin"}
    args = [
        str(VENV / "bin" / "python"),
        str(ROOT / "tests" / "integration" / "superset_browser.py"),
        "dashboard",
        "--base-url",
        BASE_URL,
        "--expected-charts",
        str(EXPECTED_CHARTS),
        "--url-params",
        url_params,
    ]
    if screenshot:
        args += ["--screenshot", str(screenshot)]
    if wait_for_text:
        args += ["--wait-for-text", wait_for_text]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    page = json.loads(result.stdout.strip().splitlines()[-1])
    assert page["title"] == "Wikimedia live trends"
    assert len(page["charts"]) == EXPECTED_CHARTS
    for chart in page["charts"]:
        assert chart["error"] is None, chart
        assert not chart["loading"], chart
    return page


def test_dashboard_opens_on_a_recent_window(superset, druid_with_data, druid_with_trends):
    """Every chart's first query is bounded by the default window, not all retained data."""
    default = _time_filter_default()
    assert "now" in default and "-6, hour" in default
    page = _open_dashboard(superset)
    ranges = page["time_ranges"]
    assert len(ranges) >= EXPECTED_CHARTS, ranges
    assert set(ranges) == {default}, ranges


def test_dashboard_renders_in_a_real_browser(superset, druid_with_data, druid_with_trends):
    page = _open_dashboard(superset, NO_TIME_FILTER, SCREENSHOT, wait_for_text="더글러스 애덤스")
    MEASURED["browser_render_seconds"] = page["render_seconds"]
    assert set(page["time_ranges"]) == {"No filter"}, page["time_ranges"]
    for chart in page["charts"]:
        assert chart["rendered"] and not chart["empty"], chart
    # Trending now is on top, its stories named in Korean, drawn with real glyphs (no boxes).
    assert [c["title"] for c in page["charts"][:3]] == [
        "Trending now",
        "Trending now on Korean Wikipedia",
        "Edit curves of the top stories",
    ]
    trending = page["charts"][0]["text"]
    assert "올리버 칸" in trending and "더글러스 애덤스" in trending, trending
    assert page["korean_glyphs"], "Korean draws as empty boxes: apt-get install fonts-noto-cjk"
    assert SCREENSHOT.stat().st_size > 50_000


def test_restart_keeps_dashboard_and_connection(superset, druid_with_data):
    env = superset["env"]
    before = _dashboard_id(superset["api"])
    _native(env, "stop")
    _native(env, "start", timeout=300)
    api = SupersetApi("admin", env["SUPERSET_ADMIN_PASSWORD"], BASE_URL)
    superset["api"] = api
    assert _dashboard_id(api) == before
    assert len(api.list_all("chart")) == EXPECTED_CHARTS
    _test_connection(api)
    body, _ = api.chart_data(api.list_all("chart")[0]["id"])
    assert body["result"][0]["rowcount"] > 0
