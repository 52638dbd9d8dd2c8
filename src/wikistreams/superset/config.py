"""WikiStreams' Superset configuration, shared by the native install and the container.

Superset reads ``superset/superset_config.py`` through ``SUPERSET_CONFIG_PATH``; that file only
re-exports this module, so the logic lives in the installed package and is imported by name
everywhere (Superset, ``wikistreams-superset check-config``, the unit tests), never by file path.
Everything that differs between a laptop and compose comes from the environment, so the same
module serves both. It needs only the standard library (plus Superset's event logger base when
Superset is there): the unit tests import it in the project's own virtualenv, where Superset is
not installed, to prove it refuses weak secrets before Superset ever sees them.

Why refuse instead of warn: a Superset SECRET_KEY signs session cookies and encrypts stored
database passwords. Superset itself refuses only its own built-in default; any other well-known
key (a compose fallback, a value copied from ``.env.example``) lets anyone forge an admin session
(CVE-2023-27524). So any placeholder, missing, short or guessable value stops the process here,
and so does a key equal to the admin password (whoever knows one could sign cookies).

Nothing here reads the checkout: the same rules hold in the image, where the package sits in
site-packages. The unit tests prove that every value ``.env.example`` publishes is refused.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from wikistreams.superset.home import superset_home

# Values that are public and therefore never secret: Superset's built-in defaults (current and
# historical, the keys CVE-2023-27524 lists) and the usual placeholders; the pattern below covers
# the CHANGE_ME family that .env.example uses.
KNOWN_PLACEHOLDERS = frozenset(
    {
        "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET",
        "\x02\x01thisismyscretkey\x01\x02\\e\\y\\y\\h",
        "thisISaSECRET_1234",
        "YOUR_OWN_RANDOM_GENERATED_SECRET_KEY",
        "TEST_NON_DEV_SECRET",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "admin",
        "superset",
    }
)
PLACEHOLDER_PATTERN = re.compile(r"change[_\- ]?me|replace[_\- ]?me|placeholder|example|<.*>", re.I)
MIN_SECRET_KEY_LENGTH = 32
# Estimated from the key's own characters (below). A random key is far above it: 32 hex digits
# (128 bits) never scored under 91 in 100,000 draws; 32 x "a" scores 0, "ab" x 16 scores 32.
MIN_SECRET_KEY_BITS = 80
MIN_ADMIN_PASSWORD_LENGTH = 10


class InsecureConfigError(RuntimeError):
    """Raised at import time so ``superset``/gunicorn exit non-zero with the reason."""


def _hint(name: str) -> str:
    return (
        f"Set {name} to a long random value, e.g. `openssl rand -base64 42`, in .env or the "
        "environment (for native runs superset/native.sh init generates one in "
        "var/data/superset/secrets.env)."
    )


def require_secret(name: str, min_length: int) -> str:
    """Return the environment variable ``name`` or raise when it is missing or a placeholder."""
    value = os.environ.get(name, "")
    if not value.strip():
        raise InsecureConfigError(f"Refusing to start: {name} is not set. {_hint(name)}")
    published = KNOWN_PLACEHOLDERS
    if value in published or value.lower() in published or PLACEHOLDER_PATTERN.search(value):
        raise InsecureConfigError(
            f"Refusing to start: {name} is a published placeholder, not a secret. {_hint(name)}"
        )
    if len(value) < min_length:
        raise InsecureConfigError(
            f"Refusing to start: {name} is shorter than {min_length} characters. {_hint(name)}"
        )
    return value


def estimated_bits(value: str) -> float:
    """Length times the Shannon entropy of the value's own character frequencies.

    An optimistic estimate (it cannot see words or sequences), so it only catches what is
    plainly not random: few distinct characters, or one character most of the time."""
    return sum(n * math.log2(len(value) / n) for n in Counter(value).values())


def is_repetition(value: str) -> bool:
    """True for a shorter string repeated ("password" x 4): as guessable as that string."""
    return len(value) > 1 and value in (value + value)[1:-1]


def require_secret_key() -> str:
    """SUPERSET_SECRET_KEY, refused when ``require_secret`` refuses it or when it is plainly
    not random enough to sign cookies."""
    name = "SUPERSET_SECRET_KEY"
    key = require_secret(name, MIN_SECRET_KEY_LENGTH)
    bits = estimated_bits(key)
    if bits < MIN_SECRET_KEY_BITS or is_repetition(key):
        raise InsecureConfigError(
            f"Refusing to start: {name} is not random enough (about {bits:.0f} bits estimated "
            f"from its characters, at least {MIN_SECRET_KEY_BITS} needed, and no repeated "
            f"pattern). {_hint(name)}"
        )
    return key


def require_distinct(key: str, admin_password: str) -> None:
    """Whoever knows the admin password must not be able to sign session cookies."""
    if key == admin_password:
        raise InsecureConfigError(
            "Refusing to start: SUPERSET_SECRET_KEY equals SUPERSET_ADMIN_PASSWORD, so whoever "
            f"knows the password could sign session cookies. {_hint('SUPERSET_SECRET_KEY')}"
        )


SECRET_KEY = require_secret_key()
# Not used by Superset itself: init_superset.sh creates the admin from it. Checked here too so a
# server never runs next to an admin account whose password is a placeholder.
ADMIN_PASSWORD = require_secret("SUPERSET_ADMIN_PASSWORD", MIN_ADMIN_PASSWORD_LENGTH)
require_distinct(SECRET_KEY, ADMIN_PASSWORD)

# --- metadata database -------------------------------------------------------------------------
# PostgreSQL in compose (SUPERSET_DATABASE_URI=postgresql+psycopg2://...), SQLite under var/
# natively: one file, nothing else to run, kept across restarts.
DATA_DIR = str(superset_home())
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "SUPERSET_DATABASE_URI", f"sqlite:///{Path(DATA_DIR) / 'superset.db'}"
)

# --- caches ------------------------------------------------------------------------------------
# Redis in compose; natively a cache directory shared by the gunicorn workers.
REDIS_URL = os.environ.get("SUPERSET_REDIS_URL", "")
# A chart result lives for one refresh period of the dashboard (its `refresh_frequency`): viewers
# within that minute share it, and the next refresh reads fresh data. Auto-refresh asks through
# the cache ("fetch") instead of forcing a query per viewer per chart ("force", the default).
DATA_CACHE_SECONDS = 60
DASHBOARD_AUTO_REFRESH_MODE = "fetch"
if REDIS_URL:
    _redis_cache = {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": REDIS_URL,
        "CACHE_DEFAULT_TIMEOUT": 300,
    }
    CACHE_CONFIG = {**_redis_cache, "CACHE_KEY_PREFIX": "superset_meta_"}
    DATA_CACHE_CONFIG = {
        **_redis_cache,
        "CACHE_KEY_PREFIX": "superset_data_",
        "CACHE_DEFAULT_TIMEOUT": DATA_CACHE_SECONDS,
    }
    FILTER_STATE_CACHE_CONFIG = {**_redis_cache, "CACHE_KEY_PREFIX": "superset_filter_"}
    EXPLORE_FORM_DATA_CACHE_CONFIG = {**_redis_cache, "CACHE_KEY_PREFIX": "superset_explore_"}
else:
    # Directories shared by all gunicorn workers: a chart computed by one is a hit in all, and a
    # filter state saved through one worker is found by the next request on another.
    def _file_cache(name: str, seconds: int) -> dict[str, Any]:
        return {
            "CACHE_TYPE": "FileSystemCache",
            "CACHE_DIR": str(Path(DATA_DIR) / "cache" / name),
            "CACHE_THRESHOLD": 2000,
            "CACHE_DEFAULT_TIMEOUT": seconds,
        }

    CACHE_CONFIG = _file_cache("meta", 300)
    DATA_CACHE_CONFIG = _file_cache("data", DATA_CACHE_SECONDS)
    FILTER_STATE_CACHE_CONFIG = _file_cache("filter_state", 86400)
    EXPLORE_FORM_DATA_CACHE_CONFIG = _file_cache("explore", 86400)

# --- locale and time ---------------------------------------------------------------------------
# Wikidata labels are shown in Korean and English; the UI offers both languages.
BABEL_DEFAULT_LOCALE = "en"
LANGUAGES = {
    "en": {"flag": "us", "name": "English"},
    "ko": {"flag": "kr", "name": "Korean"},
}
# Druid stores UTC and the contracts say UTC everywhere: never shift timestamps in the UI.
DEFAULT_TIMEZONE = "UTC"

# --- features ----------------------------------------------------------------------------------
FEATURE_FLAGS = {
    "DASHBOARD_NATIVE_FILTERS": True,
    "DASHBOARD_CROSS_FILTERS": True,
    "DASHBOARD_NATIVE_FILTERS_SET": True,
    "ENABLE_TEMPLATE_PROCESSING": False,
}

# --- web server --------------------------------------------------------------------------------
# Natively Superset listens on loopback only (native.sh passes the bind address to gunicorn);
# these are used by `superset run` and by the URL Superset prints.
SUPERSET_WEBSERVER_ADDRESS = os.environ.get("SUPERSET_BIND_HOST", "127.0.0.1")
SUPERSET_WEBSERVER_PORT = int(os.environ.get("SUPERSET_PORT", "8088"))
# Druid answers within seconds; a minute protects the 2-core machine from runaway queries.
SUPERSET_WEBSERVER_TIMEOUT = 60
SQLLAB_TIMEOUT = 60
ROW_LIMIT = 10000
# Content Security Policy limited to Superset's own origin. Besides the usual XSS protection this
# is what keeps the browser on loopback: Superset 6.1's navbar embeds a telemetry pixel (scarf.sh)
# and its default CSP allows map tiles and web fonts from the internet; none of them may be
# contacted from this project's machines. Plain HTTP on loopback, so no HTTPS redirect and no
# secure-only cookies (they would lock the browser out); the TLS section below changes that when
# Superset sits behind the deployment's TLS proxy.
TALISMAN_ENABLED = True
TALISMAN_CONFIG = {
    "content_security_policy": {
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'", "data:"],
        "script-src": ["'self'", "'strict-dynamic'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": False,
}
SESSION_COOKIE_SECURE = False
SESSION_COOKIE_SAMESITE = "Lax"
WTF_CSRF_ENABLED = True
# Example dashboards would only clutter the one dashboard this project ships.
SUPERSET_LOAD_EXAMPLES = False

# --- TLS deployment ----------------------------------------------------------------------------
# SUPERSET_BEHIND_TLS_PROXY=true when browsers reach Superset only through a TLS-terminating
# reverse proxy (Caddy in deploy/compose.production.yml, one hop); false (the default) for the
# native install and the local compose stack, served over plain HTTP on loopback.
TLS_PROXY_SWITCH = "SUPERSET_BEHIND_TLS_PROXY"
# Caddy's value (deploy/Caddyfile), so both layers announce the same policy.
HSTS_MAX_AGE_SECONDS = 31536000


def env_switch(name: str, default: bool = False) -> bool:
    """``true``/``false`` (any case; unset or empty = ``default``); anything else is refused.

    Refused rather than read as false: a typo such as ``ture`` in the TLS deployment would
    otherwise silently send session cookies without the Secure flag.
    """
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if not value:
        return default
    if value not in ("true", "false"):
        raise InsecureConfigError(
            f"Refusing to start: {name} must be 'true' or 'false', not {raw!r}. Set it to true "
            "only when Superset is reached through the TLS reverse proxy (docs/deploy.md)."
        )
    return value == "true"


BEHIND_TLS_PROXY = env_switch(TLS_PROXY_SWITCH)
if BEHIND_TLS_PROXY:
    # Session (and remember-me) cookies only over HTTPS; links Superset builds use https.
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"
    # The request's client address, scheme and host as Caddy received them, trusting exactly one
    # hop. Caddy sets X-Forwarded-For/-Proto/-Host (overwriting what a client sent) but not
    # X-Forwarded-Port or -Prefix, which it passes through from the client: trusting those would
    # let any visitor choose the port and path prefix of the URLs Superset generates.
    ENABLE_PROXY_FIX = True
    PROXY_FIX_CONFIG = {"x_for": 1, "x_proto": 1, "x_host": 1, "x_port": 0, "x_prefix": 0}
    # HSTS from Superset too, identical to Caddy's header (which replaces it on the way out), so
    # the policy holds whichever TLS proxy is put in front. No includeSubDomains or preload: this
    # project owns one host name, not the domain. No HTTPS redirect (force_https): Caddy serves
    # only :443, and the container healthcheck and tools on the host talk plain HTTP to gunicorn
    # on loopback, which a redirect would break.
    TALISMAN_CONFIG = {
        **TALISMAN_CONFIG,
        "session_cookie_secure": True,
        "strict_transport_security": True,
        "strict_transport_security_max_age": HSTS_MAX_AGE_SECONDS,
        "strict_transport_security_include_subdomains": False,
        "strict_transport_security_preload": False,
    }
else:
    # Plain HTTP: browsers ignore HSTS there anyway; never send it (Talisman would, with
    # includeSubDomains, to any request carrying a forged X-Forwarded-Proto: https).
    TALISMAN_CONFIG = {**TALISMAN_CONFIG, "strict_transport_security": False}
TALISMAN_DEV_CONFIG = TALISMAN_CONFIG

# --- event log ---------------------------------------------------------------------------------
# Superset's default DBEventLogger commits one row to the metadata database per request. Under
# 10 dashboard viewers on 2 cores that was ~28% of a cached chart request's CPU (py-spy) and
# halved the cached requests/s (docs/capacity.md). One JSON line per action on the log instead:
# the log store keeps it, at the cost of Superset's "recent activity" lists, which read that table.


def json_event_logger() -> Any:
    """Superset's actions (chart data, dashboard views) as JSON log lines, not table rows.

    None when Superset is not installed (the project's own venv): nothing to configure there.
    """
    try:
        from superset.utils.log import AbstractEventLogger
    except ImportError:
        return None

    # Superset is untyped here (ignore_missing_imports): its base class is Any to mypy.
    class JsonEventLogger(AbstractEventLogger):  # type: ignore[misc]
        def log(
            self,
            user_id: int | None,
            action: str,
            dashboard_id: int | None,
            duration_ms: int | None,
            slice_id: int | None,
            *args: Any,
            **kwargs: Any,
        ) -> None:
            record = {
                "event": "superset_action",
                "action": action,
                "user_id": user_id,
                "dashboard_id": dashboard_id,
                "slice_id": slice_id,
                "duration_ms": duration_ms,
            }
            logging.getLogger("superset.event").info(json.dumps(record, default=str))

    return JsonEventLogger()


_event_logger = json_event_logger()
if _event_logger is not None:
    EVENT_LOGGER = _event_logger
