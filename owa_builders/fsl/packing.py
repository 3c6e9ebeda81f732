"""Episode-aware packing: one episode's encoded events, in order, into rows of at most `max_length` tokens.

Greedy and order-preserving: an event joins the open row if its tokens (and images) fit, else the row is
closed and the event opens the next one. An event is never split, and rows never mix episodes (one call
per episode). So every row but the episode's last is full: the next event did not fit in it. An event
that fits in no row (longer than `max_length`, or more images than `max_images_per_row`) is dropped and
reported with its reason. The input is consumed lazily: the open row carries over however it is chunked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

# Drop reasons
EVENT_LONGER_THAN_MAX_LENGTH = "event_longer_than_max_length"
EVENT_OVER_MAX_IMAGES_PER_ROW = "event_over_max_images_per_row"


class Packable(Protocol):
    length: int  # tokens
    images: int


Event = TypeVar("Event", bound=Packable)


def pack_episode(
    events: Iterable[Event],
    max_length: int,
    max_images_per_row: int | None,
    drop: Callable[[Event, str], None],
) -> Iterator[list[Event]]:
    """Rows of `events` (each a non-empty list, in order); `drop(event, reason)` for each that fits no row."""
    image_limit = float("inf") if max_images_per_row is None else max_images_per_row
    row: list[Event] = []
    length = images = 0
    for event in events:
        if event.length > max_length:
            drop(event, EVENT_LONGER_THAN_MAX_LENGTH)
            continue
        if event.images > image_limit:
            drop(event, EVENT_OVER_MAX_IMAGES_PER_ROW)
            continue
        if row and (length + event.length > max_length or images + event.images > image_limit):
            yield row
            row, length, images = [], 0, 0
        row.append(event)
        length += event.length
        images += event.images
    if row:
        yield row
