"""The event encoders of stage 2, by name: ``factorized`` (default), ``hierarchical``, ``json``.

Each encoder has

- ``name``;
- ``reference_vocab``: the reference's tokens in its tokenizer-expansion order (docs/event-tokens.md §5),
  which fixes their ids; ``extra_tokens``: ours, in their own fixed order, to get ids after all of those;
- ``encode(topic, message_type, timestamp_ns, message, *, dropped=None, clamped=None)`` → `EncodedEvent`
  (pieces: vocabulary tokens, the image placeholder, or free text for the text tokenizer) or None when the
  event is dropped. Drops and values changed to fit the format are counted by reason in the Counters
  given (an episode's totals: pass the same Counters for all its events). Never raises for bad input.
- ``decode(tokens, start_time_ns)`` → the `Event` rows back, for a whole episode in order.

Formats, their fixes of the reference's defects (docs/event-tokens.md §6) and the reasons: `digit_events`
(factorized and hierarchical), `json_events`, `payloads` (drop reasons).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from owa_builders.fsl.factorized import FACTORIZED
from owa_builders.fsl.hierarchical import HIERARCHICAL
from owa_builders.fsl.json_events import JSON_EVENTS
from owa_builders.fsl.tokens import EncodedEvent, Event


class EventEncoder(Protocol):
    name: str
    reference_vocab: tuple[str, ...]
    extra_tokens: tuple[str, ...]

    def encode(
        self,
        topic: str,
        message_type: str,
        timestamp_ns: int,
        message: bytes,
        *,
        dropped: Counter | None = None,
        clamped: Counter | None = None,
    ) -> EncodedEvent | None: ...

    def decode(self, tokens: str | Iterable[str], start_time_ns: int) -> list[Event]: ...


ENCODERS: dict[str, EventEncoder] = {
    encoder.name: encoder for encoder in (FACTORIZED, HIERARCHICAL, JSON_EVENTS)
}
DEFAULT_ENCODER = FACTORIZED.name


def get_encoder(name: str = DEFAULT_ENCODER) -> EventEncoder:
    try:
        return ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown event encoder {name!r}; valid: {', '.join(ENCODERS)}") from None
