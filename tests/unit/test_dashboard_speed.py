"""benchmarks.capacity.dashboard_speed without servers: request bodies, time ranges, statistics.

The chart requests must be what the dashboard sends with its native time filter set (the saved
query context with the filter's value as ``time_range``), for every chart of the bundle in git;
Locust's CSV statistics must come back per chart.
"""

from __future__ import annotations

import ast
import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from benchmarks.capacity import dashboard_speed as speed

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "superset" / "dashboards" / "wikimedia_live_trends"
CHART_NAMES = {
    yaml.safe_load(p.read_text(encoding="utf-8"))["slice_name"]
    for p in (BUNDLE / "charts").glob("*.yaml")
}
LAST_HOUR = 'DATEADD(DATETIME("now"), -1, hour) : now'


@pytest.fixture(scope="module")
def loaded() -> dict:
    return speed.bundle_charts(BUNDLE)


def test_the_bundle_has_twelve_charts_in_dashboard_order(loaded):
    names = [c["chart"] for c in loaded["charts"]]
    assert len(names) == 12 and set(names) == CHART_NAMES
    assert names[:2] == ["Trending now", "Trending now on Korean Wikipedia"]  # the first row
    assert loaded["dashboard"]["title"] == speed.DASHBOARD_TITLE
    assert all(c["query_context"]["queries"] for c in loaded["charts"])


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("1h", LAST_HOUR),
        ("24h", 'DATEADD(DATETIME("now"), -24, hour) : now'),
        ("7d", 'DATEADD(DATETIME("now"), -7, day) : now'),
        ("30m", 'DATEADD(DATETIME("now"), -30, minute) : now'),
        ("Last day", "Last day"),  # anything else is a Superset time range as typed
        ("No filter", "No filter"),
    ],
)
def test_windows_are_rolling_ranges_ending_now(window, expected):
    assert speed.time_range_for(window) == expected


def test_windows_end_at_an_explicit_time():
    end = speed.parse_end("2025-06-01T12:00:00Z")
    assert end == datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
    assert speed.parse_end("2025-06-01T14:00:00+02:00") == end
    assert speed.parse_end("2025-06-01T12:00:00") == end  # naive = UTC
    assert speed.time_range_for("1h", end) == "2025-06-01T11:00:00 : 2025-06-01T12:00:00"
    assert speed.time_range_for("7d", end) == "2025-05-25T12:00:00 : 2025-06-01T12:00:00"
    assert speed.parse_end(None) is None


def test_default_window_is_the_dashboards_own_default():
    metadata = {
        "native_filter_configuration": [
            {"filterType": "filter_select", "defaultDataMask": {"extraFormData": {}}},
            {
                "filterType": "filter_time",
                "defaultDataMask": {"extraFormData": {"time_range": LAST_HOUR}},
            },
        ]
    }
    assert speed.default_time_range(metadata) == LAST_HOUR
    assert speed.time_range_for("default", None, LAST_HOUR) == LAST_HOUR
    assert speed.time_range_for("default", None, None) == "No filter"
    assert speed.default_time_range({}) is None


def test_time_filter_is_applied_to_every_charts_query_context(loaded):
    saved = copy.deepcopy(loaded)
    requests = speed.dashboard_requests(loaded, LAST_HOUR, force=True)
    assert loaded == saved  # the loaded contexts are not modified
    assert len(requests) == 12
    for request, chart in zip(requests, loaded["charts"]):
        body, context = request["body"], chart["query_context"]
        assert request["chart"] == chart["chart"]
        assert body["force"] is True and body["form_data"]["force"] is True
        assert body["datasource"] == chart["datasource"]
        assert body["form_data"]["extra_form_data"] == {"time_range": LAST_HOUR}
        assert body["form_data"]["slice_id"] == chart["chart_id"]
        assert json.loads(request["params"]["form_data"]) == {"slice_id": chart["chart_id"]}
        assert len(body["queries"]) == len(context["queries"])
        for query, original in zip(body["queries"], context["queries"]):
            assert query["time_range"] == LAST_HOUR
            # The chart's own TEMPORAL_RANGE filter stays: Superset replaces its value with
            # time_range (QueryContextFactory._apply_filters), as for the browser's request.
            temporal = [f for f in query["filters"] if f["op"] == "TEMPORAL_RANGE"]
            assert [f["col"] for f in temporal] == ["__time"]
            # Nothing else of the saved query changes.
            assert {k: v for k, v in query.items() if k != "time_range"} == {
                k: v for k, v in original.items() if k != "time_range"
            }
        json.dumps(body)  # sendable as is


def test_uncached_and_cached_bodies_differ_only_in_force(loaded):
    uncached = speed.dashboard_requests(loaded, "24h", force=True)
    cached = speed.dashboard_requests(loaded, "24h", force=False)
    for a, b in zip(uncached, cached):
        assert a["body"]["force"] is True and b["body"]["force"] is False
        b["body"]["force"] = b["body"]["form_data"]["force"] = True
        assert a == b


def test_no_filter_keeps_the_saved_queries(loaded):
    for request, chart in zip(
        speed.dashboard_requests(loaded, "No filter"), loaded["charts"], strict=True
    ):
        assert request["body"]["queries"] == chart["query_context"]["queries"]
        assert request["body"]["form_data"]["extra_form_data"] == {}


def test_select_filters_are_appended_like_the_dashboards(loaded):
    requests = speed.dashboard_requests(loaded, LAST_HOUR, filters={"wiki": ["enwiki"]})
    for request in requests:
        for query in request["body"]["queries"]:
            assert query["filters"][-1] == {"col": "wiki", "op": "IN", "val": ["enwiki"]}
    assert speed.parse_filters(["wiki=enwiki,dewiki", "bot=false"]) == {
        "wiki": ["enwiki", "dewiki"],
        "bot": ["false"],
    }


def test_chart_order_follows_the_layout():
    position = {
        "ROOT_ID": {"type": "ROOT", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "children": ["ROW-1", "ROW-2"]},
        "ROW-1": {"type": "ROW", "children": ["CHART-b", "CHART-a"]},
        "ROW-2": {"type": "ROW", "children": ["CHART-c"]},
        "CHART-a": {"type": "CHART", "meta": {"chartId": 1}},
        "CHART-b": {"type": "CHART", "meta": {"chartId": 2}},
        "CHART-c": {"type": "CHART", "meta": {"chartId": 3}},
    }
    assert [m["chartId"] for m in speed.chart_order(position)] == [2, 1, 3]


def test_errors_are_recognised_and_kept():
    good = json.dumps({"result": [{"status": "success", "error": None, "rowcount": 3}]})
    assert speed.response_error(200, good) is None
    failed = json.dumps({"result": [{"status": "failed", "error": "Druid said no"}]})
    assert speed.response_error(200, failed) == "query failed: Druid said no"
    rejected = json.dumps(
        {"result": [{"status": "success", "rejected_filters": [{"column": "x"}]}]}
    )
    assert speed.response_error(200, rejected).startswith("filter rejected:")
    assert speed.response_error(400, json.dumps({"message": "bad time range"})) == (
        "HTTP 400: bad time range"
    )
    assert speed.response_error(502, "<html>Bad Gateway</html>").startswith("HTTP 502: <html>")
    assert speed.response_error(200, "not json").startswith("HTTP 200 without a result list")


def test_summary_counts_errors_and_keeps_their_messages():
    samples = [{"ms": float(ms), "error": None, "rows": 5} for ms in range(1, 21)]
    samples += [{"ms": 999.0, "error": "HTTP 500: boom"}] * 2
    row = speed.summarise(samples)
    assert (row["runs"], row["ok"], row["errors"]) == (22, 20, 2)
    assert row["error_messages"] == {"HTTP 500: boom": 2}
    assert (row["p50_ms"], row["p95_ms"], row["max_ms"]) == (10.0, 19.0, 20.0)
    results = {
        "base_url": "http://x",
        "dashboard": {"title": "Wikimedia live trends"},
        "runs": 22,
        "rows": [{"window": "1h", "mode": "uncached", "chart": "Top wikis", **row}],
    }
    text = speed.render_markdown(results)
    assert "| 1h | uncached | Top wikis | 10.0 | 19.0 | 20.0 | 2/22 | 5 | 0 |" in text
    assert "- 2x HTTP 500: boom (1h uncached Top wikis)" in text
    assert speed.summarise([{"ms": 1.0, "error": "x"}])["p50_ms"] is None


LOCUST_STATS = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,\
90%,95%,98%,99%,99.9%,99.99%,100%
LOAD,dashboard load,12,1,820,850.5,610.2,1490.7,0,0.6,0.05,820,900,950,1000,1200,1400,1500,\
1500,1500,1500,1500
POST,chart: Top wikis,12,0,140,150.2,101.3,388.9,2048,0.6,0,140,150,160,170,200,380,390,390,\
390,390,390
POST,chart: Events in window,12,1,95,99.1,80.0,210.4,180,0.6,0.05,95,100,110,120,150,200,210,\
210,210,210,210
POST,login,2,0,310,312,300,320,300,0.1,0,310,310,320,320,320,320,320,320,320,320,320
GET,csrf_token,2,0,12,12,11,13,90,0.1,0,12,12,13,13,13,13,13,13,13,13,13
,Aggregated,40,2,120,200.1,11,1490.7,700,2.0,0.1,120,150,200,300,800,1200,1400,1500,1500,\
1500,1500
"""
LOCUST_FAILURES = """\
Method,Name,Error,Occurrences
POST,chart: Events in window,"CatchResponseError('query failed: Druid said ""no""')",1
LOAD,dashboard load,RuntimeError('1 chart(s) failed'),1
"""


def test_locust_csv_is_parsed_per_chart():
    stats = speed.parse_locust_stats(LOCUST_STATS)
    failures = speed.parse_locust_failures(LOCUST_FAILURES)
    summary = speed.locust_summary(stats, failures)
    assert set(summary["charts"]) == {"Top wikis", "Events in window"}
    assert summary["charts"]["Top wikis"] == {
        "type": "POST",
        "requests": 12,
        "failures": 0,
        "p50_ms": 140.0,
        "p95_ms": 380.0,
        "max_ms": 388.9,
        "avg_ms": 150.2,
        "rps": 0.6,
    }
    assert summary["dashboard"]["p95_ms"] == 1400.0 and summary["dashboard"]["failures"] == 1
    assert summary["login"]["requests"] == 2
    assert summary["aggregated"]["requests"] == 40 and summary["aggregated"]["type"] is None
    assert summary["failed_requests"] == 2
    assert failures[0] == {
        "name": "chart: Events in window",
        "error": 'query failed: Druid said "no"',
        "occurrences": 1,
    }
    run = {"users": 10, "window": "24h", **summary}
    text = speed.render_locust_markdown([run])
    assert "| 10 | 24h | Top wikis | 12 | 0 | 140 | 380 | 389 | 0.6 |" in text
    assert '1x query failed: Druid said "no"' in text


def test_locust_csv_without_requests_has_no_percentiles():
    text = LOCUST_STATS.splitlines()[0] + "\n,Aggregated,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,"
    text += "N/A,N/A,N/A,N/A,N/A,N/A\n"
    aggregated = speed.parse_locust_stats(text)["Aggregated"]
    assert aggregated["requests"] == 0 and aggregated["p95_ms"] is None


def test_locustfile_defines_the_dashboard_viewer():
    """Parsed, not imported: importing locust monkey-patches the test process for gevent."""
    tree = ast.parse((ROOT / "benchmarks" / "capacity" / "locustfile.py").read_text("utf-8"))
    (viewer,) = [
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DashboardViewer"
    ]
    assert [b.id for b in viewer.bases] == ["HttpUser"]
    methods = {n.name: n for n in viewer.body if isinstance(n, ast.FunctionDef)}
    assert {"on_start", "load_dashboard"} <= set(methods)
    assert any(
        isinstance(d, ast.Name) and d.id == "task" for d in methods["load_dashboard"].decorator_list
    )
