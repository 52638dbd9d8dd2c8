"""Locust: viewers of "Wikimedia live trends" loading it the way a browser does.

    PYTHONPATH=. locust -f benchmarks/capacity/locustfile.py --headless -u 10 -r 10 -t 60s \\
        --host http://127.0.0.1:8088 --csv var/log/locust

or ``benchmarks.capacity.dashboard_speed.run_locust()``, which builds the request bodies once and
passes them in ``DASHBOARD_REQUESTS_FILE``. Without that file the first user builds them through
the REST API (dashboard_speed.api_charts + dashboard_requests). Environment:

- ``DASHBOARD_WINDOW`` (``24h``; ``default``: the dashboard's own), ``DASHBOARD_END`` (ISO or
  ``latest``): the time filter's value;
- ``DASHBOARD_FORCE`` (``1``): ``force=true`` as on a refresh; ``0`` lets Superset's cache answer;
- ``DASHBOARD_THINK_SECONDS`` (``5``): mean pause between two dashboard loads of one viewer;
- ``DASHBOARD_PARALLEL`` (``6``): chart requests in flight at once, a browser's per-host limit;
- ``SUPERSET_ADMIN_USER`` / ``SUPERSET_ADMIN_PASSWORD`` (else .env / secrets.env).

Each chart request is named ``chart: <slice name>``, so Locust's statistics are per chart; one
extra entry, ``dashboard load``, is the wall time of all charts of one load.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

# locust first: importing it monkey-patches the standard library for gevent.
from locust import HttpUser, between, task  # isort: skip
from locust.exception import StopUser  # isort: skip
from gevent.lock import Semaphore  # isort: skip
from gevent.pool import Pool  # isort: skip

# Locust puts only this file's folder on the import path: the caller sets PYTHONPATH to the
# repository root (`dashboard_speed.run_locust` does), so `benchmarks` imports as a package.
from benchmarks.capacity import dashboard_speed as speed  # noqa: E402

THINK = float(os.environ.get("DASHBOARD_THINK_SECONDS", "5"))
PARALLEL = max(1, int(os.environ.get("DASHBOARD_PARALLEL", str(speed.BROWSER_PARALLEL))))
_requests: list[dict] | None = None
_requests_lock = Semaphore()


def dashboard_requests(host: str) -> list[dict]:
    """The chart request bodies of one dashboard load, built once per Locust process."""
    global _requests
    with _requests_lock:
        if _requests is None:
            path = os.environ.get("DASHBOARD_REQUESTS_FILE")
            if path:
                _requests = json.loads(Path(path).read_text(encoding="utf-8"))
            else:
                window = os.environ.get("DASHBOARD_WINDOW", "24h")
                end = speed.parse_end(os.environ.get("DASHBOARD_END"))
                force = os.environ.get("DASHBOARD_FORCE", "1") != "0"
                client = speed.Client(host, speed.admin_user(), speed.admin_password())
                loaded = speed.api_charts(client)
                default = loaded["dashboard"]["default_time_range"]
                time_range = speed.time_range_for(window, end, default)
                _requests = speed.dashboard_requests(loaded, time_range, force=force)
        return _requests


class DashboardViewer(HttpUser):
    """Logs in once, then loads the dashboard's charts, pauses ~THINK seconds, and again."""

    wait_time = between(THINK * 0.5, THINK * 1.5)  # spread out, viewers are not in lockstep

    def on_start(self) -> None:
        self.login()
        self.charts = dashboard_requests(self.host)

    def login(self) -> None:
        body = {
            "username": speed.admin_user(),
            "password": speed.admin_password(),
            "provider": "db",
            "refresh": False,
        }
        with self.client.post(
            "/api/v1/security/login", json=body, name="login", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:300]}")
                raise StopUser()
            self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        with self.client.get(
            "/api/v1/security/csrf_token/", name="csrf_token", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:300]}")
                raise StopUser()
            self.client.headers["X-CSRFToken"] = response.json()["result"]
        self.client.headers["Referer"] = self.host
        self.logged_in = time.monotonic()

    @task
    def load_dashboard(self) -> None:
        if time.monotonic() - self.logged_in > speed.RELOGIN_SECONDS:
            self.login()  # before the JWT expires, not after a 401
        started = time.perf_counter()
        pool = Pool(PARALLEL)
        errors = [e for e in pool.imap(self.load_chart, self.charts) if e]
        self.environment.events.request.fire(
            request_type="LOAD",
            name=speed.DASHBOARD_LOAD,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=RuntimeError(f"{len(errors)} chart(s) failed") if errors else None,
            context={},
        )

    def load_chart(self, request: dict) -> str | None:
        with self.client.post(
            speed.CHART_DATA_PATH,
            params=request["params"],
            json=request["body"],
            name=f"{speed.CHART_PREFIX}{request['chart']}",
            timeout=speed.TIMEOUT,
            catch_response=True,
        ) as response:
            text = response.text or (str(response.error) if response.error else "")
            error = speed.response_error(response.status_code, text)
            if error:
                response.failure(error)
            else:
                response.success()
            return error
