"""Rebuilds the DERIVED files of tests/data/recorded from the licensed recordings beside them.

    python tests/data/recorded/make_derived.py          (writes the files)
    python tests/data/recorded/make_derived.py --check  (exit 1 if a committed file differs)

Nothing is invented: every byte of an event or an error envelope comes from a recorded file;
what this script adds is stated in tests/data/recorded/SOURCES.md (sections 1c and 4e).

- `sse/DERIVED_recentchange_9_frames_from_polars-book_enwiki_2023-07-29.sse`: the first nine
  lines of `recentchange/polars-book_wikimedia_enwiki_2023-07-29.jsonl` (MIT), byte for byte, as
  the `data:` of raw EventStreams frames. The file starts with the `:ok` comment; each frame is
  `event: message`, `id: <EventStreams id>` and `data: <line>`, then a blank line. The id is the
  service's two-topic form with the eqiad timestamp set to the event's `meta.dt` in milliseconds.
- `wikidata/errors/DERIVED_ratelimited_from_wdtk_assert-user-failed.json`: the real wikidata.org
  API error envelope of `wikidata/wdtk/assert-user-failed.json` (Apache-2.0) with `error.code`
  set to `ratelimited` and `error.info` to MediaWiki's English text for that code; `*` and
  `servedby` are kept. Key order and the compact form of the original are kept.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
POLARS = HERE / "recentchange" / "polars-book_wikimedia_enwiki_2023-07-29.jsonl"
SSE = HERE / "sse" / "DERIVED_recentchange_9_frames_from_polars-book_enwiki_2023-07-29.sse"
FRAMES = 9
WDTK_ERROR = HERE / "wikidata" / "wdtk" / "assert-user-failed.json"
RATELIMITED = HERE / "wikidata" / "errors" / "DERIVED_ratelimited_from_wdtk_assert-user-failed.json"
# MediaWiki's message `apierror-ratelimited`, the `info` the API gives with code `ratelimited`.
RATELIMITED_INFO = "You've exceeded your rate limit. Please wait some time and try again."


def event_stream_id(line: bytes) -> str:
    """EventStreams' `id:` for an event: eqiad topic at the event time, codfw at offset -1."""
    dt = json.loads(line)["meta"]["dt"]
    ms = int(datetime.fromisoformat(dt.replace("Z", "+00:00")).timestamp() * 1000)
    return json.dumps(
        [
            {"topic": "eqiad.mediawiki.recentchange", "partition": 0, "timestamp": ms},
            {"topic": "codfw.mediawiki.recentchange", "partition": 0, "offset": -1},
        ],
        separators=(",", ":"),
    )


def sse_frames() -> bytes:
    lines = POLARS.read_bytes().splitlines()[:FRAMES]
    out = [b":ok\n\n"]
    for line in lines:
        out.append(b"event: message\nid: %s\ndata: %s\n\n" % (event_stream_id(line).encode(), line))
    return b"".join(out)


def ratelimited() -> bytes:
    body = json.loads(WDTK_ERROR.read_bytes())
    body["error"]["code"] = "ratelimited"
    body["error"]["info"] = RATELIMITED_INFO
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def main(argv: list[str]) -> int:
    outputs = {SSE: sse_frames(), RATELIMITED: ratelimited()}
    stale = [
        path for path, data in outputs.items() if not path.is_file() or path.read_bytes() != data
    ]
    if "--check" in argv:
        for path in stale:
            print(f"differs: {path.relative_to(HERE)}")
        return 1 if stale else 0
    for path, data in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path.relative_to(HERE)} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
