"""superset/superset_config.py refuses weak secrets, and a real start attempt stops on them.

Why it matters: Superset itself only refuses its own built-in default SECRET_KEY; any other
published value (a compose fallback, the one in .env.example) lets anyone forge sessions
(CVE-2023-27524). The config is loaded by file path because the project's ``superset/`` folder
must not shadow the real ``superset`` package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "superset" / "superset_config.py"
NATIVE = ROOT / "superset" / "native.sh"
VENV = Path(os.environ.get("SUPERSET_VENV", ROOT / "var" / "superset-venv"))
GOOD_KEY = "q7Yt2m9Lr4Wc8Zp1Xv6Nb3Hs5Jd0Kf7Ge2Ua9Ri4To6Py1"
GOOD_PASSWORD = "Wq8-vN3r-Lp6z"


def load_config(monkeypatch: pytest.MonkeyPatch, **env: str | None):
    """Import the config module fresh with exactly these Superset variables set."""
    for name in ("SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD", "SUPERSET_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(f"superset_config_{uuid.uuid4().hex}", CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loads_with_strong_secrets(monkeypatch):
    config = load_config(
        monkeypatch, SUPERSET_SECRET_KEY=GOOD_KEY, SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD
    )
    assert config.SECRET_KEY == GOOD_KEY
    assert set(config.LANGUAGES) == {"en", "ko"}
    assert config.SQLALCHEMY_DATABASE_URI.startswith("sqlite:///")
    assert config.SUPERSET_WEBSERVER_ADDRESS == "127.0.0.1"
    # Natively every cache is a directory all gunicorn workers share.
    caches = ("CACHE_CONFIG", "DATA_CACHE_CONFIG", "FILTER_STATE_CACHE_CONFIG")
    for name in caches + ("EXPLORE_FORM_DATA_CACHE_CONFIG",):
        cache = getattr(config, name)
        assert cache["CACHE_TYPE"] == "FileSystemCache", name
        assert Path(cache["CACHE_DIR"]).parent == Path(config.DATA_DIR) / "cache", name
    assert len({getattr(config, name)["CACHE_DIR"] for name in caches}) == len(caches)


def test_chart_results_live_one_dashboard_refresh(monkeypatch):
    """Viewers in one refresh period share a result; the next refresh reads fresh data."""
    config = load_config(
        monkeypatch, SUPERSET_SECRET_KEY=GOOD_KEY, SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD
    )
    (dashboard,) = (ROOT / "superset" / "dashboards").glob("*/dashboards/*.yaml")
    refresh = yaml.safe_load(dashboard.read_text(encoding="utf-8"))["metadata"]["refresh_frequency"]
    assert config.DATA_CACHE_CONFIG["CACHE_DEFAULT_TIMEOUT"] == refresh
    assert config.DASHBOARD_AUTO_REFRESH_MODE == "fetch"


def test_redis_cache_when_configured(monkeypatch):
    config = load_config(
        monkeypatch,
        SUPERSET_SECRET_KEY=GOOD_KEY,
        SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD,
        SUPERSET_REDIS_URL="redis://superset-redis:6379/1",
    )
    assert config.CACHE_CONFIG["CACHE_TYPE"] == "RedisCache"
    assert config.DATA_CACHE_CONFIG["CACHE_REDIS_URL"] == "redis://superset-redis:6379/1"


def test_csp_allows_no_external_origin(monkeypatch):
    """Superset's default CSP lets the browser reach scarf.sh, map tiles and font CDNs."""
    config = load_config(
        monkeypatch, SUPERSET_SECRET_KEY=GOOD_KEY, SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD
    )
    assert config.TALISMAN_ENABLED
    for sources in config.TALISMAN_CONFIG["content_security_policy"].values():
        for source in [sources] if isinstance(sources, str) else sources:
            assert "://" not in source and "." not in source.strip("'"), source


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET",
        "\x02\x01thisismyscretkey\x01\x02\\e\\y\\y\\h",
        "thisISaSECRET_1234",
        "changeme",
        "CHANGE_ME_please_use_a_long_random_value_here_0123",
        "too-short-but-random-9f3",
    ],
)
def test_refuses_missing_or_placeholder_secret_key(monkeypatch, key):
    with pytest.raises(RuntimeError, match="Refusing to start: SUPERSET_SECRET_KEY"):
        load_config(monkeypatch, SUPERSET_SECRET_KEY=key, SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD)


@pytest.mark.parametrize("password", [None, "admin", "changeme", "short"])
def test_refuses_missing_or_placeholder_admin_password(monkeypatch, password):
    with pytest.raises(RuntimeError, match="Refusing to start: SUPERSET_ADMIN_PASSWORD"):
        load_config(monkeypatch, SUPERSET_SECRET_KEY=GOOD_KEY, SUPERSET_ADMIN_PASSWORD=password)


def test_refuses_values_published_in_env_example(monkeypatch, tmp_path):
    config = load_config(
        monkeypatch, SUPERSET_SECRET_KEY=GOOD_KEY, SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD
    )
    example = tmp_path / ".env.example"
    example.write_text(f"# sample\nSUPERSET_SECRET_KEY='{GOOD_KEY}'\nOTHER=1\n", encoding="utf-8")
    monkeypatch.setenv("SUPERSET_SECRET_KEY", GOOD_KEY)
    with pytest.raises(config.InsecureConfigError, match="published placeholder"):
        config.require_secret("SUPERSET_SECRET_KEY", 32, env_example=example)


def test_repo_env_example_values_are_refused(monkeypatch):
    """Whatever .env.example ships for Superset must never pass as a real secret."""
    example = ROOT / ".env.example"
    if not example.is_file():
        pytest.skip(".env.example not written yet")
    config = load_config(
        monkeypatch, SUPERSET_SECRET_KEY=GOOD_KEY, SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD
    )
    for line in example.read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        if name.strip() in ("SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD") and value.strip():
            monkeypatch.setenv(name.strip(), value.strip().strip("'\""))
            with pytest.raises(config.InsecureConfigError):
                config.require_secret(name.strip(), 1)


def _start_attempt(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the real native launcher in the foreground, as a supervisor would."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPERSET_")}
    clean.update(
        SUPERSET_ENV_FILE=str(tmp_path / "no.env"),
        SUPERSET_SECRETS_FILE=str(tmp_path / "no-secrets.env"),
        SUPERSET_HOME=str(tmp_path / "home"),
        SUPERSET_PORT="18089",
        **env,
    )
    return subprocess.run(
        ["bash", str(NATIVE), "run"], env=clean, capture_output=True, text=True, timeout=120
    )


needs_venv = pytest.mark.skipif(
    not (VENV / "bin" / "gunicorn").exists(), reason="superset/native.sh install not run"
)


@needs_venv
def test_real_start_without_secrets_exits_non_zero(tmp_path):
    result = _start_attempt(tmp_path)
    assert result.returncode != 0
    assert "Refusing to start: SUPERSET_SECRET_KEY is not set" in result.stderr


@needs_venv
def test_real_start_with_superset_default_key_exits_non_zero(tmp_path):
    result = _start_attempt(
        tmp_path,
        SUPERSET_SECRET_KEY="CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET",
        SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD,
    )
    assert result.returncode != 0
    assert "SUPERSET_SECRET_KEY is a published placeholder" in result.stderr


def _fake_venv(tmp_path: Path) -> Path:
    """A venv whose gunicorn only reports what it was given: tests native.sh, not Superset."""
    venv = tmp_path / "venv"
    if (venv / "bin" / "gunicorn").exists():
        return venv
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "superset").write_text("#!/bin/sh\nexit 0\n")
    (venv / "bin" / "gunicorn").write_text(
        '#!/bin/sh\necho "KEY=$SUPERSET_SECRET_KEY PW=$SUPERSET_ADMIN_PASSWORD ARGS=$*"\n'
    )
    for name in ("superset", "gunicorn"):
        (venv / "bin" / name).chmod(0o755)
    return venv


def _run_with(tmp_path: Path, env_file: str, secrets_file: str, **env: str) -> str:
    (tmp_path / "dot.env").write_text(env_file)
    (tmp_path / "secrets.env").write_text(secrets_file)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPERSET_")}
    clean.update(
        SUPERSET_VENV=str(_fake_venv(tmp_path)),
        SUPERSET_HOME=str(tmp_path / "home"),
        SUPERSET_ENV_FILE=str(tmp_path / "dot.env"),
        SUPERSET_SECRETS_FILE=str(tmp_path / "secrets.env"),
        **env,
    )
    result = subprocess.run(
        ["bash", str(NATIVE), "run"], env=clean, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


OTHER_KEY = "Zr5Tq1Vw9Yb2Nc6Md0Lf3Kg8Jh4Hp7Sx5Ae1Do9Iu2Oy6Qw"


def test_native_env_precedence_environment_then_dotenv_then_generated(tmp_path):
    dotenv = f"SUPERSET_SECRET_KEY='{GOOD_KEY}'\nSUPERSET_ADMIN_PASSWORD={GOOD_PASSWORD}\n"
    generated = f"SUPERSET_SECRET_KEY={OTHER_KEY}\nSUPERSET_ADMIN_PASSWORD=Other-pass-123\n"
    out = _run_with(tmp_path, dotenv, generated)
    assert f"KEY={GOOD_KEY} PW={GOOD_PASSWORD}" in out  # .env beats the generated file
    out = _run_with(tmp_path, "", generated)
    assert f"KEY={OTHER_KEY} PW=Other-pass-123" in out
    out = _run_with(tmp_path, dotenv, generated, SUPERSET_SECRET_KEY=OTHER_KEY)
    assert f"KEY={OTHER_KEY} PW={GOOD_PASSWORD}" in out  # the environment beats both


def test_native_run_binds_loopback_only(tmp_path):
    out = _run_with(
        tmp_path, f"SUPERSET_SECRET_KEY={GOOD_KEY}\n", "", SUPERSET_ADMIN_PASSWORD="x" * 12
    )
    assert "--bind 127.0.0.1:8088" in out


EVENT_LOG_PROBE = """
import importlib.util, logging, sys
logging.basicConfig(stream=sys.stdout, format="%(name)s %(message)s", level=logging.INFO)
spec = importlib.util.spec_from_file_location("superset_config", sys.argv[1])
config = importlib.util.module_from_spec(spec)
spec.loader.exec_module(config)
config.EVENT_LOGGER.log(1, "ChartDataRestApi.data", 2, 57, 3, None, None, None)
"""


@needs_venv
def test_superset_actions_are_json_log_lines_not_table_rows():
    """Superset's own event logger base accepts ours, and each action is one JSON line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERSET_")}
    env.update(SUPERSET_SECRET_KEY=GOOD_KEY, SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD)
    result = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", EVENT_LOG_PROBE, str(CONFIG)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("superset.event ")]
    assert json.loads(line.split(" ", 1)[1]) == {
        "event": "superset_action",
        "action": "ChartDataRestApi.data",
        "user_id": 1,
        "dashboard_id": 2,
        "slice_id": 3,
        "duration_ms": 57,
    }
