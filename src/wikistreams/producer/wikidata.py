"""Wikidata Action API client: Korean/English labels and descriptions by entity id, and the
items of pages (`sites`/`titles`) for the trends processor.

One `wbgetentities` call serves up to 50 ids. The client is polite the way the API etiquette
asks: requests in series, `maxlag`, gzip, a User-Agent, and it honours `Retry-After` on maxlag,
rate limits, 429 and 503. It retries a call a few times within a time budget and then gives up
with `WikidataUnavailable`; deciding what to do during an outage is the enricher's (circuit
breaker). `WikidataUnavailable` is the only exception `fetch` raises for anything the network or
the server does, so a caller's worker thread needs exactly one `except`.

Everything the server sends is bounded: each attempt ends at its deadline (the timeout, cut to
what is left of the retry budget) however slowly the body drips in, the decompressed body is
read up to `max_answer_bytes` (a gzip bomb costs that much memory, not what it inflates to), and
each label and description keeps at most Wikidata's own 250 characters, without control
characters, before anything caches or publishes it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_before_delay,
    wait_random_exponential,
)

from wikistreams.producer.events import WikidataLabels
from wikistreams.producer.stream_limits import retry_after_seconds

log = structlog.get_logger("producer.wikidata")

MAX_IDS_PER_CALL = 50
# The API does not redirect; a proxy may (http -> https, a moved host), a loop must end fast.
MAX_REDIRECTS = 3
RETRYABLE_API_ERRORS = {"maxlag", "ratelimited", "readonly"}
LANGUAGES = "ko|en|mul"
# Which returned label languages count as Korean / English (`mul` = "default for all languages").
KO_LANGUAGES = {"ko", "ko-kp", "mul"}
EN_LANGUAGES = {"en", "en-gb", "en-ca", "mul"}
# Wikidata refuses longer labels and descriptions ($wgWBRepoSettings['string-limits']).
MAX_TERM_CHARS = 250
# A real 50-id answer in three languages is ~30-60 KB; 2 MB is far beyond any of them.
MAX_ANSWER_BYTES = 2_000_000
READ_CHUNK_BYTES = 65536
_CONTROL_RUN = re.compile(r"[\x00-\x1f\x7f-\x9f]+")

# Entity pages on wikidatawiki: items (ns 0), properties (ns 120), lexemes (ns 146).
_ENTITY_TITLE = {
    0: re.compile(r"^(Q[1-9]\d*)$"),
    120: re.compile(r"^Property:(P[1-9]\d*)$"),
    146: re.compile(r"^Lexeme:(L[1-9]\d*)$"),
}
WIKIDATA_WIKI = "wikidatawiki"


def wbgetentities_params(ids: list[str], maxlag: int) -> dict[str, str]:
    """The query for Korean/English labels and descriptions of `ids` (`|`-separated: a `,`
    would return every language)."""
    return {
        "action": "wbgetentities",
        "ids": "|".join(ids),
        "props": "labels|descriptions",
        "languages": LANGUAGES,
        "languagefallback": "1",
        "format": "json",
        "maxlag": str(maxlag),
    }


def wbgetentities_titles_params(site: str, titles: list[str], maxlag: int) -> dict[str, str]:
    """The query for the items of pages of one wiki, with their Korean/English terms.

    `sitefilter` keeps only the asked wiki's sitelink in the answer: that is how an item is
    matched back to the title asked (the answer is keyed by item id). Descriptions are asked
    too, so what is cached per item is the same as the producer's label lookups store.
    """
    return {
        "action": "wbgetentities",
        "sites": site,
        "titles": "|".join(titles),
        "props": "labels|descriptions|sitelinks",
        "sitefilter": site,
        "languages": LANGUAGES,
        "languagefallback": "1",
        "format": "json",
        "maxlag": str(maxlag),
    }


def entity_id_for(wiki: str, namespace: int, title: str) -> str | None:
    """The entity id a wikidatawiki page title names, or None for any other page."""
    if wiki != WIKIDATA_WIKI:
        return None
    pattern = _ENTITY_TITLE.get(namespace)
    match = pattern.match(title) if pattern else None
    return match.group(1) if match else None


def clean_term(value: str) -> str | None:
    """A label or description as the dashboards may show it: control characters (C0, DEL,
    C1) become one space, the ends are trimmed, and at most Wikidata's own 250 characters are
    kept. None when nothing is left. Applied before caching: a longer value could only come
    from a broken or hostile answer, and would otherwise be cached and published for a week."""
    if _CONTROL_RUN.search(value):
        value = _CONTROL_RUN.sub(" ", value)
    return value.strip()[:MAX_TERM_CHARS].rstrip() or None


class WikidataUnavailable(RuntimeError):
    """The API gave no usable answer within the allowed retries and time budget.

    `retry_after` is the server's last `Retry-After` in seconds (capped by the client's
    `retry_after_cap`), or None when it sent none: a caller should make no call before it has
    passed. It is set in particular when the server asked for a pause longer than the remaining
    retry budget, which ends the call at once instead of sleeping inside it.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Retryable(RuntimeError):
    """A response worth retrying: maxlag, rate limit, 429/5xx, timeouts, broken bodies."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Transport faults that a second try may not meet again; anything else from requests (too many
# redirects, an invalid URL) would fail the same way and ends the call at once.
_RETRYABLE_REQUEST_ERRORS = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass
class FetchResult:
    found: dict[str, WikidataLabels] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)


@dataclass
class TitlesResult:
    """Per asked title: its item id and the item's labels, or not found (no item, no page)."""

    found: dict[str, tuple[str, WikidataLabels]] = field(default_factory=dict)
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
    """`fetch` returns labels or raises `WikidataUnavailable`; nothing else escapes it.

    `retry_budget_seconds` bounds one `fetch` in time, whatever `max_retries` says: no retry
    starts, and no wait is begun, that would end past the budget. Each attempt has a wall-clock
    deadline, `timeout` cut to what is left of the budget: once the headers are in, a watchdog
    shuts the socket at that deadline, so a body that drips in byte by byte ends there too.
    (Before the headers, `timeout` applies per socket read, as `requests` does.)
    `close()` ends an attempt in flight at once, so a worker thread never outlives its term.
    """

    def __init__(
        self,
        url: str,
        user_agent: str,
        timeout: float = 10.0,
        maxlag: int = 5,
        max_retries: int = 3,
        retry_after_cap: float = 30.0,
        session: requests.Session | None = None,
        retry_budget_seconds: float = 10.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.url = url
        self._timeout = timeout
        self._maxlag = maxlag
        self._retry_after_cap = retry_after_cap
        self._max_retries = max_retries
        self._budget = retry_budget_seconds
        self._max_answer_bytes = max_answer_bytes
        self._session = session or requests.Session()
        self._session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "gzip"})
        self._session.max_redirects = MAX_REDIRECTS
        self._closed = False
        self._in_flight: requests.Response | None = None
        self.stats = ApiStats()

    def fetch(self, ids: list[str]) -> FetchResult:
        """Labels for up to 50 ids; ids the API does not know come back in `not_found`.

        Raises `WikidataUnavailable` (and `ValueError` for more than 50 ids, a caller's bug).
        """
        if len(ids) > MAX_IDS_PER_CALL:
            raise ValueError(f"at most {MAX_IDS_PER_CALL} ids per call, got {len(ids)}")
        if not ids:
            return FetchResult()
        return parse_entities(self._entities(wbgetentities_params(ids, self._maxlag)), ids)

    def fetch_titles(self, site: str, titles: list[str]) -> TitlesResult:
        """The items of up to 50 pages of one wiki (`site`, a database name such as `enwiki`),
        with their labels; pages without an item come back in `not_found`.

        Raises `WikidataUnavailable` (and `ValueError` for more than 50 titles or a title the
        API could not take, a caller's bug).
        """
        if len(titles) > MAX_IDS_PER_CALL:
            raise ValueError(f"at most {MAX_IDS_PER_CALL} titles per call, got {len(titles)}")
        if any("|" in title or not title for title in titles):
            raise ValueError("a title is empty or holds '|', the API's separator")
        if not titles:
            return TitlesResult()
        params = wbgetentities_titles_params(site, titles, self._maxlag)
        return parse_sitelinks(self._entities(params), site, titles)

    def _entities(self, params: dict[str, str]) -> dict[str, Any]:
        """The `entities` object of one call, retried within the budget."""
        deadline = time.monotonic() + self._budget
        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            # The budget counts from the first attempt. stop_after_delay alone would still begin
            # a wait (a server's Retry-After, the backoff) that ends past the budget;
            # stop_before_delay refuses it, so such an ask ends the call at once.
            stop=(
                stop_after_attempt(self._max_retries + 1)
                | stop_after_delay(self._budget)
                | stop_before_delay(self._budget)
            ),
            wait=self._wait,
            reraise=True,
        )
        try:
            entities: dict[str, Any] = retrying(self._call, params, deadline)
            return entities
        except _Retryable as exc:
            raise self._gave_up(exc, deadline) from exc
        except WikidataUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the contract: one exception class for callers
            self._failed(type(exc).__name__, str(exc), None)
            raise WikidataUnavailable(f"unexpected {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """No further calls; an answer being read now ends at once (its ids: unavailable)."""
        self._closed = True
        in_flight = self._in_flight
        if in_flight is not None:
            _shut(in_flight)
        self._session.close()

    def _gave_up(self, exc: _Retryable, deadline: float) -> WikidataUnavailable:
        retry_after = self._capped(exc.retry_after)
        message = str(exc)
        left = deadline - time.monotonic()
        if retry_after is not None and retry_after > left:
            message += f"; server asks to wait {retry_after:g} s, beyond the retry budget"
        return WikidataUnavailable(message, retry_after=retry_after)

    def _capped(self, retry_after: float | None) -> float | None:
        return None if retry_after is None else min(retry_after, self._retry_after_cap)

    def _wait(self, state: RetryCallState) -> float:
        """The server's Retry-After when it sent one (capped), else jittered exponential."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return self._capped(exc.retry_after) or 0.0
        return wait_random_exponential(multiplier=0.5, max=self._retry_after_cap)(state)

    def _call(self, params: dict[str, str], deadline: float) -> dict[str, Any]:
        if self._closed:
            raise WikidataUnavailable("client closed")
        attempt_deadline = min(time.monotonic() + self._timeout, deadline)
        timeout = max(0.001, attempt_deadline - time.monotonic())
        started = time.perf_counter()
        try:
            with self._session.get(
                self.url, params=params, timeout=timeout, allow_redirects=True, stream=True
            ) as resp:
                body = self._read_body(resp, attempt_deadline) if resp.status_code == 200 else b""
        except _RETRYABLE_REQUEST_ERRORS as exc:
            self._failed(type(exc).__name__, str(exc), None)
            raise _Retryable(f"{type(exc).__name__}: {_short(exc)}") from exc
        except requests.RequestException as exc:
            self._failed(type(exc).__name__, str(exc), None)
            raise WikidataUnavailable(f"{type(exc).__name__}: {_short(exc)}") from exc
        finally:
            self.stats.record((time.perf_counter() - started) * 1000)
        return self._parse(resp, body)

    def _read_body(self, resp: requests.Response, deadline: float) -> bytes:
        """The decoded body, or `AnswerTooLarge` past `max_answer_bytes` (urllib3 inflates at
        most one chunk ahead, so a gzip bomb is never inflated whole), or a `Timeout` once the
        attempt's deadline has passed, however the server paces its bytes."""
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _shut(resp)

        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
        watchdog.daemon = True
        self._in_flight = resp  # from here on `close()` shuts it; before, it sets `_closed`
        watchdog.start()
        body = bytearray()
        try:
            if self._closed:
                raise WikidataUnavailable("client closed")
            for chunk in resp.iter_content(READ_CHUNK_BYTES):
                body += chunk
                if len(body) > self._max_answer_bytes:
                    raise self._too_large()
        except requests.RequestException:
            if not expired.is_set() and not self._closed:
                raise
        finally:
            watchdog.cancel()
            self._in_flight = None
        if self._closed:
            raise WikidataUnavailable("client closed while reading an answer")
        if expired.is_set():
            raise requests.Timeout(f"no complete answer before the deadline ({len(body)} bytes)")
        return bytes(body)

    def _too_large(self) -> WikidataUnavailable:
        """A bigger answer would come back as big: not worth a retry."""
        limit = self._max_answer_bytes
        self._failed("AnswerTooLarge", f"decoded answer over {limit} bytes", 200)
        return WikidataUnavailable(f"answer too large: over {limit} bytes decoded")

    def _parse(self, resp: requests.Response, body: bytes) -> dict[str, Any]:
        retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
        if resp.status_code == 429 or resp.status_code >= 500:
            self._failed("HTTPError", f"HTTP {resp.status_code}", resp.status_code)
            raise _Retryable(f"HTTP {resp.status_code}", retry_after)
        if resp.status_code != 200:
            self._failed("HTTPError", f"HTTP {resp.status_code}", resp.status_code)
            raise WikidataUnavailable(
                f"HTTP {resp.status_code} from {self.url}", retry_after=self._capped(retry_after)
            )
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            # An HTML error page or an empty body from a proxy: often transient.
            self._failed("InvalidJSON", str(exc), resp.status_code)
            raise _Retryable(f"invalid JSON from the API: {_short(exc)}") from exc
        if not isinstance(answer, dict):
            raise self._malformed(f"answer is {type(answer).__name__}, not an object", resp)
        error = answer.get("error")
        if error:
            if not isinstance(error, dict):
                raise self._malformed(f"error is {type(error).__name__}: {error!r:.100}", resp)
            code, info = str(error.get("code", "unknown")), str(error.get("info", ""))[:200]
            self._failed("ApiError", f"{code}: {info}", resp.status_code)
            if code in RETRYABLE_API_ERRORS:
                raise _Retryable(f"API error {code}", retry_after)
            raise WikidataUnavailable(f"API error {code}: {info}")
        entities = answer.get("entities")
        if not isinstance(entities, dict):
            raise self._malformed(f"entities is {type(entities).__name__}, not an object", resp)
        return entities

    def _malformed(self, reason: str, resp: requests.Response) -> WikidataUnavailable:
        """Valid JSON of the wrong shape: an API change or a broken proxy, not worth a retry."""
        self._failed("MalformedAnswer", reason, resp.status_code)
        return WikidataUnavailable(f"malformed answer: {reason}")

    def _failed(self, error_class: str, error: str, status: int | None) -> None:
        self.stats.errors += 1
        log.warning("wikidata_api_error", error_class=error_class, error=error, status=status)


def _shut(resp: requests.Response) -> None:
    """Shut the socket under `resp` (from any thread): a read blocked on it returns at once."""
    try:
        resp.raw.shutdown()
    except (OSError, AttributeError):  # already closed, or no socket left
        pass


def _short(exc: Exception, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def parse_entities(entities: dict[str, Any], requested: list[str]) -> FetchResult:
    """Map each requested id to labels or to not-found, following redirects.

    The response is keyed by the requested id; a redirected id carries the target's data.
    Works for formatversion 1 (`"missing": ""`) and 2 (`"missing": true`). A malformed entity
    (not an object) counts as not found, a malformed term as absent: one bad entity must not cost
    the other 49 of the call their labels.
    """
    result = FetchResult()
    for entity_id in requested:
        entity = entities.get(entity_id)
        if entity is not None and not isinstance(entity, dict):
            log.warning(
                "wikidata_api_error",
                error_class="MalformedEntity",
                error=f"{entity_id} is {type(entity).__name__}, not an object",
                status=200,
            )
            entity = None
        if entity is None or "missing" in entity:
            result.not_found.append(entity_id)
            continue
        result.found[entity_id] = _labels_of(entity)
    return result


def parse_sitelinks(entities: dict[str, Any], site: str, requested: list[str]) -> TitlesResult:
    """Map each requested title of `site` to its item and labels, by the item's sitelink.

    Pages without an item come back as `{"site", "title", "missing": ""}` under a negative
    key. A title the API normalised or followed as a redirect matches no sitelink asked for and
    counts as not found, like a malformed entity: a wrong match would name the wrong story.
    """
    result = TitlesResult()
    wanted = set(requested)
    for entity in entities.values():
        if not isinstance(entity, dict) or "missing" in entity:
            continue
        entity_id = entity.get("id")
        links = _terms(entity.get("sitelinks"))
        link = links.get(site)
        title = link.get("title") if isinstance(link, dict) else None
        if isinstance(entity_id, str) and isinstance(title, str) and title in wanted:
            result.found[title] = (entity_id, _labels_of(entity))
    result.not_found = [title for title in requested if title not in result.found]
    return result


def _labels_of(entity: dict[str, Any]) -> WikidataLabels:
    labels = _terms(entity.get("labels"))
    descriptions = _terms(entity.get("descriptions"))
    return WikidataLabels(
        label_ko=_pick(labels, "ko", KO_LANGUAGES),
        label_en=_pick(labels, "en", EN_LANGUAGES),
        description_ko=_pick(descriptions, "ko", KO_LANGUAGES),
        description_en=_pick(descriptions, "en", EN_LANGUAGES),
    )


def _terms(terms: object) -> dict[str, Any]:
    """A labels/descriptions map; anything else (a list, a string) counts as empty."""
    return terms if isinstance(terms, dict) else {}


def _pick(terms: dict[str, Any], wanted: str, accepted: set[str]) -> str | None:
    """The term for `wanted`, accepting a fallback only from a language that really is it.

    With `languagefallback` the API may answer `ko` with an English label; that is not Korean,
    and the dashboards fall back to English themselves. A term of the wrong shape is skipped.
    """
    for key in (wanted, "mul"):
        term = terms.get(key)
        if not isinstance(term, dict):
            continue
        language, value = term.get("language", key), term.get("value")
        if isinstance(language, str) and language in accepted and isinstance(value, str):
            cleaned = clean_term(value)
            if cleaned:
                return cleaned
    return None
