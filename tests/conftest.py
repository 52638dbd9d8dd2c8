"""Shared fixtures: the recorded data and the two local stand-ins for internet services."""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from wikistreams.producer.logs import configure_logging
from tests.standins import TEST_CONTACT, recentchange_dir
from tests.standins.sse_server import SseStandIn, load_frames
from tests.standins.wikidata_api import WikidataStandIn

if TYPE_CHECKING:
    from wikistreams.producer.source import SourceOptions

USER_AGENT = f"WikiStreams/0.1.0 ({TEST_CONTACT}) python-requests/2"


def source_options(user_agent: str = USER_AGENT, **settings: Any) -> SourceOptions:
    """The sources' options as the producer builds them, from `Settings` (its defaults: there is
    no second copy) with this test's settings (lower-case names) and User-Agent."""
    from wikistreams.producer.config import Settings
    from wikistreams.producer.source import SourceOptions

    # The stand-in's recordings are years old: a `since` of an hour ago would skip them all, so
    # tests replay them as the live edge unless they ask for a backfill.
    settings.setdefault("backfill_hours", 0)
    built = Settings(_env_file=None, user_agent_contact=TEST_CONTACT, **settings)
    return replace(SourceOptions.from_settings(built), user_agent=user_agent)


def wait_until(predicate, seconds: float = 60.0, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy (returned); fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true after {seconds:g} s: {predicate}")


def pinned_versions() -> dict[str, str]:
    """`native/versions.env` as a dict (the one place server versions are pinned), read the way
    the launcher reads it."""
    from wikistreams.native.config import VERSIONS_FILE, read_env_file

    return read_env_file(VERSIONS_FILE)


def recorded_events(path: Path) -> list[bytes]:
    """The `data` of every frame of a recording (.sse or JSON lines), read by the producer's own
    file source, so tests and producer agree on what a recording contains."""
    import threading

    from wikistreams.producer.source import FileSource

    return [raw.data for raw in FileSource(path, "fast", None, threading.Event())]


def event_ids(path: Path) -> list[str]:
    """`meta.id` of every event of a recording, in order (duplicates kept)."""
    from wikistreams.producer.decode import decode_event

    return [decode_event(data).meta.id for data in recorded_events(path)]


def recorded_files() -> list[Path]:
    """Every recorded recentchange file (JSON lines and raw SSE)."""
    root = recentchange_dir()
    return sorted(p for p in root.rglob("*") if p.suffix in {".jsonl", ".json", ".sse"})


@pytest.fixture(scope="session")
def wikidata_api():
    server = WikidataStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def wikidata(wikidata_api):
    """The stand-in with fresh behaviour and request log for each test; a test's faults
    (an outage, garbage answers) are cleared afterwards too, since the server is shared with
    tests that use `wikidata_api` directly."""
    from tests.standins.wikidata_api import Behaviour

    wikidata_api.behaviour = Behaviour()
    yield wikidata_api
    wikidata_api.behaviour = Behaviour()


@pytest.fixture
def sse_server_factory():
    servers = []

    def make(files: list[Path]) -> SseStandIn:
        server = SseStandIn(load_frames(files)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def logged():
    """The producer's JSON log lines with a given `msg`, read from a buffer of this test's own;
    the logging set-up from before is restored afterwards."""
    handlers, level, config = logging.root.handlers[:], logging.root.level, structlog.get_config()
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)

    def lines(msg: str) -> list[dict]:
        out = [json.loads(line) for line in buffer.getvalue().splitlines() if line]
        return [line for line in out if line["msg"] == msg]

    yield lines
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)
    structlog.configure(**config)
