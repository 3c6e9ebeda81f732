"""Pure episode-aware packing: invariants over arbitrary event streams."""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import given
from hypothesis import strategies as st

from owa_builders.fsl.packing import EVENT_LONGER_THAN_MAX_LENGTH, EVENT_OVER_MAX_IMAGES_PER_ROW, pack_episode


class Item(NamedTuple):
    index: int
    length: int
    images: int


def pack(items, max_length, max_images):
    dropped = []
    rows = list(pack_episode(iter(items), max_length, max_images, lambda item, reason: dropped.append((item, reason))))
    return rows, dropped


@given(
    st.lists(st.tuples(st.integers(1, 60), st.integers(0, 3)), max_size=200),
    st.integers(1, 50),
    st.one_of(st.none(), st.integers(1, 4)),
)
def test_packing_invariants(shapes, max_length, max_images):
    items = [Item(i, length, images) for i, (length, images) in enumerate(shapes)]
    rows, dropped = pack(items, max_length, max_images)
    limit = float("inf") if max_images is None else max_images
    # every event exactly once, in order: in a row or dropped with the reason it fits no row
    placed = [item for row in rows for item in row]
    assert sorted(placed + [item for item, _ in dropped]) == items and placed == sorted(placed)
    for item, reason in dropped:
        expected = EVENT_LONGER_THAN_MAX_LENGTH if item.length > max_length else EVENT_OVER_MAX_IMAGES_PER_ROW
        assert reason == expected and (item.length > max_length or item.images > limit)
    for row, following in zip(rows, rows[1:] + [None]):
        assert row and sum(i.length for i in row) <= max_length and sum(i.images for i in row) <= limit
        if following is not None:  # only the last row may have room for the next event
            nxt = following[0]
            assert (sum(i.length for i in row) + nxt.length > max_length
                    or sum(i.images for i in row) + nxt.images > limit)


def test_fits_exactly_and_opens_a_row_for_the_next_event():
    items = [Item(0, 6, 1), Item(1, 4, 0), Item(2, 1, 0), Item(3, 11, 0), Item(4, 10, 1)]
    rows, dropped = pack(items, 10, None)
    assert rows == [[items[0], items[1]], [items[2]], [items[4]]]
    assert dropped == [(items[3], EVENT_LONGER_THAN_MAX_LENGTH)]


def test_image_limit_closes_rows():
    items = [Item(i, 1, 1) for i in range(5)]
    rows, dropped = pack(items, 100, 2)
    assert [len(row) for row in rows] == [2, 2, 1] and not dropped


def test_input_is_consumed_lazily():
    """Rows leave as soon as they are closed: the packer never needs the rest of the episode."""
    consumed = []

    def stream():
        for i in range(10):
            consumed.append(i)
            yield Item(i, 5, 0)

    rows = pack_episode(stream(), 10, None, lambda item, reason: None)
    assert next(rows) == [Item(0, 5, 0), Item(1, 5, 0)] and consumed == [0, 1, 2]
