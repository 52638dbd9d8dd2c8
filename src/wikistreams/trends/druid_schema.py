"""The Druid columns `TrendRecord` implies: `druid/trends-ingestion-spec.json` must equal them.

One row per trend record (rollup off, like the enriched datasource), so the spec is derived from
the model: a field added to the record cannot be forgotten in Druid. Lists become multi-value
strings that keep their order (`ARRAY`), since `titles` and `urls` follow the order of `wikis`;
Druid's default (`SORTED_ARRAY`) would sort each list on its own and break that pairing.
"""

from __future__ import annotations

import types
from typing import Union, get_args, get_origin

from wikistreams.trends.record import TrendRecord

TIMESTAMP_FIELD = "window_end"  # Druid's `__time`: "the last 15 minutes" is about edits


def druid_type(annotation: object) -> str:
    """int -> long, float -> double, everything else (str, Literal, list[str]) -> string."""
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    if annotation is int:
        return "long"
    return "double" if annotation is float else "string"


def druid_dimensions() -> list[dict[str, str]]:
    """The dimensionsSpec: every field but the timestamp, in the model's order."""
    dims = []
    for name, field in TrendRecord.model_fields.items():
        if name == TIMESTAMP_FIELD:
            continue
        dim = {"type": druid_type(field.annotation), "name": name}
        if get_origin(field.annotation) is list:
            dim["multiValueHandling"] = "ARRAY"
        dims.append(dim)
    return dims
