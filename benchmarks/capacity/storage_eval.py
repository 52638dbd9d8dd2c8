"""Storage evaluation: the dashboard's 9 chart queries on DuckDB, ClickHouse (chDB) and Druid.

Every chart of `superset/dashboards/wikimedia_live_trends` is written once, in `QUERIES`, as the
SQL Superset sends to Druid for it (the dataset's metrics and calculated columns inlined, every
identifier quoted the way pydruid's dialect does, a `__time` range like the dashboard's time
filter). `translate()` turns that text into DuckDB and ClickHouse SQL with a small mapping: the
table name, `__time` -> `event_time` (stored as a timestamp), `TIME_PARSE('...')` -> a timestamp
literal, `TIME_FLOOR(..., 'PT1M')` -> `date_trunc`/`toStartOfMinute`, and `COUNT(DISTINCT x)` ->
the engine's approximate count, because Druid answers `COUNT(DISTINCT)` with a HyperLogLog
sketch by default (`useApproximateCountDistinct`); `--exact-distinct` keeps it exact.

The same Parquet file (rows = `producer.events.EnrichedEvent`, from
`benchmarks/capacity/generate.py`) is imported into each engine's native storage, in a session
directory: a DuckDB database file, and a chDB MergeTree table (`PARTITION BY` day, `ORDER BY
event_time`, low-cardinality strings as `LowCardinality`, like Druid's DAY segments and its
dictionary-encoded strings). `bot`/`minor`/`patrolled` become the strings 'true'/'false', as
Druid stores them, so the dashboard's `"bot" = 'true'` means the same everywhere. Each engine runs
in its own subprocess, so its peak RSS (`getrusage`) is its own.

Windows (`1h`, `24h`, `7d`) end at the data's latest event time (rounded up to the second), not at
the wall clock, so a file generated yesterday is measured like live data.

    python -m benchmarks.capacity.storage_eval --parquet FILE \
        [--druid http://127.0.0.1:8082 --datasource wikimedia_recentchange] --json out.json

`run_druid()` times the same text over the broker's SQL API (result caches off), so one report
puts the three engines side by side; `render_markdown()` makes the tables for
docs/evaluation.md (`--doc` replaces the block between `<!-- storage-table -->` and
`<!-- /storage-table -->`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Union

ParquetArg = Union[str, Path, Sequence[Union[str, Path]]]
DRUID_TABLE = '"druid"."wikimedia_recentchange"'
TABLE = "wikimedia_recentchange"
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),  # the dashboard's default time range
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
DEFAULT_WINDOWS = ("1h", "24h", "7d")
RUNS = 20
WARMUP = 1
ENGINES = ("duckdb", "chdb")
DOC_START = "<!-- storage-table -->"
DOC_END = "<!-- /storage-table -->"
BOOL_COLUMNS = ("bot", "minor", "patrolled")
# Strings with few distinct values: LowCardinality in ClickHouse (Druid dictionary-encodes every
# string column, DuckDB picks dictionary compression by itself).
LOW_CARDINALITY = (
    "wiki",
    "server_name",
    "type",
    "bot",
    "minor",
    "patrolled",
    "log_type",
    "log_action",
    "enrichment_status",
)

# The dataset's calculated columns and metrics
# (superset/dashboards/wikimedia_live_trends/datasets/Druid/wikimedia_recentchange.yaml), as
# Superset inlines them. tests/unit/test_storage_eval.py checks they still match the YAML.
EDITOR_KIND = "CASE WHEN \"bot\" = 'true' THEN 'bot' ELSE 'human' END"
LENGTH_DELTA_BUCKET = (
    "CASE WHEN \"length_delta\" IS NULL THEN '9 n/a' "
    "WHEN \"length_delta\" < -1000 THEN '1 < -1000' "
    "WHEN \"length_delta\" < -100 THEN '2 -1000..-101' "
    "WHEN \"length_delta\" < 0 THEN '3 -100..-1' "
    "WHEN \"length_delta\" = 0 THEN '4 0' "
    "WHEN \"length_delta\" <= 100 THEN '5 1..100' "
    "WHEN \"length_delta\" <= 1000 THEN '6 101..1000' "
    "ELSE '7 > 1000' END"
)
WIKIDATA_LABEL = (
    "COALESCE(NULLIF(\"wikidata_label_ko\", ''), NULLIF(\"wikidata_label_en\", ''), "
    '"wikidata_id")'
)
# As Druid's transformSpec computes `wikidata_entity` at ingestion (DERIVED_DIMENSIONS).
WIKIDATA_ENTITY = (
    'CASE WHEN "wikidata_id" IS NULL THEN NULL '
    "WHEN COALESCE(\"wikidata_label_ko\", '') <> '' "
    "THEN \"wikidata_label_ko\" || ' (' || \"wikidata_id\" || ')' "
    "WHEN COALESCE(\"wikidata_label_en\", '') <> '' "
    "THEN \"wikidata_label_en\" || ' (' || \"wikidata_id\" || ')' "
    'ELSE "wikidata_id" END'
)
METRICS = {
    "edits": "COUNT(*)",
    "editors": 'COUNT(DISTINCT "user")',
    "wikis": 'COUNT(DISTINCT "wiki")',
    "bytes_changed": 'SUM(ABS("length_delta"))',
}
TIME_FILTER = "\"__time\" >= TIME_PARSE('{start}') AND \"__time\" < TIME_PARSE('{end}')"
MINUTE = "TIME_FLOOR(CAST(\"__time\" AS TIMESTAMP), 'PT1M')"

# Chart name (slice_name) -> Druid SQL as Superset generates it for the chart (its
# result_type=query). `{start}`/`{end}` are the window's bounds, filled in by `druid_sql()`.
QUERIES: dict[str, str] = {
    "Events in window": f"""SELECT {METRICS["edits"]} AS "edits"
FROM {DRUID_TABLE}
WHERE {TIME_FILTER}""",
    "Edits per minute by type": f"""SELECT {MINUTE} AS "__time", "type" AS "type",
  {METRICS["edits"]} AS "edits"
FROM {DRUID_TABLE}
WHERE {TIME_FILTER}
GROUP BY {MINUTE}, "type"
ORDER BY "edits" DESC
LIMIT 100000""",
    "Bot vs human share": f"""SELECT {EDITOR_KIND} AS "editor_kind", {METRICS["edits"]} AS "edits"
FROM {DRUID_TABLE}
WHERE {TIME_FILTER}
GROUP BY {EDITOR_KIND}
ORDER BY "edits" DESC
LIMIT 10""",
    "Top wikis": f"""SELECT "wiki" AS "wiki", {METRICS["edits"]} AS "edits"
FROM {DRUID_TABLE}
WHERE {TIME_FILTER}
GROUP BY "wiki"
ORDER BY "edits" DESC
LIMIT 15""",
    "New pages per wiki": f"""SELECT "wiki" AS "wiki", {METRICS["edits"]} AS "edits"
FROM {DRUID_TABLE}
WHERE {TIME_FILTER} AND "type" = 'new'
GROUP BY "wiki"
ORDER BY "edits" DESC
LIMIT 15""",
    "Edit size distribution": f"""SELECT {LENGTH_DELTA_BUCKET} AS "length_delta_bucket",
  {METRICS["edits"]} AS "edits"
FROM {DRUID_TABLE}
WHERE {TIME_FILTER} AND "type" IN ('edit', 'new')
GROUP BY {LENGTH_DELTA_BUCKET}
ORDER BY "edits" DESC
LIMIT 20""",
    "Most active human editors": f"""SELECT "user" AS "user", {METRICS["edits"]} AS "edits",
  {METRICS["wikis"]} AS "wikis", {METRICS["bytes_changed"]} AS "bytes_changed"
FROM {DRUID_TABLE}
WHERE {TIME_FILTER} AND "bot" = 'false'
GROUP BY "user"
ORDER BY "edits" DESC
LIMIT 25""",
    "Most edited pages": f"""SELECT "page" AS "page",
  {METRICS["edits"]} AS "edits", {METRICS["editors"]} AS "editors"
FROM {DRUID_TABLE}
WHERE {TIME_FILTER}
GROUP BY "page"
ORDER BY "edits" DESC
LIMIT 25""",
    "Top Wikidata entities": f"""SELECT "wikidata_entity" AS "wikidata_entity",
  {METRICS["edits"]} AS "edits"
FROM {DRUID_TABLE}
WHERE {TIME_FILTER} AND "wikidata_entity" IS NOT NULL
GROUP BY "wikidata_entity"
ORDER BY "edits" DESC
LIMIT 25""",
}


# --- windows and SQL -------------------------------------------------------------------------


def window_bounds(latest: datetime, window: str) -> tuple[str, str]:
    """`[start, end)` of a window ending just after `latest` (UTC, whole seconds, ISO 'T')."""
    if latest.tzinfo is not None:
        latest = latest.astimezone(timezone.utc).replace(tzinfo=None)
    end = latest.replace(microsecond=0) + timedelta(seconds=1)
    start = end - WINDOWS[window]
    fmt = "%Y-%m-%dT%H:%M:%S"
    return start.strftime(fmt), end.strftime(fmt)


def druid_sql(name: str, start: str, end: str, datasource: str = TABLE) -> str:
    """The Druid SQL of one chart for the window `[start, end)`."""
    sql = QUERIES[name].replace("{start}", start).replace("{end}", end)
    return sql.replace(DRUID_TABLE, f'"druid"."{datasource}"')


@dataclass(frozen=True)
class Dialect:
    """How Druid SQL maps onto another engine."""

    name: str
    table: str
    time_column: str
    timestamp: Callable[[str], str]  # 'YYYY-MM-DDTHH:MM:SS' -> literal
    floors: dict[str, str]  # Druid period -> expression with {col}
    approx_distinct: str  # with {arg}
    exact_distinct: str = "COUNT(DISTINCT {arg})"
    extra: dict[str, str] = field(default_factory=dict)


DIALECTS = {
    "duckdb": Dialect(
        name="duckdb",
        table=TABLE,
        time_column='"event_time"',
        timestamp=lambda v: f"TIMESTAMP '{v.replace('T', ' ')}'",
        floors={
            "PT1M": "date_trunc('minute', {col})",
            "PT1H": "date_trunc('hour', {col})",
            "P1D": "date_trunc('day', {col})",
        },
        approx_distinct="approx_count_distinct({arg})",
    ),
    "chdb": Dialect(
        name="chdb",
        table=f"wikistreams.{TABLE}",
        time_column='"event_time"',
        timestamp=lambda v: f"toDateTime64('{v.replace('T', ' ')}', 3, 'UTC')",
        floors={
            "PT1M": "toStartOfMinute({col})",
            "PT1H": "toStartOfHour({col})",
            "P1D": "toStartOfDay({col})",
        },
        approx_distinct="uniq({arg})",
    ),
}

_FLOOR = re.compile(r"TIME_FLOOR\(CAST\(\"__time\" AS TIMESTAMP\), '(P[0-9A-Z]+)'\)")
_PARSE = re.compile(r"TIME_PARSE\('([^']+)'\)")
_TIME_REF = re.compile(r'(?<!AS )"__time"')
_DISTINCT = re.compile(r"COUNT\(DISTINCT (\"[^\"]+\")\)")


def translate(sql: str, dialect: Dialect | str, exact_distinct: bool = False) -> str:
    """Druid SQL (as `druid_sql` renders it) in another engine's dialect."""
    d = DIALECTS[dialect] if isinstance(dialect, str) else dialect
    out = re.sub(r'"druid"\."[^"]+"', d.table, sql)
    out = _FLOOR.sub(lambda m: d.floors[m.group(1)].format(col=d.time_column), out)
    out = _PARSE.sub(lambda m: d.timestamp(m.group(1)), out)
    out = _TIME_REF.sub(d.time_column, out)
    distinct = d.exact_distinct if exact_distinct else d.approx_distinct
    return _DISTINCT.sub(lambda m: distinct.format(arg=m.group(1)), out)


# --- measurement helpers ---------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): p95 of 20 runs is the 19th fastest."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def dir_bytes(path: Path) -> int:
    """Apparent size of every file under `path`."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def _rss_bytes(key: str = "VmRSS") -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return str(value)


def time_queries(
    execute: Callable[[str], list[list[Any]]],
    sqls: dict[str, str],
    runs: int,
    warmup: int,
) -> dict[str, dict[str, Any]]:
    """p50/p95 (ms) of `runs` executions of each query after `warmup` untimed ones."""
    out: dict[str, dict[str, Any]] = {}
    for name, sql in sqls.items():
        rows: list[list[Any]] = []
        timings: list[float] = []
        try:
            for _ in range(warmup):
                rows = execute(sql)
            for _ in range(runs):
                t0 = time.perf_counter()
                rows = execute(sql)
                timings.append((time.perf_counter() - t0) * 1000.0)
        except Exception as exc:  # noqa: BLE001 - one failing chart must not hide the others
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:1000], "sql": sql}
            continue
        out[name] = {
            "p50_ms": round(percentile(timings, 50), 3) if timings else None,
            "p95_ms": round(percentile(timings, 95), 3) if timings else None,
            "runs": runs,
            "rows": len(rows),
            "first": [_cell(v) for v in rows[0]] if rows else None,
        }
    return out


def _window_sqls(latest: datetime, window: str, exact: bool, dialect: str | None):
    start, end = window_bounds(latest, window)
    sqls = {}
    for name in QUERIES:
        text = druid_sql(name, start, end)
        sqls[name] = text if dialect is None else translate(text, dialect, exact)
    return start, end, sqls


# --- engines ---------------------------------------------------------------------------------


def parquet_files(parquet: ParquetArg) -> list[str]:
    """One path or several (the capacity run writes one file per generated piece)."""
    items = [parquet] if isinstance(parquet, (str, Path)) else list(parquet)
    if not items:
        raise ValueError("no Parquet file")
    return [str(Path(p).resolve()) for p in items]


def _sql_list(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def _duckdb_load(con, parquet: ParquetArg) -> None:
    files = _sql_list(parquet_files(parquet))
    source = f"read_parquet({files}, union_by_name = true)"
    cols = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    select = []
    for name, typ, *_ in cols:
        ident = f'"{name}"'
        if name == "event_time" and typ.upper() in ("VARCHAR", "STRING"):
            select.append(
                "strptime(event_time, ['%Y-%m-%dT%H:%M:%S.%gZ', '%Y-%m-%dT%H:%M:%SZ'])"
                " AS event_time"
            )
        elif name == "event_time" and "TIME ZONE" in typ.upper():
            select.append("CAST(timezone('UTC', event_time) AS TIMESTAMP) AS event_time")
        elif name in BOOL_COLUMNS:
            select.append(f"CAST({ident} AS VARCHAR) AS {ident}")
        else:
            select.append(ident)
    select.append('"wiki" || \':\' || "title" AS "page"')  # as Druid's transformSpec
    select.append(f'{WIKIDATA_ENTITY} AS "wikidata_entity"')
    con.execute(
        f"CREATE TABLE {TABLE} AS SELECT {', '.join(select)} FROM {source} ORDER BY event_time"
    )
    con.execute("CHECKPOINT")


def time_windows(
    execute, dialect: str, latest: datetime, windows, runs: int, warmup: int, exact: bool
) -> dict[str, Any]:
    """Every query of every window through `execute`, in the engine's dialect."""
    out = {}
    for window in windows:
        start, end, sqls = _window_sqls(latest, window, exact, dialect)
        out[window] = {
            "start": start,
            "end": end,
            "queries": time_queries(execute, sqls, runs, warmup),
        }
    return out


def run_duckdb(
    parquet: ParquetArg,
    session_dir: Path,
    latest: datetime,
    windows: Iterable[str],
    runs: int = RUNS,
    warmup: int = WARMUP,
    exact_distinct: bool = False,
) -> dict[str, Any]:
    """Import `parquet` into a DuckDB file in `session_dir` and time every query per window."""
    import duckdb

    result: dict[str, Any] = {"engine": "duckdb", "version": duckdb.__version__}
    result["rss_after_import_bytes"] = _rss_bytes()
    session_dir.mkdir(parents=True, exist_ok=True)
    db = session_dir / "wikistreams.duckdb"
    con = duckdb.connect(str(db))
    t0 = time.perf_counter()
    _duckdb_load(con, parquet)
    result["load_s"] = round(time.perf_counter() - t0, 3)
    result["rows"] = con.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
    result["storage_bytes"] = db.stat().st_size
    result["dir_bytes"] = dir_bytes(session_dir)
    result["rss_after_load_bytes"] = _rss_bytes()

    def execute(sql: str) -> list[list[Any]]:
        return [list(r) for r in con.execute(sql).fetchall()]

    result["windows"] = time_windows(
        execute, "duckdb", latest, windows, runs, warmup, exact_distinct
    )
    con.close()
    result["peak_rss_bytes"] = _peak_rss_bytes()
    return result


def _unwrap(typ: str) -> str:
    for wrapper in ("LowCardinality(", "Nullable("):
        while typ.startswith(wrapper):
            typ = typ[len(wrapper) : -1]
    return typ


def _chdb_rows(sess, sql: str) -> list[list[Any]]:
    text = sess.query(sql, "JSONCompact")
    raw = text.bytes() if hasattr(text, "bytes") else str(text).encode()
    if not raw.strip():
        return []
    return json.loads(raw)["data"]


def _chdb_load(sess, parquet: ParquetArg) -> None:
    paths = [f.replace("\\", "\\\\").replace("'", "\\'") for f in parquet_files(parquet)]
    cols = _chdb_rows(sess, f"DESCRIBE file('{paths[0]}', Parquet)")
    defs, select = [], []
    for name, typ, *_ in cols:
        base = _unwrap(typ)
        nullable = typ.replace("LowCardinality(", "").startswith("Nullable(")
        ident = f'"{name}"'
        if name == "event_time":
            defs.append("event_time DateTime64(3, 'UTC')")
            if base == "String":
                select.append("parseDateTime64BestEffort(assumeNotNull(event_time), 3, 'UTC')")
            else:
                select.append("toDateTime64(assumeNotNull(event_time), 3, 'UTC')")
            continue
        if name in BOOL_COLUMNS and base != "String":
            base = "String"
            select.append(f"toString({ident})")
        else:
            select.append(ident)
        col = f"Nullable({base})" if nullable else base
        if name in LOW_CARDINALITY and base == "String":
            col = f"LowCardinality({col})"
        defs.append(f"{ident} {col}")
    defs.append('"page" String')  # as Druid's transformSpec computes it at ingestion
    select.append('concat("wiki", \':\', "title")')
    defs.append('"wikidata_entity" Nullable(String)')
    select.append(WIKIDATA_ENTITY)
    sess.query("CREATE DATABASE IF NOT EXISTS wikistreams")
    sess.query(
        f"CREATE TABLE wikistreams.{TABLE} ({', '.join(defs)}) ENGINE = MergeTree "
        "PARTITION BY toYYYYMMDD(event_time) ORDER BY event_time"
    )
    for path in paths:
        sess.query(
            f"INSERT INTO wikistreams.{TABLE} SELECT {', '.join(select)} "
            f"FROM file('{path}', Parquet)"
        )


def run_chdb(
    parquet: ParquetArg,
    session_dir: Path,
    latest: datetime,
    windows: Iterable[str],
    runs: int = RUNS,
    warmup: int = WARMUP,
    exact_distinct: bool = False,
) -> dict[str, Any]:
    """Import `parquet` into a chDB MergeTree table in `session_dir` and time every query."""
    import chdb
    from chdb import session as chs

    result: dict[str, Any] = {"engine": "chdb", "version": getattr(chdb, "__version__", "?")}
    result["rss_after_import_bytes"] = _rss_bytes()
    session_dir.mkdir(parents=True, exist_ok=True)
    sess = chs.Session(str(session_dir))
    result["clickhouse_version"] = _chdb_rows(sess, "SELECT version()")[0][0]
    t0 = time.perf_counter()
    _chdb_load(sess, parquet)
    insert_s = time.perf_counter() - t0
    sess.query(f"OPTIMIZE TABLE wikistreams.{TABLE} FINAL")
    result["load_s"] = round(time.perf_counter() - t0, 3)
    result["insert_s"] = round(insert_s, 3)
    result["rows"] = int(_chdb_rows(sess, f"SELECT count() FROM wikistreams.{TABLE}")[0][0])
    parts = _chdb_rows(
        sess,
        "SELECT sum(bytes_on_disk), count() FROM system.parts "
        f"WHERE database = 'wikistreams' AND table = '{TABLE}' AND active",
    )[0]
    result["storage_bytes"] = int(parts[0])
    result["parts"] = int(parts[1])
    # The whole session: metadata, logs and merged-away parts not yet removed.
    result["dir_bytes"] = dir_bytes(session_dir)
    result["rss_after_load_bytes"] = _rss_bytes()

    def execute(sql: str) -> list[list[Any]]:
        return _chdb_rows(sess, sql)

    result["windows"] = time_windows(execute, "chdb", latest, windows, runs, warmup, exact_distinct)
    sess.close()
    result["peak_rss_bytes"] = _peak_rss_bytes()
    return result


RUNNERS = {"duckdb": run_duckdb, "chdb": run_chdb}


def run_engine_subprocess(
    engine: str,
    parquet: ParquetArg,
    session_dir: Path,
    latest: datetime,
    windows: list[str],
    runs: int = RUNS,
    warmup: int = WARMUP,
    exact_distinct: bool = False,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """`RUNNERS[engine]` in a fresh interpreter, so peak RSS is that engine's alone."""
    session_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(session_dir / engine, ignore_errors=True)  # a fresh import every time
    spec = {
        "engine": engine,
        "parquet": parquet_files(parquet),
        "session_dir": str(session_dir / engine),
        "latest": latest.isoformat(),
        "windows": windows,
        "runs": runs,
        "warmup": warmup,
        "exact_distinct": exact_distinct,
        "out": str(session_dir / f"{engine}.result.json"),
    }
    spec_path = session_dir / f"{engine}.spec.json"
    spec_path.write_text(json.dumps(spec))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", str(spec_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"engine": engine, "error": (proc.stderr or proc.stdout)[-2000:]}
    result = json.loads(Path(spec["out"]).read_text())
    result["wall_s"] = round(wall, 3)
    return result


def _worker(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    result = RUNNERS[spec["engine"]](
        spec["parquet"],
        Path(spec["session_dir"]),
        datetime.fromisoformat(spec["latest"]),
        spec["windows"],
        runs=spec["runs"],
        warmup=spec["warmup"],
        exact_distinct=spec["exact_distinct"],
    )
    Path(spec["out"]).write_text(json.dumps(result))
    return 0


# --- Druid -----------------------------------------------------------------------------------


def _druid_post(http, broker_url: str, sql: str, use_cache: bool, timeout: float) -> list:
    context = {
        "useCache": use_cache,
        "populateCache": use_cache,
        "useResultLevelCache": use_cache,
        "populateResultLevelCache": use_cache,
    }
    resp = http.post(
        broker_url.rstrip("/") + "/druid/v2/sql",
        json={"query": sql, "resultFormat": "array", "context": context},
        timeout=timeout,
    )
    if resp.status_code != 200:
        raise RuntimeError(f"Druid SQL failed ({resp.status_code}): {resp.text[:500]}")
    return resp.json()


def druid_latest(broker_url: str, datasource: str = TABLE, timeout: float = 30.0) -> datetime:
    """The datasource's latest `__time`, as a naive UTC datetime."""
    import requests

    rows = _druid_post(
        requests.Session(),
        broker_url,
        f'SELECT MAX("__time") FROM "druid"."{datasource}"',
        True,
        timeout,
    )
    return parse_time(rows[0][0])


def druid_storage(broker_url: str, datasource: str = TABLE, timeout: float = 30.0) -> dict:
    """Published, not overshadowed segments of the datasource (sys.segments), and the rows
    still only in real-time segments (not yet published, size 0)."""
    import requests

    sql = (
        'SELECT "is_published", COUNT(*), SUM("size"), SUM("num_rows") FROM "sys"."segments" '
        f'WHERE "datasource" = \'{datasource}\' AND "is_overshadowed" = 0 '
        'GROUP BY "is_published"'
    )
    rows = _druid_post(requests.Session(), broker_url, sql, True, timeout)
    by = {int(r[0]): r[1:] for r in rows}
    segments, size, num_rows = by.get(1, (0, 0, 0))
    return {
        "segments": segments,
        "storage_bytes": size or None,
        "rows": num_rows,
        "realtime_rows": by.get(0, (0, 0, 0))[2],
    }


def run_druid(
    broker_url: str,
    datasource: str,
    window: str,
    *,
    runs: int = RUNS,
    warmup: int = WARMUP,
    latest: datetime | None = None,
    use_cache: bool = False,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Time `QUERIES` on a Druid broker (POST {broker}/druid/v2/sql) for one window.

    The window ends at `latest` (default: the datasource's MAX(__time)); pass the Parquet file's
    latest time to compare with the embedded engines over the same rows. Druid's query and
    result caches are off unless `use_cache`.
    """
    import requests

    http = requests.Session()
    if latest is None:
        latest = druid_latest(broker_url, datasource, timeout)
    start, end = window_bounds(latest, window)
    sqls = {name: druid_sql(name, start, end, datasource) for name in QUERIES}

    def execute(sql: str) -> list[list[Any]]:
        return _druid_post(http, broker_url, sql, use_cache, timeout)

    return {
        "engine": "druid",
        "broker": broker_url,
        "datasource": datasource,
        "window": window,
        "start": start,
        "end": end,
        "latest": latest.isoformat(),
        "queries": time_queries(execute, sqls, runs, warmup),
    }


# --- data ------------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime:
    """A naive UTC datetime from an ISO string (`Z` or offset) or a datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def parquet_summary(parquet: ParquetArg) -> dict[str, Any]:
    """Rows, time range and size of the Parquet file(s)."""
    import duckdb

    files = parquet_files(parquet)
    con = duckdb.connect()
    rows, first, last = con.execute(
        "SELECT COUNT(*), MIN(event_time), MAX(event_time) "
        f"FROM read_parquet({_sql_list(files)}, union_by_name = true)"
    ).fetchone()
    con.close()
    return {
        "path": files[0] if len(files) == 1 else files,
        "files": len(files),
        "rows": rows,
        "first": parse_time(first).isoformat(),
        "latest": parse_time(last).isoformat(),
        "bytes": sum(os.path.getsize(f) for f in files),
    }


def write_sample_parquet(path: str | Path, end: datetime | None = None, span_s: float = 3000.0):
    """A small Parquet of `EnrichedEvent` rows from the recordings (tests/data/recorded).

    Stands in for `benchmarks/capacity/generate.py` in tests. Events are shuffled (seeded) and
    spread evenly over `span_s` seconds ending at `end`, so every window holds all of them;
    Wikidata entity edits get made-up labels. Returns the number of rows.
    """
    import random
    import threading

    import duckdb

    repo = Path(__file__).resolve().parents[2]
    from wikistreams.producer.decode import decode_event
    from wikistreams.producer.events import EnrichedEvent, enriched_record, format_event_time
    from wikistreams.producer.events import WikidataLabels
    from wikistreams.producer.source import FileSource
    from wikistreams.producer.wikidata import entity_id_for

    records = []
    root = repo / "tests" / "data" / "recorded" / "recentchange"
    for file in sorted(p for p in root.rglob("*") if p.suffix in {".jsonl", ".json", ".sse"}):
        for raw in FileSource(file, "fast", None, threading.Event()):
            try:
                change = decode_event(raw.data)
            except Exception:  # noqa: BLE001 - a recording's odd frame is not a sample row
                continue
            if change.is_canary:
                continue
            qid = entity_id_for(change.wiki, change.namespace, change.title)
            labels, status = None, "not_applicable"
            if qid:
                n = int(qid[1:]) if qid[1:].isdigit() else 0
                labels = WikidataLabels(
                    label_en=f"entity {qid}", label_ko=f"항목 {qid}" if n % 3 == 0 else None
                )
                status = "enriched"
            records.append(enriched_record(change, qid, labels, status))
    random.Random(1).shuffle(records)
    end = end or datetime.now(timezone.utc).replace(tzinfo=None)
    step = span_s / max(1, len(records))
    for i, rec in enumerate(records):
        dt = end - timedelta(seconds=span_s) + timedelta(seconds=step * (i + 1))
        rec["event_time"] = format_event_time(dt.replace(tzinfo=timezone.utc))
    types = {}
    for name, info in EnrichedEvent.model_fields.items():
        ann = str(info.annotation)
        types[name] = "BOOLEAN" if "bool" in ann else "BIGINT" if "int" in ann else "VARCHAR"
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp) / "sample.jsonl"
        with jsonl.open("w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        con = duckdb.connect()
        cols = ", ".join(f"'{k}': '{v}'" for k, v in types.items())
        target = str(path).replace("'", "''")
        con.execute(
            f"COPY (SELECT * FROM read_json('{jsonl}', format = 'newline_delimited', "
            f"columns = {{{cols}}})) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
        )
        con.close()
    return len(records)


# --- the whole evaluation --------------------------------------------------------------------


def evaluate(
    parquet: ParquetArg,
    engines: Iterable[str] = ENGINES,
    windows: Iterable[str] = DEFAULT_WINDOWS,
    runs: int = RUNS,
    warmup: int = WARMUP,
    druid: str | None = None,
    datasource: str = TABLE,
    exact_distinct: bool = False,
    workdir: str | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """Every engine over the same file and windows; Druid too when `druid` is a broker URL."""
    windows = list(windows)
    data = parquet_summary(parquet)
    latest = parse_time(data["latest"])
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="storage_eval_"))
    results: dict[str, Any] = {
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "parquet": data,
        "windows": windows,
        "runs": runs,
        "warmup": warmup,
        "count_distinct": "exact" if exact_distinct else "approximate (as Druid's default)",
        "engines": {},
    }
    try:
        for engine in engines:
            results["engines"][engine] = run_engine_subprocess(
                engine, parquet, base, latest, windows, runs, warmup, exact_distinct
            )
    finally:
        if not keep and not workdir:
            shutil.rmtree(base, ignore_errors=True)
    if druid:
        entry: dict[str, Any] = {"engine": "druid", "broker": druid, "datasource": datasource}
        try:
            entry.update(druid_storage(druid, datasource))
        except Exception as exc:  # noqa: BLE001 - reported, the timings may still work
            entry["storage_error"] = str(exc)[:500]
        entry["windows"] = {}
        try:
            for window in windows:
                run = run_druid(druid, datasource, window, runs=runs, warmup=warmup, latest=latest)
                entry["windows"][window] = {
                    "start": run["start"],
                    "end": run["end"],
                    "queries": run["queries"],
                }
        except Exception as exc:  # noqa: BLE001
            entry["error"] = str(exc)[:2000]
        results["engines"]["druid"] = entry
    return results


# --- report ----------------------------------------------------------------------------------

ENGINE_NAMES = {"duckdb": "DuckDB", "chdb": "ClickHouse (chDB)", "druid": "Druid"}


def _mb(value: Any) -> str:
    return "–" if value is None else f"{value / 1e6:,.1f} MB"


def _ms(q: dict | None) -> str:
    if q and "error" in q:
        return "error"
    if not q or q.get("p50_ms") is None:
        return "–"
    return f"{q['p50_ms']:,.1f} / {q['p95_ms']:,.1f}"


def render_markdown(results: dict[str, Any]) -> str:
    """The storage table and one latency table per window, for docs/evaluation.md."""
    data = results["parquet"]
    engines = results["engines"]
    lines = [
        f"Measured {results.get('measured_at', '?')} on {results['machine']['cpus']} cores: "
        f"{data['rows']:,} events ({data['first'][:19]} → {data['latest'][:19]}), Parquet "
        f"{_mb(data['bytes'])}; {results['runs']} timed runs per query after "
        f"{results['warmup']} warm-up; COUNT(DISTINCT) {results['count_distinct']}.",
        "",
        "| engine | version | rows | load | on-disk | bytes/event | vs Parquet | peak RSS (idle) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, eng in engines.items():
        name = ENGINE_NAMES.get(key, key)
        if "error" in eng and "windows" not in eng:
            lines.append(f"| {name} | error: {eng['error'].splitlines()[-1][:80]} ||||||| ")
            continue
        size = eng.get("storage_bytes")
        rows = eng.get("rows")
        version = eng.get("clickhouse_version") or eng.get("version") or "–"
        load = f"{eng['load_s']:,.1f} s" if eng.get("load_s") is not None else "Kafka supervisor"
        per_event = f"{size / rows:,.0f}" if size and rows else "–"
        ratio = f"{size / data['bytes']:.2f}×" if size and data["bytes"] else "–"
        peak = _mb(eng.get("peak_rss_bytes")) if eng.get("peak_rss_bytes") else "–"
        if eng.get("peak_rss_bytes") and eng.get("rss_after_import_bytes"):
            peak += f" ({_mb(eng['rss_after_import_bytes'])} idle)"
        rows_s = f"{rows:,}" if rows is not None else "–"
        if eng.get("realtime_rows"):
            rows_s += f" (+{eng['realtime_rows']:,} real-time)"
        lines.append(
            f"| {name} | {version} | {rows_s} | {load} | {_mb(size) if size else '–'} | "
            f"{per_event} | {ratio} | {peak} |"
        )
    keys = list(engines)
    for window in results["windows"]:
        lines += [
            "",
            f"Chart queries, window {window} (ms, p50 / p95):",
            "",
            "| chart | " + " | ".join(ENGINE_NAMES.get(k, k) for k in keys) + " |",
            "|---|" + "---:|" * len(keys),
        ]
        for name in QUERIES:
            cells = []
            for k in keys:
                q = engines[k].get("windows", {}).get(window, {}).get("queries", {}).get(name)
                cells.append(_ms(q))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        counts = []
        for k in keys:
            q = engines[k].get("windows", {}).get(window, {}).get("queries", {})
            first = (q.get("Events in window") or {}).get("first")
            if first:
                counts.append(f"{ENGINE_NAMES.get(k, k)} {first[0]:,}")
        if counts:
            lines += ["", "Events in the window: " + ", ".join(counts) + "."]
        for k in keys:
            for name, q in engines[k].get("windows", {}).get(window, {}).get("queries", {}).items():
                if "error" in q:
                    err = q["error"].splitlines()[0][:200]
                    lines += ["", f"- {ENGINE_NAMES.get(k, k)}, {name}: {err}"]
    return "\n".join(lines) + "\n"


def fill_doc(doc: Path, markdown: str) -> bool:
    """Replace the block between the storage-table markers in `doc`; False if none."""
    text = doc.read_text(encoding="utf-8")
    start = text.find(DOC_START)
    end = text.find(DOC_END, start + 1)
    if start < 0 or end < 0:
        return False
    new = text[: start + len(DOC_START)] + "\n" + markdown + text[end:]
    doc.write_text(new, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--parquet", nargs="+", help="data file(s) (benchmarks/capacity/generate.py)"
    )
    parser.add_argument("--engines", default=",".join(ENGINES), help="duckdb,chdb")
    parser.add_argument("--windows", default=",".join(DEFAULT_WINDOWS), help=",".join(WINDOWS))
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--druid", help="broker URL, e.g. http://127.0.0.1:8082")
    parser.add_argument("--datasource", default=TABLE)
    parser.add_argument("--exact-distinct", action="store_true")
    parser.add_argument("--workdir", help="session directory (kept); default: a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temp session directory")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--markdown", help="write render_markdown() here")
    parser.add_argument("--doc", help="fill the storage-table block of this file")
    parser.add_argument("--from-json", help="render an earlier --json instead of measuring")
    parser.add_argument("--write-sample", help="write a Parquet from the recordings and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        return _worker(args.worker)
    if args.write_sample:
        print(f"{write_sample_parquet(args.write_sample)} rows -> {args.write_sample}")
        return 0
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        if "engines" not in results and "storage" in results:  # `python -m benchmarks.capacity`
            results = results["storage"]
    elif args.parquet:
        results = evaluate(
            args.parquet,
            engines=[e for e in args.engines.split(",") if e],
            windows=[w for w in args.windows.split(",") if w],
            runs=args.runs,
            warmup=args.warmup,
            druid=args.druid,
            datasource=args.datasource,
            exact_distinct=args.exact_distinct,
            workdir=args.workdir,
            keep=args.keep,
        )
    else:
        parser.error("--parquet (or --from-json / --write-sample) is required")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    markdown = render_markdown(results)
    if args.markdown:
        Path(args.markdown).write_text(markdown, encoding="utf-8")
    if args.doc and not fill_doc(Path(args.doc), markdown):
        print(f"no {DOC_START} … {DOC_END} block in {args.doc}", file=sys.stderr)
    print(markdown)
    failed = [k for k, e in results["engines"].items() if "error" in e]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
