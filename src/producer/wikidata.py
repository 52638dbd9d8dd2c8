"""Wikidata Action API client: Korean/English labels and descriptions by entity id.

One `wbgetentities` call serves up to 50 ids. The client is polite the way the API etiquette
asks: requests in series, `maxlag`, gzip, a User-Agent, and it honours `Retry-After` on maxlag,
rate limits, 429 and 503. It retries a call a few times and then gives up with
`WikidataUnavailable`; deciding what to do during an outage is the enricher's (circuit breaker).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import requests
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from producer.events import WikidataLabels

log = structlog.get_logger("producer.wikidata")

MAX_IDS_PER_CALL = 50
RETRYABLE_API_ERRORS = {"maxlag", "ratelimited", "readonly"}
LANGUAGES = "ko|en|mul"
# Which returned label languages count as Korean / English (`mul` = "default for all languages").
KO_LANGUAGES = {"ko", "ko-kp", "mul"}
EN_LANGUAGES = {"en", "en-gb", "en-ca", "mul"}

# Entity pages on wikidatawiki: items (ns 0), properties (ns 120), lexemes (ns 146).
_ENTITY_TITLE = {
    0: re.compile(r"^(Q[1-9]\d*)$"),
    120: re.compile(r"^Property:(P[1-9]\d*)$"),
    146: re.compile(r"^Lexeme:(L[1-9]\d*)$"),
}
WIKIDATA_WIKI = "wikidatawiki"


def entity_id_for(wiki: str, namespace: int, title: str) -> str | None:
    """The entity id a wikidatawiki page title names, or None for any other page."""
    if wiki != WIKIDATA_WIKI:
        return None
    pattern = _ENTITY_TITLE.get(namespace)
    match = pattern.match(title) if pattern else None
    return match.group(1) if match else None


class WikidataUnavailable(RuntimeError):
    """The API could not answer after the allowed retries."""


class _Retryable(RuntimeError):
    """A response worth retrying: maxlag, rate limit, 429/5xx, timeouts."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class FetchResult:
    found: dict[str, WikidataLabels] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)


@dataclass
class ApiStats:
    calls: int = 0
    errors: int = 0
    latency_ms_total: float = 0.0
    latency_ms_max: float = 0.0

    def record(self, elapsed_ms: float) -> None:
        self.calls += 1
        self.latency_ms_total += elapsed_ms
        self.latency_ms_max = max(self.latency_ms_max, elapsed_ms)


class WikidataClient:
    def __init__(
        self,
        url: str,
        user_agent: str,
        timeout: float = 10.0,
        maxlag: int = 5,
        max_retries: int = 3,
        retry_after_cap: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self._timeout = timeout
        self._maxlag = maxlag
        self._retry_after_cap = retry_after_cap
        self._max_retries = max_retries
        self._session = session or requests.Session()
        self._session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "gzip"})
        self.stats = ApiStats()

    def fetch(self, ids: list[str]) -> FetchResult:
        """Labels for up to 50 ids; ids the API does not know come back in `not_found`."""
        if len(ids) > MAX_IDS_PER_CALL:
            raise ValueError(f"at most {MAX_IDS_PER_CALL} ids per call, got {len(ids)}")
        if not ids:
            return FetchResult()
        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            reraise=True,
        )
        try:
            return retrying(self._call, ids)
        except _Retryable as exc:
            raise WikidataUnavailable(str(exc)) from exc

    def _wait(self, state: RetryCallState) -> float:
        """The server's Retry-After when it sent one (capped), else jittered exponential."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self._retry_after_cap)
        return wait_random_exponential(multiplier=0.5, max=self._retry_after_cap)(state)

    def _call(self, ids: list[str]) -> FetchResult:
        params = {
            "action": "wbgetentities",
            "ids": "|".join(ids),
            "props": "labels|descriptions",
            "languages": LANGUAGES,
            "languagefallback": "1",
            "format": "json",
            "maxlag": str(self._maxlag),
        }
        started = time.perf_counter()
        try:
            resp = self._session.get(self.url, params=params, timeout=self._timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            self._failed(type(exc).__name__, str(exc), None)
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.stats.record((time.perf_counter() - started) * 1000)
        return self._parse(resp, ids)

    def _parse(self, resp: requests.Response, ids: list[str]) -> FetchResult:
        retry_after = _retry_after(resp)
        if resp.status_code == 429 or resp.status_code >= 500:
            self._failed("HTTPError", f"HTTP {resp.status_code}", resp.status_code)
            raise _Retryable(f"HTTP {resp.status_code}", retry_after)
        if resp.status_code != 200:
            self._failed("HTTPError", f"HTTP {resp.status_code}", resp.status_code)
            raise WikidataUnavailable(f"HTTP {resp.status_code} from {self.url}")
        try:
            body = resp.json()
        except ValueError as exc:
            self._failed("InvalidJSON", str(exc), resp.status_code)
            raise _Retryable(f"invalid JSON from the API: {exc}") from exc
        error = body.get("error")
        if error:
            code = error.get("code", "unknown")
            self._failed("ApiError", f"{code}: {error.get('info', '')}", resp.status_code)
            if code in RETRYABLE_API_ERRORS:
                raise _Retryable(f"API error {code}", retry_after)
            raise WikidataUnavailable(f"API error {code}: {error.get('info', '')}")
        return parse_entities(body.get("entities", {}), ids)

    def _failed(self, error_class: str, error: str, status: int | None) -> None:
        self.stats.errors += 1
        log.warning("wikidata_api_error", error_class=error_class, error=error, status=status)


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def parse_entities(entities: dict, requested: list[str]) -> FetchResult:
    """Map each requested id to labels or to not-found, following redirects.

    The response is keyed by the requested id; a redirected id carries the target's data.
    Works for formatversion 1 (`"missing": ""`) and 2 (`"missing": true`).
    """
    result = FetchResult()
    for entity_id in requested:
        entity = entities.get(entity_id)
        if entity is None or "missing" in entity:
            result.not_found.append(entity_id)
            continue
        labels = entity.get("labels") or {}
        descriptions = entity.get("descriptions") or {}
        result.found[entity_id] = WikidataLabels(
            label_ko=_pick(labels, "ko", KO_LANGUAGES),
            label_en=_pick(labels, "en", EN_LANGUAGES),
            description_ko=_pick(descriptions, "ko", KO_LANGUAGES),
            description_en=_pick(descriptions, "en", EN_LANGUAGES),
        )
    return result


def _pick(terms: dict, wanted: str, accepted: set[str]) -> str | None:
    """The term for `wanted`, accepting a fallback only from a language that really is it.

    With `languagefallback` the API may answer `ko` with an English label; that is not Korean,
    and the dashboards fall back to English themselves.
    """
    for key in (wanted, "mul"):
        term = terms.get(key)
        if term and term.get("language", key) in accepted and term.get("value"):
            return term["value"]
    return None
