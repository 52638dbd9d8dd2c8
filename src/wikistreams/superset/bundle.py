"""Dashboard-as-code for WikiStreams: the export bundle lives unzipped as reviewable YAML.

Sub-commands (run with a Python that has Superset installed for ``import``; ``build`` and
``normalise`` need only PyYAML):

    bundle.py build DIR OUT.zip          render templates and zip for Superset's UI / CLI
    bundle.py import DIR [--username U]  overwrite-import by UUID (app context)
    bundle.py normalise EXPORT.zip DIR   turn a Superset export back into DIR
    bundle.py export DIR [--zip OUT]     export the dashboard DIR describes, normalised

Why not just ``superset import-dashboards``: that command overwrites only the dashboard; the
database, datasets and charts it finds by UUID are left as they were, so an edited chart in git
would never reach a running Superset. ``import`` runs Superset's own v1 import commands for each
asset type with ``overwrite=True``: still keyed by UUID, so re-imports never duplicate.

Why ``normalise``: a raw export names files after database ids, embeds instance-specific ids and
timestamps and stores query contexts as one long JSON line. Normalising makes two exports of the
same dashboard byte-identical, so a diff shows only what a person changed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
import zipfile
from pathlib import Path
from string import Template
from typing import Any

import yaml

BUNDLE_ROOT = "wikimedia_live_trends"
# The Druid broker differs between a native run (loopback) and compose (service name).
TEMPLATE_DEFAULTS = {"DRUID_BROKER_HOST": "127.0.0.1", "DRUID_BROKER_PORT": "8082"}
DRUID_URI_TEMPLATE = "druid://${DRUID_BROKER_HOST}:${DRUID_BROKER_PORT}/druid/v2/sql/"
DRUID_URI_PATTERN = re.compile(r"^druid://[^/:]+:\d+/druid/v2/sql/?$")
# Keys of chart params that only describe the exporting instance (ids, owners).
VOLATILE_PARAMS = ("datasource", "slice_id", "dashboards", "url_params")
COMMAND_TYPES = {  # metadata.yaml "type" each Superset importer insists on
    "databases": "Database",
    "datasets": "SqlaTable",
    "charts": "Slice",
    "dashboards": "Dashboard",
}


def _dump_yaml(obj: Any) -> str:
    """Stable YAML: sorted keys, unicode kept (Korean labels stay readable), no line folding."""
    return yaml.safe_dump(obj, sort_keys=True, allow_unicode=True, width=1000)


def render(text: str, env: dict[str, str] | None = None) -> str:
    """Fill ``${VAR}`` placeholders from the environment, falling back to native defaults."""
    values = {**TEMPLATE_DEFAULTS, **{k: v for k, v in (env or os.environ).items() if v}}
    return Template(text).safe_substitute(values)


def load_bundle(bundle_dir: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Read DIR into ``{relative path: rendered YAML text}`` as Superset's importers expect it.

    Query contexts are kept as YAML mappings in git for readability; Superset stores them as a
    JSON string, so they are serialised here.
    """
    contents: dict[str, str] = {}
    for path in sorted(bundle_dir.rglob("*.yaml")):
        rel = path.relative_to(bundle_dir).as_posix()
        text = render(path.read_text(encoding="utf-8"), env)
        if rel.startswith("charts/"):
            config = yaml.safe_load(text)
            if isinstance(config.get("query_context"), dict):
                config["query_context"] = json.dumps(config["query_context"], sort_keys=True)
            text = _dump_yaml(config)
        contents[rel] = text
    if "metadata.yaml" not in contents:
        raise SystemExit(f"{bundle_dir} has no metadata.yaml: not an export bundle")
    return contents


def build_zip(bundle_dir: Path, out: Path, env: dict[str, str] | None = None) -> Path:
    """Write the zip Superset's UI / ``superset import-dashboards -p`` accepts."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, text in load_bundle(bundle_dir, env).items():
            zf.writestr(f"{BUNDLE_ROOT}/{rel}", text)
    return out


def _contents_for(contents: dict[str, str], kind: str) -> dict[str, str]:
    """The bundle as one asset type's importer wants it: same files, its own metadata type."""
    metadata = yaml.safe_load(contents["metadata.yaml"])
    metadata["type"] = COMMAND_TYPES[kind]
    selected = {"metadata.yaml": _dump_yaml(metadata)}
    wanted = {
        "databases": ("databases/",),
        "datasets": ("databases/", "datasets/"),
        "charts": ("databases/", "datasets/", "charts/"),
        "dashboards": ("databases/", "datasets/", "charts/", "dashboards/"),
    }[kind]
    selected.update({k: v for k, v in contents.items() if k.startswith(wanted)})
    return selected


def import_bundle(bundle_dir: Path, username: str) -> dict[str, Any]:
    """Import every asset with overwrite=True inside a Superset app context; return a summary."""
    # Superset is imported lazily: build/normalise and the unit tests run without it.
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from superset import db, security_manager
        from superset.commands.chart.importers.v1 import ImportChartsCommand
        from superset.commands.dashboard.importers.v1 import ImportDashboardsCommand
        from superset.commands.database.importers.v1 import ImportDatabasesCommand
        from superset.commands.dataset.importers.v1 import ImportDatasetsCommand
        from superset.connectors.sqla.models import SqlaTable
        from superset.models.dashboard import Dashboard
        from superset.models.slice import Slice
        from superset.utils.core import override_user

        user = security_manager.find_user(username=username)
        if user is None:
            raise SystemExit(f"user {username!r} does not exist: run init_superset.sh first")
        contents = load_bundle(bundle_dir)
        started = time.monotonic()
        with override_user(user):
            for kind, command in (
                ("databases", ImportDatabasesCommand),
                ("datasets", ImportDatasetsCommand),
                ("charts", ImportChartsCommand),
                ("dashboards", ImportDashboardsCommand),
            ):
                command(_contents_for(contents, kind), overwrite=True).run()
            rebound = rebind_query_contexts(db, Slice, bundle_chart_uuids(contents))
        elapsed = time.monotonic() - started
        summary = {
            "import_seconds": round(elapsed, 3),
            "dashboards": db.session.query(Dashboard).count(),
            "charts": db.session.query(Slice).count(),
            "datasets": db.session.query(SqlaTable).count(),
            "query_contexts_rebound": rebound,
        }
        print(json.dumps(summary))
        return summary


def bundle_chart_uuids(contents: dict[str, str]) -> set[str]:
    return {
        str(yaml.safe_load(text)["uuid"])
        for rel, text in contents.items()
        if rel.startswith("charts/")
    }


def rebind_query_contexts(db: Any, slice_model: Any, uuids: set[str]) -> int:
    """Point each imported chart's saved query context at the dataset id of *this* instance.

    Superset's importer rewrites a chart's datasource id but not the copy inside
    ``query_context``, which ``GET /api/v1/chart/<id>/data`` (and reports) execute; without this
    the chart would query whatever dataset happens to have the exporting instance's id.
    """
    changed = 0
    for chart in db.session.query(slice_model).all():
        if str(chart.uuid) not in uuids or not chart.query_context:
            continue
        context = json.loads(chart.query_context)
        wanted = {"id": chart.datasource_id, "type": chart.datasource_type}
        form_data = context.get("form_data") or {}
        if context.get("datasource") == wanted and form_data.get("slice_id") == chart.id:
            continue
        context["datasource"] = wanted
        if form_data:
            form_data["datasource"] = f"{chart.datasource_id}__{chart.datasource_type}"
            form_data["slice_id"] = chart.id
        chart.query_context = json.dumps(context)
        changed += 1
    db.session.commit()
    return changed


def bundle_dashboard_uuid(bundle_dir: Path) -> str:
    paths = sorted((bundle_dir / "dashboards").glob("*.yaml"))
    if len(paths) != 1:
        raise SystemExit(f"expected exactly one dashboard in {bundle_dir / 'dashboards'}")
    return str(yaml.safe_load(paths[0].read_text(encoding="utf-8"))["uuid"])


def export_bundle(bundle_dir: Path, username: str, zip_out: Path | None = None) -> list[str]:
    """Export the dashboard whose UUID DIR holds (with its charts, dataset, database).

    Runs Superset's own ExportDashboardsCommand in an app context, so no server, password or
    browser session is needed; only this dashboard is exported, never others on the instance.
    """
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from flask import g

        from superset import db, security_manager
        from superset.commands.dashboard.export import ExportDashboardsCommand
        from superset.models.dashboard import Dashboard

        g.user = security_manager.find_user(username=username)
        uuid = bundle_dashboard_uuid(bundle_dir)
        dashboard = next(
            (d for d in db.session.query(Dashboard).all() if str(d.uuid) == uuid), None
        )
        if dashboard is None:
            raise SystemExit(f"dashboard {uuid} is not in this Superset: import it first")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for file_name, content in ExportDashboardsCommand([dashboard.id]).run():
                zf.writestr(f"{BUNDLE_ROOT}_export/{file_name}", content())
    if zip_out:
        zip_out.write_bytes(buffer.getvalue())
    return normalise(buffer.getvalue(), bundle_dir)


# --------------------------------------------------------------------------- normalise (export)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "unnamed"


def _normalise_chart(config: dict[str, Any]) -> dict[str, Any]:
    params = config.get("params") or {}
    for key in VOLATILE_PARAMS:
        params.pop(key, None)
    query_context = config.get("query_context")
    if isinstance(query_context, str) and query_context:
        query_context = json.loads(query_context)
    if isinstance(query_context, dict):
        # Instance-specific ids: import_bundle() rebinds them on the target instance.
        query_context["datasource"] = {"id": 0, "type": "table"}
        form_data = query_context.get("form_data") or {}
        for key in VOLATILE_PARAMS:
            form_data.pop(key, None)
        config["query_context"] = query_context
    return config


def _normalise_dashboard(config: dict[str, Any], known_ids: dict[str, int]) -> dict[str, Any]:
    """Replace instance chart ids with the small stable ids already used in git."""
    position = config.get("position") or {}
    charts = [v for v in position.values() if isinstance(v, dict) and v.get("type") == "CHART"]
    next_id = max(known_ids.values(), default=0) + 1
    id_map: dict[int, int] = {}
    for node in sorted(charts, key=lambda n: str(n["meta"].get("uuid"))):
        uuid = str(node["meta"].get("uuid"))
        if uuid not in known_ids:
            known_ids[uuid] = next_id
            next_id += 1
        id_map[node["meta"]["chartId"]] = known_ids[uuid]
        node["meta"]["chartId"] = known_ids[uuid]
    metadata = config.get("metadata") or {}
    for native_filter in metadata.get("native_filter_configuration", []):
        native_filter.pop("chartsInScope", None)
        native_filter.pop("tabsInScope", None)
        scope = native_filter.get("scope") or {}
        if scope.get("excluded"):
            scope["excluded"] = sorted(id_map.get(i, i) for i in scope["excluded"])
    metadata["chart_configuration"] = {
        str(id_map.get(int(k), k)): v
        for k, v in (metadata.get("chart_configuration") or {}).items()
        if str(k).isdigit()
    }
    for value in metadata["chart_configuration"].values():
        if isinstance(value, dict) and "id" in value:
            value["id"] = int(id_map.get(value["id"], value["id"]))
    metadata.get("global_chart_configuration", {}).pop("chartsInScope", None)
    metadata["timed_refresh_immune_slices"] = sorted(
        id_map.get(i, i) for i in metadata.get("timed_refresh_immune_slices", [])
    )
    return config


def _known_chart_ids(bundle_dir: Path) -> dict[str, int]:
    ids: dict[str, int] = {}
    for path in (bundle_dir / "dashboards").glob("*.yaml"):
        for node in (
            yaml.safe_load(path.read_text(encoding="utf-8")).get("position") or {}
        ).values():
            if isinstance(node, dict) and node.get("type") == "CHART":
                ids[str(node["meta"]["uuid"])] = int(node["meta"]["chartId"])
    return ids


def normalise(export_zip: Path | bytes, bundle_dir: Path) -> list[str]:
    """Rewrite DIR from a Superset export zip; return the relative paths written."""
    source = io.BytesIO(export_zip) if isinstance(export_zip, bytes) else export_zip
    known_ids = _known_chart_ids(bundle_dir) if bundle_dir.exists() else {}
    old_metadata = bundle_dir / "metadata.yaml"
    files: dict[str, Any] = {}
    with zipfile.ZipFile(source) as zf:
        for name in zf.namelist():
            if not name.endswith(".yaml"):
                continue
            rel = name.split("/", 1)[1]
            files[rel] = yaml.safe_load(zf.read(name))
    written: dict[str, Any] = {}
    for rel, config in files.items():
        kind = rel.split("/", 1)[0]
        if rel == "metadata.yaml":
            # The export timestamp changes every time; keep the committed one when it exists.
            if old_metadata.exists():
                config = yaml.safe_load(old_metadata.read_text(encoding="utf-8"))
            written[rel] = config
        elif kind == "databases":
            if DRUID_URI_PATTERN.match(config.get("sqlalchemy_uri", "")):
                config["sqlalchemy_uri"] = DRUID_URI_TEMPLATE
            written[f"databases/{_slug(config['database_name'])}.yaml"] = config
        elif kind == "datasets":
            config["columns"] = sorted(config.get("columns", []), key=lambda c: c["column_name"])
            config["metrics"] = sorted(config.get("metrics", []), key=lambda m: m["metric_name"])
            db_dir = rel.split("/")[1]
            written[f"datasets/{db_dir}/{_slug(config['table_name'])}.yaml"] = config
        elif kind == "charts":
            written[f"charts/{_slug(config['slice_name'])}.yaml"] = _normalise_chart(config)
        elif kind == "dashboards":
            written[f"dashboards/{_slug(config['dashboard_title'])}.yaml"] = _normalise_dashboard(
                config, known_ids
            )
    for old in bundle_dir.rglob("*.yaml") if bundle_dir.exists() else []:
        if old.relative_to(bundle_dir).as_posix() not in written:
            old.unlink()
    for rel, config in sorted(written.items()):
        path = bundle_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump_yaml(config), encoding="utf-8")
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="render DIR into an importable zip")
    p_build.add_argument("bundle_dir", type=Path)
    p_build.add_argument("out", type=Path)
    p_import = sub.add_parser("import", help="overwrite-import DIR into Superset (by UUID)")
    p_import.add_argument("bundle_dir", type=Path)
    p_import.add_argument("--username", default=os.environ.get("SUPERSET_ADMIN_USER", "admin"))
    p_norm = sub.add_parser("normalise", help="unzip a Superset export into DIR, normalised")
    p_norm.add_argument("export_zip", type=Path)
    p_norm.add_argument("bundle_dir", type=Path)
    p_export = sub.add_parser("export", help="export the dashboard of DIR from Superset into DIR")
    p_export.add_argument("bundle_dir", type=Path)
    p_export.add_argument("--username", default=os.environ.get("SUPERSET_ADMIN_USER", "admin"))
    p_export.add_argument("--zip", type=Path, default=None, help="also keep the raw export zip")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        print(build_zip(args.bundle_dir, args.out))
    elif args.cmd == "import":
        import_bundle(args.bundle_dir, args.username)
    elif args.cmd == "export":
        for rel in export_bundle(args.bundle_dir, args.username, args.zip):
            print(rel)
    else:
        for rel in normalise(args.export_zip, args.bundle_dir):
            print(rel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
