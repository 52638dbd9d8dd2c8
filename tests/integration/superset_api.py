"""A small client for the Superset REST API, shared by the Superset integration tests.

Why not Superset's Python client: the tests run in the project's .venv, which deliberately does not
contain Superset (it lives in var/superset-venv); plain HTTP is also what a user's tools see.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests

BASE_URL = "http://127.0.0.1:8088"


class SupersetApi:
    """Logged-in session: JWT for the API plus the CSRF token Superset wants on writes."""

    def __init__(self, username: str, password: str, base_url: str = BASE_URL) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        response = self.session.post(
            f"{self.base_url}/api/v1/security/login",
            json={"username": username, "password": password, "provider": "db", "refresh": False},
            timeout=30,
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        csrf = self.session.get(f"{self.base_url}/api/v1/security/csrf_token/", timeout=30)
        csrf.raise_for_status()
        self.session.headers["X-CSRFToken"] = csrf.json()["result"]
        self.session.headers["Referer"] = self.base_url

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(f"{self.base_url}{path}", params=params, timeout=120)

    def post(self, path: str, body: dict) -> requests.Response:
        return self.session.post(f"{self.base_url}{path}", json=body, timeout=120)

    def list_all(self, resource: str) -> list[dict]:
        """Every row of /api/v1/<resource>/ (one page of 100 is plenty for this project)."""
        query = "(page:0,page_size:100)"
        response = self.get(f"/api/v1/{resource}/", q=query)
        response.raise_for_status()
        return response.json()["result"]

    def chart_data(self, chart_id: int, force: bool = True) -> tuple[dict, float]:
        """Run a chart's saved query context; return the JSON answer and the seconds it took."""
        started = time.monotonic()
        response = self.get(f"/api/v1/chart/{chart_id}/data/", force=json.dumps(force))
        elapsed = time.monotonic() - started
        assert (
            response.status_code == 200
        ), f"chart {chart_id}: {response.status_code} {response.text}"
        return response.json(), elapsed
