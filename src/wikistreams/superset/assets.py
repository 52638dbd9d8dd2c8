"""The dashboard bundle as files: render it for an import, normalise an export back into git.

Pure code (standard library and PyYAML, no Superset import), so everything that decides what
reaches Superset or git is unit-tested in the project's own virtualenv; ``app.py`` hands the
result to Superset's commands.

Why a normalised folder instead of Superset's zip: a raw export names files after database ids,
embeds instance-specific ids and timestamps, and stores query contexts as one long JSON line.
Normalising makes two exports of the same dashboard byte-identical, so a diff shows only what a
person changed.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import IO, Any

import yaml

BUNDLE_ROOT = "wikimedia_live_trends"
# The Druid broker differs between a native run (loopback) and compose (service name).
TEMPLATE_DEFAULTS = {"DRUID_BROKER_HOST": "127.0.0.1", "DRUID_BROKER_PORT": "8082"}
DRUID_URI_TEMPLATE = "druid://${DRUID_BROKER_HOST}:${DRUID_BROKER_PORT}/druid/v2/sql/"
DRUID_URI_PATTERN = re.compile(r"^druid://[^/:]+:\d+/druid/v2/sql/?$")
# Keys of chart params that only describe the exporting instance (ids, owners).
VOLATILE_PARAMS = ("datasource", "slice_id", "dashboards", "url_params")
# What a chart's saved query context points at in git; Superset's importer replaces it with the
# dataset id of the instance it imports into.
UNBOUND_DATASOURCE = {"id": 0, "type": "table"}
# The metadata type ImportAssetsCommand accepts. git keeps the export's own type ("Dashboard"),
# so the zip from ``build`` also imports through Superset's UI.
ASSETS_TYPE = "assets"


class BundleError(Exception):
    """The folder or export is not a dashboard bundle this tool can handle."""


def dump_yaml(obj: Any) -> str:
    """Stable YAML: sorted keys, unicode kept (Korean labels stay readable), no line folding."""
    return yaml.safe_dump(obj, sort_keys=True, allow_unicode=True, width=1000)


def render(text: str, env: Mapping[str, str] | None = None) -> str:
    """Fill ``${VAR}`` placeholders from the environment, falling back to native defaults."""
    source = os.environ if env is None else env
    values = {**TEMPLATE_DEFAULTS, **{k: v for k, v in source.items() if v}}
    return Template(text).safe_substitute(values)


def load_bundle(bundle_dir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
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
            text = dump_yaml(config)
        contents[rel] = text
    if "metadata.yaml" not in contents:
        raise BundleError(f"{bundle_dir} has no metadata.yaml: not an export bundle")
    return contents


def assets_contents(bundle_dir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The bundle as ``ImportAssetsCommand`` takes it: every file, metadata type ``assets``."""
    contents = load_bundle(bundle_dir, env)
    metadata = yaml.safe_load(contents["metadata.yaml"])
    metadata["type"] = ASSETS_TYPE
    contents["metadata.yaml"] = dump_yaml(metadata)
    return contents


def build_zip(bundle_dir: Path, out: Path, env: Mapping[str, str] | None = None) -> Path:
    """Write the zip Superset's UI / ``superset import-dashboards -p`` accepts."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, text in load_bundle(bundle_dir, env).items():
            zf.writestr(f"{BUNDLE_ROOT}/{rel}", text)
    return out


def bundle_dashboard_uuid(bundle_dir: Path) -> str:
    """The UUID of the one dashboard DIR describes: what ``export`` asks Superset for."""
    paths = sorted((bundle_dir / "dashboards").glob("*.yaml"))
    if len(paths) != 1:
        raise BundleError(f"expected exactly one dashboard in {bundle_dir / 'dashboards'}")
    return str(yaml.safe_load(paths[0].read_text(encoding="utf-8"))["uuid"])


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
        query_context["datasource"] = dict(UNBOUND_DATASOURCE)
        for query in query_context.get("queries") or []:
            if "datasource" in query:
                query["datasource"] = dict(UNBOUND_DATASOURCE)
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
            old_id = int(value["id"])
            value["id"] = id_map.get(old_id, old_id)
    metadata.get("global_chart_configuration", {}).pop("chartsInScope", None)
    metadata["timed_refresh_immune_slices"] = sorted(
        id_map.get(i, i) for i in metadata.get("timed_refresh_immune_slices", [])
    )
    return config


def _known_chart_ids(bundle_dir: Path) -> dict[str, int]:
    ids: dict[str, int] = {}
    for path in (bundle_dir / "dashboards").glob("*.yaml"):
        position = yaml.safe_load(path.read_text(encoding="utf-8")).get("position") or {}
        for node in position.values():
            if isinstance(node, dict) and node.get("type") == "CHART":
                ids[str(node["meta"]["uuid"])] = int(node["meta"]["chartId"])
    return ids


def _normalised_files(files: dict[str, Any], bundle_dir: Path) -> dict[str, Any]:
    """``{path in git: config}`` for the YAML files of one export (paths below its root)."""
    known_ids = _known_chart_ids(bundle_dir) if bundle_dir.exists() else {}
    old_metadata = bundle_dir / "metadata.yaml"
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
    return written


def normalise(export_zip: Path | bytes, bundle_dir: Path) -> list[str]:
    """Rewrite DIR from a Superset export zip; return the relative paths written."""
    source: Path | IO[bytes] = (
        io.BytesIO(export_zip) if isinstance(export_zip, bytes) else export_zip
    )
    files: dict[str, Any] = {}
    with zipfile.ZipFile(source) as zf:
        for name in zf.namelist():
            if name.endswith(".yaml"):
                files[name.split("/", 1)[1]] = yaml.safe_load(zf.read(name))
    if "metadata.yaml" not in files:
        raise BundleError("the export has no metadata.yaml: not a Superset export")
    written = _normalised_files(files, bundle_dir)
    for old in bundle_dir.rglob("*.yaml") if bundle_dir.exists() else []:
        if old.relative_to(bundle_dir).as_posix() not in written:
            old.unlink()
    for rel, config in sorted(written.items()):
        path = bundle_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(config), encoding="utf-8")
    return sorted(written)
