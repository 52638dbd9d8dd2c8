"""An incremental `text/event-stream` parser over bytes, linear in its input and bounded in memory.

It follows the WHATWG HTML "event stream interpretation" rules: `event`, `data` (lines joined by
"\\n"), `id` (ignored if it contains NUL; it persists across frames), `retry` (kept as the
server's integer: bounding it is the client's job), `:` comments (counted: they are the stream's
keep-alives), a field without a colon, one leading space after the colon stripped, CRLF/CR/LF
line endings, a leading BOM, dispatch on a blank line, frames without data not dispatched (their
`id` still counts) and an unfinished frame at the end of the stream dropped.

Why not sseclient-py: it rebuilds frames by repeated `+=` (640k short `data:` lines in one frame
take minutes) and has no size limit (a 50 MB line peaks near 300 MB RSS). Here lines are kept as
lists of pieces and joined once, and a frame may buffer at most `max_frame_bytes`: the rest of a
bigger frame is counted and hashed as it streams past, never stored, and the frame is still
reported (size, sha256, first bytes) so that the pipeline can dead-letter a stub of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import NamedTuple

DEFAULT_MAX_FRAME_BYTES = 1_000_000
PREFIX_BYTES = 1024  # how much of an oversize frame's data is kept for the dead letter
MAX_FIELD_BYTES = 4096  # longer `id`/`event`/`retry` lines are ignored (real ids are ~150 B)

_BOM = b"\xef\xbb\xbf"
_FIELDS = (b"id", b"event", b"retry")
_MAX_NAME = 5  # len("event"): a colon-less line head longer than this names no known field

# What happens to the pending line (the one without its line ending yet).
_BUFFER, _HASH, _DROP = 0, 1, 2


class SseEvent(NamedTuple):
    """One dispatched frame (a NamedTuple: one is made per event, so construction cost counts).

    `id` is this frame's own `id` field (None without one); `last_event_id` is the stream's last
    event id after it (the spec's `lastEventId`, what a reconnect sends). `size` counts the frame's
    bytes as received (every line with its line ending, not the blank line that ends it) and is
    what `max_frame_bytes` limits; `data_size` is the length of its data as received. An oversize
    frame has `sha256` (hex digest of its whole data, `data_size` bytes) set and only the first
    `PREFIX_BYTES` of its data, raw; a kept frame's data is valid UTF-8 (invalid sequences replaced
    by U+FFFD, so that bad bytes are dead-lettered instead of breaking the connection).
    """

    data: bytes
    event: str = "message"
    id: str | None = None
    last_event_id: str = ""
    size: int = 0
    sha256: str | None = None
    data_size: int = 0

    @property
    def oversize(self) -> bool:
        return self.sha256 is not None


class SseParser:
    """Feed it byte chunks as they arrive; each `feed` returns the frames they completed.

    Memory stays within about `max_frame_bytes` plus one chunk, whatever the input: data lines
    of a frame that has gone over the budget are hashed piece by piece instead of kept.
    """

    def __init__(
        self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, prefix_bytes: int = PREFIX_BYTES
    ) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be positive")
        self.max_frame_bytes = max_frame_bytes
        self.prefix_bytes = prefix_bytes
        self.last_event_id = ""  # set on every blank line from the id buffer, as the spec says
        self.retry_ms: int | None = None  # the server's `retry:` reconnection time, if any
        self.comments = 0  # `:` lines seen (keep-alives): a silent stream is told from a live one
        self._id_buffer = ""
        self._start: bytes | None = b""  # stream start, held until the BOM question is settled
        self._after_cr = False  # the last chunk ended in CR: a leading LF belongs to it
        self._line: list[bytes] = []  # pieces of the pending line
        self._line_len = 0
        self._name: bytes | None = None  # its field name, once known
        self._mode = _BUFFER
        self._new_frame()

    def _new_frame(self) -> None:
        self._size = 0
        self._data: list[bytes] = []
        self._has_data = False
        self._event = b""
        self._frame_id: str | None = None
        self._digest: hashlib._Hash | None = None  # set once the frame is over budget
        self._prefix = bytearray()
        self._hashed = 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Parse `chunk` (any size, split anywhere); returns the frames it completed, in order."""
        if self._start is not None:
            chunk = self._start + chunk
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._start = chunk
                return []
            self._start = None
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if not chunk:
            return []
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
            if self._size:  # the CR ended a line of this frame, not the blank line before it
                self._size += 1
        self._after_cr = chunk[-1:] == b"\r"
        events: list[SseEvent] = []
        for piece in chunk.splitlines(keepends=True):
            body = piece.rstrip(b"\r\n")  # a piece holds at most one line ending, at its end
            if len(body) == len(piece):  # only a chunk's last piece lacks a line ending
                self._partial(piece)
                continue
            if self._mode != _BUFFER or self._line:
                self._size += len(piece)
                self._end_line(body)
            elif body:
                self._size += len(piece)
                self._field(body)
            else:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
                continue
            if self._digest is None and self._size > self.max_frame_bytes:
                self._overflow()
        return events

    def _partial(self, piece: bytes) -> None:
        """A line's piece without its line ending: buffer it, hash it or drop it."""
        self._size += len(piece)
        if self._mode == _HASH:
            self._hash(piece)
            return
        if self._mode == _DROP:
            return
        self._line.append(piece)
        self._line_len += len(piece)
        if self._name is None:
            head = b"".join(self._line)  # at most _MAX_NAME bytes were pending before this one
            colon = head.find(b":")
            if colon >= 0:
                self._name = head[:colon]
            elif len(head) > _MAX_NAME:
                self._drop_line()  # no field has so long a name (nor a colon-less comment)
                return
            else:
                return
        if self._digest is None and self._size > self.max_frame_bytes:
            self._overflow()
        if self._name == b"data":
            if self._digest is not None:
                self._hash_pending_data()
        elif self._name not in _FIELDS or self._line_len > MAX_FIELD_BYTES:
            if not self._name:  # a comment split across chunks: counted here, once
                self.comments += 1
            self._drop_line()

    def _hash_pending_data(self) -> None:
        """Switch the pending `data` line of an oversize frame from buffering to hashing."""
        head = b"".join(self._line)
        start = len(b"data:")
        if len(head) == start:
            return  # the space that may follow the colon has not arrived: wait one more piece
        if head[start : start + 1] == b" ":
            start += 1
        self._line, self._line_len = [], 0
        self._mode = _HASH
        self._data_value(head[start:])

    def _drop_line(self) -> None:
        self._line, self._line_len = [], 0
        self._mode = _DROP

    def _end_line(self, body: bytes) -> None:
        """The pending line got its line ending: interpret it (unless hashed or dropped)."""
        mode, self._mode, self._name = self._mode, _BUFFER, None
        if mode == _HASH:
            self._hash(body)
            return
        if mode == _DROP:
            return
        if self._line:
            self._line.append(body)
            body = b"".join(self._line)
            self._line, self._line_len = [], 0
        self._field(body)

    def _field(self, line: bytes) -> None:
        if line[:5] == b"data:":  # the common case first
            self._data_value(line[6:] if line[5:6] == b" " else line[5:])
            return
        colon = line.find(b":")
        if colon == 0:
            self.comments += 1
            return
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
        if name == b"data":
            self._data_value(value)
        elif name not in _FIELDS or len(line) > MAX_FIELD_BYTES:
            return
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if b"\0" not in value:
                self._id_buffer = self._frame_id = value.decode("utf-8", "replace")
        elif value.isdigit():  # retry: ASCII digits only, else ignored
            self.retry_ms = int(value)

    def _data_value(self, value: bytes) -> None:
        if self._digest is None:
            self._data.append(value)
        else:
            self._hash(b"\n" + value if self._has_data else value)
        self._has_data = True

    def _overflow(self) -> None:
        """The frame went over budget: hash what it kept so far and keep nothing from now on."""
        self._digest = hashlib.sha256()
        for index, value in enumerate(self._data):
            if index:
                self._hash(b"\n")
            self._hash(value)
        self._data = []

    def _hash(self, data: bytes) -> None:
        self._digest.update(data)  # type: ignore[union-attr]  # only called over budget
        self._hashed += len(data)
        if len(self._prefix) < self.prefix_bytes:
            self._prefix += data[: self.prefix_bytes - len(self._prefix)]

    def _dispatch(self) -> SseEvent | None:
        self.last_event_id = self._id_buffer
        event = None
        if self._has_data:
            kind = self._event.decode("utf-8", "replace") or "message"
            if self._digest is None:
                raw = b"\n".join(self._data)
                data, digest, data_size = _valid_utf8(raw), None, len(raw)
            else:
                data, digest, data_size = (
                    bytes(self._prefix),
                    self._digest.hexdigest(),
                    self._hashed,
                )
            event = SseEvent(
                data, kind, self._frame_id, self.last_event_id, self._size, digest, data_size
            )
        self._new_frame()
        return event


def _valid_utf8(data: bytes) -> bytes:
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode("utf-8")


def parse(
    chunks: Iterable[bytes], max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> Iterator[SseEvent]:
    """Every frame of a whole stream given as byte chunks (e.g. a recorded `.sse` file)."""
    parser = SseParser(max_frame_bytes)
    for chunk in chunks:
        yield from parser.feed(chunk)
