"""The GitHub Actions workflows (.github/workflows/) and what they promise, checked offline.

Why: nothing here runs GitHub Actions, so a workflow that GitHub would reject, a job that can hang
for the default six hours, or a chain that lets e2e run before the unit tests passed would only be
found after a push. actionlint (pinned in tools/actionlint.sh, installed from the Go module proxy)
checks the syntax, expressions, action inputs and, with shellcheck on PATH, every `run:` script;
the tests below check this project's own rules on top of it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops_support import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT_SH = ROOT / "tools" / "actionlint.sh"
# The one chain every CI run walks; e2e jobs (smoke on pull requests, full on main) follow it.
CHAIN = ["lint", "unit", "integration", "e2e"]


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict[str, Any]]:
    return {path.name: _load(path) for path in _files()}


@pytest.fixture(scope="module")
def ci(workflows) -> dict[str, Any]:
    return workflows["ci.yml"]


@pytest.fixture(scope="module")
def cd(workflows) -> dict[str, Any]:
    return workflows["cd.yml"]


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job.get("steps", []))


def test_both_workflows_exist_and_parse(workflows):
    assert {"ci.yml", "cd.yml"} <= set(workflows)
    for name, data in workflows.items():
        assert isinstance(data.get("jobs"), dict) and data["jobs"], f"{name}: no jobs"
        assert "on" in data, f"{name}: no trigger"


def test_every_job_has_a_timeout(workflows):
    for name, data in workflows.items():
        for job_id, job in data["jobs"].items():
            timeout = job.get("timeout-minutes")
            assert isinstance(timeout, int) and 0 < timeout <= 180, f"{name}:{job_id}: {timeout}"


def test_ci_jobs_form_the_chain_lint_unit_integration_e2e(ci):
    jobs = ci["jobs"]
    assert _needs(jobs["lint"]) == []
    for before, after in zip(CHAIN, CHAIN[1:]):
        assert _needs(jobs[after]) == [before], f"{after} must need exactly {before}"
    # Every other job is an e2e variant at the end of the same chain.
    for job_id in set(jobs) - set(CHAIN):
        assert job_id.startswith("e2e"), job_id
        assert _needs(jobs[job_id]) == ["integration"], job_id


def test_ci_runs_on_pull_requests_and_main_and_cancels_superseded_pr_runs(ci):
    assert "pull_request" in ci["on"]
    assert ci["on"]["push"]["branches"] == ["main"]
    assert "pull_request" in str(ci["concurrency"]["cancel-in-progress"])
    assert "github.event.pull_request.number" in ci["concurrency"]["group"]


def test_ci_lint_and_tests_run_the_makefile_targets(ci):
    jobs = ci["jobs"]
    assert "make lint" in _steps_text(jobs["lint"])
    assert "make test-unit" in _steps_text(jobs["unit"])
    assert "make test PYTEST_ARGS=\"-m 'not e2e'" in _steps_text(jobs["integration"])
    full = [job for job in jobs.values() if "push" in str(job.get("if", ""))]
    assert len(full) == 1, "one e2e job runs the full suite on pushes to main"
    assert re.search(r"^make test( |$)", _steps_text(full[0]), re.M)


def test_pull_request_e2e_is_a_compose_smoke_run_that_always_cleans_up(ci):
    job = ci["jobs"]["e2e"]
    assert job["if"] == "github.event_name == 'pull_request'"
    steps = job["steps"]
    text = _steps_text(job)
    assert "cp .env.example .env" in text
    assert "docker compose up -d --wait" in text
    assert "/druid/v2/sql" in text
    assert "SSE_URL" in text and "file:///recordings/$SAMPLE" in text
    assert (ROOT / "samples" / job["env"]["SAMPLE"]).is_file()
    for service in ("kafka", "druid-broker", "producer"):
        assert service in job["env"]["SERVICES"].split()
    logs = [s for s in steps if "docker compose logs" in str(s.get("run", ""))]
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert logs and logs[0]["if"] == "failure()"
    assert uploads and uploads[0]["if"] == "failure()"
    assert steps[-1]["run"].startswith("docker compose down -v") and steps[-1]["if"] == "always()"


def test_native_jobs_have_java_17_and_the_debian_packages(ci):
    for job_id in ("integration", "e2e-full"):
        job = ci["jobs"][job_id]
        java = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-java@")]
        assert java and java[0]["with"] == {"distribution": "temurin", "java-version": "17"}
        text = _steps_text(job)
        for package in ("maven", "redis-server", "chromium", "chromium-driver"):
            assert re.search(rf"\s{re.escape(package)}(\s|$)", text), (job_id, package)


def test_caches_cover_pip_maven_and_go(ci):
    paths = set()
    for job in ci["jobs"].values():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/cache@"):
                assert "hashFiles(" in step["with"]["key"], step["with"]["key"]
                paths.update(str(step["with"]["path"]).split())
    assert {"~/.cache/pip", "~/.m2/repository", "~/go/pkg/mod", "~/.cache/go-build"} <= paths


def test_actions_are_pinned_to_a_major_version(workflows):
    for name, data in workflows.items():
        for job_id, job in data["jobs"].items():
            for step in job.get("steps", []):
                uses = step.get("uses")
                if uses:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", uses), f"{name}:{job_id}: {uses}"


def test_permissions_are_least_privilege(workflows):
    for name, data in workflows.items():
        assert data["permissions"] == {"contents": "read"}, name
        for job_id, job in data["jobs"].items():
            granted = job.get("permissions", {})
            assert isinstance(granted, dict), f"{name}:{job_id}: {granted}"
            writes = {k for k, v in granted.items() if v == "write"}
            assert writes <= {"packages"}, f"{name}:{job_id} writes {writes}"
    assert workflows["cd.yml"]["jobs"]["images"]["permissions"]["packages"] == "write"


def test_cd_deploys_tags_through_the_production_environment(cd):
    assert cd["on"] == {"push": {"tags": ["v*"]}}
    assert cd["concurrency"]["cancel-in-progress"] is False
    images = {
        entry["image"]: entry for entry in cd["jobs"]["images"]["strategy"]["matrix"]["include"]
    }
    assert images["producer"]["file"] == "Dockerfile"
    assert images["superset"]["file"] == "superset/Dockerfile"
    for entry in images.values():
        assert (ROOT / entry["file"]).is_file() and (ROOT / entry["context"]).is_dir()
    deploy = cd["jobs"]["deploy"]
    assert _needs(deploy) == ["images"]
    assert deploy["environment"]["name"] == "production"
    text = yaml.safe_dump(deploy)
    for secret in ("DEPLOY_HOST", "DEPLOY_USER", "DEPLOY_SSH_KEY"):
        assert f"secrets.{secret}" in text
    assert "deploy/remote-deploy.sh" in text
    remote = (ROOT / "deploy" / "remote-deploy.sh").read_text()
    assert '"${compose[@]}" pull' in remote and '"${compose[@]}" up -d' in remote
    assert "--wait" in remote


def test_cd_refuses_to_deploy_without_a_pinned_host_key(cd):
    """No trust on first use: a host key scanned by the job would trust whoever answers on
    DEPLOY_HOST at that moment, so a missing DEPLOY_KNOWN_HOSTS fails the job before any SSH."""
    steps = cd["jobs"]["deploy"]["steps"]
    text = _steps_text(cd["jobs"]["deploy"])
    assert "ssh-keyscan" not in text
    (key_step,) = [s for s in steps if "DEPLOY_KNOWN_HOSTS" in str(s.get("run", ""))]
    assert key_step["env"]["DEPLOY_KNOWN_HOSTS"] == "${{ secrets.DEPLOY_KNOWN_HOSTS }}"
    script = key_step["run"]
    refusal = re.search(r'if \[ -z "\$DEPLOY_KNOWN_HOSTS" \]; then\n(.*?)\n\s*fi', script, re.S)
    assert refusal, script
    assert "::error::" in refusal.group(1) and "exit 1" in refusal.group(1)
    # The refusal comes before the key is written, and the only known_hosts is the pinned one.
    assert script.index('DEPLOY_KNOWN_HOSTS" ]') < script.index("deploy_key")
    assert "printf '%s\\n' \"$DEPLOY_KNOWN_HOSTS\" > ~/.ssh/known_hosts" in script
    assert "StrictHostKeyChecking yes" in script
    ssh_steps = [s for s in steps if re.search(r"\bssh vm\b", str(s.get("run", "")))]
    assert ssh_steps and all(steps.index(s) > steps.index(key_step) for s in ssh_steps)


def test_actionlint_passes():
    """Fails (never skips) when actionlint is missing and Go is not there to install it."""
    done = subprocess.run(
        ["bash", str(ACTIONLINT_SH)], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
