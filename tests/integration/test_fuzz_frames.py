"""Property test: random and mutated real frames through source + decode + enrich + publish.

Hypothesis builds SSE streams from recorded events, then breaks them the ways the internet does
(flipped and inserted bytes, cut frames, invalid UTF-8, stray line endings, hostile JSON values in
real fields, other event types). Each stream is replayed by the producer's own file source into
the real pipeline and real Kafka. The property: the pipeline ends cleanly and every frame the
source produced was delivered, dead-lettered or dropped on purpose, never lost and never an
exception that escapes.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wikistreams.producer.pipeline import Pipeline
from wikistreams.producer.sink import KafkaSink, ensure_topics, producer_config
from wikistreams.producer.source import EventStreamSource, FileSource
from tests.conftest import recorded_events, recorded_files, source_options
from tests.fakes import FrameSource, pipeline_settings
from tests.integration.conftest import KAFKA, delete_topics

pytestmark = pytest.mark.integration

REAL = [
    data
    for path in recorded_files()
    if path.name.startswith("polars-book") or path.parent.name == "editgroups_testdata"
    for data in recorded_events(path)
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@st.composite
def mutated_event(draw) -> bytes:
    """A real event with one real field replaced by an arbitrary JSON value, or removed."""
    event = json.loads(draw(st.sampled_from(REAL)))
    event["meta"]["id"] = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))))
    target = event["meta"] if draw(st.booleans()) else event
    key = draw(st.sampled_from(sorted(target)))
    if draw(st.booleans()):
        target[key] = draw(json_values)
    else:
        del target[key]
    return json.dumps(event).encode()


@st.composite
def byte_mutation(draw) -> bytes:
    """A real frame's data with bytes flipped, inserted or cut off."""
    data = bytearray(draw(st.sampled_from(REAL)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "cut"]))
        if kind == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[pos:pos] = draw(
                st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\r", b"\n", b"\n\n", b"{", b'"'])
            )
        else:
            del data[pos:]
    return bytes(data)


@st.composite
def sse_frame(draw) -> tuple[bytes, bool]:
    """One frame's bytes, and whether it is an untouched real event (which must be delivered)."""
    good = draw(st.booleans())
    if good:
        data = draw(st.sampled_from(REAL))
    else:
        data = draw(st.one_of(mutated_event(), byte_mutation(), st.binary(max_size=200)))
    event = draw(st.sampled_from([b"message", b"message", b"error", b""]))
    good = good and event != b"error"
    lines = [b"event: " + event] if event else []
    if draw(st.booleans()):
        lines.append(b"id: " + str(draw(st.integers(0, 10**6))).encode())
    lines += [b"data: " + part for part in data.replace(b"\r", b"").split(b"\n")]
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    return ending.join(lines) + ending + ending, good


@pytest.fixture(scope="module")
def fuzz_topic():
    name = f"fuzz-{uuid.uuid4().hex[:8]}"
    ensure_topics(KAFKA, [name, f"{name}.dlq"], 1, 1)
    yield name
    delete_topics(name, f"{name}.dlq")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(sse_frame(), min_size=1, max_size=25))
def test_every_frame_is_delivered_or_dead_lettered(tmp_path, fuzz_topic, frames):
    stream = tmp_path / f"{uuid.uuid4().hex}.sse"
    stream.write_bytes(b"".join(frame for frame, _good in frames))
    stop = threading.Event()
    seen = []

    def counted(source):
        for raw in source:
            seen.append(raw)
            yield raw

    sink = KafkaSink(producer_config(KAFKA, "zstd", 5), fuzz_topic, f"{fuzz_topic}.dlq")
    pipeline = Pipeline(sink, **pipeline_settings(dedupe_window=0))
    code = pipeline.run(FrameSource(counted(FileSource(stream, "fast", None, stop))), stop)

    totals = pipeline.stats.totals
    finished = (
        totals["events_out"]
        + totals["dlq"]
        + totals["duplicates_dropped"]
        + totals["canary_dropped"]
    )
    assert code == 0
    assert totals["events_in"] == len(seen) == finished
    assert pipeline.tracker.in_flight == 0
    assert totals["events_out"] >= sum(good for _frame, good in frames)
    if seen:
        assert pipeline.tracker.position == seen[-1].sse_id


def test_a_long_replay_accounts_for_every_frame(tmp_path, fuzz_topic):
    """Thousands of frames, so the pipeline's inbox batching and backpressure are exercised."""
    paths = [p for p in recorded_files() if p.suffix == ".jsonl"]
    frames = [data for path in paths for data in recorded_events(path)]
    stream = tmp_path / "all.jsonl"
    stream.write_bytes(b"\n".join(frames) + b"\n")
    stop = threading.Event()
    sink = KafkaSink(producer_config(KAFKA, "zstd", 5), fuzz_topic, f"{fuzz_topic}.dlq")
    pipeline = Pipeline(sink, queue_size=300, **pipeline_settings(dedupe_window=0))
    source = EventStreamSource(stream.as_uri(), source_options())
    assert pipeline.run(source, stop) == 0
    assert source.state == "finished"
    totals = pipeline.stats.totals
    assert len(frames) > 5000
    assert totals["events_in"] == len(frames)
    assert totals["events_out"] + totals["dlq"] + totals["canary_dropped"] == len(frames)
