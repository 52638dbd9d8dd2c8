"""The production override (deploy/compose.production.yml), resolved the way the VM resolves it.

Why: the CD workflow runs `docker compose -f docker-compose.yml -f deploy/compose.production.yml`
on a VM nobody watches; an override that Docker Compose rejects, that still builds an image on the
VM, or that publishes a port beyond 127.0.0.1 would only show up in production. compose-check
(tools/compose-check, compose-go: the library Docker Compose uses) loads both files as one project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.ops_support import BIN, ROOT
from tests.standins import TEST_CONTACT
from tests.unit.test_compose import (
    SECRETS,
    assert_secrets_reach_only_their_consumers,
    dummy_secrets,
    secrets_by_service,
)

TOOL_SRC = ROOT / "tools" / "compose-check"
TOOL = BIN / "compose-check"
OVERRIDE = ROOT / "deploy" / "compose.production.yml"
REGISTRY = "ghcr.io/wikistreams/wikistreams"
VERSION = "v9.9.9"
# What deploy/remote-deploy.sh exports and the production .env adds (docs/deploy.md).
PRODUCTION_ENV = {
    "WIKISTREAMS_REGISTRY": REGISTRY,
    "WIKISTREAMS_VERSION": VERSION,
    "SUPERSET_HOSTNAME": "superset.wikistreams.invalid",
    "GRAFANA_HOSTNAME": "grafana.wikistreams.invalid",
    "ACME_EMAIL": "ops@wikistreams.invalid",
}
# The images the CD workflow builds and pushes, by compose service.
RELEASED = {
    "producer": "producer",
    "druid-init": "producer",
    "trends": "producer",
    "superset": "superset",
    "superset-init": "superset",
    "docker-stats-logger": "producer",
}


def _run(*args: str, **environ: str) -> subprocess.CompletedProcess:
    if not TOOL.exists() or TOOL.stat().st_mtime < (TOOL_SRC / "main.go").stat().st_mtime:
        if shutil.which("go") is None:
            pytest.fail("go is not on PATH: it is needed to build tools/compose-check")
        subprocess.run(["bash", str(TOOL_SRC / "build.sh")], check=True, timeout=600)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ}
    return subprocess.run(
        [str(TOOL), "-project-directory", str(ROOT), "-env-file", str(ROOT / ".env.example")]
        + ["-f", str(ROOT / "docker-compose.yml"), "-f", str(OVERRIDE), "-skip-env-resolution"]
        + list(args),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    done = _run(**PRODUCTION_ENV)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_released_services_run_the_tagged_ghcr_images(project):
    services = project["services"]
    for service, image in RELEASED.items():
        assert services[service]["image"] == f"{REGISTRY}/{image}:{VERSION}", service
    for name, service in services.items():
        assert "wikistreams" not in service["image"] or service["image"].startswith(REGISTRY), name
        assert not service["image"].endswith(":local"), name


def test_only_caddy_faces_the_network_and_every_published_port_is_loopback(project):
    for name, service in project["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", (name, port)
        if name != "caddy":
            assert service.get("network_mode") in (None, ""), name
    caddy = project["services"]["caddy"]
    assert caddy["network_mode"] == "host"
    caddyfile = ROOT / "deploy" / "Caddyfile"
    assert any(Path(v["source"]) == caddyfile for v in caddy["volumes"])
    text = caddyfile.read_text()
    assert "reverse_proxy 127.0.0.1:8088" in text and "reverse_proxy 127.0.0.1:3000" in text


def test_superset_knows_it_is_served_through_the_tls_proxy(project):
    """Secure session cookie and ProxyFix for Caddy's hop (superset/superset_config.py)."""
    assert project["services"]["superset"]["environment"]["SUPERSET_BEHIND_TLS_PROXY"] == "true"
    # The override adds to the fragment's environment, it does not replace it.
    assert project["services"]["superset"]["environment"]["SUPERSET_SECRET_KEY"]


def test_production_secrets_reach_only_their_consumers():
    """The same least-privilege map as test_compose, with the production override and Caddy."""
    secrets = dummy_secrets()
    done = _run(**PRODUCTION_ENV, **secrets)  # the environment wins over .env.example
    assert done.returncode == 0, done.stderr
    project = json.loads(done.stdout)
    assert_secrets_reach_only_their_consumers(project, secrets)
    for service in ("producer", "druid-init", "caddy"):
        assert secrets_by_service(project, secrets)[service] == set(), service


@pytest.mark.parametrize("missing", sorted(PRODUCTION_ENV))
def test_release_settings_are_required(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    done = _run(**env)
    assert done.returncode != 0 and missing in done.stderr, done.stderr


# ── deploy/render-env.sh: SSM Parameter Store -> .env ───────────────────────────────────────────

RENDER_ENV = ROOT / "deploy" / "render-env.sh"
# The stack's secrets (one list, in test_compose) plus what production adds.
REQUIRED = [
    *SECRETS,
    "USER_AGENT_CONTACT",
    "SUPERSET_HOSTNAME",
    "GRAFANA_HOSTNAME",
    "ACME_EMAIL",
]


def _render(tmp_path: Path, values: dict[str, str]) -> subprocess.CompletedProcess:
    """Run render-env.sh with a stand-in `aws` that answers like get-parameters-by-path."""
    if shutil.which("jq") is None:
        pytest.fail("jq is not on PATH: deploy/render-env.sh needs it (apt-get install jq)")
    answer = {
        "Parameters": [
            {"Name": f"/wikistreams/prod/{k}", "Type": "SecureString", "Value": v}
            for k, v in values.items()
        ]
    }
    (tmp_path / "answer.json").write_text(json.dumps(answer))
    fake = tmp_path / "bin" / "aws"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\ncat "{tmp_path / "answer.json"}"\n')
    fake.chmod(0o755)
    env = {
        "PATH": f"{fake.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "WIKISTREAMS_ENV_GROUP": str(os.getgid()),
    }
    return subprocess.run(
        ["bash", str(RENDER_ENV), "/wikistreams/prod", str(tmp_path / "etc" / "ws.env")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_render_env_writes_literal_values_readable_by_compose(tmp_path):
    values = {k: f"value-of-{k}" for k in REQUIRED}
    values["SUPERSET_SECRET_KEY"] = "a$b#c d"
    values["USER_AGENT_CONTACT"] = TEST_CONTACT
    done = _render(tmp_path, values)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "etc" / "ws.env"
    assert oct(out.stat().st_mode & 0o777) == "0o640"
    lines = out.read_text().splitlines()
    assert "SUPERSET_SECRET_KEY='a$b#c d'" in lines
    assert len(lines) == len(REQUIRED)
    # Compose reads it as written: the same file as --env-file resolves the stack.
    check = _run("-env-file", str(out), **{k: v for k, v in PRODUCTION_ENV.items() if "WIKI" in k})
    assert check.returncode == 0, check.stderr
    superset = json.loads(check.stdout)["services"]["superset"]["environment"]
    assert superset["SUPERSET_SECRET_KEY"] == "a$b#c d"


@pytest.mark.parametrize(
    "values, reason",
    [
        ({k: "x" for k in REQUIRED[1:]}, REQUIRED[0]),
        ({**{k: "x" for k in REQUIRED}, "SUPERSET_ADMIN_PASSWORD": "CHANGE_ME"}, "CHANGE_ME"),
        ({**{k: "x" for k in REQUIRED}, "GRAFANA_ADMIN_PASSWORD": "it's"}, "single quote"),
        # The producer's contact rule (wikistreams.producer.contact), before the stack starts.
        (
            {**{k: "x" for k in REQUIRED}, "USER_AGENT_CONTACT": "your-email@corp.com"},
            "placeholder",
        ),
        ({**{k: "x" for k in REQUIRED}, "USER_AGENT_CONTACT": "ops@corp.invalid"}, "reserved"),
    ],
)
def test_render_env_refuses_missing_placeholder_and_unquotable_values(tmp_path, values, reason):
    done = _render(tmp_path, values)
    assert done.returncode != 0 and reason in done.stderr, done.stderr
    assert not (tmp_path / "etc" / "ws.env").exists()
