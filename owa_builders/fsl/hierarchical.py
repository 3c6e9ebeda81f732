"""The hierarchical event format (docs/event-tokens.md §2): every digit is one of ``<0>`` … ``<255>``; signed
values are taken modulo the range, and dx/dy (and x/y) digits alternate. 263 reference tokens."""

from owa_builders.fsl.digit_events import POSITION_RANGE, DigitEventEncoder, DigitFormat
from owa_builders.fsl.tokens import (
    EVENT_END,
    EVENT_START,
    KEYBOARD,
    MOUSE,
    PRESS,
    RELEASE,
    SCREEN,
    ModularDigits,
)

NUMBERS = tuple(f"<{number}>" for number in range(256))

HIERARCHICAL = DigitEventEncoder(
    "hierarchical",
    (EVENT_START, EVENT_END, KEYBOARD, MOUSE, SCREEN, PRESS, RELEASE, *NUMBERS),
    DigitFormat(
        time=ModularDigits((16, 10, 10), NUMBERS),  # 16 s period
        vk=ModularDigits((256,), NUMBERS),
        mouse_delta=ModularDigits((2, 20, 10, 10), NUMBERS, low=-2000),  # -2000..1999
        button_flags=ModularDigits((16, 16, 16), NUMBERS),
        wheel=ModularDigits((2, 10), NUMBERS, low=-10),  # -10..9 notches
        position=ModularDigits((256, 256), NUMBERS, low=POSITION_RANGE[0]),
        interleave_pairs=True,
    ),
)
