"""The Superset config refuses weak secrets, and a real start attempt stops on them.

Why it matters: Superset itself only refuses its own built-in default SECRET_KEY; any other
published value (a compose fallback, the one in .env.example) lets anyone forge sessions
(CVE-2023-27524). The settings are ``wikistreams.superset.config``, imported here by name; the
probes in Superset's venv load ``superset/superset_config.py`` the way Superset does, through
``SUPERSET_CONFIG_PATH``.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "superset" / "superset_config.py"
NATIVE = ROOT / "superset" / "native.sh"
VENV = Path(os.environ.get("SUPERSET_VENV", ROOT / "var" / "superset-venv"))
GOOD_KEY = "q7Yt2m9Lr4Wc8Zp1Xv6Nb3Hs5Jd0Kf7Ge2Ua9Ri4To6Py1"
GOOD_PASSWORD = "Wq8-vN3r-Lp6z"
STRONG = {"SUPERSET_SECRET_KEY": GOOD_KEY, "SUPERSET_ADMIN_PASSWORD": GOOD_PASSWORD}
PASSWORD = {"SUPERSET_ADMIN_PASSWORD": GOOD_PASSWORD}


MODULE = "wikistreams.superset.config"


def load_config(monkeypatch: pytest.MonkeyPatch, **env: str | None):
    """Import the config module fresh with exactly these Superset variables set.

    The settings are computed at import (that is how Superset reads a config), so each case
    drops the cached module first; monkeypatch puts the previous one back afterwards.
    """
    for name in (*STRONG, "SUPERSET_REDIS_URL", "SUPERSET_BEHIND_TLS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return importlib.import_module(MODULE)


def test_loads_with_strong_secrets(monkeypatch):
    config = load_config(monkeypatch, **STRONG)
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
    config = load_config(monkeypatch, **STRONG)
    (dashboard,) = (ROOT / "superset" / "dashboards").glob("*/dashboards/*.yaml")
    refresh = yaml.safe_load(dashboard.read_text(encoding="utf-8"))["metadata"]["refresh_frequency"]
    assert config.DATA_CACHE_CONFIG["CACHE_DEFAULT_TIMEOUT"] == refresh
    assert config.DASHBOARD_AUTO_REFRESH_MODE == "fetch"


def test_redis_cache_when_configured(monkeypatch):
    config = load_config(
        monkeypatch,
        **STRONG,
        SUPERSET_REDIS_URL="redis://superset-redis:6379/1",
    )
    assert config.CACHE_CONFIG["CACHE_TYPE"] == "RedisCache"
    assert config.DATA_CACHE_CONFIG["CACHE_REDIS_URL"] == "redis://superset-redis:6379/1"


def test_csp_allows_no_external_origin(monkeypatch):
    """Superset's default CSP lets the browser reach scarf.sh, map tiles and font CDNs."""
    config = load_config(monkeypatch, **STRONG)
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


def test_repo_env_example_values_are_refused(monkeypatch):
    """Whatever .env.example ships for Superset must never pass as a real secret, by the rules
    alone: the installed package (the image) has no .env.example to read."""
    config = load_config(monkeypatch, **STRONG)
    published = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        if name.strip() in STRONG and value.strip():
            published[name.strip()] = value.strip().strip("'\"")
    assert set(published) == set(STRONG)
    for name, value in published.items():
        monkeypatch.setenv(name, value)
        with pytest.raises(config.InsecureConfigError, match="published placeholder"):
            config.require_secret(name, 1)


@pytest.mark.parametrize(
    "key, bits",
    [
        ("a" * 32, 0),
        ("a" * 64, 0),
        ("ab" * 16, 32),
        ("a" * 39 + "b", 7),
        ("Wikistreams1" * 4, 156),  # many characters, but one word repeated
    ],
)
def test_refuses_a_secret_key_that_is_not_random(monkeypatch, key, bits):
    with pytest.raises(RuntimeError, match="SUPERSET_SECRET_KEY is not random enough") as caught:
        load_config(monkeypatch, SUPERSET_SECRET_KEY=key, SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD)
    assert f"about {bits} bits" in str(caught.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: secrets.token_hex(16),  # 128 bits, 16 symbols: the weakest accepted shape
        lambda: secrets.token_hex(32),
        lambda: secrets.token_urlsafe(48),  # what native.sh init generates
        lambda: base64.b64encode(secrets.token_bytes(42)).decode(),  # openssl rand -base64 42
    ],
)
def test_accepts_random_secret_keys(monkeypatch, make):
    for _ in range(200):
        key = make()
        assert load_config(monkeypatch, SUPERSET_SECRET_KEY=key, **PASSWORD).SECRET_KEY == key


def test_refuses_a_secret_key_equal_to_the_admin_password(monkeypatch):
    """Anyone who knows the admin password could then sign session cookies."""
    with pytest.raises(RuntimeError, match="SUPERSET_SECRET_KEY equals SUPERSET_ADMIN_PASSWORD"):
        load_config(monkeypatch, SUPERSET_SECRET_KEY=GOOD_KEY, SUPERSET_ADMIN_PASSWORD=GOOD_KEY)


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
def test_real_start_with_a_guessable_key_exits_non_zero(tmp_path):
    result = _start_attempt(
        tmp_path, SUPERSET_SECRET_KEY="a" * 32, SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD
    )
    assert result.returncode == 78
    assert "SUPERSET_SECRET_KEY is not random enough" in result.stderr


@needs_venv
def test_real_start_with_superset_default_key_exits_non_zero(tmp_path):
    result = _start_attempt(
        tmp_path,
        SUPERSET_SECRET_KEY="CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET",
        SUPERSET_ADMIN_PASSWORD=GOOD_PASSWORD,
    )
    assert result.returncode != 0
    assert "SUPERSET_SECRET_KEY is a published placeholder" in result.stderr


ECHO_GUNICORN = '#!/bin/sh\necho "KEY=$SUPERSET_SECRET_KEY PW=$SUPERSET_ADMIN_PASSWORD ARGS=$*"\n'


def fake_superset_venv(tmp_path: Path, gunicorn: str = ECHO_GUNICORN) -> Path:
    """A venv whose gunicorn is `gunicorn` (by default it only reports what it was given): tests
    native.sh, not Superset. Its python is the project's, which imports this checkout."""
    venv = tmp_path / "venv"
    if (venv / "bin" / "gunicorn").exists():
        return venv
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "superset").write_text("#!/bin/sh\nexit 0\n")
    (venv / "bin" / "gunicorn").write_text(gunicorn)
    for name in ("superset", "gunicorn"):
        (venv / "bin" / name).chmod(0o755)
    return venv


def _run_with(tmp_path: Path, env_file: str, secrets_file: str, **env: str) -> str:
    (tmp_path / "dot.env").write_text(env_file)
    (tmp_path / "secrets.env").write_text(secrets_file)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPERSET_")}
    clean.update(
        SUPERSET_VENV=str(fake_superset_venv(tmp_path)),
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


EXPORT = ROOT / "superset" / "export.sh"


def test_export_reads_the_servers_secrets_the_same_way(tmp_path):
    """`make superset-export` (export.sh) loads secrets as `native.sh run` does: the
    environment, then .env, then the generated file; the export itself is recorded, not run."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "superset").write_text("#!/bin/sh\nexit 0\n")
    (venv / "bin" / "python").write_text(
        "#!/bin/sh\n"
        'case "$*" in *"wikistreams.superset.cli export "*)\n'
        '  echo "KEY=$SUPERSET_SECRET_KEY PW=$SUPERSET_ADMIN_PASSWORD ARGS=$*"; exit 0 ;;\n'
        "esac\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    for name in ("superset", "python"):
        (venv / "bin" / name).chmod(0o755)
    (tmp_path / "dot.env").write_text(f"SUPERSET_SECRET_KEY='{GOOD_KEY}'\n")
    (tmp_path / "secrets.env").write_text(
        f"SUPERSET_SECRET_KEY={OTHER_KEY}\nSUPERSET_ADMIN_PASSWORD={GOOD_PASSWORD}\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPERSET_")}
    clean.update(
        SUPERSET_VENV=str(venv),
        SUPERSET_HOME=str(tmp_path / "home"),
        SUPERSET_ENV_FILE=str(tmp_path / "dot.env"),
        SUPERSET_SECRETS_FILE=str(tmp_path / "secrets.env"),
        SUPERSET_BUNDLE_DIR=str(tmp_path / "bundle"),
    )
    result = subprocess.run(
        ["bash", str(EXPORT), "--zip", "out.zip"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"KEY={GOOD_KEY} PW={GOOD_PASSWORD}" in result.stdout  # .env beats the generated file
    assert f"cli export {tmp_path / 'bundle'} --zip out.zip" in result.stdout


def _superset_probe(probe: str, cwd: Path | None = None, **env: str):
    """Run `probe` in the real Superset venv's Python, where ``superset.config`` loads our file
    through SUPERSET_CONFIG_PATH exactly as the server does."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPERSET_")}
    clean.update(**STRONG, **env, SUPERSET_CONFIG_PATH=str(CONFIG), PYTHONSAFEPATH="1")
    return subprocess.run(
        [str(VENV / "bin" / "python"), "-c", probe],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


EVENT_LOG_PROBE = """
import logging, sys
logging.basicConfig(stream=sys.stdout, format="%(name)s %(message)s", level=logging.INFO)
from superset import config
config.EVENT_LOGGER.log(1, "ChartDataRestApi.data", 2, 57, 3, None, None, None)
"""


@needs_venv
def test_superset_actions_are_json_log_lines_not_table_rows():
    """Superset's own event logger base accepts ours, and each action is one JSON line."""
    result = _superset_probe(EVENT_LOG_PROBE)
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


# --- TLS deployment (SUPERSET_BEHIND_TLS_PROXY) --------------------------------------------------


def _tls_config(monkeypatch, value: str | None):
    return load_config(
        monkeypatch,
        **STRONG,
        SUPERSET_BEHIND_TLS_PROXY=value,
    )


@pytest.mark.parametrize("value", [None, "", "false", "False", " FALSE "])
def test_plain_http_by_default_keeps_cookies_usable_on_loopback(monkeypatch, value):
    """Natively over http://127.0.0.1 a Secure cookie would never come back: no login."""
    config = _tls_config(monkeypatch, value)
    assert config.BEHIND_TLS_PROXY is False
    assert config.SESSION_COOKIE_SECURE is False
    assert config.TALISMAN_CONFIG["session_cookie_secure"] is False
    assert config.TALISMAN_CONFIG["force_https"] is False
    assert config.TALISMAN_CONFIG["strict_transport_security"] is False
    assert config.TALISMAN_DEV_CONFIG == config.TALISMAN_CONFIG
    # Superset's own defaults apply: no ProxyFix, no https URLs.
    for name in ("ENABLE_PROXY_FIX", "PROXY_FIX_CONFIG", "PREFERRED_URL_SCHEME"):
        assert not hasattr(config, name), name


@pytest.mark.parametrize("value", ["true", "TRUE", " True "])
def test_tls_mode_secure_cookies_https_urls_and_hsts(monkeypatch, value):
    config = _tls_config(monkeypatch, value)
    assert config.BEHIND_TLS_PROXY is True
    assert config.SESSION_COOKIE_SECURE is True
    assert config.REMEMBER_COOKIE_SECURE is True
    assert config.SESSION_COOKIE_SAMESITE == "Lax"
    assert config.PREFERRED_URL_SCHEME == "https"
    # Talisman writes SESSION_COOKIE_SECURE itself: both must agree.
    for talisman in (config.TALISMAN_CONFIG, config.TALISMAN_DEV_CONFIG):
        assert talisman["session_cookie_secure"] is True
        assert talisman["strict_transport_security"] is True
        assert talisman["strict_transport_security_include_subdomains"] is False
        assert talisman["strict_transport_security_preload"] is False
        # The healthcheck and host tools speak plain HTTP to gunicorn: no redirect.
        assert talisman["force_https"] is False
    # The CSP is unchanged by TLS mode.
    plain = _tls_config(monkeypatch, "false")
    csp = "content_security_policy"
    assert config.TALISMAN_CONFIG[csp] == plain.TALISMAN_CONFIG[csp]
    assert config.TALISMAN_CONFIG["content_security_policy_nonce_in"] == ["script-src"]


def test_tls_mode_hsts_matches_caddy(monkeypatch):
    """Superset's HSTS header says what Caddy's does, so the two layers never disagree."""
    config = _tls_config(monkeypatch, "true")
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    expected = f'Strict-Transport-Security "max-age={config.HSTS_MAX_AGE_SECONDS}"'
    assert expected in caddyfile
    assert config.TALISMAN_CONFIG["strict_transport_security_max_age"] == 31536000


def test_tls_mode_trusts_exactly_one_proxy_hop(monkeypatch):
    """Caddy sets X-Forwarded-For/-Proto/-Host; -Port and -Prefix would come from the client."""
    config = _tls_config(monkeypatch, "true")
    assert config.ENABLE_PROXY_FIX is True
    assert config.PROXY_FIX_CONFIG == {
        "x_for": 1,
        "x_proto": 1,
        "x_host": 1,
        "x_port": 0,
        "x_prefix": 0,
    }


@pytest.mark.parametrize("value", ["1", "yes", "on", "ture", "true,false", "0"])
def test_tls_switch_refuses_anything_but_true_or_false(monkeypatch, value):
    with pytest.raises(RuntimeError, match="SUPERSET_BEHIND_TLS_PROXY must be 'true' or 'false'"):
        _tls_config(monkeypatch, value)


PROXY_FIX_PROBE = """
from werkzeug.middleware.proxy_fix import ProxyFix
from superset import config
def app(environ, start_response):
    print(environ["wsgi.url_scheme"], environ["REMOTE_ADDR"], environ["HTTP_HOST"])
    print("prefix=" + environ.get("SCRIPT_NAME", ""))
ProxyFix(app, **config.PROXY_FIX_CONFIG)({
    "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "HTTP_HOST": "127.0.0.1:8088",
    "HTTP_X_FORWARDED_FOR": "198.51.100.7", "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_X_FORWARDED_HOST": "superset.test", "HTTP_X_FORWARDED_PORT": "1234",
    "HTTP_X_FORWARDED_PREFIX": "/evil",
}, None)
print(config.ENABLE_PROXY_FIX)
"""


@needs_venv
def test_proxy_fix_config_is_werkzeugs(tmp_path):
    """The keys are ProxyFix's own (Superset passes PROXY_FIX_CONFIG as keyword arguments)."""
    result = _superset_probe(PROXY_FIX_PROBE, cwd=tmp_path, SUPERSET_BEHIND_TLS_PROXY="true")
    assert result.returncode == 0, result.stderr[-2000:]
    loaded, *output = result.stdout.splitlines()
    assert loaded == f"Loaded your LOCAL configuration at [{CONFIG}]"  # Superset's own loader
    # Port and prefix headers (which Caddy passes through from the client) are ignored.
    assert " ".join(output).split() == ["https", "198.51.100.7", "superset.test", "prefix=", "True"]


@needs_venv
def test_real_start_with_invalid_tls_switch_exits_non_zero(tmp_path):
    result = _start_attempt(
        tmp_path,
        **STRONG,
        SUPERSET_BEHIND_TLS_PROXY="yes",
    )
    assert result.returncode == 78
    assert "SUPERSET_BEHIND_TLS_PROXY must be 'true' or 'false', not 'yes'" in result.stderr


# --- gunicorn command lines ----------------------------------------------------------------------


def _dockerfile_cmd() -> list[str]:
    """The JSON (exec form) CMD of superset/Dockerfile."""
    text = (ROOT / "superset" / "Dockerfile").read_text(encoding="utf-8")
    (cmd,) = [line for line in text.replace("\\\n", " ").splitlines() if line.startswith("CMD ")]
    return json.loads(cmd[len("CMD ") :])


def test_gunicorn_keeps_its_default_request_limits(tmp_path):
    """0 would mean unlimited request lines and header fields: keep gunicorn's 4094/8190 bytes."""
    out = _run_with(
        tmp_path, f"SUPERSET_SECRET_KEY={GOOD_KEY}\n", "", SUPERSET_ADMIN_PASSWORD="x" * 12
    )
    native = out.split("ARGS=", 1)[1].split()
    docker = _dockerfile_cmd()
    assert docker[0] == "gunicorn"
    for argv in (native, docker[1:]):
        assert argv[-1] == "superset.app:create_app()"
        assert not [a for a in argv if a.startswith("--limit-request")], argv
    # Otherwise the container runs what native.sh runs (the measured tuning), bind aside.
    bind = native.index("--bind")
    assert native[:bind] + native[bind + 2 :] == [
        a for i, a in enumerate(docker[1:]) if i not in (bind, bind + 1)
    ]


# --- admin password never in argv ----------------------------------------------------------------

INIT = ROOT / "superset" / "init_superset.sh"
FAKE_SUPERSET_PACKAGE = {
    "__init__.py": """
import json, os, types

STATE = os.environ["FAKE_SUPERSET_STATE"]


def _load():
    if not os.path.exists(STATE):
        return {"users": {}, "roles": []}
    with open(STATE) as f:
        return json.load(f)


def _save(state):
    with open(STATE, "w") as f:
        json.dump(state, f)


class _SecurityManager:
    auth_role_admin = "Admin"

    def find_user(self, username=None, email=None):
        for user in _load()["users"].values():
            if user["username"] == username or (email and user["email"] == email):
                return types.SimpleNamespace(id=user["username"], **user)
        return None

    def reset_password(self, userid, password):
        state = _load()
        state["users"][userid]["password"] = password
        _save(state)

    def find_role(self, name):
        return name if name in _load()["roles"] else None

    def add_role(self, name):
        state = _load()
        state["roles"].append(name)
        _save(state)
        return name

    def add_user(self, username, first_name, last_name, email, role=None, password=""):
        state = _load()
        state["users"][username] = {
            "username": username, "email": email, "role": role, "password": password
        }
        _save(state)
        return state["users"][username]


security_manager = _SecurityManager()
""",
    # Where the real package keeps its Flask extensions (superset/extensions/__init__.py).
    "extensions.py": """
from superset import security_manager
""",
    "app.py": """
import contextlib


class _App:
    @contextlib.contextmanager
    def app_context(self):
        yield


def create_app():
    return _App()
""",
}


def _run_init(tmp_path: Path, password: str) -> subprocess.CompletedProcess:
    """init_superset.sh with a recording `superset` and Python; the admin code runs for real
    against a stand-in ``superset`` package (state in a JSON file)."""
    fake_bin, package = tmp_path / "bin", tmp_path / "pkg" / "superset"
    if not fake_bin.exists():
        fake_bin.mkdir()
        package.mkdir(parents=True)
        for name, source in FAKE_SUPERSET_PACKAGE.items():
            (package / name).write_text(source)
        (fake_bin / "superset").write_text(
            '#!/bin/sh\nprintf \'superset %s\\n\' "$*" >>"$ARGV_LOG"\n'
        )
        # The bundle import is not under test: recorded, not run.
        (fake_bin / "python").write_text(
            '#!/bin/sh\nprintf \'python %s\\n\' "$*" >>"$ARGV_LOG"\n'
            'case "$*" in *"wikistreams.superset.cli import "*) exit 0 ;; esac\n'
            f'exec "{sys.executable}" "$@"\n'
        )
        for name in ("superset", "python"):
            (fake_bin / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPERSET_", "PYTHON"))}
    env.update(
        PATH=f"{fake_bin}:{env['PATH']}",
        PYTHONPATH=str(tmp_path / "pkg"),
        ARGV_LOG=str(tmp_path / "argv.log"),
        FAKE_SUPERSET_STATE=str(tmp_path / "state.json"),
        SUPERSET_ADMIN_PASSWORD=password,
        SUPERSET_HOME=str(tmp_path / "home"),
    )
    # From the repository root, whose superset/ folder must not shadow the (stand-in) package.
    return subprocess.run(
        ["bash", str(INIT)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_init_creates_admin_without_password_in_argv(tmp_path):
    result = _run_init(tmp_path, GOOD_PASSWORD)
    assert result.returncode == 0, result.stderr
    argv_log = (tmp_path / "argv.log").read_text()
    assert GOOD_PASSWORD not in argv_log  # what `ps` would have shown
    assert "superset db upgrade" in argv_log and "superset init" in argv_log
    assert "superset fab" not in argv_log
    assert "python -m wikistreams.superset.cli create-admin --username admin" in argv_log
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["users"] == {
        "admin": {
            "username": "admin",
            "email": "admin@wikistreams.invalid",
            "role": "Admin",
            "password": GOOD_PASSWORD,  # from the environment
        }
    }
    assert "created admin 'admin'" in result.stderr


def _admin_password(tmp_path: Path) -> str:
    return json.loads((tmp_path / "state.json").read_text())["users"]["admin"]["password"]


def test_init_sets_a_changed_admin_password(tmp_path):
    """Changing SUPERSET_ADMIN_PASSWORD changes the account's password at the next init."""
    assert _run_init(tmp_path, GOOD_PASSWORD).returncode == 0
    result = _run_init(tmp_path, "Another-pass-456")
    assert result.returncode == 0, result.stderr
    assert "password set from SUPERSET_ADMIN_PASSWORD (changed)" in result.stderr
    assert _admin_password(tmp_path) == "Another-pass-456"
    assert "Another-pass-456" not in (tmp_path / "argv.log").read_text()
    record = tmp_path / "home" / "admin-password.applied"
    assert record.stat().st_mode & 0o777 == 0o600
    assert "Another-pass-456" not in record.read_text()


def test_init_keeps_a_password_changed_in_the_ui(tmp_path):
    """Unchanged SUPERSET_ADMIN_PASSWORD: a password set in Superset's UI since stays."""
    assert _run_init(tmp_path, GOOD_PASSWORD).returncode == 0
    state = json.loads((tmp_path / "state.json").read_text())
    state["users"]["admin"]["password"] = "Set-in-the-UI-789"
    (tmp_path / "state.json").write_text(json.dumps(state))
    result = _run_init(tmp_path, GOOD_PASSWORD)
    assert result.returncode == 0, result.stderr
    assert "unchanged since the last init, so its password is left as is" in result.stderr
    assert _admin_password(tmp_path) == "Set-in-the-UI-789"


def test_init_refuses_without_admin_password(tmp_path):
    result = _run_init(tmp_path, "")
    assert result.returncode != 0
    assert "SUPERSET_ADMIN_PASSWORD must be set" in result.stderr
    assert not (tmp_path / "state.json").exists()
