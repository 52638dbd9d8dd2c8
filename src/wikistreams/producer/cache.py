"""Label cache in front of the Wikidata API: SQLite for one producer, Redis for several.

Both backends store the same JSON value per entity id, with a long TTL for labels and a short one
for "not found" (a negative cache, so a deleted item is not asked for on every edit). The trends
processor also keeps which item a page belongs to (`sitelink|<wiki>|<title>` -> item id or "no
item") in the same store, so the labels it finds serve the producer and the other way round.

The cache only speeds the stream up, so its faults must never stop it: a corrupt SQLite file is
moved aside and replaced by an empty one, a full disk fails single writes (the enricher counts
them as misses) and the next write after space returns succeeds. A cache that cannot be opened
at all (Redis down, a SQLite file that cannot be created) is run without: `open_cache` returns a
`ReopeningCache` that answers every lookup as a miss, skips writes and tries to open it again
every `CACHE_RETRY_SECONDS`, so a standby taking over during a Redis outage streams on.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import structlog

from wikistreams.producer.config import Settings
from wikistreams.producer.events import WikidataLabels

log = structlog.get_logger("producer.cache")

R = TypeVar("R")

# None in a lookup result means "cached as not found"; a missing key means "not cached".
CachedLabels = WikidataLabels | None
# Keys of page -> item entries; `|` is in no entity id and no page title.
SITELINK_PREFIX = "sitelink|"


def sitelink_key(site: str, title: str) -> str:
    return f"{SITELINK_PREFIX}{site}|{title}"


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
        out = {}
        for key, value in self._get_raw(ids).items():
            try:
                out[key] = _decode(value)
            except (ValueError, TypeError):  # a value no longer readable is a miss, not a fault
                continue
        self.hits += len(out)
        self.misses += len(ids) - len(out)
        return out

    def put_many(self, found: Mapping[str, WikidataLabels], not_found: Iterable[str]) -> None:
        rows = [(key, _encode(labels), self.ttl) for key, labels in found.items()]
        rows += [(key, _encode(None), self.negative_ttl) for key in not_found]
        if rows:
            self._put_raw(rows)

    def get_sitelinks(self, site: str, titles: Iterable[str]) -> dict[str, str | None]:
        """Title -> item id (None: cached as "no item") for the titles of `site` it holds."""
        keys = {sitelink_key(site, title): title for title in dict.fromkeys(titles)}
        if not keys:
            return {}
        out: dict[str, str | None] = {}
        for key, value in self._get_raw(list(keys)).items():
            try:
                data = json.loads(value)
                item = data.get("id") if data.get("found") else None
            except (ValueError, TypeError, AttributeError):
                continue
            if item is None or isinstance(item, str):
                out[keys[key]] = item
        self.hits += len(out)
        self.misses += len(keys) - len(out)
        return out

    def put_sitelinks(self, site: str, found: Mapping[str, str], not_found: Iterable[str]) -> None:
        """Store which item each title of `site` belongs to (`found`) or that it has none."""
        rows = [
            (sitelink_key(site, title), json.dumps({"found": True, "id": item}), self.ttl)
            for title, item in found.items()
        ]
        rows += [
            (sitelink_key(site, title), json.dumps({"found": False}), self.negative_ttl)
            for title in not_found
        ]
        if rows:
            self._put_raw(rows)

    def recent(self, limit: int) -> dict[str, CachedLabels]:
        """Up to `limit` live label entries, most recently stored first, to warm a memory tier
        at start. Only a cache that knows its own recency answers; the default has none."""
        out = {}
        for key, value in self._recent_raw(limit):
            if key.startswith(SITELINK_PREFIX):
                continue
            try:
                out[key] = _decode(value)
            except (ValueError, TypeError):
                continue
        return out

    def _recent_raw(self, limit: int) -> list[tuple[str, str]]:
        return []

    @abstractmethod
    def _get_raw(self, ids: list[str]) -> dict[str, str]: ...

    @abstractmethod
    def _put_raw(self, rows: list[tuple[str, str, int]]) -> None: ...

    def close(self) -> None:
        """Release connections; a no-op where there are none."""

    @property
    def problem(self) -> str | None:
        """Why the cache is not in use now (for /health), None while it is."""
        return None

    def keep_open(self) -> None:
        """Called when idle: a cache that could not be opened tries again if it is time."""


def _encode(labels: WikidataLabels | None) -> str:
    if labels is None:
        return json.dumps({"found": False})
    return json.dumps({"found": True, **labels.model_dump()}, ensure_ascii=False)


def _decode(value: str) -> CachedLabels:
    data = json.loads(value)
    if not data.pop("found", False):
        return None
    return WikidataLabels(**data)


# SQLite result codes (the low byte of an extended code) that mean "this file is not a sound
# database": SQLITE_CORRUPT ("database disk image is malformed"), SQLITE_NOTADB ("file is not a
# database").
_CORRUPT_CODES = {11, 26}


class _Corrupt(sqlite3.DatabaseError):
    """`PRAGMA quick_check` found damage that no statement has tripped over yet."""


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    if isinstance(exc, _Corrupt):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    text = str(exc)
    return "file is not a database" in text or "malformed" in text


class SqliteLabelCache(LabelCache):
    """One file, WAL mode so a reader (e.g. an operator's sqlite3 shell) never blocks writes.

    Expired rows are deleted at open and then after every `evict_every_puts` writes or
    `evict_interval_seconds`, whichever comes first, in batches (`EVICT_BATCH_ROWS`, at most
    `EVICT_MAX_ROWS_PER_RUN` a run) so a writer never holds the lock long. The file is not
    shrunk: the pages freed go to SQLite's free list and the next labels reuse them, so the file
    settles at the size of one TTL's worth of labels. `auto_vacuum=INCREMENTAL` would give pages
    back to the file system, only for the cache to grow into them again, and it cannot be turned
    on for an existing file without a full VACUUM.
    """

    EVICT_BATCH_ROWS = 5000
    EVICT_MAX_ROWS_PER_RUN = 50_000

    def __init__(
        self,
        path: Path,
        ttl_seconds: int,
        negative_ttl_seconds: int,
        clock: Callable[[], float] = time.time,
        evict_every_puts: int = 1000,
        evict_interval_seconds: float = 600.0,
    ) -> None:
        super().__init__(ttl_seconds, negative_ttl_seconds)
        self.path = Path(path)
        self._clock = clock
        self._evict_every_puts = evict_every_puts
        self._evict_interval = evict_interval_seconds
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        with self._lock:
            self._connection()
        self._puts_since_evict = 0
        self._evicted_at = clock()
        self.evict_expired()

    # --- opening and corruption ---

    def _connection(self) -> sqlite3.Connection:
        """The open connection; (re)opens the file, moving it aside if it is corrupt."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._connect()
            except sqlite3.DatabaseError as exc:
                if not _is_corrupt(exc):
                    raise sqlite3.OperationalError(
                        f"cannot open label cache {self.path}: {exc}"
                    ) from exc
                self._move_aside(exc)
                self._db = self._connect()
        return self._db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS labels ("
                " entity_id TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS labels_expires_at ON labels (expires_at)")
            # Reads every page once (seconds for a large file, at start only): damage found now
            # costs an empty cache, damage found mid-stream costs the same plus a failed call.
            problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise _Corrupt("; ".join(problems)[:300])
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, error: sqlite3.DatabaseError) -> None:
        """Keep the damaged file (and its WAL) for a post-mortem, out of the way of a new one."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        # A stale WAL must go too: SQLite would replay it into the new, empty file.
        for suffix in ("", "-wal", "-shm", "-journal"):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                os.replace(source, target.with_name(target.name + suffix))
        log.warning("cache_corrupt", path=str(self.path), moved_to=str(target), error=str(error))

    def _recover(self, error: sqlite3.DatabaseError) -> None:
        """Corruption found by a query: drop the connection, move the file aside, start empty."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        self._move_aside(error)
        self._connection()

    def _run(self, op: Callable[[sqlite3.Connection], R], after_recovery: R | None = None) -> R:
        """`op` under the lock; on corruption, recover and return `after_recovery`, or run `op`
        again on the new file when that is None."""
        with self._lock:
            try:
                return op(self._connection())
            except sqlite3.DatabaseError as exc:
                if not _is_corrupt(exc):
                    raise
                self._recover(exc)
                if after_recovery is not None:
                    return after_recovery
                return op(self._connection())

    # --- reads and writes ---

    def _get_raw(self, ids: list[str]) -> dict[str, str]:
        marks = ",".join("?" * len(ids))
        now = self._clock()

        def select(db: sqlite3.Connection) -> dict[str, str]:
            rows = db.execute(
                f"SELECT entity_id, value FROM labels WHERE entity_id IN ({marks})"  # nosec B608
                " AND expires_at > ?",
                [*ids, now],
            ).fetchall()
            return dict(rows)

        return self._run(select, after_recovery={})

    def _recent_raw(self, limit: int) -> list[tuple[str, str]]:
        # expires_at = stored + TTL: with one TTL per kind, the newest expiry is the newest row.
        def select(db: sqlite3.Connection) -> list[tuple[str, str]]:
            return db.execute(
                "SELECT entity_id, value FROM labels WHERE expires_at > ?"
                " ORDER BY expires_at DESC LIMIT ?",
                (self._clock(), limit),
            ).fetchall()

        return self._run(select, after_recovery=[])

    def _put_raw(self, rows: list[tuple[str, str, int]]) -> None:
        now = self._clock()
        values = [(key, value, now + ttl) for key, value, ttl in rows]

        def insert(db: sqlite3.Connection) -> None:
            # One transaction: all rows or none, one WAL commit, and on an error (a full disk)
            # the connection is left outside any transaction, ready for the next write.
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO labels (entity_id, value, expires_at)"
                    " VALUES (?, ?, ?)",
                    values,
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise

        self._run(insert)
        self._puts_since_evict += 1
        if (
            self._puts_since_evict >= self._evict_every_puts
            or self._clock() - self._evicted_at >= self._evict_interval
        ):
            try:
                self.evict_expired(self.EVICT_MAX_ROWS_PER_RUN)
            except sqlite3.Error as exc:  # the put succeeded; eviction tries again later
                log.warning(
                    "cache_error", error_class=type(exc).__name__, error=str(exc), op="evict"
                )

    def evict_expired(self, max_rows: int | None = None) -> int:
        """Delete rows expired by now, in batches; at most `max_rows` (None: all). Returns
        how many were deleted."""
        now = self._clock()
        self._puts_since_evict, self._evicted_at = 0, now
        total = 0
        while max_rows is None or total < max_rows:
            limit = self.EVICT_BATCH_ROWS
            if max_rows is not None:
                limit = min(limit, max_rows - total)

            def delete(db: sqlite3.Connection, limit: int = limit) -> int:
                return db.execute(
                    "DELETE FROM labels WHERE rowid IN"
                    " (SELECT rowid FROM labels WHERE expires_at <= ? LIMIT ?)",
                    (now, limit),
                ).rowcount

            deleted = self._run(delete, after_recovery=0)
            total += deleted
            if deleted < limit:
                break
        if total:
            log.info("cache_evicted", path=str(self.path), rows=total)
        return total

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class RedisLabelCache(LabelCache):
    """Shared by every producer that points at the same Redis; Redis expires entries itself."""

    KEY_PREFIX = "wikistreams:wikidata:"

    def __init__(self, url: str, ttl_seconds: int, negative_ttl_seconds: int) -> None:
        import redis

        super().__init__(ttl_seconds, negative_ttl_seconds)
        # A connect timeout of its own: redis-py's default waits as long as the OS does (minutes
        # for a host that drops packets), and the first open happens as a term starts.
        self._redis = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
        )
        self._redis.ping()

    def _get_raw(self, ids: list[str]) -> dict[str, str]:
        values = self._redis.mget([self.KEY_PREFIX + key for key in ids])
        # `decode_responses=True` makes every value a str; redis-py's types cannot know that.
        return {
            key: value if isinstance(value, str) else value.decode()
            for key, value in zip(ids, values)
            if value is not None
        }

    def _put_raw(self, rows: list[tuple[str, str, int]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key, value, ttl in rows:
            pipe.set(self.KEY_PREFIX + key, value, ex=ttl)
        pipe.execute()

    def close(self) -> None:
        self._redis.close()


class ReopeningCache(LabelCache):
    """The backend `open_backend` returns, or none while it cannot be opened.

    Without a backend every lookup is a miss and writes are skipped: the labels come from the
    API alone, as if the cache were empty. Opening is tried at once, then again at most every
    `retry_seconds` on the next lookup or write (from the workers' threads, never the stream's).
    """

    def __init__(
        self,
        open_backend: Callable[[], LabelCache],
        ttl_seconds: int,
        negative_ttl_seconds: int,
        retry_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl_seconds, negative_ttl_seconds)
        self._open_backend = open_backend
        self._retry = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._backend: LabelCache | None = None
        self._next_try = clock()
        self._error: str | None = None
        self._current()

    @property
    def problem(self) -> str | None:
        if self._backend is not None:
            return None
        return f"label cache unavailable ({self._error}); labels from the API only, retrying"

    def _current(self) -> LabelCache | None:
        if self._backend is not None:
            return self._backend
        with self._lock:
            if self._backend is None and self._clock() >= self._next_try:
                self._try_open()
        return self._backend

    def _try_open(self) -> None:
        try:
            self._backend = self._open_backend()
        except Exception as exc:  # noqa: BLE001 - whatever stops it, the stream goes on
            self._next_try = self._clock() + self._retry
            self._error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning(
                "cache_unavailable",
                error_class=type(exc).__name__,
                error=str(exc)[:300],
                retry_in_seconds=self._retry,
                action="running without the label cache: labels from the API only",
            )
            return
        if self._error is not None:
            log.info("cache_opened", after_error=self._error)
        self._error = None

    def keep_open(self) -> None:
        self._current()

    def _get_raw(self, ids: list[str]) -> dict[str, str]:
        backend = self._current()
        return backend._get_raw(ids) if backend is not None else {}

    def _put_raw(self, rows: list[tuple[str, str, int]]) -> None:
        backend = self._current()
        if backend is not None:
            backend._put_raw(rows)

    def _recent_raw(self, limit: int) -> list[tuple[str, str]]:
        backend = self._current()
        return backend._recent_raw(limit) if backend is not None else []

    def close(self) -> None:
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None
            self._next_try = float("inf")  # closed: never reopened


def open_cache(settings: Settings) -> LabelCache:
    """The backend the settings ask for; run without it while it cannot be opened."""
    return ReopeningCache(
        lambda: open_backend(settings),
        settings.cache_ttl_seconds,
        settings.cache_negative_ttl_seconds,
        settings.cache_retry_seconds,
    )


def open_backend(settings: Settings) -> LabelCache:
    """The backend the settings ask for, opened now (raises when it cannot be)."""
    if settings.cache_backend.value == "redis":
        return RedisLabelCache(
            settings.redis_url, settings.cache_ttl_seconds, settings.cache_negative_ttl_seconds
        )
    return SqliteLabelCache(
        settings.cache_db_path, settings.cache_ttl_seconds, settings.cache_negative_ttl_seconds
    )
