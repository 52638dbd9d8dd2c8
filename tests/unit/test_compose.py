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
    # -skip-env-resolution: the producer's `env_file: .env` is read at `up` time and this checkout
    # has no .env (nor may a test create one); test_readme_workflow_loads_in_full covers that path.
    done = _run(tool, env_file, "-f", str(COMPOSE), "-skip-env-resolution", **environ)
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
    assert producer["environment"]["USER_AGENT_CONTACT"]  # read from the producer's env_file


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


@pytest.mark.parametrize("bind_address", [None, "10.1.2.3"])
def test_ports_publish_on_loopback_unless_bind_address_says_otherwise(
    compose_check, tmp_path, bind_address
):
    """With BIND_ADDRESS unset every port is 127.0.0.1 (the `${BIND_ADDRESS:-127.0.0.1}`
    default); with it set, the root file's ports follow it and the fragments stay on loopback."""
    values = {"BIND_ADDRESS": bind_address} if bind_address else {}
    project = _load(compose_check, _env_without(tmp_path, "BIND_ADDRESS", **values))
    root_services = set(yaml.safe_load(COMPOSE.read_text())["services"])
    published = 0
    for name, service in project["services"].items():
        for port in service.get("ports", []):
            published += 1
            expected = bind_address if bind_address and name in root_services else "127.0.0.1"
            assert port.get("host_ip") == expected, f"{name}: {port}"
    assert published >= 6


def test_root_ports_go_through_bind_address():
    for name, service in yaml.safe_load(COMPOSE.read_text())["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"


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


# ── the checker rejects what Docker Compose rejects ─────────────────────────────────────────────


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("\nservices:\n", "\nservise_typo: {}\nservices:\n", "servise_typo"),
        (
            "condition: service_completed_successfully",
            "condition: service_finished",
            "druid-init.condition value must be one of",
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
