"""Label cache in front of the Wikidata API: SQLite for one producer, Redis for several.

Both backends store the same JSON value per entity id, with a long TTL for labels and a short one
for "not found" (a negative cache, so a deleted item is not asked for on every edit).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path

from producer.events import WikidataLabels

# None in a lookup result means "cached as not found"; a missing key means "not cached".
CachedLabels = WikidataLabels | None


class LabelCache(ABC):
    """`get_many` returns only the ids it holds; counters feed the stats log line."""

    def __init__(self, ttl_seconds: int, negative_ttl_seconds: int) -> None:
        self.ttl = ttl_seconds
        self.negative_ttl = negative_ttl_seconds
        self.hits = 0
        self.misses = 0

    def get_many(self, ids: Iterable[str]) -> dict[str, CachedLabels]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        raw = self._get_raw(ids)
        self.hits += len(raw)
        self.misses += len(ids) - len(raw)
        return {key: _decode(value) for key, value in raw.items()}

    def put_many(self, found: Mapping[str, WikidataLabels], not_found: Iterable[str]) -> None:
        rows = [(key, _encode(labels), self.ttl) for key, labels in found.items()]
        rows += [(key, _encode(None), self.negative_ttl) for key in not_found]
        if rows:
            self._put_raw(rows)

    @abstractmethod
    def _get_raw(self, ids: list[str]) -> dict[str, str]: ...

    @abstractmethod
    def _put_raw(self, rows: list[tuple[str, str, int]]) -> None: ...

    def close(self) -> None:
        """Release connections; a no-op where there are none."""


def _encode(labels: WikidataLabels | None) -> str:
    if labels is None:
        return json.dumps({"found": False})
    return json.dumps({"found": True, **labels.model_dump()}, ensure_ascii=False)


def _decode(value: str) -> CachedLabels:
    data = json.loads(value)
    if not data.pop("found", False):
        return None
    return WikidataLabels(**data)


class SqliteLabelCache(LabelCache):
    """One file, WAL mode so a reader (e.g. an operator's sqlite3 shell) never blocks writes."""

    def __init__(self, path: Path, ttl_seconds: int, negative_ttl_seconds: int) -> None:
        super().__init__(ttl_seconds, negative_ttl_seconds)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS labels ("
            " entity_id TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL)"
        )

    def _get_raw(self, ids: list[str]) -> dict[str, str]:
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT entity_id, value FROM labels WHERE entity_id IN ({marks})"  # nosec B608
                " AND expires_at > ?",
                [*ids, time.time()],
            ).fetchall()
        return dict(rows)

    def _put_raw(self, rows: list[tuple[str, str, int]]) -> None:
        now = time.time()
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO labels (entity_id, value, expires_at) VALUES (?, ?, ?)",
                [(key, value, now + ttl) for key, value, ttl in rows],
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisLabelCache(LabelCache):
    """Shared by every producer that points at the same Redis; Redis expires entries itself."""

    KEY_PREFIX = "wikistreams:wikidata:"

    def __init__(self, url: str, ttl_seconds: int, negative_ttl_seconds: int) -> None:
        import redis

        super().__init__(ttl_seconds, negative_ttl_seconds)
        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
        self._redis.ping()

    def _get_raw(self, ids: list[str]) -> dict[str, str]:
        values = self._redis.mget([self.KEY_PREFIX + key for key in ids])
        return {key: value for key, value in zip(ids, values) if value is not None}

    def _put_raw(self, rows: list[tuple[str, str, int]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key, value, ttl in rows:
            pipe.set(self.KEY_PREFIX + key, value, ex=ttl)
        pipe.execute()

    def close(self) -> None:
        self._redis.close()


def open_cache(settings) -> LabelCache:
    """The backend the settings ask for."""
    if settings.cache_backend.value == "redis":
        return RedisLabelCache(
            settings.redis_url, settings.cache_ttl_seconds, settings.cache_negative_ttl_seconds
        )
    return SqliteLabelCache(
        settings.cache_db_path, settings.cache_ttl_seconds, settings.cache_negative_ttl_seconds
    )
