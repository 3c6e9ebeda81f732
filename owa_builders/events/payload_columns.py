"""Payloads of one run of messages, and the raw mouse fields the rate limits read from them.

`Payloads` is a view of some messages' payload bytes inside a decompressed chunk (no copies until asked).
`RawMouseReader` gives RawMouseEvent payloads as numpy columns. A recording repeats the same few payloads
over and over (a move of one count to the right is the same bytes every time), so each distinct payload is
parsed once, with orjson, and every message looks its fields up. Telling the distinct payloads apart is
Arrow's hashing (`Payloads.distinct`): no Python object is made per message.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

# Kinds of raw mouse message
PLAIN_MOVE = 0  # relative motion only: no flags, no button or wheel data
OTHER = 1  # buttons, wheel or flags: passed through by the policies
MALFORMED = 2  # not a JSON object with integer last_x and last_y within DELTA_LIMIT
DELTA_LIMIT = 2**31 - 1  # RAWMOUSE lLastX/lLastY are 32-bit; sums of a slot's moves then fit int64


@dataclass(frozen=True, slots=True)
class Payloads:
    """The payloads ``buffer[starts[i]:ends[i]]`` of a run of messages, in buffer order (as a chunk holds them)."""

    buffer: bytes
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> bytes:
        return self.buffer[self.starts[i] : self.ends[i]]

    def tolist(self) -> list[bytes]:
        buffer = self.buffer
        return [buffer[a:b] for a, b in zip(self.starts.tolist(), self.ends.tolist())]

    def distinct(self) -> tuple[npt.NDArray[np.int32], list[bytes]]:
        """(which, distinct): the distinct payloads, and for each payload its position among them."""
        count = len(self)
        if count and not (self.starts[0] >= 0 and (self.starts <= self.ends).all() and self.ends[-1] <= len(self.buffer)
                          and (self.starts[1:] >= self.ends[:-1]).all()):
            raise ValueError("payloads must lie in the buffer, in buffer order, without overlaps")
        bounds = np.empty(2 * count + 1, np.int64)  # the buffer in pieces: each gap before a payload, the payload
        bounds[0] = 0
        bounds[1::2] = self.starts
        bounds[2::2] = self.ends
        pieces = pa.Array.from_buffers(pa.large_binary(), 2 * count, [None, pa.py_buffer(bounds), pa.py_buffer(self.buffer)])
        encoded = pc.dictionary_encode(pieces.take(np.arange(1, 2 * count, 2)))
        return encoded.indices.to_numpy(), encoded.dictionary.to_pylist()


class RawMouseReader:
    """(kind, last_x, last_y) columns of RawMouseEvent payloads, each distinct payload parsed once."""

    MAX_DISTINCT = 1 << 16  # forget the payloads seen when there are more (memory stays bounded)

    def __init__(self):
        self._ids: dict[bytes, int] = {}
        self._fields: list[tuple[int, int, int]] = []
        self._table = np.zeros((0, 3), np.int64)

    def columns(self, payloads: Payloads) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        which, distinct = payloads.distinct()
        if len(self._ids) + len(distinct) > self.MAX_DISTINCT:  # forget, then read this run afresh
            self._ids.clear()
            self._fields.clear()
            self._table = self._table[:0]
        ids = np.array([self._id(message) for message in distinct], np.int64)
        if len(self._table) != len(self._fields):
            self._table = np.array(self._fields, np.int64).reshape(-1, 3)
        fields = self._table[ids[which]]
        return fields[:, 0].astype(np.int8), fields[:, 1], fields[:, 2]

    def _id(self, message: bytes) -> int:
        known = self._ids.get(message)
        if known is None:
            known = self._ids[message] = len(self._fields)
            self._fields.append(_raw_mouse_fields(message))
        return known


def _raw_mouse_fields(raw: bytes) -> tuple[int, int, int]:
    """One payload's (kind, last_x, last_y)."""
    try:
        message = orjson.loads(raw)
        x, y = message["last_x"], message["last_y"]
        plain = not (message.get("us_flags") or message.get("button_flags") or message.get("button_data"))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return MALFORMED, 0, 0
    if not (type(x) is type(y) is int and abs(x) <= DELTA_LIMIT and abs(y) <= DELTA_LIMIT):
        return MALFORMED, 0, 0
    return (PLAIN_MOVE if plain else OTHER), x, y
