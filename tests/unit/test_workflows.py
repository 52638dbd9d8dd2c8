"""The GitHub Actions workflows (.github/workflows/) and what they promise, checked offline.

Why: nothing here runs GitHub Actions, so a workflow that GitHub would reject, a job that can hang
for the default six hours, or a chain that lets e2e run before the unit tests passed would only be
found after a push. actionlint (pinned in tools/actionlint.sh, installed from the Go module proxy)
checks the syntax, expressions, action inputs and, with shellcheck on PATH, every `run:` script;
the tests below check this project's own rules on top of it: the job chain, timeouts, pinned
actions, least privilege, that what a workflow names (make targets, files, compose services)
exists, and what the deploy job's host-key step does when run. They do not look for phrases in
the scripts: a test that a string is in a file only restates the file.
"""

from __future__ import annotations

import os
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


def test_ci_runs_on_pull_requests_and_pushes_to_main(ci):
    assert "pull_request" in ci["on"]
    assert ci["on"]["push"]["branches"] == ["main"]


def test_make_targets_the_workflows_run_exist(workflows):
    """CI runs what a developer runs: a renamed Makefile target must not break CI unseen."""
    makefile = (ROOT / "Makefile").read_text()
    defined = set(re.findall(r"^([\w.-]+):", makefile, re.M))
    for name, data in workflows.items():
        for job_id, job in data["jobs"].items():
            for target in re.findall(r"^\s*make\s+([\w-]+)", _steps_text(job), re.M):
                assert target in defined, f"{name}:{job_id}: make {target}"


def test_repository_files_the_workflows_name_exist(workflows):
    """Paths into the repository (scripts, Dockerfiles, pinned versions, samples) still exist."""
    tops = [p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in ("var", ".git")]
    path = re.compile(r"(?<![\w.-])((?:%s)/[\w./-]*\w)" % "|".join(map(re.escape, tops)))
    for name in workflows:
        text = re.sub(r"\w+://\S+", "", (WORKFLOWS / name).read_text())  # not URL paths
        for found in set(path.findall(text)):
            assert (ROOT / found).exists(), f"{name} names {found}"
    e2e = workflows["ci.yml"]["jobs"]["e2e"]
    assert (ROOT / "samples" / e2e["env"]["SAMPLE"]).is_file()
    for entry in workflows["cd.yml"]["jobs"]["images"]["strategy"]["matrix"]["include"]:
        assert (ROOT / entry["file"]).is_file() and (ROOT / entry["context"]).is_dir()


def test_the_compose_smoke_run_starts_services_compose_defines(ci):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = set(compose.get("services", {}))
    for fragment in compose.get("include", []):
        fragment_path = fragment if isinstance(fragment, str) else fragment["path"]
        services |= set(yaml.safe_load((ROOT / fragment_path).read_text()).get("services", {}))
    assert set(ci["jobs"]["e2e"]["env"]["SERVICES"].split()) <= services


def test_the_compose_smoke_run_keeps_logs_on_failure_and_always_cleans_up(ci):
    job = ci["jobs"]["e2e"]
    assert job["if"] == "github.event_name == 'pull_request'"
    steps = job["steps"]
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert uploads and all(s["if"] == "failure()" for s in uploads)
    assert steps[-1]["if"] == "always()", "the last step (teardown) must run after a failure"


def test_native_jobs_have_java_17(ci):
    """CI runs the native stack (Druid, Kafka) on the JDK it is tested with, not the runner's."""
    for job_id in ("integration", "e2e-full"):
        job = ci["jobs"][job_id]
        java = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-java@")]
        assert java and java[0]["with"] == {"distribution": "temurin", "java-version": "17"}


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


def test_cd_deploys_tags_after_the_images_through_the_production_environment(cd):
    assert cd["on"] == {"push": {"tags": ["v*"]}}
    assert cd["concurrency"]["cancel-in-progress"] is False
    deploy = cd["jobs"]["deploy"]
    assert _needs(deploy) == ["images"]
    assert deploy["environment"]["name"] == "production"


def _key_step(cd) -> dict[str, Any]:
    (step,) = [s for s in cd["jobs"]["deploy"]["steps"] if "DEPLOY_KNOWN_HOSTS" in s.get("env", {})]
    return step


def _run_key_step(cd, home: Path, known_hosts: str) -> subprocess.CompletedProcess[str]:
    """The step's script as the runner runs it (`bash -e`), with stand-in secrets."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "DEPLOY_HOST": "vm.example.invalid",
        "DEPLOY_USER": "deploy",
        "DEPLOY_SSH_KEY": "not a real key",
        "DEPLOY_KNOWN_HOSTS": known_hosts,
    }
    script = _key_step(cd)["run"]
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cd_refuses_to_deploy_without_a_pinned_host_key(cd, tmp_path):
    """No trust on first use: a host key scanned by the job would trust whoever answers on
    DEPLOY_HOST at that moment, so a missing DEPLOY_KNOWN_HOSTS fails the job before any SSH."""
    assert _key_step(cd)["env"]["DEPLOY_KNOWN_HOSTS"] == "${{ secrets.DEPLOY_KNOWN_HOSTS }}"
    done = _run_key_step(cd, tmp_path, "")
    assert done.returncode != 0
    assert "::error::" in done.stdout
    assert not (tmp_path / ".ssh").exists(), "nothing written before the refusal"
    steps = cd["jobs"]["deploy"]["steps"]
    ssh_steps = [s for s in steps if re.search(r"\bssh vm\b", str(s.get("run", "")))]
    assert ssh_steps and all(steps.index(s) > steps.index(_key_step(cd)) for s in ssh_steps)


def test_cd_trusts_only_the_pinned_host_key(cd, tmp_path):
    pinned = "vm.example.invalid ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPinnedKeyForTheTest"
    done = _run_key_step(cd, tmp_path, pinned)
    assert done.returncode == 0, done.stdout + done.stderr
    ssh = tmp_path / ".ssh"
    assert (ssh / "known_hosts").read_text() == pinned + "\n"
    config = dict(
        line.strip().split(None, 1) for line in (ssh / "config").read_text().splitlines()[1:]
    )
    assert config["StrictHostKeyChecking"] == "yes"
    assert config["IdentityFile"] == "~/.ssh/deploy_key"


def test_actionlint_passes():
    """Fails (never skips) when actionlint is missing and Go is not there to install it."""
    done = subprocess.run(
        ["bash", str(ACTIONLINT_SH)], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
