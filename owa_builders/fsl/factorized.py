"""The factorized event format (the default; docs/event-tokens.md §1): decimal digits with sign tokens, hex
button flags as ``<MB_n>``, virtual keys as ``<VK_n>``. 291 reference tokens."""

from owa_builders.fsl.digit_events import POSITION_RANGE, DigitEventEncoder, DigitFormat
from owa_builders.fsl.tokens import (
    EVENT_END,
    EVENT_START,
    KEYBOARD,
    MOUSE,
    PRESS,
    RELEASE,
    SCREEN,
    SIGN_MINUS,
    SIGN_PLUS,
    ModularDigits,
    SignMagnitudeDigits,
)

DIGITS = tuple(f"<{digit}>" for digit in range(10))
VIRTUAL_KEYS = tuple(f"<VK_{vk}>" for vk in range(256))
BUTTON_FLAG_DIGITS = tuple(f"<MB_{digit}>" for digit in range(16))

FACTORIZED = DigitEventEncoder(
    "factorized",
    (
        EVENT_START,
        EVENT_END,
        KEYBOARD,
        MOUSE,
        SCREEN,
        PRESS,
        RELEASE,
        SIGN_PLUS,
        SIGN_MINUS,
        *VIRTUAL_KEYS,
        *BUTTON_FLAG_DIGITS,
        *DIGITS,
    ),
    DigitFormat(
        time=ModularDigits((10, 10, 10), DIGITS),  # 10 s period
        vk=ModularDigits((256,), VIRTUAL_KEYS),
        mouse_delta=SignMagnitudeDigits((2, 10, 10, 10), DIGITS),  # ±1999
        button_flags=ModularDigits((16, 16, 16), BUTTON_FLAG_DIGITS),
        wheel=SignMagnitudeDigits((10,), DIGITS),  # ±9 notches
        position=SignMagnitudeDigits((10,) * 5, DIGITS, *POSITION_RANGE),
        interleave_pairs=False,
    ),
)
