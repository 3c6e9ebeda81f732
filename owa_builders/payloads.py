"""Message payloads (stage 1's ``mcap_message``) checked by hand, for the stages that read them (fsl encoders,
binned actions): no pydantic in the hot path, one definition of a valid event, and the reasons one is not.

The checks follow the owa.msgs models: required fields, JSON types (strictly: an int field takes a JSON
integer, not ``"65"`` or ``65.0``), value ranges, no unknown fields. A failing check raises `Drop`; the
encoders count it under its reason in the caller's ``dropped`` Counter and return None.
"""

from __future__ import annotations

import orjson

KEYBOARD_EVENT = "desktop/KeyboardEvent"
RAW_MOUSE_EVENT = "desktop/RawMouseEvent"
MOUSE_EVENT = "desktop/MouseEvent"
SCREEN_CAPTURED = "desktop/ScreenCaptured"

# Drop reasons
UNSUPPORTED_TOPIC = "unsupported_topic"
UNSUPPORTED_MESSAGE_TYPE = "unsupported_message_type"  # a supported topic with another message type
INVALID_JSON = "invalid_json"
INVALID_MESSAGE = "invalid_message"  # JSON that fails the checks of its message type
VK_OUT_OF_RANGE = "vk_out_of_range"  # the token formats have virtual keys 0..255 only
ABSOLUTE_RAW_MOUSE = "absolute_raw_mouse"  # RawMouseEvent with MOUSE_MOVE_ABSOLUTE: not a delta

MESSAGE_TYPES_BY_TOPIC = {
    "keyboard": (KEYBOARD_EVENT,),
    "mouse/raw": (RAW_MOUSE_EVENT,),
    "mouse": (RAW_MOUSE_EVENT, MOUSE_EVENT),
    "screen": (SCREEN_CAPTURED,),
}

MOUSE_BUTTONS = ("unknown", "left", "middle", "right", "x1", "x2")
MOUSE_MOVE_ABSOLUTE = 0x0001  # RAWMOUSE.usFlags bit; the other bits do not change what last_x/last_y mean
WHEEL_DELTA = 120  # RAWMOUSE.usButtonData per wheel notch
WHEEL_ROUNDED = "wheel_rounded"  # a clamp reason: a wheel delta that is not a whole number of notches

_KEYBOARD_FIELDS = frozenset({"event_type", "vk", "timestamp"})
_RAW_MOUSE_FIELDS = frozenset(
    {"last_x", "last_y", "us_flags", "button_flags", "button_data", "device_handle", "timestamp"}
)
_MOUSE_FIELDS = frozenset({"event_type", "x", "y", "button", "pressed", "dx", "dy", "timestamp"})
_SCREEN_FIELDS = frozenset({"utc_ns", "source_shape", "shape", "media_ref"})


class Drop(Exception):
    """The event cannot be encoded; `reason` is one of the drop reasons above."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_supported(topic: str, message_type: str) -> None:
    message_types = MESSAGE_TYPES_BY_TOPIC.get(topic)
    if message_types is None:
        raise Drop(UNSUPPORTED_TOPIC)
    if message_type not in message_types:
        raise Drop(UNSUPPORTED_MESSAGE_TYPE)


def load(message: bytes) -> dict:
    try:
        payload = orjson.loads(message)
    except orjson.JSONDecodeError:
        raise Drop(INVALID_JSON) from None
    if type(payload) is not dict:
        raise Drop(INVALID_MESSAGE)
    return payload


def screen_media_uri(message: bytes) -> str:
    """The ``media_ref.uri`` of a ScreenCaptured payload: where its frame is, relative to the episode's folder."""
    media_ref = load(message).get("media_ref")
    uri = media_ref.get("uri") if type(media_ref) is dict else None
    if type(uri) is not str:
        raise Drop(INVALID_MESSAGE)
    return uri


def keyboard_event(payload: dict) -> tuple[int, bool]:
    """``(vk, pressed)`` of a KeyboardEvent."""
    event_type, vk = payload.get("event_type"), payload.get("vk")
    if not (
        payload.keys() <= _KEYBOARD_FIELDS
        and event_type in ("press", "release")
        and type(vk) is int
        and _is_optional_int(payload.get("timestamp"))
    ):
        raise Drop(INVALID_MESSAGE)
    return vk, event_type == "press"


def raw_mouse_event(payload: dict) -> tuple[int, int, int, int]:
    """``(dx, dy, button_flags, button_data)`` of a RawMouseEvent with relative motion."""
    dx, dy = payload.get("last_x"), payload.get("last_y")
    us_flags = payload.get("us_flags", 0)
    button_flags = payload.get("button_flags", 0)
    button_data = payload.get("button_data", 0)
    if not (
        payload.keys() <= _RAW_MOUSE_FIELDS
        and type(dx) is type(dy) is type(us_flags) is type(button_flags) is type(button_data) is int
        and 0 <= button_flags <= 0xFFF
        and _is_optional_int(payload.get("device_handle"))
        and _is_optional_int(payload.get("timestamp"))
    ):
        raise Drop(INVALID_MESSAGE)
    if us_flags & MOUSE_MOVE_ABSOLUTE:
        raise Drop(ABSOLUTE_RAW_MOUSE)
    return dx, dy, button_flags, button_data


def mouse_event(payload: dict) -> tuple[str, int, int, str | None, bool | None, int | None, int | None]:
    """``(event_type, x, y, button, pressed, dx, dy)`` of a MouseEvent. A click needs `button` and
    `pressed`, a scroll `dx` and `dy`."""
    event_type, x, y = payload.get("event_type"), payload.get("x"), payload.get("y")
    button, pressed = payload.get("button"), payload.get("pressed")
    dx, dy = payload.get("dx"), payload.get("dy")
    if not (
        payload.keys() <= _MOUSE_FIELDS
        and type(x) is type(y) is int
        and (button is None or button in MOUSE_BUTTONS)
        and (pressed is None or type(pressed) is bool)
        and _is_optional_int(dx)
        and _is_optional_int(dy)
        and _is_optional_int(payload.get("timestamp"))
        and (
            event_type == "move"
            or (event_type == "click" and button is not None and pressed is not None)
            or (event_type == "scroll" and dx is not None and dy is not None)
        )
    ):
        raise Drop(INVALID_MESSAGE)
    return event_type, x, y, button, pressed, dx, dy


def check_screen(payload: dict) -> None:
    """A ScreenCaptured as stored: it must reference its media (``media_ref.uri``)."""
    media_ref = payload.get("media_ref")
    if not (
        payload.keys() <= _SCREEN_FIELDS
        and _is_optional_int(payload.get("utc_ns"))
        and _is_optional_shape(payload.get("source_shape"))
        and _is_optional_shape(payload.get("shape"))
        and type(media_ref) is dict
        and type(media_ref.get("uri")) is str
        and _is_optional_int(media_ref.get("pts_ns"))
    ):
        raise Drop(INVALID_MESSAGE)


def wheel_notches(button_data: int) -> tuple[int, bool]:
    """``(notches, rounded)``: the RAWMOUSE wheel delta (usButtonData, signed 16-bit) in notches,
    rounded to the nearest notch with halves away from zero; `rounded` tells whether that changed it."""
    delta = button_data - 0x10000 if button_data >= 0x8000 else button_data
    notches = (abs(delta) + WHEEL_DELTA // 2) // WHEEL_DELTA
    return (-notches if delta < 0 else notches), delta % WHEEL_DELTA != 0


def _is_optional_int(value: object) -> bool:
    return value is None or type(value) is int


def _is_optional_shape(value: object) -> bool:
    return value is None or (
        type(value) is list and len(value) == 2 and type(value[0]) is type(value[1]) is int
    )
