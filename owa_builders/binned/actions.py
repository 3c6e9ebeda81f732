"""Numeric action columns of binned rows: what a bin's keyboard and mouse events did, as numbers.

The payloads are read with the checks of `owa_builders.payloads` (one definition of a valid event).
Per bin:

- ``mouse_dx`` / ``mouse_dy``: relative motion of RawMouseEvents (counts), summed over the bin;
- ``mouse_x`` / ``mouse_y``: the cursor position (pixels) after the latest MouseEvent so far, carried
  across bins; null until the episode's first MouseEvent;
- ``wheel`` / ``hwheel``: wheel notches (raw ``button_data`` / 120 with RI_MOUSE_WHEEL / RI_MOUSE_HWHEEL,
  MouseEvent scroll ``dy`` / ``dx``); positive is away from the user / to the right;
- ``buttons_down`` (held at the bin's end, in `BUTTONS` order), ``buttons_pressed``, ``buttons_released``
  (in the bin, in order), and the same for keys with virtual-key codes (``keys_down`` ascending).

A press of a key or button already down (OS auto-repeat, or the same click seen by two topics) is not a
new press; a release of one not down is not a release. Both are counted (``clamped`` in the accounting,
under the event's topic), as is every event left out of the numeric columns (``numeric_<reason>``: it is
still in the row's ``actions``). What is held lives in `ActionReader`, across bins and windows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np
import pyarrow as pa
from owa.msgs.desktop.mouse import RawMouseEvent

from .. import payloads
from ..accounting import Accounting
from ..payloads import WHEEL_ROUNDED, Drop

logger = logging.getLogger("owa_builders")

BUTTONS = tuple(button for button in payloads.MOUSE_BUTTONS if button != "unknown")  # left middle right x1 x2
_FLAGS = RawMouseEvent.ButtonFlags  # RAWMOUSE usButtonFlags
RAW_BUTTON_FLAGS = {  # button: its (down, up) flags
    button: (int(_FLAGS[f"RI_MOUSE_{flag}_DOWN"]), int(_FLAGS[f"RI_MOUSE_{flag}_UP"]))
    for button, flag in (("left", "LEFT_BUTTON"), ("right", "RIGHT_BUTTON"), ("middle", "MIDDLE_BUTTON"),
                         ("x1", "BUTTON_4"), ("x2", "BUTTON_5"))
}
RI_MOUSE_WHEEL, RI_MOUSE_HWHEEL = int(_FLAGS.RI_MOUSE_WHEEL), int(_FLAGS.RI_MOUSE_HWHEEL)
NUM_VKS = 256  # virtual-key codes 0..255
INT32 = np.iinfo(np.int32)

ACTION_COLUMNS = pa.schema([
    ("mouse_dx", pa.int32()),
    ("mouse_dy", pa.int32()),
    ("mouse_x", pa.int32()),
    ("mouse_y", pa.int32()),
    ("wheel", pa.int32()),
    ("hwheel", pa.int32()),
    ("buttons_down", pa.list_(pa.string())),
    ("buttons_pressed", pa.list_(pa.string())),
    ("buttons_released", pa.list_(pa.string())),
    ("keys_down", pa.list_(pa.int32())),
    ("keys_pressed", pa.list_(pa.int32())),
    ("keys_released", pa.list_(pa.int32())),
])

# The float32 `action` vector: (name, length, meaning) in index order. No normalisation: the values are
# the columns' own units, 0/1 for flags.
ACTION_VECTOR_SEGMENTS = (
    ("mouse_dx", 1, "relative motion, raw mouse counts summed over the bin"),
    ("mouse_dy", 1, "relative motion, raw mouse counts summed over the bin"),
    ("wheel", 1, "vertical wheel notches in the bin, positive away from the user"),
    ("hwheel", 1, "horizontal wheel notches in the bin, positive to the right"),
    ("mouse_x", 1, "cursor x in pixels at the bin's end; 0 while unknown"),
    ("mouse_y", 1, "cursor y in pixels at the bin's end; 0 while unknown"),
    ("mouse_xy_known", 1, "1 when mouse_x and mouse_y are known, else 0"),
    ("buttons_down", len(BUTTONS), "1 for each button held at the bin's end: " + ", ".join(BUTTONS)),
    ("buttons_pressed", len(BUTTONS), "1 for each button pressed in the bin: " + ", ".join(BUTTONS)),
    ("keys_down", NUM_VKS, "1 at offset vk for each virtual key held at the bin's end"),
    ("keys_pressed", NUM_VKS, "1 at offset vk for each virtual key pressed in the bin"),
)
SEGMENT_START = dict(zip((name for name, _, _ in ACTION_VECTOR_SEGMENTS),
                         accumulate((length for _, length, _ in ACTION_VECTOR_SEGMENTS), initial=0)))
ACTION_VECTOR_LENGTH = sum(length for _, length, _ in ACTION_VECTOR_SEGMENTS)

# Counted under `clamped` (the event stays in `actions`).
NUMERIC_SKIPPED = "numeric_{}"  # left out of the numeric columns, with payloads' reason
UNKNOWN_BUTTON = "unknown_button"  # a MouseEvent click of button "unknown": its position is used
PRESS_OF_HELD = "{}_press_while_down"  # key/button: a press of one already down (not a new press)
RELEASE_OF_UP = "{}_release_while_up"  # key/button: a release of one not down (not a release)
HELD_AT_END = "{}_held_at_episode_end"  # key/button: still down after the episode's last event
OUT_OF_INT32 = "clamped_to_int32"  # a bin's sum or a position beyond int32
# and WHEEL_ROUNDED: a raw wheel delta that is not a whole number of notches


def action_vector_layout() -> dict:
    """The `action` vector's layout, as stored in owa_dataset.json."""
    return {
        "length": ACTION_VECTOR_LENGTH,
        "dtype": "float32",
        "normalisation": "none: counts, notches and pixels as in the columns; flags are 0 or 1",
        "segments": [{"name": name, "start": SEGMENT_START[name], "length": length, "meaning": meaning}
                     for name, length, meaning in ACTION_VECTOR_SEGMENTS],
    }


@dataclass
class _Step:
    """What happens in one bin."""

    dx: int = 0
    dy: int = 0
    wheel: int = 0
    hwheel: int = 0
    motion_topic: str = ""  # topic of the bin's relative motion (where a clamp is counted)
    wheel_topic: str = ""
    buttons_pressed: list[str] = field(default_factory=list)
    buttons_released: list[str] = field(default_factory=list)
    keys_pressed: list[int] = field(default_factory=list)
    keys_released: list[int] = field(default_factory=list)


class ActionReader:
    """Turns an episode's action events, bin after bin, into the numeric columns; keeps what is held."""

    def __init__(self, episode_path: str, counts: Accounting):
        self.episode_path = episode_path
        self.counts = counts
        self.keys_down: dict[int, str] = {}  # vk -> topic of its press
        self.buttons_down: dict[str, str] = {}
        self.position: tuple[int, int] | None = None
        self._applies = {payloads.KEYBOARD_EVENT: self._keyboard, payloads.RAW_MOUSE_EVENT: self._raw_mouse,
                         payloads.MOUSE_EVENT: self._mouse}

    def columns(self, bins: np.ndarray, action_bins: np.ndarray, topics: pa.Array, message_types: pa.Array,
                messages: pa.Array) -> pa.RecordBatch:
        """`ACTION_COLUMNS` and ``action`` for `bins` (increasing), given the action events of these bins in
        time order (every one in one of `bins`), continuing from the bins before."""
        rows = {name: [] for name in ACTION_COLUMNS.names}
        events = zip(action_bins.tolist(), topics.to_pylist(), message_types.to_pylist(), messages.to_pylist())
        event = next(events, None)
        for bin_index in bins.tolist():
            step = _Step()
            while event is not None and event[0] == bin_index:
                self._read(step, *event[1:])
                event = next(events, None)
            self._end(step, rows)
        arrays = [pa.array(rows[column.name], column.type) for column in ACTION_COLUMNS]
        return pa.RecordBatch.from_arrays([*arrays, _vectors(rows)], schema=BINNED_ACTION_SCHEMA)

    def finish(self) -> None:
        """Count and log the keys and buttons still held when the episode ends."""
        for kind, held in (("key", self.keys_down), ("button", self.buttons_down)):
            for topic in held.values():
                self._note(topic, HELD_AT_END.format(kind))
        if self.keys_down or self.buttons_down:
            logger.info("%s ends with keys %s and buttons %s held", self.episode_path, sorted(self.keys_down),
                        [b for b in BUTTONS if b in self.buttons_down])

    def _note(self, topic: str, reason: str) -> None:
        self.counts.topic(topic).clamped[reason] += 1

    def _read(self, step: _Step, topic: str, message_type: str, message: bytes) -> None:
        fields = _checked_fields(message_type, message)
        if type(fields) is str:
            self._note(topic, NUMERIC_SKIPPED.format(fields))
        else:
            self._applies[message_type](step, topic, *fields)

    def _keyboard(self, step: _Step, topic: str, vk: int, pressed: bool) -> None:
        if not 0 <= vk < NUM_VKS:
            self._note(topic, NUMERIC_SKIPPED.format(payloads.VK_OUT_OF_RANGE))
            return
        self._switch("key", self.keys_down, vk, pressed, topic,
                     step.keys_pressed if pressed else step.keys_released)

    def _raw_mouse(self, step: _Step, topic: str, dx: int, dy: int, button_flags: int, button_data: int) -> None:
        if dx or dy:
            step.dx += dx
            step.dy += dy
            step.motion_topic = topic
        if not button_flags:
            return
        for button, (down, up) in RAW_BUTTON_FLAGS.items():
            if button_flags & down:
                self._switch("button", self.buttons_down, button, True, topic, step.buttons_pressed)
            if button_flags & up:
                self._switch("button", self.buttons_down, button, False, topic, step.buttons_released)
        if button_flags & (RI_MOUSE_WHEEL | RI_MOUSE_HWHEEL):
            notches, rounded = payloads.wheel_notches(button_data)
            if rounded:
                self._note(topic, WHEEL_ROUNDED)
            if button_flags & RI_MOUSE_WHEEL:
                step.wheel += notches
            if button_flags & RI_MOUSE_HWHEEL:
                step.hwheel += notches
            step.wheel_topic = topic

    def _mouse(self, step: _Step, topic: str, event_type: str, x: int, y: int, button: str | None,
               pressed: bool | None, dx: int | None, dy: int | None) -> None:
        if not (INT32.min <= x <= INT32.max and INT32.min <= y <= INT32.max):
            self._note(topic, OUT_OF_INT32)
            x, y = (int(np.clip(v, INT32.min, INT32.max)) for v in (x, y))
        self.position = (x, y)
        if event_type == "scroll":
            step.wheel += dy
            step.hwheel += dx
            step.wheel_topic = topic
        elif event_type == "click":
            if button == "unknown":
                self._note(topic, UNKNOWN_BUTTON)
            else:
                self._switch("button", self.buttons_down, button, pressed, topic,
                             step.buttons_pressed if pressed else step.buttons_released)

    def _switch(self, kind: str, down: dict, name, pressed: bool, topic: str, happened: list) -> None:
        """A press or release of key/button `name`; only a change of state is a press or a release."""
        if pressed == (name in down):
            self._note(topic, (PRESS_OF_HELD if pressed else RELEASE_OF_UP).format(kind))
            return
        if pressed:
            down[name] = topic
        else:
            del down[name]
        happened.append(name)

    def _end(self, step: _Step, rows: dict[str, list]) -> None:
        """Append the bin's values; sums beyond int32 are clamped (counted)."""
        sums = (("mouse_dx", step.dx, step.motion_topic), ("mouse_dy", step.dy, step.motion_topic),
                ("wheel", step.wheel, step.wheel_topic), ("hwheel", step.hwheel, step.wheel_topic))
        for column, value, topic in sums:
            if not INT32.min <= value <= INT32.max:
                self._note(topic, OUT_OF_INT32)
                value = int(np.clip(value, INT32.min, INT32.max))
            rows[column].append(value)
        x, y = self.position or (None, None)
        rows["mouse_x"].append(x)
        rows["mouse_y"].append(y)
        rows["buttons_down"].append([button for button in BUTTONS if button in self.buttons_down])
        rows["buttons_pressed"].append(step.buttons_pressed)
        rows["buttons_released"].append(step.buttons_released)
        rows["keys_down"].append(sorted(self.keys_down))
        rows["keys_pressed"].append(step.keys_pressed)
        rows["keys_released"].append(step.keys_released)


_FIELDS_OF_TYPE = {payloads.KEYBOARD_EVENT: payloads.keyboard_event, payloads.RAW_MOUSE_EVENT: payloads.raw_mouse_event,
                   payloads.MOUSE_EVENT: payloads.mouse_event}


def _checked_fields(message_type: str, message: bytes) -> tuple | str:
    """The fields of an action payload, checked by `payloads`, or the reason it cannot be read."""
    try:
        fields_of = _FIELDS_OF_TYPE.get(message_type)
        if fields_of is None:
            raise Drop(payloads.UNSUPPORTED_MESSAGE_TYPE)
        return fields_of(payloads.load(message))
    except Drop as drop:
        return drop.reason


BINNED_ACTION_SCHEMA = ACTION_COLUMNS.append(pa.field("action", pa.list_(pa.float32(), ACTION_VECTOR_LENGTH)))


def _vectors(rows: dict[str, list]) -> pa.FixedSizeListArray:
    """The ``action`` vector of each row (layout: `ACTION_VECTOR_SEGMENTS`)."""
    count = len(rows["mouse_dx"])
    vectors = np.zeros((count, ACTION_VECTOR_LENGTH), np.float32)
    for name in ("mouse_dx", "mouse_dy", "wheel", "hwheel"):
        vectors[:, SEGMENT_START[name]] = rows[name]
    known = np.array([x is not None for x in rows["mouse_x"]], bool)
    for name in ("mouse_x", "mouse_y"):
        vectors[known, SEGMENT_START[name]] = [v for v in rows[name] if v is not None]
    vectors[:, SEGMENT_START["mouse_xy_known"]] = known
    button_index = {button: index for index, button in enumerate(BUTTONS)}
    for segment, offsets in (("buttons_down", button_index), ("buttons_pressed", button_index),
                             ("keys_down", None), ("keys_pressed", None)):
        start = SEGMENT_START[segment]
        for row, names in enumerate(rows[segment]):
            for name in names:
                vectors[row, start + (offsets[name] if offsets else name)] = 1.0
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), ACTION_VECTOR_LENGTH)
