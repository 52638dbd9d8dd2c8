"""benchmarks/capacity/storage_eval.py: the dashboard's queries, their translation and the runs.

DuckDB runs in-process on a small Parquet built from the recordings; chDB (≈350 MB resident once
imported) only in its own subprocess, and only where it is installed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from benchmarks.capacity import storage_eval as se

duckdb = pytest.importorskip("duckdb")

DASHBOARD = Path(__file__).resolve().parents[2] / "superset/dashboards/wikimedia_live_trends"
LATEST = datetime(2026, 11, 30, 12, 0, 0)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("storage_eval") / "sample.parquet"
    assert se.write_sample_parquet(path, end=LATEST) > 1000
    return path


def test_every_chart_has_one_query():
    """Every chart on the events (the trends section reads its own small datasource)."""
    events = yaml.safe_load((DASHBOARD / "datasets/Druid/wikimedia_recentchange.yaml").read_text())
    charts = [yaml.safe_load(p.read_text()) for p in DASHBOARD.glob("charts/*.yaml")]
    names = {c["slice_name"] for c in charts if c["dataset_uuid"] == events["uuid"]}
    assert names == set(se.QUERIES)


def test_queries_use_the_datasets_expressions():
    dataset = yaml.safe_load((DASHBOARD / "datasets/Druid/wikimedia_recentchange.yaml").read_text())
    calculated = {c["column_name"]: c["expression"] for c in dataset["columns"] if c["expression"]}
    assert calculated == {
        "editor_kind": se.EDITOR_KIND,
        "length_delta_bucket": se.LENGTH_DELTA_BUCKET,
        "wikidata_label": se.WIKIDATA_LABEL,
    }
    assert {m["metric_name"]: m["expression"] for m in dataset["metrics"]} == se.METRICS


def test_druid_sql_fills_the_window_and_datasource():
    start, end = se.window_bounds(LATEST, "24h")
    assert (start, end) == ("2026-11-29T12:00:01", "2026-11-30T12:00:01")
    sql = se.druid_sql("Top wikis", start, end, "other_ds")
    assert "TIME_PARSE('2026-11-29T12:00:01')" in sql and '"druid"."other_ds"' in sql
    assert "{start}" not in sql and "wikimedia_recentchange" not in sql


@pytest.mark.parametrize("engine", ["duckdb", "chdb"])
def test_translation_leaves_no_druid_syntax(engine):
    start, end = se.window_bounds(LATEST, "1h")
    for name in se.QUERIES:
        sql = se.translate(se.druid_sql(name, start, end), engine)
        assert not re.search(r"TIME_PARSE|TIME_FLOOR|\"druid\"|COUNT\(DISTINCT", sql), name
        assert not re.search(r'(?<!AS )"__time"', sql), name
    per_minute = se.translate(se.druid_sql("Edits per minute by type", start, end), engine)
    assert ('AS "__time"' in per_minute) and ("minute" in per_minute.lower())
    exact = se.translate(se.druid_sql("Most edited pages", start, end), engine, True)
    assert 'COUNT(DISTINCT "user")' in exact


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert se.percentile(values, 50) == 10.0
    assert se.percentile(values, 95) == 19.0
    assert se.percentile([3.0], 95) == 3.0


def test_a_failing_query_is_reported_not_fatal():
    def execute(sql):
        if sql == "bad":
            raise RuntimeError("boom")
        return [[1]]

    out = se.time_queries(execute, {"bad": "bad", "ok": "ok"}, runs=2, warmup=1)
    assert "boom" in out["bad"]["error"] and out["ok"]["rows"] == 1


def test_duckdb_runs_every_query_and_returns_rows(sample, tmp_path):
    result = se.run_duckdb(str(sample), tmp_path / "db", LATEST, ["1h", "7d"], runs=2, warmup=0)
    assert result["rows"] > 1000 and result["storage_bytes"] > 0
    for window in ("1h", "7d"):
        queries = result["windows"][window]["queries"]
        assert set(queries) == set(se.QUERIES)
        for name, q in queries.items():
            assert q["rows"] > 0, (window, name)
            assert 0 < q["p50_ms"] <= q["p95_ms"]
        assert queries["Events in window"]["first"] == [result["rows"]]
        assert queries["Bot vs human share"]["rows"] == 2  # 'true'/'false' strings, as in Druid


@pytest.fixture(scope="module")
def older(tmp_path_factory) -> Path:
    """The same events three hours earlier: a second file, as the capacity run writes them."""
    path = tmp_path_factory.mktemp("storage_eval") / "older.parquet"
    se.write_sample_parquet(path, end=LATEST - timedelta(hours=3))
    return path


def test_evaluate_in_subprocesses_and_render(sample, older, tmp_path):
    engines = ["duckdb"] + (["chdb"] if importlib.util.find_spec("chdb") else [])
    files = [sample, older]
    results = se.evaluate(files, engines=engines, windows=["1h", "24h"], runs=1, warmup=0)
    total = results["parquet"]["rows"]
    assert results["parquet"]["files"] == 2 and results["parquet"]["latest"].startswith(
        "2026-11-30T12"
    )
    for engine in engines:
        run = results["engines"][engine]
        assert "error" not in run, run.get("error")
        assert run["peak_rss_bytes"] > 0 and run["load_s"] >= 0 and run["rows"] == total
        events = {
            w: run["windows"][w]["queries"]["Events in window"]["first"][0] for w in ("1h", "24h")
        }
        assert events == {"1h": total // 2, "24h": total}
    top = {e: r["windows"]["1h"]["queries"]["Top wikis"] for e, r in results["engines"].items()}
    assert len({json.dumps([t["rows"], t["first"]]) for t in top.values()}) == 1, top
    markdown = se.render_markdown(results)
    assert "| DuckDB |" in markdown and "| Most edited pages |" in markdown
    doc = tmp_path / "evaluation.md"
    doc.write_text(f"# x\n{se.DOC_START}\n| old |\n{se.DOC_END}\nrest\n")
    assert se.fill_doc(doc, markdown)
    text = doc.read_text()
    assert "| old |" not in text and "| Most edited pages |" in text and text.endswith("rest\n")


class _FakeBroker(BaseHTTPRequestHandler):
    """Answers Druid SQL by translating it to DuckDB (checks what run_druid sends)."""

    con = None
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, body))
        rows = self.con.cursor().execute(se.translate(body["query"], "duckdb")).fetchall()
        cells = [[v.isoformat() if hasattr(v, "isoformat") else v for v in r] for r in rows]
        data = json.dumps(cells)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data.encode())

    def log_message(self, *args):
        pass


def test_run_druid_times_the_same_text_over_http(sample, tmp_path):
    con = duckdb.connect(str(tmp_path / "broker.duckdb"))
    se._duckdb_load(con, str(sample))
    _FakeBroker.con, _FakeBroker.seen = con, []
    server = HTTPServer(("127.0.0.1", 0), _FakeBroker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        run = se.run_druid(url, "test_ds", "24h", runs=2, warmup=0)
    finally:
        server.shutdown()
        con.close()
    assert run["latest"] == "2026-11-30T12:00:00"  # MAX(__time), asked of the broker
    assert set(run["queries"]) == set(se.QUERIES)
    assert all(q["rows"] > 0 for q in run["queries"].values())
    assert all(path == "/druid/v2/sql" for path, _ in _FakeBroker.seen)
    assert all(body["resultFormat"] == "array" for _, body in _FakeBroker.seen)
    timed = {b["query"]: b["context"] for _, b in _FakeBroker.seen if "MAX(" not in b["query"]}
    start, end = run["start"], run["end"]
    assert set(timed) == {se.druid_sql(name, start, end, "test_ds") for name in se.QUERIES}
    assert not any(ctx["useCache"] or ctx["useResultLevelCache"] for ctx in timed.values())
