"""A local stand-in for the Wikidata Action API, answering from real recorded responses.

It indexes every entity found in `tests/data/recorded/wikidata/` (recorded `wbgetentities`
responses and entity documents), and answers `action=wbgetentities` the way the API does:
entities keyed by the requested id, redirects resolved (with the `redirects` block), unknown ids as
`{"id": X, "missing": ""}`, languages filtered with the API's fallback (ko -> mul -> en).
Lookups by page (`sites=<wiki>&titles=<t1|t2>`) are answered from the recorded entities'
sitelinks: found items keyed by id (with `sitefilter`'s one sitelink), pages without an item as
`{"site", "title", "missing": ""}` under negative keys, as the API answers them.

Failure modes for tests replay the recorded error bodies: `maxlag` (with `Retry-After`),
`ratelimited`, HTTP 429/503, slow answers and hard failures; an outage that hangs and then answers
503; and garbage answers (`GARBAGE_KINDS`) of the kinds a broken proxy or API change produces.
The garbage that is still JSON is derived from the real answer, so only the broken part is fake.
Hostile answers (`HOSTILE_KINDS`): a gzip bomb, a body that drips in a byte at a time, a label of
two million characters, and terms full of control characters.

Run alone: `python -m tests.standins.wikidata_api --port 8099`.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import io
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.standins import LoopbackServer, data_dir

FALLBACK = {"ko": ["ko", "mul", "en"], "en": ["en", "mul"], "mul": ["mul"]}


RATELIMITED = "DERIVED_ratelimited_from_wdtk_assert-user-failed.json"


@dataclass
class Recorded:
    entities: dict[str, dict] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    sitelinks: dict[tuple[str, str], str] = field(default_factory=dict)  # (wiki, title) -> id
    maxlag_body: bytes = b""
    ratelimited_body: bytes = b""


def load_recorded(root: Path | None = None) -> Recorded:
    """Merge the terms of every recorded entity; later files add languages, never erase."""
    root = root or data_dir() / "wikidata"
    rec = Recorded()
    for path in sorted(root.rglob("*.json")):
        try:
            doc = json.loads(path.read_text("utf-8"))
        except ValueError:
            continue
        if isinstance(doc, dict) and "entities" in doc:
            for key, entity in doc["entities"].items():
                _add(rec, key, entity)
        elif isinstance(doc, dict) and "id" in doc and "labels" in doc:
            _add(rec, doc["id"], doc)
    rec.missing -= set(rec.entities)
    rec.maxlag_body = (root / "wdtk" / "error-maxlag-full.json").read_bytes()
    # DERIVED from a recorded wikidata.org error envelope (SOURCES.md 4e): code `ratelimited`.
    rec.ratelimited_body = (root / "errors" / RATELIMITED).read_bytes()
    return rec


def _add(rec: Recorded, key: str, entity: dict) -> None:
    if not isinstance(entity, dict):
        return
    if "missing" in entity:
        if entity.get("id"):
            rec.missing.add(entity["id"])
        return
    target = entity.get("id", key)
    redirect = entity.get("redirects")
    if redirect:
        rec.redirects[redirect["from"]] = redirect["to"]
        target = redirect["to"]
    merged = rec.entities.setdefault(
        target, {"type": entity.get("type", "item"), "id": target, "labels": {}, "descriptions": {}}
    )
    for kind in ("labels", "descriptions"):
        terms = entity.get(kind) or {}
        if isinstance(terms, dict):
            for lang, term in terms.items():
                if isinstance(term, dict) and "value" in term:
                    merged[kind].setdefault(lang, {"language": lang, "value": term["value"]})
    links = entity.get("sitelinks") or {}
    if isinstance(links, dict):
        for site, link in links.items():
            if isinstance(link, dict) and isinstance(link.get("title"), str):
                rec.sitelinks.setdefault((site, link["title"]), target)


GARBAGE_KINDS = (
    "truncated",  # Content-Length larger than the body sent, then close
    "bad_gzip",  # Content-Encoding: gzip over bytes that are not gzip
    "redirect_loop",  # 302 to the same URL, for ever
    "null",  # JSON null
    "list",  # JSON []
    "entities_list",  # {"entities": [...]}: the real entities as a list
    "label_number",  # a real answer whose first label value is a number
    "entity_string",  # a real answer whose first entity is a string
    "error_string",  # {"error": "..."}: an error that is not an object
    "html",  # HTTP 200 with an HTML page
    "empty",  # HTTP 200 with an empty body
)
HOSTILE_KINDS = (
    "gzip_bomb",  # ~0.5 MB of gzip that inflates to `bomb_bytes` (spaces, then the real answer)
    "slow_drip",  # the real answer, one byte every `drip_seconds`
    "huge_label",  # a real answer whose first label is `huge_label_chars` characters long
    "control_chars",  # a real answer whose first label and description hold control characters
)
CONTROL_CHARS = "\x00\x07\x1b[31m\r\n\t\x7f\x85"


@dataclass
class Behaviour:
    """What the next requests get. Counters let tests assert how the client behaved.

    `garbage` names one of `GARBAGE_KINDS`: every request gets it while it is set, or only the
    next `garbage_next` requests when that is > 0 (then it clears itself). `outage` makes every
    request hang `outage_hang_seconds` and then answer 503, like an overloaded upstream.
    `delay_seconds` delays normal answers; neither sleep holds `lock`, so requests overlap.
    """

    maxlag_next: int = 0
    ratelimited_next: int = 0
    http_status_next: int = 0
    http_status: int = 503
    retry_after: str | None = "1"
    delay_seconds: float = 0.0
    down: bool = False
    outage: bool = False
    outage_hang_seconds: float = 15.0
    garbage: str | None = None
    garbage_next: int = 0
    bomb_bytes: int = 500_000_000
    drip_seconds: float = 0.5
    huge_label_chars: int = 2_000_001
    requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_garbage(self) -> str | None:
        """The garbage kind for this request (call with `lock` held)."""
        kind = self.garbage
        if kind is not None and kind not in GARBAGE_KINDS + HOSTILE_KINDS:
            known = GARBAGE_KINDS + HOSTILE_KINDS
            raise ValueError(f"unknown garbage kind {kind!r}; one of {known}")
        if kind is not None and self.garbage_next > 0:
            self.garbage_next -= 1
            if self.garbage_next == 0:
                self.garbage = None
        return kind


class WikidataStandIn(LoopbackServer):
    def __init__(self, port: int = 0, recorded: Recorded | None = None) -> None:
        super().__init__(port, _Handler)
        self.recorded = recorded or load_recorded()
        self.behaviour = Behaviour()

    @property
    def url(self) -> str:
        return self.base_url + "/w/api.php"

    def answer(self, ids: list[str], languages: list[str]) -> dict:
        entities = {}
        for requested in ids:
            target = self.recorded.redirects.get(requested, requested)
            entity = self.recorded.entities.get(target)
            if entity is None:
                entities[requested] = {"id": requested, "missing": ""}
                continue
            out = {"type": entity["type"], "id": target}
            if target != requested:
                out["redirects"] = {"from": requested, "to": target}
            for kind in ("labels", "descriptions"):
                out[kind] = _with_fallback(entity[kind], languages)
            entities[requested] = out
        return {"entities": entities, "success": 1}

    def answer_titles(self, site: str, titles: list[str], languages: list[str]) -> dict:
        entities: dict[str, dict] = {}
        for n, title in enumerate(titles, start=1):
            target = self.recorded.sitelinks.get((site, title))
            if target is None:
                entities[f"-{n}"] = {"site": site, "title": title, "missing": ""}
                continue
            entity = self.recorded.entities[target]
            out = {"type": entity["type"], "id": target}
            for kind in ("labels", "descriptions"):
                out[kind] = _with_fallback(entity[kind], languages)
            out["sitelinks"] = {site: {"site": site, "title": title, "badges": []}}
            entities[target] = out
        return {"entities": entities, "success": 1}


def _with_fallback(terms: dict, languages: list[str]) -> dict:
    out = {}
    for lang in languages:
        for candidate in FALLBACK.get(lang, [lang]):
            if candidate in terms:
                term = dict(terms[candidate])
                if candidate != lang:
                    term["for-language"] = lang
                out[lang] = term
                break
    return out


class _Handler(BaseHTTPRequestHandler):
    server: WikidataStandIn

    def log_message(self, *_args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        params = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        b = self.server.behaviour
        with b.lock:
            b.requests.append({**params, "user_agent": self.headers.get("User-Agent", "")})
            if b.down:
                self.close_connection = True
                self.send_error(500, "stand-in is down")
                return
            if b.maxlag_next > 0:
                b.maxlag_next -= 1
                self._send(200, self.server.recorded.maxlag_body, {"X-Database-Lag": "3"})
                return
            if b.ratelimited_next > 0:
                b.ratelimited_next -= 1
                self._send(200, self.server.recorded.ratelimited_body, {})
                return
            if b.http_status_next > 0:
                b.http_status_next -= 1
                self._send(b.http_status, b"<html>Service unavailable</html>", {})
                return
            outage, hang = b.outage, b.outage_hang_seconds
            garbage = None if outage else b.take_garbage()
            delay = b.delay_seconds
        if outage:
            time.sleep(hang)
            self._send(503, b"<html>upstream request timeout</html>", {}, "text/html")
            return
        if garbage in _RAW_GARBAGE:
            _RAW_GARBAGE[garbage](self)
            return
        if garbage == "gzip_bomb":
            self._send_gzip_bomb(b.bomb_bytes)
            return
        if delay:
            time.sleep(delay)
        languages = params.get("languages", "en").split("|")
        if params.get("action") == "wbgetentities" and params.get("sites") and params.get("titles"):
            body = self.server.answer_titles(
                params["sites"], params["titles"].split("|"), languages
            )
        elif params.get("action") != "wbgetentities" or not params.get("ids"):
            self._send(200, json.dumps({"error": {"code": "badvalue"}}).encode(), {})
            return
        else:
            body = self.server.answer(params["ids"].split("|"), languages)
        if garbage is not None:
            body = _spoil(body, garbage, b.huge_label_chars)
        encoded = json.dumps(body, ensure_ascii=False).encode("utf-8")
        if garbage == "slow_drip":
            self._drip(encoded, b.drip_seconds)
            return
        self._send(200, encoded, {})

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str],
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        retry_after = self.server.behaviour.retry_after
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None and (status != 200 or b'"error"' in body):
            self.send_header("Retry-After", retry_after)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_gzip_bomb(self, size: int) -> None:
        """Gzip of `size` bytes of JSON whitespace followed by a real answer: valid JSON for a
        client that inflates it all (and holds `size` bytes doing so)."""
        self._send_gzip(_gzip_bomb(size))

    def _drip(self, body: bytes, pause: float) -> None:
        """Headers at once, then the body a byte at a time until done or the client hangs up."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for i in range(len(body)):
            self.wfile.write(body[i : i + 1])
            self.wfile.flush()
            time.sleep(pause)

    def send_truncated(self) -> None:
        body = b'{"entities": {"Q42": {"id": "Q42", "labels": {'
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body) * 4))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def send_bad_gzip(self) -> None:
        self._send_gzip(b"this is not gzip at all, though the header says so")

    def _send_gzip(self, body: bytes) -> None:
        """`body` as is, labelled `Content-Encoding: gzip`."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_redirect_loop(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()


_RAW_GARBAGE = {
    "truncated": _Handler.send_truncated,
    "bad_gzip": _Handler.send_bad_gzip,
    "redirect_loop": _Handler.send_redirect_loop,
    "html": lambda h: h._send(200, b"<!DOCTYPE html><html><body>Hi</body></html>", {}, "text/html"),
    "empty": lambda h: h._send(200, b"", {}),
}


@functools.lru_cache(maxsize=2)
def _gzip_bomb(size: int) -> bytes:
    """Compressed once per size (a few seconds for 500 MB), then served from memory."""
    tail = b'{"entities": {"Q42": {"id": "Q42", "missing": ""}}, "success": 1}'
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as out:
        chunk = b" " * (1 << 20)
        for _ in range(size // len(chunk)):
            out.write(chunk)
        out.write(b" " * (size % len(chunk)) + tail)
    return buffer.getvalue()


def _spoil(body: dict, kind: str, huge_label_chars: int = 0) -> object:
    """The real answer `body` broken the way `kind` says (a JSON-level garbage kind)."""
    entities = body["entities"]
    first = next(iter(entities), None)
    if kind == "null":
        return None
    if kind == "list":
        return []
    if kind == "entities_list":
        return {**body, "entities": list(entities.values())}
    if kind == "error_string":
        return {"error": "internal_api_error: something broke", "servedby": "mw-api-ext"}
    if kind == "entity_string" and first is not None:
        entities[first] = f"{first} is not an object"
    labelled = [e for e in entities.values() if isinstance(e, dict) and e.get("labels")]
    if kind in ("huge_label", "control_chars") and not labelled and first is not None:
        # No requested entity has labels: the first one gets some, so there is one to spoil.
        term = {"language": "en", "value": f"label of {first}"}
        entities[first] = {"type": "item", "id": first, "labels": {"en": term}}
        labelled = [entities[first]]
    if kind == "label_number" and labelled:
        next(iter(labelled[0]["labels"].values()))["value"] = 42
    if kind == "huge_label" and labelled:
        next(iter(labelled[0]["labels"].values()))["value"] = "x" * huge_label_chars
    if kind == "control_chars" and labelled:
        for terms in (labelled[0]["labels"], labelled[0].get("descriptions") or {}):
            for term in terms.values():
                term["value"] = CONTROL_CHARS + term["value"] + CONTROL_CHARS
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    server = WikidataStandIn(args.port)
    print(f"Wikidata stand-in on {server.url} ({len(server.recorded.entities)} entities)")
    server.serve_forever()


if __name__ == "__main__":
    main()
