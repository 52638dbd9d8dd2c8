"""Dashboard speed through Superset's own chart data API, with the dashboard's real time filter.

    python -m benchmarks.capacity.dashboard_speed --runs 10 --windows 1h,24h,7d
        [--end ISO|latest] [--modes uncached,cached] [--json out.json] [--markdown out.md]
        [--locust-users 1,10,50 --locust-seconds 60 --locust-window 24h]

What a browser does when it opens "Wikimedia live trends" with a time range picked in the
dashboard's native time filter: for each of the 9 charts it POSTs the chart's query context to
``/api/v1/chart/data`` with the filter's value in ``form_data.extra_form_data.time_range`` and in
every query's ``time_range`` (superset-ui's ``buildQueryObject`` applies ``extra_form_data`` that
way; the server then replaces the value of the chart's ``TEMPORAL_RANGE`` adhoc filter on
``__time`` with it, ``QueryContextFactory._apply_filters``). This module sends exactly that body,
built from the chart's saved ``query_context`` (from the API; the bundle YAML for unit tests).

Windows: ``1h``, ``24h``, ``7d`` (any ``<N>m|h|d|w``) become what the time filter's "Advanced"
tab writes for a rolling window, ``DATEADD(DATETIME("now"), -1, hour) : now``. The "Last" tab's
``Last day``/``Last week`` are *calendar* ranges in Superset (they end at ``today`` = midnight,
``DEFAULT_RELATIVE_END_TIME``), so they would miss today's data; any other string (``Last day``,
``No filter``, ``2025-01-01 : 2025-01-02``) is passed through unchanged, and ``default`` is the
dashboard's own default (``defaultDataMask`` of its time filter). Generated or recorded
data may not end now: ``--end ISO`` (or ``--end latest``: ``MAX(__time)`` from the Druid broker)
makes each window explicit ISO bounds ``start : end`` ending there.

``force=true`` ("uncached", the default) makes Superset skip its results cache, so each timing
is a Druid query plus Superset's post-processing; Druid's own caches are not under our control.
``cached`` sends ``force=false`` after one untimed warm-up request per chart; natively the results
cache is a SimpleCache per gunicorn worker (30 s), so the cache-hit count is reported with it.

Every request that is not HTTP 200 or carries an error in its payload is counted as an error and
its message kept (in the JSON and below the markdown table), never dropped.

``run_locust()`` runs ``benchmarks/capacity/locustfile.py`` headless as a subprocess with the same
request bodies and parses Locust's CSV statistics per chart.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "superset" / "dashboards" / "wikimedia_live_trends"
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
LOCUST_OUT = ROOT / "var" / "log" / "capacity-locust"
DASHBOARD_TITLE = "Wikimedia live trends"
BASE_URL = os.environ.get("SUPERSET_URL", "http://127.0.0.1:8088")
BROKER_URL = os.environ.get("DRUID_BROKER_URL", "http://127.0.0.1:8082")
DATASOURCE = "wikimedia_recentchange"
CHART_DATA_PATH = "/api/v1/chart/data"
# A browser opens at most 6 HTTP/1.1 connections per host: the dashboard's chart requests run
# that many at a time.
BROWSER_PARALLEL = 6
# Superset's JWT access tokens expire after 15 minutes (flask-jwt-extended's default).
RELOGIN_SECONDS = 600
TIMEOUT = 120
UNITS = {"m": "minute", "h": "hour", "d": "day", "w": "week"}
WINDOW_PATTERN = re.compile(r"^(\d+)\s*(m|h|d|w)$")
NO_FILTER = "No filter"
# Locust request names (stats are per name, so per chart).
CHART_PREFIX = "chart: "
DASHBOARD_LOAD = "dashboard load"


# --- credentials -------------------------------------------------------------------------------


def _dotenv(path: Path) -> dict[str, str]:
    """KEY=value pairs of a .env-style file (python-dotenv, as pydantic-settings reads .env)."""
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def admin_password() -> str:
    """SUPERSET_ADMIN_PASSWORD the way superset/native.sh finds it: env, .env, secrets.env."""
    if os.environ.get("SUPERSET_ADMIN_PASSWORD"):
        return os.environ["SUPERSET_ADMIN_PASSWORD"]
    home = Path(os.environ.get("SUPERSET_HOME", ROOT / "var" / "data" / "superset"))
    for path in (ROOT / ".env", home / "secrets.env"):
        value = _dotenv(path).get("SUPERSET_ADMIN_PASSWORD")
        if value:
            return value
    raise SystemExit("SUPERSET_ADMIN_PASSWORD: not in the environment, .env or secrets.env")


def admin_user() -> str:
    return os.environ.get("SUPERSET_ADMIN_USER", "admin")


class Client:
    """tests/integration/superset_api.SupersetApi, logged in again before its JWT expires."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url, self._credentials = base_url.rstrip("/"), (username, password)
        self.login()

    def login(self) -> None:
        from tests.integration.superset_api import SupersetApi

        self.api = SupersetApi(*self._credentials, base_url=self.base_url)
        self.logged_in = time.monotonic()
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        if time.monotonic() - self.logged_in > RELOGIN_SECONDS:
            self.login()
        return self.api.session

    def thread_session(self) -> requests.Session:
        """A session per thread (requests.Session is not thread-safe), same login."""
        parent = self.session
        local = self._local
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers.update(parent.headers)
            local.session.cookies.update(parent.cookies)
        return local.session

    def json(self, path: str, **params: Any) -> dict:
        response = self.session.get(f"{self.base_url}{path}", params=params, timeout=TIMEOUT)
        response.raise_for_status()
        return response.json()


# --- time ranges -------------------------------------------------------------------------------


def parse_end(value: str | datetime | None, broker_url: str = BROKER_URL) -> datetime | None:
    """``None``, an ISO timestamp (UTC if naive) or ``latest`` (the data's MAX(__time))."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        end = value
    elif value == "latest":
        end = latest_data_time(broker_url)
    else:
        end = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    return end.astimezone(timezone.utc)


def latest_data_time(broker_url: str = BROKER_URL, datasource: str = DATASOURCE) -> datetime:
    response = requests.post(
        f"{broker_url.rstrip('/')}/druid/v2/sql/",
        json={"query": f'SELECT MAX(__time) AS "latest" FROM "{datasource}"'},
        timeout=60,
    )
    response.raise_for_status()
    latest = response.json()[0]["latest"]
    if not latest:
        raise SystemExit(f"{datasource} holds no rows: no latest __time to end the windows at")
    # A row at 12:00:00.5 is inside [.., 12:00:01): end just after the newest second.
    parsed = datetime.fromisoformat(latest.replace("Z", "+00:00"))
    return parsed.replace(microsecond=0) + timedelta(seconds=1)


def window_delta(window: str) -> timedelta | None:
    match = WINDOW_PATTERN.match(window.strip())
    if not match:
        return None
    return timedelta(**{f"{UNITS[match.group(2)]}s": int(match.group(1))})


def _superset_time(value: datetime) -> str:
    """Naive UTC ISO seconds: what Superset's DATETIME() parses (its timezone is UTC)."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")


def time_range_for(window: str, end: datetime | None = None, default: str | None = None) -> str:
    """The native time filter's value for a window (see the module docstring).

    ``default`` is the dashboard's own default (its filter's ``defaultDataMask``), what a viewer
    gets without touching the filter; "No filter" when the dashboard sets none.
    """
    if window == "default":
        return default or NO_FILTER
    match = WINDOW_PATTERN.match(window.strip())
    if not match:
        return window  # a Superset time range as the user typed it
    if end is None:
        amount, unit = int(match.group(1)), UNITS[match.group(2)]
        return f'DATEADD(DATETIME("now"), -{amount}, {unit}) : now'
    start = end - window_delta(window)
    return f"{_superset_time(start)} : {_superset_time(end)}"


# --- charts and request bodies -----------------------------------------------------------------


def chart_order(position: dict) -> list[dict]:
    """The CHART nodes' ``meta`` of a dashboard layout in reading order (rows top to bottom)."""
    found: list[dict] = []

    def walk(node_id: str) -> None:
        node = position.get(node_id)
        if not isinstance(node, dict):
            return
        if node.get("type") == "CHART":
            found.append(node.get("meta") or {})
        for child in node.get("children") or []:
            walk(child)

    walk("ROOT_ID")
    return found


def default_time_range(metadata: dict) -> str | None:
    """The default value of the dashboard's native time filter (None: no default)."""
    for native in metadata.get("native_filter_configuration") or []:
        if native.get("filterType") == "filter_time":
            extra = (native.get("defaultDataMask") or {}).get("extraFormData") or {}
            return extra.get("time_range")
    return None


def _query_context(value: Any) -> dict | None:
    if isinstance(value, str) and value:
        return json.loads(value)
    return value if isinstance(value, dict) else None


def bundle_charts(bundle: Path = BUNDLE) -> dict:
    """The dashboard and its charts as the YAML bundle in git describes them (no server).

    Ids are the bundle's own (position ``chartId``), the datasource the placeholder ``0`` that
    the import (Superset's ImportAssetsCommand) rebinds; fine for building and checking bodies,
    not for sending them.
    """
    (dashboard_path,) = sorted((bundle / "dashboards").glob("*.yaml"))
    dashboard = yaml.safe_load(dashboard_path.read_text(encoding="utf-8"))
    by_uuid = {}
    for path in sorted((bundle / "charts").glob("*.yaml")):
        chart = yaml.safe_load(path.read_text(encoding="utf-8"))
        by_uuid[str(chart["uuid"])] = chart
    charts = []
    for meta in chart_order(dashboard["position"]):
        chart = by_uuid[str(meta["uuid"])]
        context = _query_context(chart["query_context"])
        charts.append(
            {
                "chart": chart["slice_name"],
                "chart_id": meta["chartId"],
                "uuid": str(chart["uuid"]),
                "viz_type": chart["viz_type"],
                "datasource": context["datasource"],
                "query_context": context,
            }
        )
    info = {
        "id": 0,
        "title": dashboard["dashboard_title"],
        "default_time_range": default_time_range(dashboard.get("metadata") or {}),
    }
    return {"dashboard": info, "charts": charts}


def api_charts(client: Client, title: str = DASHBOARD_TITLE) -> dict:
    """The dashboard called `title` and its charts' saved query contexts, from the REST API."""
    listing = client.json("/api/v1/dashboard/", q="(page:0,page_size:100)")["result"]
    matches = [d for d in listing if d.get("dashboard_title") == title]
    if len(matches) != 1:
        found = [d.get("dashboard_title") for d in listing]
        raise SystemExit(f"expected one dashboard {title!r} in Superset, found {found}")
    dashboard = client.json(f"/api/v1/dashboard/{matches[0]['id']}")["result"]
    position = json.loads(dashboard.get("position_json") or "{}")
    in_dashboard = client.json(f"/api/v1/dashboard/{dashboard['id']}/charts")["result"]
    members = {c["id"] for c in in_dashboard}
    ordered = [m["chartId"] for m in chart_order(position) if m.get("chartId") in members]
    ordered += sorted(members - set(ordered))
    fallback = {c["uuid"]: c for c in bundle_charts()["charts"]}
    charts = []
    for chart_id in ordered:
        chart = client.json(f"/api/v1/chart/{chart_id}")["result"]
        context = _query_context(chart.get("query_context"))
        if context is None and str(chart.get("uuid")) in fallback:
            context = fallback[str(chart["uuid"])]["query_context"]
        if context is None:
            raise SystemExit(f"chart {chart['slice_name']!r} has no saved query context")
        charts.append(
            {
                "chart": chart["slice_name"],
                "chart_id": chart_id,
                "uuid": str(chart.get("uuid")),
                "viz_type": chart.get("viz_type"),
                "datasource": {"id": chart["datasource_id"], "type": chart["datasource_type"]},
                "query_context": context,
            }
        )
    info = {
        "id": dashboard["id"],
        "title": dashboard["dashboard_title"],
        "default_time_range": default_time_range(
            json.loads(dashboard.get("json_metadata") or "{}")
        ),
    }
    return {"dashboard": info, "charts": charts}


def chart_request(
    chart: dict,
    time_range: str | None,
    force: bool,
    dashboard_id: int,
    filters: dict[str, list[str]] | None = None,
) -> dict:
    """The POST /api/v1/chart/data request a dashboard sends for `chart` with its filters set.

    `time_range` None (or "No filter") is the time filter left empty: the saved context as is.
    `filters` are the dashboard's select filters (wiki, bot, type), column -> chosen values.
    """
    body = copy.deepcopy(chart["query_context"])
    extra: dict[str, Any] = {}
    if time_range and time_range != NO_FILTER:
        extra["time_range"] = time_range
    if filters:
        extra["filters"] = [{"col": c, "op": "IN", "val": list(v)} for c, v in filters.items()]
    body["datasource"] = dict(chart["datasource"])
    body["force"] = force
    form_data = body.setdefault("form_data", {})
    form_data.update(
        {
            "datasource": f"{chart['datasource']['id']}__{chart['datasource']['type']}",
            "slice_id": chart["chart_id"],
            "dashboardId": dashboard_id,
            "force": force,
            "extra_form_data": {**(form_data.get("extra_form_data") or {}), **extra},
        }
    )
    for query in body.get("queries", []):
        if "time_range" in extra:
            query["time_range"] = extra["time_range"]
        query["filters"] = list(query.get("filters") or []) + extra.get("filters", [])
    return {
        "chart": chart["chart"],
        "chart_id": chart["chart_id"],
        # The query string superset-ui adds: the server logs and checks access with it.
        "params": {
            "form_data": json.dumps({"slice_id": chart["chart_id"]}),
            "dashboard_id": dashboard_id,
        },
        "body": body,
    }


def dashboard_requests(
    loaded: dict,
    time_range: str | None,
    force: bool = True,
    filters: dict[str, list[str]] | None = None,
) -> list[dict]:
    """The chart requests of one dashboard load (`loaded` from api_charts or bundle_charts)."""
    dashboard_id = loaded["dashboard"]["id"]
    return [chart_request(c, time_range, force, dashboard_id, filters) for c in loaded["charts"]]


# --- one request -------------------------------------------------------------------------------


def response_error(status: int, text: str) -> str | None:
    """The error of a chart data answer (None when it is a good answer), message kept short."""
    try:
        payload = json.loads(text) if text else None
    except ValueError:
        payload = None
    if status != 200:
        detail = text
        if isinstance(payload, dict):
            detail = payload.get("message") or payload.get("errors") or payload.get("msg") or text
        return f"HTTP {status}: {_short(detail)}"
    if not isinstance(payload, dict) or not isinstance(payload.get("result"), list):
        return f"HTTP 200 without a result list: {_short(text)}"
    for result in payload["result"]:
        if result.get("error") or result.get("status") == "failed" or result.get("errors"):
            return f"query failed: {_short(result.get('error') or result.get('errors'))}"
        if result.get("rejected_filters"):
            # Answered, but not for the filter the dashboard set: not a valid measurement.
            return f"filter rejected: {_short(result['rejected_filters'])}"
    return None


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def send(session: requests.Session, base_url: str, request: dict) -> dict:
    """POST one chart request; the sample: milliseconds, error (or None), rows, cache hit."""
    started = time.perf_counter()
    try:
        response = session.post(
            f"{base_url}{CHART_DATA_PATH}",
            params=request["params"],
            json=request["body"],
            timeout=TIMEOUT,
        )
        text, status = response.text, response.status_code
    except requests.RequestException as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return {"ms": elapsed, "error": f"{type(exc).__name__}: {_short(str(exc))}"}
    sample: dict[str, Any] = {"ms": (time.perf_counter() - started) * 1000}
    sample["error"] = response_error(status, text)
    if sample["error"] is None:
        results = json.loads(text)["result"]
        sample["rows"] = sum(r.get("rowcount") or 0 for r in results)
        sample["cached"] = all(r.get("is_cached") for r in results)
        sample["from"], sample["to"] = results[0].get("from_dttm"), results[0].get("to_dttm")
    return sample


# --- statistics --------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (as benchmarks.harness.percentile), None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def summarise(samples: list[dict]) -> dict:
    """p50/p95/max over the successful samples; errors counted and their messages kept."""
    good = [s["ms"] for s in samples if s["error"] is None]
    errors = Counter(s["error"] for s in samples if s["error"] is not None)
    last = next((s for s in reversed(samples) if s["error"] is None), {})

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "runs": len(samples),
        "ok": len(good),
        "errors": sum(errors.values()),
        "error_messages": dict(errors),
        "p50_ms": ms(percentile(good, 50)),
        "p95_ms": ms(percentile(good, 95)),
        "max_ms": ms(max(good) if good else None),
        "rows": last.get("rows"),
        "cache_hits": sum(1 for s in samples if s.get("cached")),
        "from": last.get("from"),
        "to": last.get("to"),
    }


# --- the measurement ---------------------------------------------------------------------------


def _load_dashboard(client: Client, batch: list[dict], pool: ThreadPoolExecutor) -> dict:
    """One browser-like dashboard load: all chart requests, as many at a time as `pool` runs."""

    def one(request: dict) -> dict:
        return send(client.thread_session(), client.base_url, request)

    started = time.perf_counter()
    samples = list(pool.map(one, batch))
    elapsed = (time.perf_counter() - started) * 1000
    failed = [(r["chart"], s["error"]) for r, s in zip(batch, samples) if s["error"]]
    if not failed:
        return {"ms": elapsed, "error": None}
    chart, error = failed[0]
    return {
        "ms": elapsed,
        "error": f"{len(failed)}/{len(batch)} charts failed, e.g. {chart}: {error}",
    }


def measure(
    runs: int = 10,
    windows: list[str] | tuple[str, ...] | str = ("1h", "24h", "7d"),
    end: str | datetime | None = None,
    *,
    modes: list[str] | tuple[str, ...] = ("uncached",),
    base_url: str = BASE_URL,
    username: str | None = None,
    password: str | None = None,
    parallel: int = BROWSER_PARALLEL,
    filters: dict[str, list[str]] | None = None,
    log=None,
) -> dict:
    """Time every chart of the dashboard `runs` times per window and mode; see the docstring.

    Per window and mode: one row per chart (requests one after another) and one "dashboard"
    row: the wall time of loading all charts `parallel` at a time, as a browser does (0: skip).
    """
    log = log or _print
    if isinstance(windows, str):
        windows = [w for w in windows.split(",") if w]
    client = Client(base_url, username or admin_user(), password or admin_password())
    end_at = parse_end(end)
    loaded = api_charts(client)
    results: dict[str, Any] = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "base_url": client.base_url,
        "dashboard": {**loaded["dashboard"], "charts": len(loaded["charts"])},
        "runs": runs,
        "end": end_at.isoformat() if end_at else None,
        "filters": filters or {},
        "parallel": parallel,
        "rows": [],
    }
    for window in windows:
        time_range = time_range_for(window, end_at, loaded["dashboard"]["default_time_range"])
        for mode in modes:
            if mode not in ("uncached", "cached"):
                raise ValueError(f"mode {mode!r}: expected uncached or cached")
            force = mode == "uncached"
            batch = dashboard_requests(loaded, time_range, force=force, filters=filters)
            if not force:  # warm Superset's results cache; not timed
                for request in batch:
                    send(client.session, client.base_url, request)
            samples: dict[str, list[dict]] = {r["chart"]: [] for r in batch}
            for _ in range(runs):  # whole dashboards in turn, so drift hits every chart alike
                for request in batch:
                    samples[request["chart"]].append(send(client.session, client.base_url, request))
            base = {"window": window, "time_range": time_range, "mode": mode}
            for request in batch:
                row = summarise(samples[request["chart"]])
                results["rows"].append(
                    {**base, "chart": request["chart"], "chart_id": request["chart_id"], **row}
                )
                log(_log_line(results["rows"][-1]))
            if parallel > 0:
                with ThreadPoolExecutor(max_workers=parallel) as pool:
                    loads = [_load_dashboard(client, batch, pool) for _ in range(runs)]
                chart = f"dashboard ({len(batch)} charts, {parallel} at a time)"
                row = {**base, "chart": chart, "chart_id": None, **summarise(loads)}
                row.update({"rows": None, "cache_hits": None, "from": None, "to": None})
                results["rows"].append(row)
                log(_log_line(row))
    results["errors"] = sum(r["errors"] for r in results["rows"])
    return results


def _print(line: str) -> None:
    print(line, flush=True)


def _log_line(row: dict) -> str:
    return (
        f"[dashboard_speed] {row['window']} {row['mode']} {row['chart']}: p50 {row['p50_ms']} "
        f"p95 {row['p95_ms']} max {row['max_ms']} ms, errors {row['errors']}/{row['runs']}"
    )


# --- markdown ----------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    return str(value)


def render_markdown(results: dict) -> str:
    """The chart timings as a markdown table, then every error message with its count."""
    lines = [
        f"Superset chart data API ({results.get('base_url')}), dashboard "
        f"\"{results.get('dashboard', {}).get('title')}\", {results.get('runs')} runs per chart"
        + (f", windows ending {results['end']}" if results.get("end") else ", windows ending now")
        + ". Uncached = `force=true`.",
        "",
        "| Window | Mode | Chart | p50 ms | p95 ms | max ms | Errors | Rows | Cache hits |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results.get("rows", []):
        lines.append(
            f"| {row['window']} | {row['mode']} | {row['chart']} | {_cell(row['p50_ms'])} | "
            f"{_cell(row['p95_ms'])} | {_cell(row['max_ms'])} | {row['errors']}/{row['runs']} | "
            f"{_cell(row.get('rows'))} | {_cell(row.get('cache_hits'))} |"
        )
    lines += ["", _errors_markdown(results.get("rows", []))]
    return "\n".join(lines) + "\n"


def _errors_markdown(rows: list[dict], limit: int = 8) -> str:
    """Every distinct error message, how often, and where (the same one is listed once)."""
    where: dict[str, list[str]] = {}
    counts: Counter = Counter()
    for row in rows:
        for message, count in (row.get("error_messages") or {}).items():
            counts[message] += count
            where.setdefault(message, []).append(f"{row['window']} {row['mode']} {row['chart']}")
    if not counts:
        return "No errors."
    lines = []
    for message, count in counts.most_common():
        places = where[message]
        shown = ", ".join(places[:limit]) + (
            f" and {len(places) - limit} more" if len(places) > limit else ""
        )
        lines.append(f"- {count}x {message} ({shown})")
    return "Errors:\n\n" + "\n".join(lines)


def render_locust_markdown(runs: list[dict]) -> str:
    """Locust runs (run_locust results) as one table: per users count, per chart."""
    lines = [
        "| Users | Window | Request | Requests | Failures | p50 ms | p95 ms | max ms | req/s |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    failures = []
    for run in runs:
        named = [(name, stats) for name, stats in run["charts"].items()]
        if run.get("dashboard"):
            named.append((DASHBOARD_LOAD, run["dashboard"]))
        if run.get("aggregated"):
            named.append(("all requests", run["aggregated"]))
        for name, s in named:
            lines.append(
                f"| {run['users']} | {run['window']} | {name} | {s['requests']} | "
                f"{s['failures']} | {_cell(s['p50_ms'])} | {_cell(s['p95_ms'])} | "
                f"{_cell(s['max_ms'])} | {_cell(s['rps'])} |"
            )
        failures += [
            f"- {run['users']} users {f['name']}: {f['occurrences']}x {f['error']}"
            for f in run.get("failures", [])
        ]
    lines += ["", "Failures:\n\n" + "\n".join(failures) if failures else "No failures."]
    return "\n".join(lines) + "\n"


# --- Locust ------------------------------------------------------------------------------------


def _number(value: str | None) -> float | None:
    if value in (None, "", "N/A"):
        return None
    return float(value)


def parse_locust_stats(text: str) -> dict[str, dict]:
    """Locust's ``<prefix>_stats.csv`` -> {name: requests, failures, p50/p95/max/avg ms, rps}."""
    stats = {}
    for row in csv.DictReader(io.StringIO(text)):
        p50 = _number(row.get("50%")) or _number(row.get("Median Response Time"))
        stats[row["Name"]] = {
            "type": row.get("Type") or None,
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "p50_ms": p50,
            "p95_ms": _number(row.get("95%")),
            "max_ms": _number(row.get("Max Response Time")),
            "avg_ms": _number(row.get("Average Response Time")),
            "rps": _number(row.get("Requests/s")),
        }
    return stats


def parse_locust_failures(text: str) -> list[dict]:
    """Locust's ``<prefix>_failures.csv`` -> [{name, error, occurrences}]."""
    return [
        {
            "name": row["Name"],
            # response.failure(message) is stored as CatchResponseError('message').
            "error": re.sub(r"^CatchResponseError\((['\"])(.*)\1\)$", r"\2", row["Error"]),
            "occurrences": int(row["Occurrences"]),
        }
        for row in csv.DictReader(io.StringIO(text))
    ]


def locust_summary(stats: dict[str, dict], failures: list[dict]) -> dict:
    """Split parsed stats into charts (by chart name), the dashboard load, login, aggregate."""
    return {
        "charts": {
            name.removeprefix(CHART_PREFIX): s
            for name, s in stats.items()
            if name.startswith(CHART_PREFIX)
        },
        "dashboard": stats.get(DASHBOARD_LOAD),
        "login": stats.get("login"),
        "aggregated": stats.get("Aggregated"),
        "failures": failures,
        "failed_requests": sum(s["failures"] for n, s in stats.items() if n != "Aggregated"),
    }


def run_locust(
    users: int,
    seconds: int,
    host: str = BASE_URL,
    window: str = "24h",
    end: str | datetime | None = None,
    *,
    force: bool = True,
    think_seconds: float = 5.0,
    parallel: int = BROWSER_PARALLEL,
    out_dir: Path = LOCUST_OUT,
    username: str | None = None,
    password: str | None = None,
) -> dict:
    """Locust headless: `users` DashboardViewers for `seconds`; stats per chart from its CSV.

    The request bodies are built here once (same as measure()) and handed to the locustfile in a
    JSON file, so every user sends exactly what the chart timings sent.
    """
    username, password = username or admin_user(), password or admin_password()
    end_at = parse_end(end)
    client = Client(host, username, password)
    loaded = api_charts(client)
    time_range = time_range_for(window, end_at, loaded["dashboard"]["default_time_range"])
    batch = dashboard_requests(loaded, time_range, force=force)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    run_dir = out_dir / f"{stamp}-u{users}"
    run_dir.mkdir(parents=True, exist_ok=True)
    requests_file = run_dir / "requests.json"
    requests_file.write_text(json.dumps(batch), encoding="utf-8")
    prefix = run_dir / "locust"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--csv",
        str(prefix),
        "--host",
        host,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "DASHBOARD_REQUESTS_FILE": str(requests_file),
        "DASHBOARD_THINK_SECONDS": str(think_seconds),
        "DASHBOARD_PARALLEL": str(parallel),
        "SUPERSET_ADMIN_USER": username,
        "SUPERSET_ADMIN_PASSWORD": password,
    }
    log_path = run_dir / "locust.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        completed = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            timeout=seconds + 120,
        )
    stats_path = Path(f"{prefix}_stats.csv")
    if not stats_path.is_file():
        tail = log_path.read_text(encoding="utf-8")[-3000:]
        raise RuntimeError(f"Locust wrote no {stats_path} (exit {completed.returncode}):\n{tail}")
    failures_path = Path(f"{prefix}_failures.csv")
    failures_text = failures_path.read_text("utf-8") if failures_path.is_file() else ""
    summary = locust_summary(
        parse_locust_stats(stats_path.read_text("utf-8")), parse_locust_failures(failures_text)
    )
    return {
        "users": users,
        "seconds": seconds,
        "window": window,
        "time_range": time_range,
        "force": force,
        "think_seconds": think_seconds,
        "parallel": parallel,
        # Locust exits 1 when any request failed; other codes mean Locust itself had trouble.
        "returncode": completed.returncode,
        "csv_prefix": str(prefix),
        "log": str(log_path),
        **summary,
    }


# --- CLI ---------------------------------------------------------------------------------------


def parse_filters(values: list[str]) -> dict[str, list[str]]:
    """``--filter wiki=enwiki,dewiki`` -> {"wiki": ["enwiki", "dewiki"]}."""
    filters: dict[str, list[str]] = {}
    for value in values:
        column, _, chosen = value.partition("=")
        if not column or not chosen:
            raise argparse.ArgumentTypeError(f"--filter {value!r}: expected COLUMN=V1[,V2...]")
        filters.setdefault(column, []).extend(v for v in chosen.split(",") if v)
    return filters


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="timed requests per chart and window")
    p.add_argument("--windows", default="1h,24h,7d", help="1h,24h,7d, default, time ranges")
    p.add_argument("--end", help="end the windows here (ISO, UTC) or 'latest' (data's newest)")
    p.add_argument("--modes", default="uncached", help="uncached (force=true), cached, or both")
    p.add_argument("--parallel", type=int, default=BROWSER_PARALLEL, help="0: no dashboard row")
    p.add_argument("--filter", action="append", default=[], help="e.g. wiki=enwiki (repeatable)")
    p.add_argument("--base-url", default=BASE_URL)
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--markdown", type=Path, help="write the markdown tables here")
    p.add_argument("--locust-users", default="", help="e.g. 1,10,50: also run Locust")
    p.add_argument("--locust-seconds", type=int, default=60)
    p.add_argument("--locust-window", default="24h")
    p.add_argument("--locust-cached", action="store_true", help="Locust with force=false")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    filters = parse_filters(args.filter)
    results: dict[str, Any] = {}
    if args.runs > 0:
        results["charts"] = measure(
            args.runs,
            args.windows,
            args.end,
            modes=[m for m in args.modes.split(",") if m],
            base_url=args.base_url,
            parallel=args.parallel,
            filters=filters,
        )
    users = [int(u) for u in args.locust_users.split(",") if u]
    if users:
        results["locust"] = []
        for count in users:
            print(f"[dashboard_speed] Locust: {count} users, {args.locust_seconds} s", flush=True)
            results["locust"].append(
                run_locust(
                    count,
                    args.locust_seconds,
                    args.base_url,
                    args.locust_window,
                    args.end,
                    force=not args.locust_cached,
                )
            )
    text = ""
    if "charts" in results:
        text += render_markdown(results["charts"])
    if "locust" in results:
        text += "\n" + render_locust_markdown(results["locust"])
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
