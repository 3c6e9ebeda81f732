"""The digit event formats (factorized, hierarchical): one encoder/decoder, configured by a `DigitFormat`.

Layouts, inside ``<EVENT_START>`` … ``<EVENT_END>`` (T = time digits; the codecs are the format's)::

    keyboard                    <KEYBOARD> T vk <press|release>
    mouse/raw, mouse (Raw…)     <MOUSE> T dx dy button_flags [wheel]
    mouse (desktop/MouseEvent)  <MOUSE_MOVE> T x y
                                <MOUSE_CLICK> T x y <BUTTON_{UNKNOWN|LEFT|MIDDLE|RIGHT|X1|X2}> <press|release>
                                <MOUSE_SCROLL> T x y dx dy
    screen                      <SCREEN> T <fake_image_placeholder>

Keyboard, raw mouse and screen are the reference's tokens (docs/event-tokens.md §1, §2) for every input it
encodes, except the fixes below. ``desktop/MouseEvent`` is ours (the reference fails on it): ``x``/``y`` are screen
coordinates, clamped to the signed 16-bit range Windows uses (position codec); scroll ``dx``/``dy`` are
notches in the wheel codec. Pairs (dx dy, x y) are interleaved digit by digit where the format says so
(hierarchical). Its tokens (`ABSOLUTE_MOUSE_TOKENS`) get ids after the reference vocabulary.

Time: the digits of ``(timestamp_ns // 10 ms) mod R`` (R = time codec modulus). `DigitEventEncoder.decode`
restores a whole episode's times from the previous event's time (the first from ``start_time_ns``): each
event gets the smallest time >= the previous one that matches its digits, at 10 ms resolution. This is
exact while consecutive events are less than one period (R × 10 ms: 10 s factorized, 16 s hierarchical)
apart after rounding down to 10 ms; a longer gap is indistinguishable from a shorter one, whole periods are
lost, and nothing in the tokens can tell.

Fixes of the reference's defects (docs/event-tokens.md §6), each token-compatible with the reference's
valid input:

- Wheel (reference defect 2): ``button_data`` (signed 16-bit) is rounded to the nearest notch, halves away
  from zero, where the reference floors (1..119 -> an empty ``+0`` wheel, -1..-119 -> -1). A delta that rounds
  to 0 (|delta| < 60) emits no wheel tokens. Counted as clamped ``wheel_rounded`` when the delta is not a
  multiple of 120. As in the reference, the wheel is read whenever ``button_data`` is nonzero, whatever
  the flags say (reference defect 3, kept: changing it would change tokens the reference emits).
- Wheel out of range (reference defect 1): clamped to the wheel codec instead of raising; counted
  ``wheel_range``.
- Mouse deltas and positions out of range: clamped, counted ``mouse_delta`` / ``mouse_position`` (one per
  clamped value).
- ``us_flags`` (``NotImplementedError`` for any nonzero value in the reference): only MOUSE_MOVE_ABSOLUTE
  makes last_x/last_y non-deltas; such events are dropped (``absolute_raw_mouse``), the other bits are
  ignored.
- Virtual key > 255 (reference defect 5: the reference emits a token outside the vocabulary): dropped,
  ``vk_out_of_range``.
- ``desktop/MouseEvent`` on ``mouse`` (reference defect 4): encoded as above.
- Time (reference defects 6, 7): the tokens keep the reference's absolute-time digits; decoding unwraps
  them as described above, against the unbiased previous time.
- Decoding (reference defect 8) yields raw mouse events as ``mouse/raw`` with ``us_flags`` 0,
  ``button_data`` = notches × 120 as unsigned 16-bit, no device_handle or payload timestamp; screen events carry the
  placeholder as message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import NamedTuple, TypeVar

import orjson

from owa_builders import payloads
from owa_builders.fsl.tokens import (
    ABSOLUTE_MOUSE_TOKENS,
    BUTTON_TOKENS,
    EVENT_END,
    EVENT_START,
    IMAGE_PLACEHOLDER,
    KEYBOARD,
    MOUSE,
    MOUSE_CLICK,
    MOUSE_MOVE,
    MOUSE_SCROLL,
    PRESS,
    RELEASE,
    SCREEN,
    TIME_UNIT_NS,
    DigitCodec,
    EncodedEvent,
    Event,
    ModularDigits,
    expansion_order,
    split_tokens,
)

# Clamp reasons (values changed to fit the format)
MOUSE_DELTA = "mouse_delta"
MOUSE_POSITION = "mouse_position"
WHEEL_RANGE = "wheel_range"

POSITION_RANGE = (-(2**15), 2**15 - 1)  # Windows screen coordinates are signed 16-bit

_BUTTON_TOKEN = dict(zip(payloads.MOUSE_BUTTONS, BUTTON_TOKENS, strict=True))
_BUTTON_NAME = dict(zip(BUTTON_TOKENS, payloads.MOUSE_BUTTONS, strict=True))
_PRESSED = {PRESS: True, RELEASE: False}
_SCREEN_MESSAGE = IMAGE_PLACEHOLDER.encode()

T = TypeVar("T")  # a time in ns or an array of them


class UntimedEvent(NamedTuple):
    """An event's encoding without its time digits (`DigitEventEncoder.encode_untimed`)."""

    before_time: tuple[str, ...]  # the tokens before the time digits (none if dropped)
    after_time: tuple[str, ...]  # the tokens after them
    drop: str | None  # the drop reason, if dropped
    clamps: tuple[str, ...]  # the reason of each value changed to fit the format, in order


def count_untimed(drop: str | None, clamps: tuple[str, ...], dropped: Counter | None, clamped: Counter | None) -> None:
    """Add an event's drop reason (if any) and clamp reasons (`UntimedEvent`) to these Counters."""
    if drop is not None and dropped is not None:
        dropped[drop] += 1
    if clamped is not None:
        for reason in clamps:
            clamped[reason] += 1


@dataclass(frozen=True)
class DigitFormat:
    time: ModularDigits  # residue of the 10 ms time unit
    vk: ModularDigits
    mouse_delta: DigitCodec
    button_flags: ModularDigits
    wheel: DigitCodec  # notches
    position: DigitCodec  # absolute screen coordinates (ours)
    interleave_pairs: bool


class DigitEventEncoder:
    def __init__(self, name: str, reference_tokens: Iterable[str], digit_format: DigitFormat) -> None:
        self.name = name
        self.reference_vocab = expansion_order(list(reference_tokens))
        self.extra_tokens = ABSOLUTE_MOUSE_TOKENS
        self.format = digit_format
        self._encoders: dict[str, Callable[[dict, list[str]], tuple[str, tuple[str, ...]]]] = {
            payloads.KEYBOARD_EVENT: self._encode_keyboard,
            payloads.RAW_MOUSE_EVENT: self._encode_raw_mouse,
            payloads.MOUSE_EVENT: self._encode_mouse,
            payloads.SCREEN_CAPTURED: self._encode_screen,
        }
        self._decoders: dict[str, Callable[[_TokenReader], tuple[str, str, bytes]]] = {
            KEYBOARD: self._decode_keyboard,
            MOUSE: self._decode_raw_mouse,
            MOUSE_MOVE: partial(self._decode_mouse, "move"),
            MOUSE_CLICK: partial(self._decode_mouse, "click"),
            MOUSE_SCROLL: partial(self._decode_mouse, "scroll"),
            SCREEN: self._decode_screen,
        }

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
        """The event's tokens, or None if it is dropped (counted in `dropped` by reason). Values changed
        to fit the format are counted in `clamped` by reason."""
        untimed = self.encode_untimed(topic, message_type, message)
        count_untimed(untimed.drop, untimed.clamps, dropped, clamped)
        if untimed.drop is not None:
            return None
        return EncodedEvent.of_tokens(untimed.before_time + self.time_tokens(timestamp_ns) + untimed.after_time)

    def encode_untimed(self, topic: str, message_type: str, message: bytes) -> UntimedEvent:
        """All of the event's encoding but its time digits (`time_tokens`), which go between
        ``before_time`` and ``after_time``: a function of the event's topic, type and payload only."""
        clamps: list[str] = []
        try:
            payloads.check_supported(topic, message_type)
            type_token, fields = self._encoders[message_type](payloads.load(message), clamps)
        except payloads.Drop as drop:
            return UntimedEvent((), (), drop.reason, tuple(clamps))
        return UntimedEvent((EVENT_START, type_token), fields + (EVENT_END,), None, tuple(clamps))

    def time_tokens(self, timestamp_ns: int) -> tuple[str, ...]:
        """The time digits of an event at `timestamp_ns`."""
        return self.format.time.encode(self.time_residue(timestamp_ns))

    def time_residue(self, timestamp_ns: T) -> T:
        """What the time digits of an event at `timestamp_ns` write: its 10 ms time unit modulo the time
        period (the same for an int64 numpy array of times, element by element)."""
        return timestamp_ns // TIME_UNIT_NS % self.format.time.modulus

    def decode(self, tokens: str | Iterable[str], start_time_ns: int) -> list[Event]:
        """The events of an episode's tokens (or their joined text), in order; times are unwrapped from
        `start_time_ns` on (see the module docstring). Raises ValueError on tokens this format cannot emit."""
        reader = _TokenReader(split_tokens(tokens) if isinstance(tokens, str) else list(tokens))
        time = self.format.time
        units = start_time_ns // TIME_UNIT_NS
        events = []
        while not reader.at_end():
            reader.expect(EVENT_START)
            decode_fields = self._decoders.get(reader.peek())
            if decode_fields is None:
                raise ValueError(f"token {reader.position}: {reader.peek()!r} is not an event type")
            reader.take(1)
            residue = time.decode(reader.take(time.width))
            units += (residue - units) % time.modulus
            topic, message_type, message = decode_fields(reader)
            reader.expect(EVENT_END)
            events.append(Event(topic, message_type, units * TIME_UNIT_NS, message))
        return events

    # encoding: payload -> (type token, field tokens after the time)

    def _encode_keyboard(self, payload: dict, clamps: list[str]) -> tuple[str, tuple[str, ...]]:
        vk, pressed = payloads.keyboard_event(payload)
        codec = self.format.vk
        if not codec.low <= vk <= codec.high:
            raise payloads.Drop(payloads.VK_OUT_OF_RANGE)
        return KEYBOARD, codec.encode(vk) + (PRESS if pressed else RELEASE,)

    def _encode_raw_mouse(self, payload: dict, clamps: list[str]) -> tuple[str, tuple[str, ...]]:
        dx, dy, button_flags, button_data = payloads.raw_mouse_event(payload)
        fmt = self.format
        delta = fmt.mouse_delta
        fields = self._pair(
            delta, delta.clamp(dx, MOUSE_DELTA, clamps), delta.clamp(dy, MOUSE_DELTA, clamps)
        )
        fields += fmt.button_flags.encode(button_flags)
        if button_data:
            notches, rounded = payloads.wheel_notches(button_data)
            if rounded:
                clamps.append(payloads.WHEEL_ROUNDED)
            if notches:
                fields += fmt.wheel.encode(fmt.wheel.clamp(notches, WHEEL_RANGE, clamps))
        return MOUSE, fields

    def _encode_mouse(self, payload: dict, clamps: list[str]) -> tuple[str, tuple[str, ...]]:
        event_type, x, y, button, pressed, dx, dy = payloads.mouse_event(payload)
        position, wheel = self.format.position, self.format.wheel
        fields = self._pair(
            position, position.clamp(x, MOUSE_POSITION, clamps), position.clamp(y, MOUSE_POSITION, clamps)
        )
        if event_type == "move":
            return MOUSE_MOVE, fields
        if event_type == "click":
            return MOUSE_CLICK, fields + (_BUTTON_TOKEN[button], PRESS if pressed else RELEASE)
        return MOUSE_SCROLL, fields + self._pair(
            wheel, wheel.clamp(dx, WHEEL_RANGE, clamps), wheel.clamp(dy, WHEEL_RANGE, clamps)
        )

    def _encode_screen(self, payload: dict, clamps: list[str]) -> tuple[str, tuple[str, ...]]:
        payloads.check_screen(payload)  # the reference rejects an invalid ScreenCaptured too
        return SCREEN, (IMAGE_PLACEHOLDER,)

    def _pair(self, codec: DigitCodec, first: int, second: int) -> tuple[str, ...]:
        if self.format.interleave_pairs:
            return tuple(chain.from_iterable(zip(codec.encode(first), codec.encode(second), strict=True)))
        return codec.encode(first) + codec.encode(second)

    # decoding: field tokens -> (topic, message_type, message)

    def _decode_keyboard(self, reader: _TokenReader) -> tuple[str, str, bytes]:
        vk = self.format.vk.decode(reader.take(1))
        event_type = "press" if reader.take_from(_PRESSED) else "release"
        return "keyboard", payloads.KEYBOARD_EVENT, orjson.dumps({"event_type": event_type, "vk": vk})

    def _decode_raw_mouse(self, reader: _TokenReader) -> tuple[str, str, bytes]:
        fmt = self.format
        dx, dy = self._read_pair(reader, fmt.mouse_delta)
        button_flags = fmt.button_flags.decode(reader.take(fmt.button_flags.width))
        notches = 0 if reader.peek() == EVENT_END else fmt.wheel.decode(reader.take(fmt.wheel.width))
        message = {
            "last_x": dx,
            "last_y": dy,
            "us_flags": 0,
            "button_flags": button_flags,
            "button_data": notches * payloads.WHEEL_DELTA & 0xFFFF,
        }
        return "mouse/raw", payloads.RAW_MOUSE_EVENT, orjson.dumps(message)

    def _decode_mouse(self, event_type: str, reader: _TokenReader) -> tuple[str, str, bytes]:
        x, y = self._read_pair(reader, self.format.position)
        message = {"event_type": event_type, "x": x, "y": y}
        if event_type == "click":
            message["button"] = reader.take_from(_BUTTON_NAME)
            message["pressed"] = reader.take_from(_PRESSED)
        elif event_type == "scroll":
            message["dx"], message["dy"] = self._read_pair(reader, self.format.wheel)
        return "mouse", payloads.MOUSE_EVENT, orjson.dumps(message)

    def _decode_screen(self, reader: _TokenReader) -> tuple[str, str, bytes]:
        reader.expect(IMAGE_PLACEHOLDER)
        return "screen", payloads.SCREEN_CAPTURED, _SCREEN_MESSAGE

    def _read_pair(self, reader: _TokenReader, codec: DigitCodec) -> tuple[int, int]:
        tokens = reader.take(2 * codec.width)
        if self.format.interleave_pairs:
            return codec.decode(tokens[0::2]), codec.decode(tokens[1::2])
        return codec.decode(tokens[: codec.width]), codec.decode(tokens[codec.width :])


class _TokenReader:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def at_end(self) -> bool:
        return self.position == len(self.tokens)

    def peek(self) -> str:
        if self.at_end():
            raise ValueError("the tokens end inside an event")
        return self.tokens[self.position]

    def take(self, count: int) -> list[str]:
        end = self.position + count
        if end > len(self.tokens):
            raise ValueError("the tokens end inside an event")
        taken = self.tokens[self.position : end]
        self.position = end
        return taken

    def expect(self, token: str) -> None:
        if self.peek() != token:
            raise ValueError(f"token {self.position}: expected {token}, got {self.peek()!r}")
        self.position += 1

    def take_from(self, meanings: dict[str, object]) -> object:
        """The meaning of the next token, which must be one of `meanings`."""
        token = self.peek()
        if token not in meanings:
            raise ValueError(f"token {self.position}: expected one of {sorted(meanings)}, got {token!r}")
        self.position += 1
        return meanings[token]
