"""The JSON event format (docs/event-tokens.md §3): ``<EVENT_START>`` + the row as compact JSON +
``<EVENT_END>``.

JSON = ``{"topic", "timestamp" (ns), "message" (the stored payload, verbatim, as a string),
"message_type"}``, escaped like ``json.dumps(ensure_ascii=False)``. A ``screen`` ScreenCaptured's payload
is checked and replaced by the image placeholder. The format has no vocabulary: like the reference, the
whole string, markers included, goes through the text tokenizer, so an event is one text piece (a screen
event: text, placeholder, text). Dropped: a payload that is not UTF-8 (``invalid_json``), an invalid
ScreenCaptured (``invalid_json`` / ``invalid_message``). Decoding restores every event exactly; a screen
event's message is the placeholder.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

import orjson

from owa_builders import payloads
from owa_builders.fsl.tokens import EVENT_END, EVENT_START, IMAGE_PLACEHOLDER, EncodedEvent, Event

_ROW_FIELDS = ("topic", "timestamp", "message", "message_type")


class JsonEventEncoder:
    name = "json"
    reference_vocab: tuple[str, ...] = ()
    extra_tokens: tuple[str, ...] = ()

    def encode(
        self,
        topic: str,
        message_type: str,
        timestamp_ns: int,
        message: bytes,
        *,
        dropped: Counter | None = None,
        clamped: Counter | None = None,
    ) -> EncodedEvent | None:
        """The event as text pieces, or None if it is dropped (counted in `dropped` by reason). Nothing is
        ever clamped; `clamped` is accepted for a uniform interface."""
        is_screen = topic == "screen" and message_type == payloads.SCREEN_CAPTURED
        try:
            if is_screen:
                payloads.check_screen(payloads.load(message))
                text = IMAGE_PLACEHOLDER
            else:
                text = _utf8(message)
        except payloads.Drop as drop:
            if dropped is not None:
                dropped[drop.reason] += 1
            return None
        row = {"topic": topic, "timestamp": int(timestamp_ns), "message": text, "message_type": message_type}
        body = EVENT_START + orjson.dumps(row).decode() + EVENT_END
        if is_screen:
            before, placeholder, after = body.partition(IMAGE_PLACEHOLDER)
            return EncodedEvent((before, placeholder, after), (True, False, True))
        return EncodedEvent((body,), (True,))

    def decode(self, tokens: str | Iterable[str], start_time_ns: int) -> list[Event]:
        """The events of an episode's text (or pieces). Times are in the text: `start_time_ns` is unused.
        Raises ValueError on text this format cannot emit."""
        text = tokens if isinstance(tokens, str) else "".join(tokens)
        decoder, position, events = json.JSONDecoder(), 0, []
        while position < len(text):
            if not text.startswith(EVENT_START, position):
                raise ValueError(f"character {position}: expected {EVENT_START}")
            row, position = decoder.raw_decode(text, position + len(EVENT_START))
            if not text.startswith(EVENT_END, position):
                raise ValueError(f"character {position}: expected {EVENT_END}")
            position += len(EVENT_END)
            if type(row) is not dict or tuple(row) != _ROW_FIELDS:
                raise ValueError(f"an event's JSON must have the fields {_ROW_FIELDS}")
            events.append(Event(row["topic"], row["message_type"], row["timestamp"], row["message"].encode()))
        return events


def _utf8(message: bytes) -> str:
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise payloads.Drop(payloads.INVALID_JSON) from None


JSON_EVENTS = JsonEventEncoder()
