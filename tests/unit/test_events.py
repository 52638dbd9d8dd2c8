import json
from datetime import datetime, timezone

import pytest

from wikistreams.producer.decode import StageError, decode_event
from wikistreams.producer.events import (
    EnrichedEvent,
    EventTimeBounds,
    WikidataLabels,
    druid_dimensions,
    druid_transforms,
    encode_record,
    enriched_record,
    format_event_time,
)
from tests.conftest import recorded_events, recorded_files
from tests.standins import REPO_ROOT
from wikistreams.druid.supervisor import DEFAULT_DATASOURCE


def test_every_recorded_event_validates():
    """Real events of 2018 and 2023 (with and without $schema/meta.stream) must all flow."""
    total = 0
    for path in recorded_files():
        for data in recorded_events(path):
            change = decode_event(data)
            assert change.meta.id and change.wiki and change.server_name
            total += 1
    assert total == 3818 + 1789 + 98 + 100


def test_2018_event_maps_to_contract():
    path = next(p for p in recorded_files() if p.name.startswith("editgroups_one_qs"))
    change = decode_event(recorded_events(path)[0])
    event = EnrichedEvent.from_change(change)
    assert event.event_id == "dd8c5690-2222-11e8-a2ad-1418776134f3"
    assert event.event_time == "2018-03-07T16:16:17.000Z"
    assert (event.length_old, event.length_new, event.length_delta) == (1007, 1438, 431)
    assert (event.revision_old, event.revision_new) == (645091281, 645091312)
    assert event.enrichment_status == "not_applicable"


def test_event_time_keeps_milliseconds_and_normalises_offsets():
    change = decode_event(
        json.dumps(
            {
                "meta": {"id": "x", "dt": "2025-08-29T08:45:17.280+02:00"},
                "type": "new",
                "namespace": 0,
                "title": "T",
                "wiki": "mgwiktionary",
                "server_name": "mg.wiktionary.org",
                "length": {"new": 120},
            }
        ).encode()
    )
    assert format_event_time(change.meta.dt) == "2025-08-29T06:45:17.280Z"
    event = EnrichedEvent.from_change(change)
    assert (event.length_old, event.length_delta, event.revision_new) == (None, 120, None)


@pytest.mark.parametrize(
    "data, stage, error_class",
    [
        (b'{"meta": {', "parse", "JSONDecodeError"),
        (b"\xff\xfe not utf-8", "parse", "JSONDecodeError"),
        (b"[1, 2]", "parse", "NotAnObject"),
        (b'{"meta": {"id": "a", "dt": "2025-01-01T00:00:00Z"}}', "validate", "ValidationError"),
        (
            b'{"meta": {"id": "a", "dt": "not a date"}, "type": "edit"}',
            "validate",
            "ValidationError",
        ),
    ],
)
def test_bad_input_names_its_stage(data, stage, error_class):
    with pytest.raises(StageError) as err:
        decode_event(data)
    assert err.value.stage == stage
    assert err.value.error_class in (error_class, "UnicodeDecodeError")
    assert str(err.value)


def test_validation_error_names_the_fields():
    with pytest.raises(StageError) as err:
        decode_event(b'{"meta": {"id": "a", "dt": "2025-01-01T00:00:00Z"}, "type": "edit"}')
    assert "title" in str(err.value) and "wiki" in str(err.value)


def test_non_message_frames_are_rejected():
    with pytest.raises(StageError) as err:
        decode_event(b"{}", event_type="error")
    assert err.value.stage == "parse"


def test_canary_detected():
    change = decode_event(
        b'{"meta": {"id": "c", "dt": "2025-01-01T00:00:00Z", "domain": "canary"},'
        b' "type": "edit", "namespace": 0, "title": "T", "wiki": "w", "server_name": "s"}'
    )
    assert change.is_canary


def test_druid_spec_dimensions_come_from_the_contract():
    spec = json.loads((REPO_ROOT / "druid" / "ingestion-spec.json").read_text())
    schema = spec["spec"]["dataSchema"]
    assert schema["dimensionsSpec"]["dimensions"] == druid_dimensions()
    assert schema["transformSpec"]["transforms"] == druid_transforms()
    assert schema["timestampSpec"]["column"] == "event_time"
    assert "parser" not in schema
    assert spec["spec"]["ioConfig"]["inputFormat"]["type"] == "json"
    assert schema["granularitySpec"]["rollup"] is False
    assert schema["granularitySpec"]["segmentGranularity"] == "HOUR"
    assert schema["dataSource"] == DEFAULT_DATASOURCE


def test_the_fast_encoding_is_exactly_the_contract():
    """The hot path skips the model; every record it writes must still be a valid
    `EnrichedEvent` that dumps to the very same JSON document (same fields, same types)."""
    labels = WikidataLabels(label_ko="더글러스 애덤스", label_en="Douglas Adams")
    variants = [
        (None, None, "not_applicable"),
        ("Q42", labels, "enriched"),
        ("Q42", None, "not_found"),
        ("Q42", None, "unavailable"),
    ]
    for path in recorded_files():
        for data in recorded_events(path):
            change = decode_event(data)
            for entity_id, entity_labels, status in variants:
                value = encode_record(enriched_record(change, entity_id, entity_labels, status))
                as_model = EnrichedEvent.model_validate_json(value)
                assert json.loads(value) == as_model.model_dump(mode="json")
                assert list(json.loads(value)) == list(EnrichedEvent.model_fields)


def _event(**fields) -> dict:
    base = {
        "meta": {"id": "x", "dt": "2025-01-01T00:00:00Z"},
        "type": "edit",
        "namespace": 0,
        "title": "T",
        "wiki": "w",
        "server_name": "s",
    }
    return base | fields


@pytest.mark.parametrize(
    "data, stage",
    [
        (b"[" * 100_000 + b"]" * 100_000, "parse"),  # RecursionError in json.loads
        (
            json.dumps(_event(namespace=1)).replace(": 1,", ": " + "9" * 5000 + ",").encode(),
            "parse",
        ),
        (
            json.dumps(_event(meta={"id": "x", "dt": "0001-01-01T00:30:00+01:00"})).encode(),
            "validate",
        ),
        (json.dumps(_event(namespace=2**70)).encode(), "validate"),  # not a Druid long
        (json.dumps(_event(length={"new": -(2**64)})).encode(), "validate"),
        # A negative length could push length_delta = new - old past a long.
        (json.dumps(_event(length={"old": -1, "new": 2**63 - 1})).encode(), "validate"),
    ],
)
def test_hostile_input_is_a_stage_error_not_a_crash(data, stage):
    with pytest.raises(StageError) as err:
        decode_event(data)
    assert err.value.stage == stage


NOW = datetime(2026, 12, 8, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "dt, max_age, refused",
    [
        ("0001-01-03T00:00:00Z", None, "before the first wiki edit"),
        ("9999-12-29T00:00:00Z", None, "in the future"),
        ("2018-03-07T16:16:17Z", None, None),  # a recording keeps its times
        ("2018-03-07T16:16:17Z", 192 * 3600, "more than 192 h old"),
        ("2026-12-01T12:00:01Z", 192 * 3600, None),
        ("2026-12-08T12:59:00Z", 192 * 3600, None),  # within an hour of clock skew
        ("2026-12-08T13:00:01Z", 192 * 3600, "more than 3600 s in the future"),
        ("2026-12-08T22:00:01+09:00", 192 * 3600, "more than 3600 s in the future"),
    ],
)
def test_event_time_bounds(dt, max_age, refused):
    bounds = EventTimeBounds(max_age, 3600, clock=NOW.timestamp)
    change = decode_event(json.dumps(_event(meta={"id": "x", "dt": dt})).encode())
    problem = bounds.problem(change.meta.dt)
    assert problem is None if refused is None else refused in problem
