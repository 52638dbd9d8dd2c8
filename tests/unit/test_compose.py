"""The compose stack, checked against the Compose Specification without a Docker engine.

Why: nothing here runs Docker, so a compose file that Docker Compose would reject (a typo, a bad
`include`, an unknown key) would only be found by the first person who runs `docker compose up`.
tools/compose-check loads the project with compose-go, the library Docker Compose itself uses
(include, interpolation, schema validation, consistency checks), and prints the resolved project;
these tests assert the stack's invariants on that resolved project, so anchors, merges and
`${VAR:-default}` values are checked as Docker would see them, not as the YAML text reads.

Checks already in tests/unit/test_ops_grafana.py (observability image pins, its loopback ports and
named volumes, the Grafana secrets gate) are not repeated here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import pinned_versions
import yaml

from tests.ops_support import BIN, ROOT
from wikistreams.native.config import read_env_file

TOOL_SRC = ROOT / "tools" / "compose-check"
TOOL = BIN / "compose-check"
COMPOSE = ROOT / "docker-compose.yml"
FRAGMENTS = sorted((ROOT / "compose").glob("*.yml"))
ENV_EXAMPLE = ROOT / ".env.example"

# Every variable the stack refuses to start without; none may have a working default.
SECRETS = [
    "DRUID_METADATA_PASSWORD",
    "SUPERSET_SECRET_KEY",
    "SUPERSET_ADMIN_PASSWORD",
    "SUPERSET_DB_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "ALERT_WEBHOOK_URL",
]
# Services whose data must survive `docker compose down` -> the container path that holds it.
# Observability services are covered by test_ops_grafana.py.
STATEFUL = {
    "kafka": ["/var/lib/kafka/data"],
    "zookeeper": ["/data", "/datalog"],
    "druid-metadata": ["/var/lib/postgresql/data"],
    "druid-coordinator": ["/opt/shared"],
    "druid-broker": ["/opt/shared"],
    "druid-historical": ["/opt/shared"],
    "druid-indexer": ["/opt/shared"],
    "producer": ["/data"],
    "superset-db": ["/var/lib/postgresql/data"],
    "superset": ["/app/superset_home"],
}
# Image repository -> native/versions.env key (observability images: test_ops_grafana.py).
PINNED_IMAGES = {"apache/kafka": "KAFKA_VERSION", "apache/druid": "DRUID_VERSION"}


# ── building and running the tool ───────────────────────────────────────────────────────────────


def _stale() -> bool:
    if not TOOL.exists():
        return True
    sources = [TOOL_SRC / n for n in ("main.go", "go.mod", "go.sum", "build.sh")]
    return TOOL.stat().st_mtime < max(p.stat().st_mtime for p in sources)


@pytest.fixture(scope="session")
def compose_check() -> Path:
    """var/bin/compose-check, (re)built when missing or older than its sources.

    A missing Go toolchain fails the run instead of skipping: a skipped compose check looks
    green while checking nothing.
    """
    if _stale():
        if shutil.which("go") is None:
            pytest.fail("go is not on PATH: it is needed to build tools/compose-check")
        subprocess.run([str(TOOL_SRC / "build.sh")], check=True, timeout=600)
    return TOOL


def _run(tool: Path, env_file: Path, *args: str, project: Path = ROOT, **environ: str):
    """Run compose-check with a clean environment, so the developer's shell (an exported
    password, COMPOSE_FILE, COMPOSE_PROJECT_NAME) cannot change the verdict."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ}
    return subprocess.run(
        [str(tool), "-project-directory", str(project), "-env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _load(tool: Path, env_file: Path = ENV_EXAMPLE, **environ: str) -> dict[str, Any]:
    """The project as `docker compose config` resolves it with `env_file` as the project's .env:
    no service reads the root .env itself (test_no_service_reads_the_root_env_file), so every
    value below, pass-through `environment:` entries included, is what the containers get."""
    done = _run(tool, env_file, "-f", str(COMPOSE), **environ)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="session")
def project(compose_check) -> dict[str, Any]:
    """The resolved project with .env.example's values, as `docker compose config` prints it."""
    return _load(compose_check)


def _env_without(tmp_path: Path, *names: str, **values: str) -> Path:
    """.env.example minus `names`, with `values` set, written to tmp_path/test.env."""
    lines = [
        line
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.partition("=")[0].strip() not in {*names, *values}
    ]
    lines += [f"{k}={v}" for k, v in values.items()]
    path = tmp_path / "test.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _mirror(tmp_path: Path, compose_text: str | None = None) -> Path:
    """A project directory whose every entry links to the repo, except docker-compose.yml (a
    copy, optionally replaced) and .env (a copy of .env.example): the README's `cp .env.example
    .env` workflow, and a place to break the compose file without touching the repo."""
    mirror = tmp_path / "project"
    mirror.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {"docker-compose.yml", ".env", ".git"}:
            (mirror / entry.name).symlink_to(entry)
    (mirror / "docker-compose.yml").write_text(compose_text or COMPOSE.read_text())
    shutil.copy(ENV_EXAMPLE, mirror / ".env")
    return mirror


def _long_running(service: dict[str, Any]) -> bool:
    """One-shot jobs (druid-init, superset-init) say restart: "no"; everything else stays up."""
    return service.get("restart", "no") != "no"


# ── the file is valid ───────────────────────────────────────────────────────────────────────────


def test_stack_is_valid_and_includes_every_fragment(project):
    services = set(project["services"])
    for fragment in FRAGMENTS:
        fragment_services = set(yaml.safe_load(fragment.read_text())["services"])
        assert fragment_services <= services, f"{fragment.name} is not included"
    assert {"kafka", "zookeeper", "druid-broker", "producer", "superset", "grafana"} <= services
    assert project["name"] == "wikistreams"


def test_readme_workflow_loads_in_full(compose_check, tmp_path):
    """`cp .env.example .env && docker compose config`: no flag skipped, env_files read."""
    mirror = _mirror(tmp_path)
    done = _run(
        compose_check, mirror / ".env", "-f", str(mirror / "docker-compose.yml"), project=mirror
    )
    assert done.returncode == 0, done.stderr
    producer = json.loads(done.stdout)["services"]["producer"]
    assert producer["environment"]["USER_AGENT_CONTACT"]  # passed through from the project's .env


def test_fragment_paths_resolve_inside_the_repo(project):
    """Fragments use ../ paths relative to compose/; every bind mount, build context and
    env_file must land on something that exists (the root .env is the user's copy)."""
    for name, service in project["services"].items():
        paths = [v["source"] for v in service.get("volumes", []) if v["type"] == "bind"]
        paths += [e["path"] for e in service.get("env_file", [])]
        if "build" in service:
            paths.append(service["build"]["context"])
        for path in paths:
            if path.startswith(("/var/run/docker.sock", str(ROOT / ".env"))):
                continue
            assert Path(path).is_relative_to(ROOT), f"{name}: {path} is outside the repo"
            assert Path(path).exists(), f"{name}: {path} does not exist"


# ── invariants ──────────────────────────────────────────────────────────────────────────────────


# Published ports by what guards them: the web UIs have their own logins (BIND_ADDRESS, behind a
# TLS proxy), Kafka (PLAINTEXT) and Druid have no authentication (DATA_BIND_ADDRESS, a separate and
# explicit choice; tools/exposure-check.sh warns). Everything else is loopback, always.
WEB_UI_SERVICES = {"superset", "grafana"}
DATA_SERVICES = {"kafka", "druid-coordinator", "druid-broker"}


@pytest.mark.parametrize(
    ("bind_address", "data_bind_address"),
    [(None, None), ("10.1.2.3", None), (None, "10.9.8.7"), ("10.1.2.3", "10.9.8.7")],
    ids=["defaults", "web-only", "data-only", "both"],
)
def test_ports_publish_on_loopback_unless_their_own_setting_says_otherwise(
    compose_check, tmp_path, bind_address, data_bind_address
):
    """With neither set every port is 127.0.0.1. BIND_ADDRESS moves only the web UIs: opening
    Superset behind a TLS proxy must never open Kafka and Druid, which need DATA_BIND_ADDRESS."""
    values = {
        name: value
        for name, value in (
            ("BIND_ADDRESS", bind_address),
            ("DATA_BIND_ADDRESS", data_bind_address),
        )
        if value
    }
    env_file = _env_without(tmp_path, "BIND_ADDRESS", "DATA_BIND_ADDRESS", **values)
    project = _load(compose_check, env_file)
    seen = set()
    for name, service in project["services"].items():
        for port in service.get("ports", []):
            seen.add(name)
            if name in WEB_UI_SERVICES:
                expected = bind_address or "127.0.0.1"
            elif name in DATA_SERVICES:
                expected = data_bind_address or "127.0.0.1"
            else:
                expected = "127.0.0.1"
            assert port.get("host_ip") == expected, f"{name}: {port}"
    assert WEB_UI_SERVICES | DATA_SERVICES <= seen


def test_each_port_goes_through_the_setting_of_its_kind():
    """The compose text itself: no other variable (or a bare port) can publish a service."""
    for path in [COMPOSE, *FRAGMENTS]:
        for name, service in yaml.safe_load(path.read_text())["services"].items():
            for port in service.get("ports", []):
                if name in DATA_SERVICES:
                    assert port.startswith("${DATA_BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"
                elif name in WEB_UI_SERVICES:
                    assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"
                else:
                    assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_env_example_keeps_both_bind_addresses_on_loopback_and_says_why():
    text = ENV_EXAMPLE.read_text()
    values = read_env_file(ENV_EXAMPLE)
    assert values["BIND_ADDRESS"] == "127.0.0.1"
    assert values["DATA_BIND_ADDRESS"] == "127.0.0.1"
    block = text[text.index("BIND_ADDRESS") - 2000 : text.index("DATA_BIND_ADDRESS=")]
    for needed in ("no authentication", "PLAINTEXT", "druid-basic-security", "SASL"):
        assert needed in block, needed


# ── tools/exposure-check.sh: the warning before ports leave loopback ───────────────────────────

EXPOSURE_CHECK = ROOT / "tools" / "exposure-check.sh"


def _exposure(tmp_path: Path, *args: str, env_lines: str = "", **environ: str):
    env_file = tmp_path / "exposure.env"
    env_file.write_text(env_lines)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ}
    return subprocess.run(
        ["bash", str(EXPOSURE_CHECK), *args, str(env_file)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


@pytest.mark.parametrize("lines", ["", "BIND_ADDRESS=127.0.0.1\nDATA_BIND_ADDRESS=127.0.0.1\n"])
def test_exposure_check_is_silent_on_loopback(tmp_path, lines):
    done = _exposure(tmp_path, env_lines=lines)
    assert done.returncode == 0 and done.stderr == ""
    done = subprocess.run(
        ["bash", str(EXPOSURE_CHECK), str(ENV_EXAMPLE)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_exposure_check_warns_when_kafka_and_druid_leave_loopback(tmp_path):
    done = _exposure(tmp_path, env_lines='DATA_BIND_ADDRESS="0.0.0.0"\nKAFKA_PORT=19092\n')
    assert done.returncode == 0  # a warning, not a refusal
    warning = done.stderr
    assert "WARNING: DATA_BIND_ADDRESS=0.0.0.0" in warning
    for needed in ("Kafka :19092", "Druid :8081/:8082", "NO authentication", "PLAINTEXT"):
        assert needed in warning, needed
    for needed in ("druid-basic-security", "SASL_SSL", "docs/deploy.md"):
        assert needed in warning, needed
    assert "Superset" not in warning


def test_exposure_check_warns_about_plain_http_web_uis_without_naming_the_data_ports(tmp_path):
    done = _exposure(tmp_path, env_lines="BIND_ADDRESS=10.0.0.5\n")
    assert done.returncode == 0
    assert "WARNING: BIND_ADDRESS=10.0.0.5" in done.stderr and "TLS proxy" in done.stderr
    assert "DATA_BIND_ADDRESS" not in done.stderr


def test_exposure_check_environment_wins_over_the_file(tmp_path):
    done = _exposure(
        tmp_path, env_lines="DATA_BIND_ADDRESS=0.0.0.0\n", DATA_BIND_ADDRESS="127.0.0.1"
    )
    assert done.stderr == ""
    done = _exposure(tmp_path, DATA_BIND_ADDRESS="192.0.2.1")
    assert "WARNING: DATA_BIND_ADDRESS=192.0.2.1" in done.stderr


def test_exposure_check_native_mode_says_the_setting_does_not_apply(tmp_path):
    done = _exposure(tmp_path, "--native", env_lines="DATA_BIND_ADDRESS=0.0.0.0\n")
    assert done.returncode == 0
    assert "applies to docker compose only" in done.stderr and "WARNING" not in done.stderr
    assert _exposure(tmp_path, "--native").stderr == ""


def test_exposure_check_runs_where_the_stack_is_started():
    makefile = (ROOT / "Makefile").read_text()
    up = makefile[makefile.index("\nup:") : makefile.index("\n\n", makefile.index("\nup:"))]
    assert "tools/exposure-check.sh --native" in up
    compose_up = makefile[makefile.index("\ncompose-up:") :]
    compose_up = compose_up[: compose_up.index("\n\n")]
    recipe = compose_up.split("\n", 2)[2]  # below the target line and its help text
    assert recipe.index("tools/exposure-check.sh .env") < recipe.index("docker compose up")
    remote = (ROOT / "deploy" / "remote-deploy.sh").read_text()
    assert remote.index("tools/exposure-check.sh") < remote.index('"${compose[@]}" up')


def test_deploy_doc_says_what_opening_kafka_or_druid_takes():
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text[text.index("### Opening Kafka or Druid") :]
    for needed in (
        "DATA_BIND_ADDRESS",
        "druid-basic-security",
        "druid.auth.authenticatorChain",
        "druid.escalator",
        "SASL_SSL",
        "SCRAM-SHA-512",
        "KAFKA_ADVERTISED_HOST",
    ):
        assert needed in section, needed


def test_every_long_running_service_has_a_healthcheck(project):
    for name, service in project["services"].items():
        if not _long_running(service):
            continue
        check = service.get("healthcheck")
        if check:
            assert not check.get("disable") and check["test"][0] != "NONE", name
            continue
        # No compose healthcheck: the image must bring one (docker-stats-logger's Dockerfile).
        build = service.get("build")
        assert build, f"{name}: no healthcheck"
        dockerfile = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
        assert "HEALTHCHECK" in dockerfile.read_text(), f"{name}: no healthcheck"


def test_depends_on_waits_for_health_or_completion(project):
    services = project["services"]
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            condition = spec["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}, name
            if dep not in services:
                assert spec.get("required") is False, f"{name} -> {dep}: missing and required"
                continue
            if condition == "service_completed_successfully":
                assert not _long_running(services[dep]), f"{name} -> {dep} never completes"
            else:
                assert services[dep].get("healthcheck"), f"{name} -> {dep} has no healthcheck"


def test_stateful_services_keep_data_in_named_volumes(project):
    services = project["services"]
    declared = set(project["volumes"])
    for name, targets in STATEFUL.items():
        mounts = {v["target"]: v for v in services[name].get("volumes", [])}
        for target in targets:
            mount = mounts.get(target)
            assert mount, f"{name}: nothing mounted at {target}"
            assert mount["type"] == "volume", f"{name}: {target} is a {mount['type']} mount"
            assert mount["source"] in declared, f"{name}: {mount['source']} not declared"


def _pinned(image: str) -> bool:
    name, _, tag = image.rpartition("/")[2].partition(":")
    return bool(name) and tag not in {"", "latest"}


def test_every_image_is_pinned(project):
    """Pulled images carry a release tag; a service built without an image name gets one from
    compose, so there the Dockerfile's FROM lines are what must be pinned."""
    for name, service in project["services"].items():
        if "image" in service:
            assert _pinned(service["image"]), f"{name}: {service['image']} is not pinned"
        if "build" in service:
            build = service["build"]
            dockerfile = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
            bases = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.M)
            assert bases and all(map(_pinned, bases)), f"{name}: {dockerfile} FROM {bases}"


def test_image_tags_equal_versions_env(project):
    versions = pinned_versions()
    seen = set()
    for name, service in project["services"].items():
        repository, _, tag = service.get("image", "").rpartition(":")
        if repository in PINNED_IMAGES:
            seen.add(repository)
            assert tag == versions[PINNED_IMAGES[repository]], f"{name}: {service['image']}"
    assert seen == set(PINNED_IMAGES)


def test_superset_image_tag_equals_its_base_and_the_native_pin(project):
    """Superset has no versions.env key: the native pin is superset/requirements.txt, the
    compose image is built FROM apache/superset; all three must name the same release."""
    native = re.search(
        r"^apache-superset==(\S+)", (ROOT / "superset" / "requirements.txt").read_text(), re.M
    )
    base = re.search(
        r"^FROM apache/superset:(\S+)", (ROOT / "superset" / "Dockerfile").read_text(), re.M
    )
    assert native and base
    for name in ("superset", "superset-init"):
        assert project["services"][name]["image"].endswith(":" + native.group(1)), name
    assert base.group(1) == native.group(1)


def test_zookeeper_image_equals_the_one_in_druids_lib(project):
    """Native ZooKeeper is the jar Druid's Maven build resolves (no versions.env key)."""
    jars = sorted((ROOT / "var" / "lib" / "druid").glob("zookeeper-3*.jar"))
    if not jars:
        pytest.skip("Druid lib not downloaded yet (make up)")
    version = jars[0].name.removeprefix("zookeeper-").removesuffix(".jar")
    assert project["services"]["zookeeper"]["image"] == f"zookeeper:{version}"


# ── secrets ─────────────────────────────────────────────────────────────────────────────────────


def test_secrets_are_required_without_defaults():
    """Every secret-looking variable is written `${NAME:?message}` wherever it is used."""
    pattern = re.compile(r"\$\{([A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN|WEBHOOK)[A-Z0-9_]*)([^}]*)\}")
    found = set()
    for path in [COMPOSE, *FRAGMENTS]:
        for name, rest in pattern.findall(path.read_text()):
            found.add(name)
            assert rest.startswith(":?"), f"{path.name}: ${{{name}{rest}}} has a fallback"
    assert set(SECRETS) <= found


@pytest.mark.parametrize("empty", [False, True], ids=["missing", "empty"])
@pytest.mark.parametrize("secret", SECRETS)
def test_stack_refuses_to_load_without_a_secret(compose_check, tmp_path, secret, empty):
    env_file = _env_without(tmp_path, secret, **({secret: ""} if empty else {}))
    done = _run(compose_check, env_file, "-f", str(COMPOSE), "-skip-env-resolution")
    assert done.returncode != 0
    assert secret in done.stderr


# ── each service gets only its own settings ─────────────────────────────────────────────────────

# Who may hold each secret: the services that use it, nobody else. The Druid servers share one
# runtime configuration (druid/conf/_common) that loads the metadata-store module on every node;
# Superset's web server refuses to start without its admin password (superset_config.py).
SECRET_CONSUMERS = {
    "DRUID_METADATA_PASSWORD": {
        "druid-metadata",
        "druid-coordinator",
        "druid-broker",
        "druid-historical",
        "druid-indexer",
    },
    "SUPERSET_SECRET_KEY": {"superset", "superset-init"},
    "SUPERSET_ADMIN_PASSWORD": {"superset", "superset-init"},
    "SUPERSET_DB_PASSWORD": {"superset-db", "superset", "superset-init"},
    "GRAFANA_ADMIN_PASSWORD": {"grafana"},
    "ALERT_WEBHOOK_URL": {"grafana"},
}


def dummy_secrets() -> dict[str, str]:
    """A distinct, unguessable value per secret, so a value found in a service names its secret."""
    return {
        name: f"dummy-{name.lower().replace('_', '-')}-{os.urandom(8).hex()}" for name in SECRETS
    }


def secrets_by_service(project: dict[str, Any], secrets: dict[str, str]) -> dict[str, set[str]]:
    """service -> the secrets whose value occurs ANYWHERE in its resolved definition (environment,
    command, healthcheck, labels...): a password inside a database URI counts too."""
    found = {}
    for name, service in project["services"].items():
        text = json.dumps(service)
        found[name] = {secret for secret, value in secrets.items() if value in text}
    return found


def assert_secrets_reach_only_their_consumers(project, secrets) -> None:
    found = secrets_by_service(project, secrets)
    for secret in SECRETS:
        holders = {name for name, held in found.items() if secret in held}
        assert holders == SECRET_CONSUMERS[secret], secret


@pytest.fixture(scope="session")
def secrets_project(compose_check, tmp_path_factory) -> tuple[dict[str, Any], dict[str, str]]:
    secrets = dummy_secrets()
    env_file = _env_without(tmp_path_factory.mktemp("secrets"), **secrets)
    return _load(compose_check, env_file), secrets


def test_secret_consumers_cover_every_secret():
    assert set(SECRET_CONSUMERS) == set(SECRETS)


def test_each_secret_reaches_only_the_services_that_need_it(secrets_project):
    assert_secrets_reach_only_their_consumers(*secrets_project)


@pytest.mark.parametrize("service", ["producer", "druid-init"])
def test_producer_and_druid_init_hold_no_secret(secrets_project, service):
    """The producer parses untrusted input from the internet; whoever takes it over must not get
    Superset's signing key (forged admin sessions), a database password or the webhook."""
    project, secrets = secrets_project
    assert secrets_by_service(project, secrets)[service] == set()


def test_no_service_reads_the_root_env_file(project):
    """`env_file: .env` hands a service every secret of the stack; settings are listed instead."""
    for name, service in project["services"].items():
        for env_file in service.get("env_file", []):
            path = Path(env_file["path"])
            assert path.name != ".env" and path.is_relative_to(ROOT / "logs"), f"{name}: {path}"


def _producer_settings() -> set[str]:
    from wikistreams.producer.config import Settings, TopicSettings

    return {field.upper() for model in (Settings, TopicSettings) for field in model.model_fields}


def _druid_submit_settings() -> set[str]:
    """What `wikistreams-druid submit` reads: its options' envvars and TopicSettings."""
    import typer.main

    from wikistreams.producer.config import TopicSettings
    from wikistreams.druid.supervisor import app

    submit = typer.main.get_command(app).commands["submit"]
    envvars = set()
    for param in submit.params:
        if param.envvar:
            envvars |= {param.envvar} if isinstance(param.envvar, str) else set(param.envvar)
    return envvars | {field.upper() for field in TopicSettings.model_fields}


def test_producer_environment_is_exactly_its_settings(secrets_project):
    """Every producer setting can be set from .env (as with the old env_file) and nothing else
    reaches it: no other service's setting, secret or not."""
    env = secrets_project[0]["services"]["producer"]["environment"]
    assert set(env) == _producer_settings()
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert env["HEALTH_BIND"] == "0.0.0.0"
    assert env["USER_AGENT_CONTACT"]  # passed through from .env


def test_producers_run_as_replicas_sharing_a_redis_label_cache(compose_check, project, tmp_path):
    """Two copies by default (one active, one hot standby, producer/lease.py) that start warm
    from one Redis; nothing that pins a single container (a name, a published port)."""
    producer = project["services"]["producer"]
    assert producer["deploy"]["replicas"] == 2
    assert not producer.get("container_name") and not producer.get("ports")
    assert producer["environment"]["CACHE_BACKEND"] == "redis"
    assert producer["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert producer["depends_on"]["redis"]["condition"] == "service_healthy"
    redis = project["services"]["redis"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert not redis.get("ports")
    scaled = _load(compose_check, _env_without(tmp_path, PRODUCERS="3"))
    assert scaled["services"]["producer"]["deploy"]["replicas"] == 3


def test_the_producer_waits_for_kafka_not_for_druid(project):
    """druid-init stays the one-shot that submits the Druid supervisor; the producer needs only
    Kafka (and its label cache), so a slow or broken Druid never holds it back."""
    assert set(project["services"]["producer"]["depends_on"]) == {"kafka", "redis"}
    druid_init = project["services"]["druid-init"]
    assert druid_init["restart"] == "no"
    assert {"druid-coordinator", "druid-indexer", "kafka"} <= set(druid_init["depends_on"])


def test_druid_init_environment_is_only_what_submit_reads(secrets_project):
    service = secrets_project[0]["services"]["druid-init"]
    assert set(service["environment"]) <= _druid_submit_settings()
    for needed in ("KAFKA_TOPIC", "DRUID_RETENTION_PERIOD", "KAFKA_TOPIC_RETENTION_MS"):
        assert service["environment"][needed], needed
    # The options that name other hosts come from the command, not from .env.
    assert any(arg.startswith("--overlord=") for arg in service["command"])
    assert any(arg.startswith("--bootstrap=") for arg in service["command"])


def test_an_unset_pass_through_setting_stays_unset(compose_check, tmp_path):
    """A bare NAME is passed only when the project environment has it; otherwise compose leaves
    it out (null here) and the program's own default applies, never an empty string."""
    project = _load(
        compose_check, _env_without(tmp_path, "KAFKA_LINGER_MS", "DRUID_RETENTION_PERIOD")
    )
    assert project["services"]["producer"]["environment"]["KAFKA_LINGER_MS"] is None
    assert project["services"]["druid-init"]["environment"]["DRUID_RETENTION_PERIOD"] is None


# ── Docker API access: only through the GET-only socket proxy ──────────────────────────────────

SOCKET_PROXY = "docker-api-proxy"
DOCKER_API_CLIENTS = {"alloy", "docker-stats-logger"}
ALLOY_CONFIG = ROOT / "logs" / "alloy" / "config.alloy"


def _flags(service: dict[str, Any]) -> dict[str, list[str]]:
    flags: dict[str, list[str]] = {}
    for arg in service.get("command") or []:
        name, _, value = arg.lstrip("-").partition("=")
        flags.setdefault(name, []).append(value)
    return flags


def test_only_the_socket_proxy_mounts_the_docker_socket(project):
    for name, service in project["services"].items():
        sockets = [v for v in service.get("volumes", []) if "docker.sock" in v.get("source", "")]
        if name == SOCKET_PROXY:
            assert [(v["source"], v.get("read_only")) for v in sockets] == [
                ("/var/run/docker.sock", True)
            ]
        else:
            assert not sockets, f"{name} mounts the Docker socket"
        assert not service.get("privileged"), name
        assert service.get("pid") in (None, ""), name


def test_socket_proxy_allows_only_reads_of_the_endpoints_the_loggers_use(project):
    proxy = project["services"][SOCKET_PROXY]
    assert re.fullmatch(r"wollomatic/socket-proxy:\d+\.\d+\.\d+", proxy["image"])
    flags = _flags(proxy)
    methods = {name.removeprefix("allow") for name in flags if re.fullmatch(r"allow[A-Z]+", name)}
    assert methods == {"GET", "HEAD"}, "POST, PUT, DELETE... must stay denied (the default)"
    assert not [k for k in proxy.get("environment") or {} if k.startswith("SP_ALLOW")]
    assert flags["allowHEAD"] == ["/_ping"]
    (pattern,) = flags["allowGET"]
    allowed = re.compile(f"^{pattern}$")  # socket-proxy anchors every pattern
    for path in (
        "/_ping",
        "/v1.47/version",
        "/v1.47/containers/json",
        "/containers/json",
        "/v1.47/networks",
        "/v1.47/containers/3f2a9c/json",
        "/v1.47/containers/3f2a9c/logs",
        "/containers/3f2a9c/stats",
    ):
        assert allowed.match(path), path
    for path in (
        "/v1.47/containers/3f2a9c/archive",
        "/v1.47/containers/3f2a9c/export",
        "/v1.47/containers/3f2a9c/exec",
        "/v1.47/containers/create",
        "/v1.47/info",
        "/v1.47/images/json",
        "/v1.47/volumes",
        "/v1.47/secrets",
        "/v1.47/containers/3f2a9c/json/../archive",
        "/v1.47/exec/abc/json",
    ):
        assert not allowed.match(path), path
    assert flags["allowfrom"] == [",".join(sorted(DOCKER_API_CLIENTS))]


def test_socket_proxy_is_reachable_only_on_an_internal_network(project):
    proxy = project["services"][SOCKET_PROXY]
    assert set(proxy["networks"]) == {"docker-api"}
    assert project["networks"]["docker-api"].get("internal") is True
    assert not proxy.get("ports")
    on_network = {
        n for n, s in project["services"].items() if "docker-api" in (s.get("networks") or {})
    }
    assert on_network == DOCKER_API_CLIENTS | {SOCKET_PROXY}
    # Least privilege for the proxy itself: no root user, no capabilities, read-only root fs.
    assert proxy["read_only"] is True and proxy["cap_drop"] == ["ALL"]
    assert proxy["user"].split(":")[0] not in ("", "0", "root")
    assert proxy["healthcheck"]["test"]


def test_the_two_clients_point_at_the_proxy(project):
    port = _flags(project["services"][SOCKET_PROXY])["proxyport"][0]
    for name in DOCKER_API_CLIENTS:
        service = project["services"][name]
        assert service["environment"]["DOCKER_HOST"] == f"tcp://{SOCKET_PROXY}:{port}", name
        assert service["depends_on"][SOCKET_PROXY]["condition"] == "service_healthy", name
        assert not service.get("group_add"), f"{name} needs no docker group any more"
    code = [
        line for line in ALLOY_CONFIG.read_text().splitlines() if not line.strip().startswith("//")
    ]
    hosts = [line.split("=", 1)[1].strip() for line in code if re.match(r"\s*host\s*=", line)]
    assert hosts == ['sys.env("DOCKER_HOST")'] * 2  # discovery.docker and loki.source.docker
    assert not any("docker.sock" in line for line in code)


# ── the checker rejects what Docker Compose rejects ─────────────────────────────────────────────


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("\nservices:\n", "\nservise_typo: {}\nservices:\n", "servise_typo"),
        (
            "    druid-metadata:\n      condition: service_healthy",
            "    druid-metadata:\n      condition: service_finished",
            "druid-metadata.condition value must be one of",
        ),
        ("      kafka:\n        condition:", "      kafak:\n        condition:", "kafak"),
    ],
    ids=["unknown-top-level-key", "bad-depends-on-condition", "depends-on-undefined-service"],
)
def test_broken_copies_are_rejected(compose_check, tmp_path, old, new, message):
    text = COMPOSE.read_text()
    assert old in text
    mirror = _mirror(tmp_path, text.replace(old, new, 1))
    done = _run(
        compose_check, mirror / ".env", "-f", str(mirror / "docker-compose.yml"), project=mirror
    )
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stdout == ""


def test_trends_environment_is_only_its_settings_and_its_own_health_port(secrets_project):
    """The trends processor gets only what `TrendsSettings` reads (no other service's secret),
    every TRENDS_* setting, the producers' Redis label cache and its own /health port."""
    from wikistreams.trends.config import TrendsSettings

    service = secrets_project[0]["services"]["trends"]
    env = service["environment"]
    assert set(env) <= {name.upper() for name in TrendsSettings.model_fields}
    assert {n.upper() for n in TrendsSettings.model_fields if n.startswith("trends_")} <= set(env)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092" and env["USER_AGENT_CONTACT"]
    assert env["REDIS_URL"] == "redis://redis:6379/0" and env["HEALTH_PORT"] == "8098"
    assert service["command"] == ["wikistreams-trends"]
    assert "8098" in " ".join(service["healthcheck"]["test"])
