"""The dashboard bundle in git is complete, consistent and built on the documented contract.

Why: Superset imports a bundle with dangling UUIDs or unknown columns "successfully" and only the
browser shows the broken chart later. These checks catch that at review time, without Superset.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
import zipfile
from pathlib import Path

import pytest
import yaml

from wikistreams.producer import contract_doc
from wikistreams.superset import assets, cli
from wikistreams.trends.druid_schema import TIMESTAMP_FIELD
from wikistreams.trends.record import TrendRecord

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "superset" / "dashboards" / "wikimedia_live_trends"
CONTRACTS = ROOT / "docs" / "contracts.md"


def _read(kind: str) -> dict[str, dict]:
    return {
        p.relative_to(BUNDLE).as_posix(): yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in sorted((BUNDLE / kind).rglob("*.yaml"))
    }


DATABASES = _read("databases")
DATASETS = _read("datasets")
CHARTS = _read("charts")
DASHBOARDS = _read("dashboards")
BY_TABLE = {d["table_name"]: d for d in DATASETS.values()}
BY_UUID = {d["uuid"]: d for d in DATASETS.values()}
DATASET = BY_TABLE["wikimedia_recentchange"]
DASHBOARD = next(iter(DASHBOARDS.values()))
COLUMNS = {c["column_name"]: c for c in DATASET["columns"]}
METRICS = {m["metric_name"] for m in DATASET["metrics"]}
# The "Trending now" section: trend records (TrendRecord) and one row per story made from them.
TRENDS = BY_TABLE["wikimedia_trends"]
STORIES = BY_TABLE["trending_stories"]
CURVES = BY_TABLE["trend_curves"]
TRENDS_UUIDS = {TRENDS["uuid"], STORIES["uuid"], CURVES["uuid"]}
WINDOW = "TIME_SHIFT(MAX(__time), 'PT15M', -1)"  # 15 minutes up to the newest trend record


def contract_fields() -> set[str]:
    """Field names of the enriched-event table in docs/contracts.md (plus Druid's __time): the
    rows that table is generated from (test_contracts_doc.py keeps the document equal to them)."""
    return {"__time"} | {name for name, *_ in contract_doc.rows()}


def test_one_of_each_asset_and_metadata():
    metadata = yaml.safe_load((BUNDLE / "metadata.yaml").read_text(encoding="utf-8"))
    assert metadata["type"] == "Dashboard" and metadata["version"] == "1.0.0"
    assert (len(DATABASES), len(DATASETS), len(DASHBOARDS)) == (1, 4, 1)
    assert len(CHARTS) >= 8


def test_uuids_are_valid_and_unique():
    everything = [*DATABASES.values(), *DATASETS.values(), *CHARTS.values(), *DASHBOARDS.values()]
    uuids = [str(uuid.UUID(str(asset["uuid"]))) for asset in everything]
    assert len(uuids) == len(set(uuids))


def test_references_resolve():
    database = next(iter(DATABASES.values()))
    assert {d["database_uuid"] for d in DATASETS.values()} == {database["uuid"]}
    for path, chart in CHARTS.items():
        assert chart["dataset_uuid"] in BY_UUID, path


def test_every_chart_is_on_the_dashboard_and_vice_versa():
    nodes = [
        n for n in DASHBOARD["position"].values() if isinstance(n, dict) and n["type"] == "CHART"
    ]
    on_dashboard = {n["meta"]["uuid"] for n in nodes}
    assert on_dashboard == {c["uuid"] for c in CHARTS.values()}
    names = {c["uuid"]: c["slice_name"] for c in CHARTS.values()}
    for node in nodes:
        assert node["meta"]["sliceName"] == names[node["meta"]["uuid"]]
        assert node["parents"][0] == "ROOT_ID"
        parent = DASHBOARD["position"][node["parents"][-1]]
        assert node["id"] in parent["children"]
    chart_ids = [n["meta"]["chartId"] for n in nodes]
    assert len(chart_ids) == len(set(chart_ids))


def test_dataset_is_the_contract_datasource_and_columns_exist_in_contract():
    assert DATASET["table_name"] == "wikimedia_recentchange"
    assert "`wikimedia_recentchange`" in CONTRACTS.read_text(encoding="utf-8")
    assert DATASET["main_dttm_col"] == "__time" and COLUMNS["__time"]["is_dttm"]
    fields = contract_fields()
    physical = {name for name, col in COLUMNS.items() if not col["expression"]}
    assert physical <= fields, physical - fields
    # Calculated columns may only read contract columns.
    for name, col in COLUMNS.items():
        if col["expression"]:
            referenced = set(re.findall(r'"([a-z_]+)"', col["expression"]))
            assert referenced and referenced <= fields, (name, referenced - fields)


def _column_refs(params: dict) -> set[str]:
    refs: set[str] = set()
    for key in ("groupby", "columns", "all_columns", "series"):
        refs.update(c for c in params.get(key) or [] if isinstance(c, str))
    if isinstance(params.get("x_axis"), str):
        refs.add(params["x_axis"])
    refs.update(f["subject"] for f in params.get("adhoc_filters", []) if "subject" in f)
    return refs


def _metric_refs(params: dict) -> set[str]:
    found = list(params.get("metrics") or []) + [params.get("metric")]
    found += [params.get("timeseries_limit_metric"), params.get("series_limit_metric")]
    return {m for m in found if isinstance(m, str)}


@pytest.mark.parametrize("path", sorted(CHARTS))
def test_chart_uses_dataset_columns_and_metrics(path):
    params = CHARTS[path]["params"]
    dataset = BY_UUID[CHARTS[path]["dataset_uuid"]]
    columns = {c["column_name"] for c in dataset["columns"]}
    metrics = {m["metric_name"] for m in dataset["metrics"]}
    assert _column_refs(params) <= columns, _column_refs(params) - columns
    assert _metric_refs(params) <= metrics, _metric_refs(params) - metrics
    # The time range must not hide the recorded 2018-2025 test data by default.
    assert params.get("time_range", "No filter") == "No filter"


@pytest.mark.parametrize("path", sorted(CHARTS))
def test_chart_has_a_saved_query_context(path):
    """GET /api/v1/chart/<id>/data (and reports) run the saved query context, not form data."""
    context = CHARTS[path]["query_context"]
    assert isinstance(context, dict) and context["queries"], path
    assert context["datasource"] == {"id": 0, "type": "table"}  # rebound on import
    assert context["form_data"]["viz_type"] == CHARTS[path]["viz_type"]


def test_native_filters_and_refresh():
    metadata = DASHBOARD["metadata"]
    filters = {f["name"]: f for f in metadata["native_filter_configuration"]}
    assert {"Time range", "Wiki", "Bot", "Type"} <= set(filters)
    assert filters["Time range"]["filterType"] == "filter_time"
    # Opens on a recent window, so a chart never scans everything retained (issue 10), with both
    # ends on a whole minute: viewers within one minute send the same query, which Superset's
    # results cache then answers once for all of them.
    mask = filters["Time range"]["defaultDataMask"]
    minute = 'DATETRUNC(DATETIME("now"), minute)'
    window = f"DATEADD({minute}, -6, hour) : {minute}"
    assert mask["filterState"] == {"value": window}
    assert mask["extraFormData"] == {"time_range": window}
    for name, column in (("Wiki", "wiki"), ("Bot", "bot"), ("Type", "type")):
        (target,) = filters[name]["targets"]
        assert target == {"column": {"name": column}, "datasetUuid": DATASET["uuid"]}
    assert metadata["refresh_frequency"] == 60


def test_trends_datasets_read_the_trend_record():
    """The physical dataset's columns are TrendRecord's fields (window_end is __time); the
    stories dataset reads only the trends datasource and names each column it declares."""
    fields = set(TrendRecord.model_fields) - {TIMESTAMP_FIELD} | {"__time"}
    assert {c["column_name"] for c in TRENDS["columns"]} == fields
    assert TRENDS["sql"] is None and TRENDS["main_dttm_col"] == "__time"
    for dataset in (STORIES, CURVES):  # the same window, on the trends datasource only
        sql = dataset["sql"]
        assert set(re.findall(r"FROM (\w+)", sql)) == {TRENDS["table_name"]}
        assert WINDOW in sql and dataset["main_dttm_col"] == "__time"
        outer = sql[: sql.index("FROM ")]  # what the dataset's query returns
        for column in dataset["columns"]:
            assert re.search(rf'\b{column["column_name"]}\b', outer), column["column_name"]


def test_trends_charts_are_on_top_and_outside_the_event_filters():
    grid = DASHBOARD["position"]["GRID_ID"]["children"]
    trends = [c for c in CHARTS.values() if c["dataset_uuid"] in TRENDS_UUIDS]
    assert len(trends) == 3
    rows = {DASHBOARD["position"][n]["parents"][-1] for n in _chart_nodes(trends)}
    first_event_row = min(grid.index(r) for r in grid if r.startswith("ROW-") and r[4:].isdigit())
    assert all(grid.index(row) < first_event_row for row in rows)
    ids = sorted(
        n["meta"]["chartId"]
        for n in DASHBOARD["position"].values()
        if _is_chart(n) and n["meta"]["uuid"] in {c["uuid"] for c in trends}
    )
    for native_filter in DASHBOARD["metadata"]["native_filter_configuration"]:
        excluded = native_filter["scope"]["excluded"]
        # The time range bounds the stories too; wiki/bot/type are columns of events only.
        assert excluded == ([] if native_filter["filterType"] == "filter_time" else ids)
    (korean,) = [c for c in trends if "ko_link" in c["params"].get("all_columns", [])]
    assert {"subject": "ko_link", "operator": "IS NOT NULL"}.items() <= korean["params"][
        "adhoc_filters"
    ][-1].items()


def _is_chart(node: object) -> bool:
    return isinstance(node, dict) and node.get("type") == "CHART"


def _chart_nodes(charts: list[dict]) -> list[str]:
    uuids = {c["uuid"] for c in charts}
    return [
        k for k, n in DASHBOARD["position"].items() if _is_chart(n) and n["meta"]["uuid"] in uuids
    ]


def test_wikidata_label_falls_back_ko_en_id():
    expression = COLUMNS["wikidata_label"]["expression"]
    positions = [expression.index(f'"{c}"') for c in ("wikidata_label_ko", "wikidata_label_en")]
    assert expression.startswith("COALESCE(") and positions == sorted(positions)
    assert expression.rstrip(")").endswith('"wikidata_id"')


def test_druid_uri_is_templated_per_environment():
    database = next(iter(DATABASES.values()))
    assert database["sqlalchemy_uri"] == assets.DRUID_URI_TEMPLATE
    rendered = assets.render(database["sqlalchemy_uri"], {"DRUID_BROKER_HOST": "druid-broker"})
    assert rendered == "druid://druid-broker:8082/druid/v2/sql/"
    assert assets.render(database["sqlalchemy_uri"], {}) == ("druid://127.0.0.1:8082/druid/v2/sql/")


def test_build_zip_is_importable_shape(tmp_path):
    out = assets.build_zip(BUNDLE, tmp_path / "bundle.zip", env={})
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert all(n.startswith("wikimedia_live_trends/") for n in names)
        chart = yaml.safe_load(zf.read(next(n for n in names if "/charts/" in n)))
        assert isinstance(json.loads(chart["query_context"]), dict)
        database = yaml.safe_load(zf.read(next(n for n in names if "/databases/" in n)))
        assert database["sqlalchemy_uri"] == "druid://127.0.0.1:8082/druid/v2/sql/"


def test_assets_contents_are_what_import_assets_command_takes():
    """Superset's ImportAssetsCommand wants metadata type "assets"; git keeps the export's own
    type, so the zip from ``build`` still imports through the UI."""
    contents = assets.assets_contents(BUNDLE, env={"DRUID_BROKER_HOST": "druid-broker"})
    assert yaml.safe_load(contents["metadata.yaml"])["type"] == "assets"
    assert set(contents) == {p.relative_to(BUNDLE).as_posix() for p in BUNDLE.rglob("*.yaml")}
    (database,) = [yaml.safe_load(t) for r, t in contents.items() if r.startswith("databases/")]
    assert database["sqlalchemy_uri"] == "druid://druid-broker:8082/druid/v2/sql/"
    for rel, text in contents.items():
        if rel.startswith("charts/"):
            context = json.loads(yaml.safe_load(text)["query_context"])
            assert context["datasource"] == assets.UNBOUND_DATASOURCE, rel


def test_cli_build_and_normalise(tmp_path, capsys):
    """The console script's pure half works in the project's venv, without Superset."""
    out = tmp_path / "bundle.zip"
    assert cli.main(["build", str(BUNDLE), str(out)]) == 0
    copy = tmp_path / "copy"
    shutil.copytree(BUNDLE, copy)
    assert cli.main(["normalise", str(out), str(copy)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(out) and "metadata.yaml" in printed


def test_cli_reports_a_folder_that_is_no_bundle(tmp_path, capsys):
    assert cli.main(["build", str(tmp_path), str(tmp_path / "x.zip")]) == 1
    assert "has no metadata.yaml" in capsys.readouterr().err


def test_normalise_unbinds_ids_an_instance_wrote(tmp_path):
    """An export carries this instance's dataset id in each query context (top level and per
    query) and its chart ids in form data: git keeps none of them."""
    out = assets.build_zip(BUNDLE, tmp_path / "bundle.zip", env={})
    bound = tmp_path / "bound.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(bound, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if "/charts/" in name:
                chart = yaml.safe_load(data)
                context = json.loads(chart["query_context"])
                context["datasource"] = {"id": 7, "type": "table"}
                for query in context["queries"]:
                    query["datasource"] = {"id": 7, "type": "table"}
                context["form_data"].update(slice_id=42, datasource="7__table")
                chart["query_context"] = json.dumps(context)
                data = assets.dump_yaml(chart).encode()
            dst.writestr(name, data)
    copy = tmp_path / "copy"
    shutil.copytree(BUNDLE, copy)
    assets.normalise(bound, copy)
    for path in (copy / "charts").glob("*.yaml"):
        context = yaml.safe_load(path.read_text(encoding="utf-8"))["query_context"]
        assert context["datasource"] == assets.UNBOUND_DATASOURCE
        assert all(q["datasource"] == assets.UNBOUND_DATASOURCE for q in context["queries"])
        assert not {"slice_id", "datasource"} & set(context["form_data"])


def test_normalise_round_trip_is_byte_identical(tmp_path):
    """Export -> normalise must reproduce git's files exactly, so diffs show only real edits."""
    copy = tmp_path / "bundle"
    shutil.copytree(BUNDLE, copy)
    out = assets.build_zip(BUNDLE, tmp_path / "bundle.zip", env={})
    assets.normalise(out, copy)
    for original in BUNDLE.rglob("*.yaml"):
        rel = original.relative_to(BUNDLE)
        assert (copy / rel).read_text(encoding="utf-8") == original.read_text(encoding="utf-8"), rel
    assert sorted(p.relative_to(copy) for p in copy.rglob("*.yaml")) == sorted(
        p.relative_to(BUNDLE) for p in BUNDLE.rglob("*.yaml")
    )


def test_per_minute_chart_holds_a_retained_week_in_one_query():
    """ORDER BY edits DESC LIMIT n keeps the n busiest minutes: n must cover every minute of a
    7-day window (5 event types), and no series limit adds a second query for ~5 types."""
    (chart,) = [c for c in CHARTS.values() if c["slice_name"] == "Edits per minute by type"]
    week_of_minutes = 7 * 24 * 60 * 5
    assert chart["params"]["time_grain_sqla"] == "PT1M"
    assert chart["params"]["row_limit"] >= week_of_minutes
    for query in chart["query_context"]["queries"]:
        assert query["row_limit"] >= week_of_minutes and query["series_limit"] == 0
