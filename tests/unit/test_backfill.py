"""Backfill: the `since` a first start asks for, the stand-in's answer to it, and the progress."""

import json
import subprocess
import threading
from pathlib import Path
from datetime import datetime, timedelta, timezone
from itertools import islice

from wikistreams.producer.backfill import (
    CAUGHT_UP_LAG_SECONDS,
    OFFLINE_COMMAND,
    CatchUp,
    since_for,
    wait_for_first_event,
)
from wikistreams.healthcheck import serve_json_health
from wikistreams.producer.source import SseSource
from tests.conftest import source_options, wait_until
from tests.ops_support import free_port
from tests.standins.sse_server import recorded_sse, since_ms

ROOT = Path(__file__).resolve().parents[2]


def test_since_is_an_hour_before_now_in_utc_and_off_at_zero():
    now = datetime(2026, 11, 30, 12, 0, 30, tzinfo=timezone.utc)
    assert since_for(1, now) == "2026-11-30T11:00:30Z"
    assert since_for(0.5, now) == "2026-11-30T11:30:30Z"
    assert since_for(0, now) is None
    assert since_ms("2026-11-30T11:00:30Z") == int(
        datetime(2026, 11, 30, 11, 0, 30, tzinfo=timezone.utc).timestamp() * 1000
    )


def test_the_source_asks_since_only_until_it_has_an_id(sse_server_factory):
    server = sse_server_factory([recorded_sse()])
    frames = server.frames
    server.behaviour.live_from = len(frames)  # no `since`: the live edge, nothing recorded
    server.behaviour.cut_after = 4
    at = datetime.fromtimestamp(frames[2].timestamp_ms / 1000, timezone.utc)
    stop = threading.Event()
    options = source_options(backfill_hours=1, reconnect_backoff_max_seconds=0.1)
    source = SseSource(server.url, None, options, stop, clock=lambda: at + timedelta(hours=1))
    got = list(islice(source, 7))
    stop.set()
    ids = [json.loads(raw.data)["meta"]["id"] for raw in got]
    assert ids[0] == json.loads(frames[2].data)["meta"]["id"], "history starts at `since`"
    first, second = server.behaviour.connections[:2]
    assert first["since"] == since_for(1, at + timedelta(hours=1))
    assert first["last_event_id"] is None
    assert second["since"] is None and second["last_event_id"], "then Last-Event-ID alone"


def test_each_connect_attempt_asks_since_from_its_own_now(sse_server_factory):
    """Issue 21: `since` was fixed at the first start, so a stream reachable only hours later
    would backfill all those hours too. Each attempt without an id counts BACKFILL_HOURS back
    from its own time (the clock is the test's: three attempts, three hours apart)."""
    server = sse_server_factory([recorded_sse()])
    server.behaviour.reject_next = 2
    server.behaviour.reject_status = 503
    server.behaviour.retry_after = "0"
    server.behaviour.live_from = len(server.frames)  # nothing to deliver: only `since` counts
    start = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)
    attempts = iter(start + timedelta(hours=3 * n) for n in range(100))
    stop = threading.Event()
    options = source_options(backfill_hours=2, reconnect_backoff_max_seconds=0.05)
    source = SseSource(server.url, None, options, stop, clock=lambda: next(attempts))
    reader = threading.Thread(target=lambda: list(source), daemon=True)
    reader.start()
    wait_until(lambda: len(server.behaviour.connections) >= 3, 30)
    stop.set()
    reader.join(10)
    asked = [c["since"] for c in server.behaviour.connections[:3]]
    # The first clock reading is the source's start (what /health shows until it connects).
    assert asked == [since_for(2, start + timedelta(hours=3 * n)) for n in (1, 2, 3)]
    assert asked[-1] == "2026-12-01T07:00:00Z", "9 h after the start, still only 2 h back"


def test_progress_estimates_the_time_left_and_reports_done_once():
    catch_up = CatchUp("2026-11-30T11:00:30Z")
    assert catch_up.observe(3600.0, 100)["backfill_eta_seconds"] is None  # one reading: no rate
    catch_up._last = (catch_up._last[0] - 10, 3600.0)  # ten seconds ago the lag was 3,600 s
    fields = catch_up.observe(3000.0, 5000)
    assert fields["backfill"] == "catching_up"
    assert 45 <= fields["backfill_eta_seconds"] <= 55, "600 s of lag gone in 10 s: 50 s left"
    assert catch_up.observe(CAUGHT_UP_LAG_SECONDS - 1, 10) == {
        "backfill": "done",
        "backfill_eta_seconds": 0.0,
    }
    assert catch_up.observe(5.0, 10) == {"backfill": "done"}
    assert CatchUp(None).observe(3600.0, 10) == {"backfill": "off"}


def test_make_up_prints_the_readmes_offline_command_and_waits_for_the_first_event():
    """The command `make up` suggests without internet is the README's, word for word; and
    `make up` runs the first-event wait (a dry run: nothing starts)."""
    readme = (ROOT / "README.md").read_text()
    assert OFFLINE_COMMAND in readme
    dry = subprocess.run(
        ["make", "-n", "up", "SERVICES=producer", "FIRST_EVENT_WAIT=7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "-m wikistreams.producer.backfill --first-event-seconds 7" in dry


def test_the_first_event_line_reads_the_active_copy_or_else_the_log(tmp_path):
    """With a standby, the copy that reads the stream is the one to ask; with no /health at
    all (the producer exited, e.g. on a 403), the producer's log names the cause."""
    active: dict = {"role": "active", "source_url": "https://stream.invalid/rc"}
    active |= {"source_frames": 0, "source_error": "DNS: the host name does not resolve"}
    servers = [
        serve_json_health(lambda: (True, {"role": "standby"}), "127.0.0.1", 0),
        serve_json_health(lambda: (True, dict(active)), "127.0.0.1", 0),
    ]
    urls = [f"http://127.0.0.1:{s.server_address[1]}/health" for s in servers]
    log = tmp_path / "producer.log"
    try:
        line = wait_for_first_event(urls, 0, log, poll=0)
        assert line.startswith("no event from https://stream.invalid/rc within 0 s: DNS: the")
        assert line.endswith(OFFLINE_COMMAND)
        active["source_frames"] = 1
        assert wait_for_first_event(urls, 0, log) == (
            "events are arriving from https://stream.invalid/rc"
        )
    finally:
        for server in servers:
            server.shutdown()
    gone = f"http://127.0.0.1:{free_port()}/health"
    failed = {"msg": "source_failed", "error": "403 from x: check USER_AGENT_CONTACT"}
    log.write_text("not json\n" + json.dumps(failed) + "\n" + json.dumps({"msg": "stats"}) + "\n")
    assert "within 0 s: 403 from x: check USER_AGENT_CONTACT (more in" in wait_for_first_event(
        [gone], 0, log
    )
