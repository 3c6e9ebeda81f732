"""Token-level building blocks shared by the event encoders: token names, result types, digit codecs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from math import prod
from typing import NamedTuple

from owa_builders.payloads import MOUSE_BUTTONS

# Stands for one screen image; the tokenizer stage expands it (docs/event-tokens.md §4). Never a vocabulary
# token.
IMAGE_PLACEHOLDER = "<fake_image_placeholder>"

EVENT_START, EVENT_END = "<EVENT_START>", "<EVENT_END>"
KEYBOARD, MOUSE, SCREEN = "<KEYBOARD>", "<MOUSE>", "<SCREEN>"
PRESS, RELEASE = "<press>", "<release>"
SIGN_PLUS, SIGN_MINUS = "<SIGN_PLUS>", "<SIGN_MINUS>"

# Ours, for desktop/MouseEvent (absolute pointer events); appended after the reference vocabulary.
MOUSE_MOVE, MOUSE_CLICK, MOUSE_SCROLL = "<MOUSE_MOVE>", "<MOUSE_CLICK>", "<MOUSE_SCROLL>"
BUTTON_TOKENS = tuple(f"<BUTTON_{button.upper()}>" for button in MOUSE_BUTTONS)
ABSOLUTE_MOUSE_TOKENS = (MOUSE_MOVE, MOUSE_CLICK, MOUSE_SCROLL, *BUTTON_TOKENS)

TIME_UNIT_NS = 10_000_000  # event times are counted in 10 ms units

_MAX_PIECES = 32


class EncodedEvent(NamedTuple):
    """One event as pieces, in order.

    A piece with ``is_text`` False is one vocabulary token (one id by dictionary lookup) or
    `IMAGE_PLACEHOLDER` (expanded by the tokenizer stage); with ``is_text`` True it is free text for the
    text tokenizer. ``text`` is the event's string as docs/event-tokens.md writes it.
    """

    pieces: tuple[str, ...]
    is_text: tuple[bool, ...]

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @classmethod
    def of_tokens(cls, tokens: tuple[str, ...]) -> EncodedEvent:
        return cls(tokens, _NO_TEXT[len(tokens)])


_NO_TEXT = [(False,) * n for n in range(_MAX_PIECES + 1)]


class Event(NamedTuple):
    """A decoded event, shaped like a stage-1 row (``message`` is the JSON payload)."""

    topic: str
    message_type: str
    timestamp_ns: int
    message: bytes


_TABLE_LIMIT = 4096  # ranges up to this size get a precomputed value -> tokens table


class DigitCodec:
    """Integers in [low, high] as a fixed number (`width`) of tokens."""

    width: int

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        small = high - low < _TABLE_LIMIT
        self._table = [self._tokens(value) for value in range(low, high + 1)] if small else None

    def encode(self, value: int) -> tuple[str, ...]:
        """Tokens of `value`, which must lie in [low, high]."""
        table = self._table
        return table[value - self.low] if table is not None else self._tokens(value)

    def clamp(self, value: int, reason: str, clamps: list[str]) -> int:
        """`value` limited to [low, high]; a change appends `reason` to `clamps`."""
        if self.low <= value <= self.high:
            return value
        clamps.append(reason)
        return self.low if value < self.low else self.high

    def _tokens(self, value: int) -> tuple[str, ...]:
        raise NotImplementedError

    def decode(self, tokens: Sequence[str]) -> int:
        raise NotImplementedError


class ModularDigits(DigitCodec):
    """``value mod prod(bases)`` as mixed-radix digits, most significant first; decodes into
    [low, low + prod(bases))."""

    def __init__(self, bases: Sequence[int], digit_tokens: Sequence[str], low: int = 0) -> None:
        self.bases = tuple(bases)
        self.width = len(self.bases)
        self.modulus = prod(self.bases)
        self._digit_tokens = tuple(digit_tokens)
        self._digit_values = {token: digit for digit, token in enumerate(self._digit_tokens)}
        super().__init__(low, low + self.modulus - 1)

    def _tokens(self, value: int) -> tuple[str, ...]:
        rest, digits = value % self.modulus, []
        for base in reversed(self.bases):
            rest, digit = divmod(rest, base)
            digits.append(self._digit_tokens[digit])
        return tuple(reversed(digits))

    def decode(self, tokens: Sequence[str]) -> int:
        value = 0
        for token, base in zip(tokens, self.bases, strict=True):
            digit = self._digit_values.get(token)
            if digit is None or digit >= base:
                raise ValueError(f"expected a digit token below {base}, got {token!r}")
            value = value * base + digit
        return (value - self.low) % self.modulus + self.low


class SignMagnitudeDigits(DigitCodec):
    """A sign token (``<SIGN_PLUS>`` for 0) then ``|value|`` as mixed-radix digits. The range is
    ±(prod(bases) - 1) unless narrowed by `low`/`high`."""

    def __init__(
        self,
        bases: Sequence[int],
        digit_tokens: Sequence[str],
        low: int | None = None,
        high: int | None = None,
    ) -> None:
        self.magnitude = ModularDigits(bases, digit_tokens)
        self.width = 1 + self.magnitude.width
        largest = self.magnitude.high
        super().__init__(-largest if low is None else low, largest if high is None else high)

    def _tokens(self, value: int) -> tuple[str, ...]:
        return (SIGN_MINUS if value < 0 else SIGN_PLUS, *self.magnitude.encode(abs(value)))

    def decode(self, tokens: Sequence[str]) -> int:
        sign, *digits = tokens
        if sign not in (SIGN_PLUS, SIGN_MINUS):
            raise ValueError(f"expected a sign token, got {sign!r}")
        magnitude = self.magnitude.decode(digits)
        value = -magnitude if sign == SIGN_MINUS else magnitude
        if not self.low <= value <= self.high:
            raise ValueError(f"{value} is outside [{self.low}, {self.high}]")
        return value


_TOKEN = re.compile(r"<[^<>]*>")


def split_tokens(text: str) -> list[str]:
    """The ``<...>`` tokens that `text` is made of; other characters are an error."""
    tokens = _TOKEN.findall(text)
    if sum(map(len, tokens)) != len(text):
        raise ValueError("text between tokens: not a sequence of vocabulary tokens")
    return tokens


def expansion_order(tokens: Sequence[str]) -> tuple[str, ...]:
    """Tokens in the order the reference adds them to a tokenizer: Python code-point sort (docs/event-tokens.md §5)."""
    return tuple(sorted(tokens))
