"""The asyncio design of the producer, built to be measured against the threaded one, not shipped.

It reuses every stage (`Pipeline.accept`, the `Enricher`, the `KafkaSink`, the SSE parser) and
replaces only the concurrency: one event loop instead of threads. The stream is read with aiohttp,
the Wikidata worker is a task calling the API with aiohttp (one request in flight, <= 50 ids,
`maxlag`, Retry-After pauses the task), cache lookups run on the loop (SQLite is local), and
Kafka polling, expiry and commits (events + position) are a periodic task. Its settings are the
producer's, so the latency benchmark runs it exactly like `python -m wikistreams.producer`:

    python -m benchmarks.asyncio_producer

Left out on purpose (the comparison does not exercise them): the retry budget with several
attempts per call, Redis, the health endpoint, reconnect backoff beyond a fixed pause.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from types import SimpleNamespace

import aiohttp
import structlog

from wikistreams.producer.cache import open_cache
from wikistreams.producer.config import load_settings
from wikistreams.producer.enrich import BREAKER_STATES, Answer
from wikistreams.producer.health import Heartbeat
from wikistreams.producer.logs import configure_logging
from wikistreams.producer.main import build_pipeline, build_sink, prepare_kafka, stream_identity
from wikistreams.producer.source import RawEvent
from wikistreams.producer.sse import SseParser
from wikistreams.producer.wikidata import (
    MAX_IDS_PER_CALL,
    ApiStats,
    parse_entities,
    wbgetentities_params,
)

log = structlog.get_logger("benchmarks.asyncio_producer")


class AsyncLabelWorkers:
    """The `LabelWorkers` interface on the event loop: a queue of ids and one fetching task."""

    def __init__(self, settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self.cache = open_cache(settings)
        self.client = SimpleNamespace(stats=ApiStats())
        self._ids: asyncio.Queue[str] = asyncio.Queue()
        self._deliver = None
        self._paused_until = 0.0
        self._failures = 0
        self._open_until = 0.0
        self._task: asyncio.Task | None = None

    @property
    def breaker_state(self) -> str:
        return BREAKER_STATES["open" if time.monotonic() < self._open_until else "closed"]

    @property
    def paused_seconds(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    def start(self, deliver) -> None:
        self._deliver = deliver
        self._task = asyncio.get_running_loop().create_task(self._run())

    def request(self, entity_id: str) -> None:
        self._ids.put_nowait(entity_id)

    def stop(self, timeout: float = 5.0) -> None:
        if self._task:
            self._task.cancel()
        self.cache.close()

    async def _take(self) -> list[str]:
        batch = {await self._ids.get(): None}
        deadline = time.monotonic() + self._settings.enrich_batch_max_wait_ms / 1000
        while len(batch) < MAX_IDS_PER_CALL:
            try:
                batch[await asyncio.wait_for(self._ids.get(), deadline - time.monotonic())] = None
            except (asyncio.TimeoutError, ValueError):
                break
        return list(batch)

    async def _run(self) -> None:
        while True:
            ids = await self._take()
            hits = self.cache.get_many(ids)
            if hits:
                self._deliver(Answer(hits))
            misses = [i for i in ids if i not in hits]
            if misses:
                self._deliver(await self._fetch(misses))

    async def _fetch(self, ids: list[str]) -> Answer:
        now = time.monotonic()
        if now < self._paused_until or now < self._open_until:
            return Answer(unavailable=tuple(ids))
        s = self._settings
        params = wbgetentities_params(ids, s.wikidata_maxlag_seconds)
        started = time.perf_counter()
        try:
            timeout = aiohttp.ClientTimeout(total=s.wikidata_timeout_seconds)
            async with self._session.get(
                s.wikidata_api_url, params=params, timeout=timeout
            ) as resp:
                retry_after = resp.headers.get("Retry-After", "")
                body = await resp.json(content_type=None) if resp.status == 200 else None
        except Exception as exc:  # noqa: BLE001 - any failure makes these ids unavailable
            return self._failed(ids, type(exc).__name__)
        finally:
            self.client.stats.record((time.perf_counter() - started) * 1000)
        entities = body.get("entities") if isinstance(body, dict) else None
        if not isinstance(entities, dict):
            if retry_after.isdigit():
                self._paused_until = time.monotonic() + float(retry_after)
            return self._failed(ids, "BadAnswer")
        self._failures = 0
        result = parse_entities(entities, ids)
        self.cache.put_many(result.found, result.not_found)
        return Answer({**result.found, **dict.fromkeys(result.not_found)})

    def _failed(self, ids: list[str], error_class: str) -> Answer:
        self.client.stats.errors += 1
        self._failures += 1
        if self._failures >= self._settings.breaker_failure_threshold:
            self._open_until = time.monotonic() + self._settings.breaker_reset_seconds
        log.warning("wikidata_api_error", error_class=error_class)
        return Answer(unavailable=tuple(ids))


async def read_stream(pipeline, settings, session: aiohttp.ClientSession, stop) -> None:
    """EventStreams over aiohttp: each chunk is parsed and its frames accepted on the loop."""
    last_id = None
    headers = {"User-Agent": settings.user_agent, "Accept": "text/event-stream"}
    timeout = aiohttp.ClientTimeout(
        sock_connect=settings.sse_connect_timeout_seconds,
        sock_read=settings.sse_read_timeout_seconds,
    )
    while not stop.is_set():
        parser = SseParser(settings.sse_max_frame_bytes)
        try:
            request_headers = {**headers, **({"Last-Event-ID": last_id} if last_id else {})}
            async with session.get(
                settings.sse_url, headers=request_headers, timeout=timeout
            ) as resp:
                async for chunk in resp.content.iter_any():
                    for event in parser.feed(chunk):
                        last_id = event.last_event_id or last_id
                        pipeline.accept(
                            RawEvent(
                                data=event.data,
                                sse_id=event.last_event_id or None,
                                event_type=event.event,
                                oversize_bytes=event.data_size if event.oversize else None,
                                sha256=event.sha256,
                            )
                        )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("sse_disconnected", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(1.0)


async def housekeeping(pipeline, settings, stop) -> None:
    next_stats = time.monotonic() + settings.stats_interval_seconds
    while not stop.is_set():
        pipeline.enricher.expire()
        pipeline.sink.poll(0)
        pipeline._maybe_commit()
        if time.monotonic() >= next_stats:
            pipeline.log_stats()
            next_stats = time.monotonic() + settings.stats_interval_seconds
        wait = pipeline.enricher.seconds_to_next_deadline()
        await asyncio.sleep(0.05 if wait is None else min(wait, 0.05))


async def run_async(settings) -> int:
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not prepare_kafka(settings, stop, Heartbeat()):
        return 0
    # The pipeline without its threaded workers; the asyncio ones are set below.
    # No lease (a benchmark runs one copy); it resumes nothing (each run has a topic of its own).
    sink = build_sink(settings, stream_identity(settings))
    sink.start()
    pipeline = build_pipeline(settings.model_copy(update={"enrichment_enabled": False}), sink)
    async with aiohttp.ClientSession(headers={"User-Agent": settings.user_agent}) as session:
        if settings.enrichment_enabled:
            workers = AsyncLabelWorkers(settings, session)
            pipeline.enricher.workers = workers
            workers.start(pipeline.enricher.answered)
        tasks = [
            loop.create_task(read_stream(pipeline, settings, session, stop)),
            loop.create_task(housekeeping(pipeline, settings, stop)),
        ]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pipeline.enricher.release_all()
        return pipeline.close()


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    raise SystemExit(asyncio.run(run_async(settings)))


if __name__ == "__main__":
    main()
