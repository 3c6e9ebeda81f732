"""The numeric action columns of binned rows, on event rows of real owa.msgs payloads with known times."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from datasets.table import InMemoryTable
from hypothesis import given, settings
from hypothesis import strategies as st
from owa.msgs.desktop.keyboard import KeyboardEvent
from owa.msgs.desktop.mouse import MouseEvent, RawMouseEvent
from owa.msgs.desktop.screen import ScreenCaptured

from owa_builders.accounting import Accounting
from owa_builders.binned.actions import (
    ACTION_VECTOR_LENGTH,
    ACTION_VECTOR_SEGMENTS,
    SEGMENT_START,
    action_vector_layout,
)
from owa_builders.binned.settings import BinnedSettings
from owa_builders.binned.stage import BINNED_SCHEMA, iter_binned_tables
from owa_builders.events.event_input import episode_rows
from owa_builders.events.stage import EVENT_SCHEMA

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
CARD = Path(__file__).resolve().parents[1] / "builders" / "owa_binned" / "README.md"
TOPIC_OF_TYPE = {"desktop/KeyboardEvent": "keyboard", "desktop/RawMouseEvent": "mouse/raw",
                 "desktop/MouseEvent": "mouse", "desktop/ScreenCaptured": "screen"}


def episode(events: list[tuple[int, object]]):
    """One episode's event rows from (ms after T0, message or (topic, message_type, raw payload bytes))."""
    rows = []
    for ms, message in events:
        if isinstance(message, tuple):
            topic, message_type, payload = message
        else:
            message_type, payload = message._type, message.model_dump_json().encode()
            topic = TOPIC_OF_TYPE[message_type]
        rows.append({"episode_path": "ep.mcap", "topic": topic, "timestamp_ns": T0 + ms * MS,
                     "message_type": message_type, "mcap_message": payload})
    (episode_rows_,) = episode_rows(datasets.Dataset(InMemoryTable(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA))), "t")
    return episode_rows_


def binned(events, fps=10, window_rows=65_536, **fields) -> tuple[list[dict], Accounting]:
    accounting = Accounting()
    tables = list(iter_binned_tables(episode(events), BinnedSettings(fps=fps, **fields), accounting, window_rows))
    assert all(table.schema == BINNED_SCHEMA for table in tables)
    accounting.check()
    return [row for table in tables for row in table.to_pylist()], accounting


def column(rows, name):
    return [row[name] for row in rows]


def press(vk):
    return KeyboardEvent(event_type="press", vk=vk)


def release(vk):
    return KeyboardEvent(event_type="release", vk=vk)


def raw(dx=0, dy=0, flags=0, data=0):
    return RawMouseEvent(last_x=dx, last_y=dy, button_flags=flags, button_data=data)


def screen(ms):
    return ScreenCaptured(utc_ns=T0 + ms * MS, media_ref={"uri": "video.mkv", "pts_ns": ms * MS})


def test_raw_mouse_motion_wheel_and_buttons_per_bin():
    rows, accounting = binned([
        (0, raw(3, -2)), (10, raw(5, 1)),
        (20, raw(flags=0x0001)),  # left down
        (130, raw(flags=0x0400, data=(-240) & 0xFFFF)),  # two notches towards the user
        (140, raw(flags=0x0800, data=120)),  # one notch right
        (150, raw(flags=0x0002 | 0x0010)),  # left up, middle down, in one event
        (360, raw(-1, 0, flags=0x0020 | 0x0040 | 0x0100)),  # middle up; x1, x2 down
        (370, raw(flags=0x0080)),  # x1 up
    ])
    assert column(rows, "mouse_dx") == [8, 0, 0, -1] and column(rows, "mouse_dy") == [-1, 0, 0, 0]
    assert column(rows, "wheel") == [0, -2, 0, 0] and column(rows, "hwheel") == [0, 1, 0, 0]
    assert column(rows, "buttons_pressed") == [["left"], ["middle"], [], ["x1", "x2"]]
    assert column(rows, "buttons_released") == [[], ["left"], [], ["middle", "x1"]]
    assert column(rows, "buttons_down") == [["left"], ["middle"], ["middle"], ["x2"]]  # carried through bin 2
    assert column(rows, "mouse_x") == column(rows, "mouse_y") == [None] * 4  # no absolute mouse events
    assert accounting.topics["mouse/raw"].clamped["button_held_at_episode_end"] == 1


def test_absolute_mouse_events_give_the_cursor_clicks_and_scrolls():
    rows, accounting = binned([
        (0, press(65)),
        (120, MouseEvent(event_type="move", x=10, y=20)),
        (150, MouseEvent(event_type="click", x=11, y=21, button="right", pressed=True)),
        (160, MouseEvent(event_type="scroll", x=12, y=22, dx=-1, dy=3)),
        (390, MouseEvent(event_type="click", x=13, y=23, button="right", pressed=False)),
        (395, MouseEvent(event_type="click", x=14, y=24, button="unknown", pressed=True)),
    ])
    assert column(rows, "mouse_x") == [None, 12, 12, 14] and column(rows, "mouse_y") == [None, 22, 22, 24]
    assert column(rows, "buttons_pressed") == [[], ["right"], [], []]
    assert column(rows, "buttons_released") == [[], [], [], ["right"]]
    assert column(rows, "buttons_down") == [[], ["right"], ["right"], []]
    assert column(rows, "wheel") == [0, 3, 0, 0] and column(rows, "hwheel") == [0, -1, 0, 0]
    assert column(rows, "mouse_dx") == [0] * 4  # absolute events are not relative motion
    mouse = accounting.topics["mouse"]
    assert (mouse.kept, dict(mouse.clamped)) == (5, {"unknown_button": 1})
    assert rows[1]["action"][SEGMENT_START["mouse_xy_known"]] == 1.0 and rows[0]["action"][SEGMENT_START["mouse_xy_known"]] == 0.0


def test_auto_repeat_is_not_a_new_press_and_held_keys_cross_bins_and_windows():
    events = [(0, press(87)), (40, press(16)), (50, press(87)), (183, press(87)), (250, release(16)),
              (260, press(87)), (420, release(87)), (430, release(200))]
    for window_rows in (1, 2, 3, 65_536):
        rows, accounting = binned(events, window_rows=window_rows)
        assert column(rows, "keys_pressed") == [[87, 16], [], [], [], []], window_rows
        assert column(rows, "keys_released") == [[], [], [16], [], [87]]
        assert column(rows, "keys_down") == [[16, 87], [16, 87], [87], [87], []]
        assert dict(accounting.topics["keyboard"].clamped) == {"key_press_while_down": 3, "key_release_while_up": 1}


def test_an_episode_ending_with_keys_and_buttons_held_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="owa_builders"):
        rows, accounting = binned([(0, press(65)), (5, press(66)), (10, release(65)),
                                   (20, MouseEvent(event_type="click", x=1, y=1, button="left", pressed=True))])
    assert rows[-1]["keys_down"] == [66] and rows[-1]["buttons_down"] == ["left"]
    assert accounting.topics["keyboard"].clamped["key_held_at_episode_end"] == 1
    assert accounting.topics["mouse"].clamped["button_held_at_episode_end"] == 1
    assert "ep.mcap ends with keys [66] and buttons ['left'] held" in caplog.text


def test_malformed_action_payloads_are_counted_and_keep_their_json_action():
    bad = [
        ("keyboard", "desktop/KeyboardEvent", b"{not json"),
        ("keyboard", "desktop/KeyboardEvent", b'{"event_type": "press", "vk": "65"}'),
        ("keyboard", "desktop/KeyboardEvent", b'{"event_type": "press", "vk": 300}'),
        ("mouse/raw", "desktop/RawMouseEvent", b'{"last_x": 5, "last_y": 5, "us_flags": 1}'),
        ("mouse", "desktop/MouseEvent", b'{"event_type": "click", "x": 1, "y": 2}'),
        ("mouse", "desktop/MouseState", b'{"x": 1, "y": 2, "buttons": []}'),
    ]
    rows, accounting = binned([(0, raw(2, 3))] + [(ms, event) for ms, event in zip(range(10, 70, 10), bad)])
    (row,) = rows
    assert row["actions"][1:] == [payload for _, _, payload in bad]  # the JSON actions, as they were
    assert (row["mouse_dx"], row["mouse_dy"], row["keys_pressed"], row["buttons_pressed"]) == (2, 3, [], [])
    assert {topic: dict(counts.clamped) for topic, counts in accounting.topics.items()} == {
        "keyboard": {"numeric_invalid_json": 1, "numeric_invalid_message": 1, "numeric_vk_out_of_range": 1},
        "mouse/raw": {"numeric_absolute_raw_mouse": 1},
        "mouse": {"numeric_invalid_message": 1, "numeric_unsupported_message_type": 1},
    }
    assert accounting.totals().kept == 7


def test_sums_beyond_int32_are_clamped_and_counted():
    big = 2**31 - 1
    rows, accounting = binned([(0, raw(big, -big)), (10, raw(big, -big)), (150, raw(1, 1))])
    assert column(rows, "mouse_dx") == [big, 1] and column(rows, "mouse_dy") == [-big - 1, 1]
    assert accounting.topics["mouse/raw"].clamped == {"clamped_to_int32": 2}  # dx and dy


def test_the_action_vector_follows_its_layout():
    rows, _ = binned([(0, raw(4, -6, flags=0x0001)), (10, press(65)), (20, press(66)), (30, release(66)),
                      (40, MouseEvent(event_type="scroll", x=100, y=50, dx=1, dy=-2))])
    vector = np.array(rows[0]["action"], np.float32)
    assert vector.shape == (ACTION_VECTOR_LENGTH,)
    expected = np.zeros(ACTION_VECTOR_LENGTH, np.float32)
    for name, value in (("mouse_dx", 4), ("mouse_dy", -6), ("wheel", -2), ("hwheel", 1), ("mouse_x", 100),
                        ("mouse_y", 50), ("mouse_xy_known", 1), ("buttons_down", 1), ("buttons_pressed", 1)):
        expected[SEGMENT_START[name]] = value  # left is the first button
    expected[[SEGMENT_START["keys_down"] + 65, SEGMENT_START["keys_pressed"] + 65, SEGMENT_START["keys_pressed"] + 66]] = 1
    assert vector.tolist() == expected.tolist()


def test_the_card_documents_the_action_vector_layout():
    layout = action_vector_layout()
    assert layout["length"] == ACTION_VECTOR_LENGTH == sum(length for _, length, _ in ACTION_VECTOR_SEGMENTS)
    documented = re.findall(r"^\| (\d+)(?:[–-](\d+))? \| `(\w+)` \|", CARD.read_text(), re.MULTILINE)
    assert [(int(first), int(last or first), name) for first, last, name in documented] == [
        (segment["start"], segment["start"] + segment["length"] - 1, segment["name"]) for segment in layout["segments"]]


# -- against the event stream: replaying presses and releases, whatever the windows

KEYS = (16, 65, 87)
BUTTON_FLAGS = {"left": (0x0001, 0x0002), "right": (0x0004, 0x0008)}

key_events = st.tuples(st.sampled_from(KEYS), st.booleans()).map(lambda e: KeyboardEvent(
    event_type="press" if e[1] else "release", vk=e[0]))
raw_events = st.one_of(
    st.tuples(st.integers(-50, 50), st.integers(-50, 50)).map(lambda d: raw(*d)),
    st.tuples(st.sampled_from(sorted(BUTTON_FLAGS)), st.booleans()).map(
        lambda e: raw(flags=BUTTON_FLAGS[e[0]][0 if e[1] else 1])),
)
streams = st.lists(st.tuples(st.integers(0, 1_500), st.one_of(key_events, raw_events, st.just(None))),
                   min_size=1, max_size=50).map(lambda events: sorted(
                       ((ms, screen(ms) if message is None else message) for ms, message in events), key=lambda e: e[0]))


def replayed(events, start_ms: int, period_ms: int) -> dict[int, tuple[list, list, list]]:
    """Per bin with actions: keys held at its end, keys pressed, motion — by replaying the stream."""
    held, by_bin = set(), {}
    for ms, message in events:
        if isinstance(message, ScreenCaptured):
            continue
        _, pressed, motion = by_bin.setdefault((ms - start_ms) // period_ms, [None, [], [0, 0]])
        if isinstance(message, KeyboardEvent):
            if message.event_type == "press" and message.vk not in held:
                pressed.append(message.vk)
            (held.add if message.event_type == "press" else held.discard)(message.vk)
        else:
            motion[0] += message.last_x
            motion[1] += message.last_y
        by_bin[(ms - start_ms) // period_ms][0] = sorted(held)
    return by_bin


@settings(max_examples=120, deadline=None)
@given(events=streams, window_rows=st.integers(1, 6), fps=st.sampled_from((5, 10, 50)),
       filter_empty_actions=st.booleans())
def test_keys_down_at_every_bin_is_the_replayed_stream(events, window_rows, fps, filter_empty_actions):
    rows, _ = binned(events, fps, window_rows, filter_empty_actions=filter_empty_actions)
    period = 1000 // fps
    expected = replayed(events, events[0][0], period)
    held = []
    for row in rows:
        if row["bin_idx"] in expected:
            held, pressed, motion = expected[row["bin_idx"]]
            assert (row["keys_pressed"], [row["mouse_dx"], row["mouse_dy"]]) == (pressed, motion)
        assert row["keys_down"] == held, row["bin_idx"]  # carried through bins without actions
    raws = [m for _, m in events if isinstance(m, RawMouseEvent)]
    assert sum(column(rows, "mouse_dx")) == sum(m.last_x for m in raws)
    assert sum(column(rows, "mouse_dy")) == sum(m.last_y for m in raws)
    whole, _ = binned(events, fps, filter_empty_actions=filter_empty_actions)
    assert rows == whole  # the same rows whatever the window
