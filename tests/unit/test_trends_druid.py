"""The trends datasource's supervisor spec follows the `TrendRecord` contract."""

import json

from tests.standins import REPO_ROOT
from wikistreams.druid.supervisor import TRENDS_DATASOURCE, TRENDS_TOPIC, render_spec
from wikistreams.trends.druid_schema import TIMESTAMP_FIELD, druid_dimensions
from wikistreams.trends.record import TrendRecord

SPEC = REPO_ROOT / "druid" / "trends-ingestion-spec.json"


def test_trends_spec_dimensions_come_from_the_record():
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    schema = spec["spec"]["dataSchema"]
    assert schema["dimensionsSpec"]["dimensions"] == druid_dimensions()
    named = {d["name"] for d in druid_dimensions()} | {schema["timestampSpec"]["column"]}
    assert named == set(TrendRecord.model_fields)
    assert schema["timestampSpec"] == {"column": TIMESTAMP_FIELD, "format": "iso"}
    assert schema["granularitySpec"]["rollup"] is False
    assert schema["dataSource"] == TRENDS_DATASOURCE
    assert spec["spec"]["ioConfig"]["topic"] == TRENDS_TOPIC
    assert spec["spec"]["ioConfig"]["inputFormat"]["type"] == "json"


def test_lists_keep_their_order_and_numbers_their_type():
    dims = {d["name"]: d for d in druid_dimensions()}
    for name in ("wikis", "titles", "urls"):
        assert dims[name] == {"type": "string", "name": name, "multiValueHandling": "ARRAY"}
    assert dims["score"]["type"] == "double" and dims["edits"]["type"] == "long"
    assert dims["wikidata_id"]["type"] == "string" and dims["state"]["type"] == "string"


def test_the_trends_spec_renders_like_the_main_one():
    spec = render_spec(SPEC, topic="t", datasource="d", bootstrap="kafka:19092")
    inner = spec["spec"]
    assert inner["ioConfig"]["topic"] == "t" and inner["dataSchema"]["dataSource"] == "d"
    assert inner["ioConfig"]["consumerProperties"]["bootstrap.servers"] == "kafka:19092"
