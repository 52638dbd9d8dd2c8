"""docs/contracts.md's event table comes from `EnrichedEvent`; the generated blocks stay put."""

from typing import Literal

import pytest
from pydantic import TypeAdapter

from tests.standins import REPO_ROOT
from wikistreams.producer.contract_doc import (
    TABLE_BEGIN,
    TABLE_END,
    TRENDS_BEGIN,
    TRENDS_END,
    contract_type,
    examples,
    markdown_table,
    trends_table,
)
from wikistreams.producer.docblocks import block_in, write_block
from wikistreams.producer.events import EnrichedEvent
from wikistreams.trends.record import TrendRecord


def test_contracts_table_matches_the_model():
    text = (REPO_ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    assert (
        block_in(text, TABLE_BEGIN, TABLE_END) == markdown_table()
    ), "regenerate with: python -m wikistreams.producer.contract_doc write"
    assert (
        block_in(text, TRENDS_BEGIN, TRENDS_END) == trends_table()
    ), "regenerate with: python -m wikistreams.producer.contract_doc write"
    assert len(trends_table().splitlines()) == len(TrendRecord.model_fields) + 4


@pytest.mark.parametrize(
    "model, name",
    [(EnrichedEvent, n) for n in EnrichedEvent.model_fields]
    + [(TrendRecord, n) for n in TrendRecord.model_fields],
)
def test_examples_are_values_of_the_field(model, name):
    """A documented example the producer could never send would mislead dashboard authors."""
    field = model.model_fields[name]
    adapter = TypeAdapter(field.annotation)
    for example in examples(field):
        adapter.validate_python(example, strict=True)


@pytest.mark.parametrize(
    "annotation, expected",
    [
        (str, "string"),
        (int | None, "long or null"),
        (None | bool, "boolean or null"),
        (Literal["a", "b"], "string"),
        (float, "double"),
        (list[str], "list of strings"),
        (str | None, "string or null"),
    ],
)
def test_contract_type_names(annotation, expected):
    assert contract_type(annotation) == expected


@pytest.mark.parametrize("annotation", [bytes, list[int], dict[str, str], Literal[1, 2]])
def test_a_type_without_a_contract_name_is_refused(annotation):
    with pytest.raises(TypeError):
        contract_type(annotation)


def test_write_block_replaces_only_the_block(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- b -->\nold row\n<!-- e -->\noutro\n", encoding="utf-8")
    assert write_block(doc, "<!-- b -->\nnew row\n<!-- e -->") is True
    assert doc.read_text(encoding="utf-8") == "intro\n<!-- b -->\nnew row\n<!-- e -->\noutro\n"
    assert write_block(doc, "<!-- b -->\nnew row\n<!-- e -->") is False


def test_block_in_needs_both_markers_in_order():
    with pytest.raises(ValueError):
        block_in("<!-- e -->\n<!-- b -->\n", "<!-- b -->", "<!-- e -->")
