"""Static checks of the observability files: Grafana dashboards and provisioning, the compose
fragment, the Grafana secrets gate and the version pins. No server needed; the integration test
(tests/integration/test_logs_dashboards.py) proves the queries themselves return data.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import pinned_versions
import yaml

from wikistreams.grafana import provisioning as gp
from tests.ops_support import ROOT, VICTORIA_LOGS, provisioned_queries

GRAFANA = ROOT / "grafana"
PROVISIONING = GRAFANA / "provisioning"
COMPOSE = ROOT / "compose" / "observability.yml"


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


DASHBOARDS = {p.name: json.loads(p.read_text()) for p in sorted(GRAFANA.glob("dashboards/*.json"))}
DATASOURCE_UIDS = {
    ds["uid"]
    for path in PROVISIONING.glob("datasources/*.yaml")
    for ds in _yaml(path)["datasources"]
}
RULES = _yaml(PROVISIONING / "alerting" / "rules.yaml")


def test_generated_files_are_up_to_date():
    stale = [
        str(path.relative_to(ROOT))
        for path, text in gp.rendered_files(ROOT).items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"run `python -m wikistreams.grafana.provisioning`; stale: {stale}"


def test_four_dashboards_with_stable_unique_uids_and_titles():
    assert len(DASHBOARDS) == 4
    uids = [d["uid"] for d in DASHBOARDS.values()]
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == 4 and len(set(titles)) == 4
    assert set(titles) == {
        "Error Monitor",
        "Producer Performance",
        "Druid Monitor",
        "Resources Monitor",
    }
    for name, dashboard in DASHBOARDS.items():
        assert name == f"{dashboard['uid']}.json", "file name is the uid, so links stay stable"
        assert len(dashboard["uid"]) <= 40  # Grafana's limit


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_a_query_on_a_provisioned_datasource(name):
    dashboard = DASHBOARDS[name]
    ids = [p["id"] for p in dashboard["panels"]]
    assert ids and len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["type"] in {"timeseries", "logs", "stat"}
        assert panel["datasource"]["uid"] in DATASOURCE_UIDS
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in DATASOURCE_UIDS
            assert target["expr"].strip(), panel["title"]
            assert target["queryType"] in {"statsRange", "instant"}
            if panel["type"] == "logs":
                assert target["queryType"] == "instant"
            else:
                assert "| stats " in target["expr"], "a graph needs a stats pipe"
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0


def test_panels_do_not_overlap():
    for dashboard in DASHBOARDS.values():
        cells = set()
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            mine = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & mine, f"{dashboard['uid']}: {panel['title']} overlaps"
            cells |= mine


def test_queries_use_only_the_two_labels_in_stream_filters():
    for query in provisioned_queries():
        for selector in re.findall(r"\{([^}]*)\}", query.expr.split("|")[0]):
            labels = {part.split("=")[0].rstrip("!~") for part in selector.split(",")}
            assert labels <= {"service", "level"}, query.where


def test_dashboard_provider_serves_the_dashboard_directory_in_one_folder():
    providers = _yaml(PROVISIONING / "dashboards" / "dashboards.yaml")["providers"]
    assert len(providers) == 1
    provider = providers[0]
    assert provider["type"] == "file"
    assert provider["folder"] == gp.FOLDER_TITLE and provider["folderUid"] == gp.FOLDER_UID
    grafana = _yaml(COMPOSE)["services"]["grafana"]
    assert f"../grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]


def test_datasource_url_comes_from_the_environment():
    (datasource,) = _yaml(PROVISIONING / "datasources" / "victorialogs.yaml")["datasources"]
    assert datasource["type"] == gp.DATASOURCE["type"]
    assert datasource["uid"] == gp.DATASOURCE["uid"]
    assert datasource["url"] == "${VICTORIALOGS_URL}"


def test_alert_rules_are_well_formed():
    assert RULES["apiVersion"] == 1
    rules = [rule for group in RULES["groups"] for rule in group["rules"]]
    assert {r["title"] for r in rules} == {
        "Error spike",
        "Producer stalled",
        "Druid ingestion lag high",
        "Dead-letter rate high",
        "Producer cannot reach Kafka",
        "Producer cannot save its checkpoint",
        "Trends processor behind",
        "Container memory near limit",
    }
    assert len({r["uid"] for r in rules}) == len(rules)
    dashboard_uids = {d["uid"] for d in DASHBOARDS.values()}
    for group in RULES["groups"]:
        assert group["folder"] == gp.FOLDER_TITLE
        assert re.fullmatch(r"\d+[smh]", group["interval"])
    for rule in rules:
        ref_ids = {d["refId"] for d in rule["data"]}
        assert rule["condition"] in ref_ids
        for data in rule["data"]:
            assert data["datasourceUid"] in DATASOURCE_UIDS | {"__expr__"}
            model = data["model"]
            if data["datasourceUid"] == "__expr__":
                assert model["expression"] in ref_ids
            else:
                assert "$" not in model["expr"], "Grafana would expand it as an env variable"
                assert data["relativeTimeRange"]["from"] > 0
        assert rule["noDataState"] in {"OK", "Alerting", "NoData", "KeepLast"}
        assert rule["annotations"]["__dashboardUid__"] in dashboard_uids
        assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_producer_stalled_fires_when_the_producer_is_silent():
    stalled = next(a for a in gp.ALERTS if a.uid == "ws-producer-stalled")
    assert stalled.no_data == "Alerting" and "events_out" in stalled.expr


def test_contact_point_webhook_url_is_a_secret_from_the_environment():
    points = _yaml(PROVISIONING / "alerting" / "contact-points.yaml")["contactPoints"]
    receivers = [r for point in points for r in point["receivers"]]
    assert [r["type"] for r in receivers] == ["webhook"]
    assert receivers[0]["settings"]["url"] == "${ALERT_WEBHOOK_URL}"
    (policy,) = _yaml(PROVISIONING / "alerting" / "policies.yaml")["policies"]
    assert policy["receiver"] in {point["name"] for point in points}


# ── compose fragment ──────────────────────────────────────────────────────────────────────────


# Only what is Grafana's or this fragment's own: loopback ports, declared volumes, existing
# paths, health checks and "every image is pinned" are tests/unit/test_compose.py's.
COMPOSE_DOC = _yaml(COMPOSE)


def test_compose_image_tags_match_versions_env():
    versions = pinned_versions()
    services = COMPOSE_DOC["services"]
    assert services["victorialogs"]["image"].endswith(":" + versions["VICTORIALOGS_VERSION"])
    assert services["grafana"]["image"].endswith(":" + versions["GRAFANA_VERSION"])
    assert services["alloy"]["image"].endswith(":" + versions["ALLOY_VERSION"])
    plugin = services["grafana"]["environment"]["GF_PLUGINS_PREINSTALL"]
    assert plugin.endswith("@" + versions["VICTORIALOGS_DATASOURCE_VERSION"])


def test_grafana_has_no_anonymous_access_and_requires_secrets():
    grafana = COMPOSE_DOC["services"]["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert env["ALERT_WEBHOOK_URL"].startswith("${ALERT_WEBHOOK_URL:?")
    assert "check-secrets.sh" in " ".join(grafana["entrypoint"])


def _check_secrets(password: str, webhook: str = "https://alerts.ops.internal/hook/a1b2") -> int:
    env = {"GF_SECURITY_ADMIN_PASSWORD": password, "ALERT_WEBHOOK_URL": webhook, "PATH": "/bin"}
    done = subprocess.run(
        ["sh", str(GRAFANA / "check-secrets.sh")], env=env, capture_output=True, timeout=10
    )
    return done.returncode


@pytest.mark.parametrize(
    "password",
    ["", "admin", "CHANGE_ME", "changeme", "CHANGEME-please-1", "<your-password>", "short1"],
)
def test_check_secrets_refuses_placeholder_passwords(password):
    assert _check_secrets(password) == 64


@pytest.mark.parametrize(
    "webhook",
    ["", "not-a-url", "https://example.com/hook", "https://alerts.example.invalid/CHANGE_ME"],
)
def test_check_secrets_refuses_a_placeholder_webhook(webhook):
    assert _check_secrets("a-Real-long-passphrase-42", webhook) == 64


def test_check_secrets_hands_over_to_grafana_with_real_values():
    # /run.sh (Grafana's entrypoint) does not exist here: 127 means every check passed.
    assert _check_secrets("a-Real-long-passphrase-42") == 127


# ── version pins of the native builds ───────────────────────────────────────────────────────────


def _go_mod_version(go_mod: Path, module: str) -> str:
    match = re.search(rf"^(?:require )?\s*{re.escape(module)} (v\S+)", go_mod.read_text(), re.M)
    assert match, f"{module} not in {go_mod}"
    return match.group(1)


def test_go_module_pins_match_versions_env():
    versions = pinned_versions()
    logs = ROOT / "logs"
    pins = {
        (logs / "victorialogs/go.mod", "github.com/VictoriaMetrics/VictoriaLogs"): "VICTORIALOGS",
        (logs / "otelcol/go.mod", "go.opentelemetry.io/collector/otelcol"): "OTELCOL",
        (
            logs / "otelcol/go.mod",
            "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/filelogreceiver",
        ): "OTELCOL_CONTRIB",
    }
    for (go_mod, module), key in pins.items():
        assert _go_mod_version(go_mod, module) == versions[f"{key}_VERSION"]


@pytest.mark.skipif(not VICTORIA_LOGS.exists(), reason="var/bin/victoria-logs not built")
def test_victorialogs_env_names_real_flags():
    help_text = subprocess.run(
        [str(VICTORIA_LOGS), "-help"], capture_output=True, text=True, timeout=30
    )
    flags = set(re.findall(r"^\s+-(\S+)", help_text.stdout + help_text.stderr, re.M))
    settings = (ROOT / "logs" / "victorialogs.env").read_text()
    for name in re.findall(r"^VL_(\w+)=", settings, re.M):
        assert name.replace("_", ".") in flags or name in flags, name


# ── collectors: native (OTel) and compose (Alloy) label lines the same way ────────────────────

OTELCOL = _yaml(ROOT / "logs" / "otelcol.yaml")
ALLOY = (ROOT / "logs" / "alloy" / "config.alloy").read_text()


def _otel_operator(op_id: str) -> dict:
    operators = OTELCOL["receivers"]["file_log"]["operators"]
    return next(op for op in operators if op["id"] == op_id)


def _alloy_strings(key: str) -> list[str]:
    """Values of `key = "..."` in the Alloy file, with Alloy's string escapes undone."""
    raw = re.findall(rf'^\s*{key}\s*=\s*"((?:[^"\\]|\\.)*)"', ALLOY, re.M)
    return [json.loads(f'"{value}"') for value in raw]


def test_alloy_and_otel_collector_use_the_same_patterns():
    multiline = OTELCOL["receivers"]["file_log"]["multiline"]["line_start_pattern"]
    assert _alloy_strings("firstline") == [multiline]
    text_level = _otel_operator("text_line")["regex"]
    access = _otel_operator("access_line")["regex"].replace("(?:", "(")
    assert _alloy_strings("expression") == [text_level, access]


@pytest.mark.parametrize(
    "line, level",
    [
        ("2026-11-26T06:56:40,525 INFO [main] org.apache.druid.cli.Main - Starting", "INFO"),
        (
            "2026-11-26T07:00:01,123 ERROR [qtp-1] org.apache.druid.server.QueryResource - x",
            "ERROR",
        ),
        ("[2026-11-26 06:56:21,950] WARN [RaftManager id=1] Graceful shutdown", "WARN"),
        ("[2026-11-26 06:58:04 +0000] [21677] [INFO] Starting gunicorn 27.0.1", "INFO"),
        ("2026-11-26 07:04:45,226:INFO:superset.app:Syncing configuration to database", "INFO"),
        ("=== nativectl start 2026-11-26T06:56:36+0000 ===", None),
    ],
)
def test_text_level_pattern(line, level):
    match = re.match(_otel_operator("text_line")["regex"], line)
    assert (match.group("lvl") if match else None) == level


def test_only_service_and_level_become_labels():
    headers = OTELCOL["exporters"]["otlp_http/victorialogs"]["headers"]
    assert headers["VL-Stream-Fields"] == "service,level"
    assert _otel_operator("drop_parse_state") == {
        "type": "remove",
        "id": "drop_parse_state",
        "field": "attributes",
    }
    assert 'target_label  = "service"' in ALLOY and 'values = { level = "" }' in ALLOY
