"""Synthesizer of realistic OWAMcap desktop recordings with known ground truth.

An episode is an ``.mcap`` (profile "owa", written by ``OWAMcapWriter``) plus, optionally, an H.264
Matroska video beside it. Topics follow the upstream recorder:

- ``screen``: ``desktop/ScreenCaptured`` with timestamp jitter, each referencing one video frame by
  ``pts_ns``; every frame has its index painted as a grid of black/white cells
  (read back with :func:`frame_index_from_image`);
- ``mouse/raw``: ``desktop/RawMouseEvent`` at the device polling rate: smooth relative motion, and
  clicks and wheel notches on ticks of their own (no motion on those ticks);
- ``mouse``: ``desktop/MouseEvent``: absolute "move" samples of the cursor (the raw motion
  integrated and clamped to the screen) plus a "click"/"scroll" for every raw button/wheel event;
- ``keyboard``: ``desktop/KeyboardEvent``: typing bursts with key rollover, and held keys with OS
  auto-repeat;
- ``window``, ``keyboard/state``, ``mouse/state``: periodic snapshots.

Each topic is generated lazily and the streams are merged by time, so memory does not grow with the
duration. The output is a pure function of the profile: same profile, same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from fractions import Fraction
from operator import itemgetter
from pathlib import Path

import av
import numpy as np
from mcap_owa.highlevel import OWAMcapWriter
from owa.core.message import OWAMessage
from owa.msgs.desktop.keyboard import KeyboardEvent, KeyboardState
from owa.msgs.desktop.mouse import MouseEvent, MouseState, RawMouseEvent
from owa.msgs.desktop.screen import ScreenCaptured
from owa.msgs.desktop.window import WindowInfo

from .units import NS_PER_MS, NS_PER_S

DEFAULT_START_NS = 1_700_000_000_000_000_000
HOUR_NS = 3600 * NS_PER_S

# A stream item: (time since episode start in ns, topic, message).
TimedMessage = tuple[int, str, OWAMessage]

# Periodic samplers (raw mouse, mouse moves, snapshots) are each delayed by up to this fraction of
# their period, at most MAX_SAMPLE_DELAY_NS.
SAMPLE_JITTER_FRACTION = 0.25
MAX_SAMPLE_DELAY_NS = 5 * NS_PER_MS
# Snapshot topics follow the upstream recorder: window first, then keyboard state, then mouse state.
KEYBOARD_STATE_PHASE_NS = 1 * NS_PER_MS
MOUSE_STATE_PHASE_NS = 2 * NS_PER_MS
MAX_STATE_HZ = 100.0

# Mouse physics (in raw counts; one count = one pixel, no pointer acceleration).
VELOCITY_TIME_CONSTANT_S = 0.25  # how long the hand keeps its direction
SPEED_STD_COUNTS_PER_S = 500.0
CENTER_PULL_PER_S2 = 4.0  # spring keeping the cursor around the screen centre

# RAWMOUSE button flags (owa.msgs RawMouseEvent.ButtonFlags) and their pynput button names.
BUTTON_FLAGS = {"left": (0x0001, 0x0002), "right": (0x0004, 0x0008)}
ANY_BUTTON_DOWN = 0x0001 | 0x0004
WHEEL_FLAG = 0x0400
WHEEL_DELTA = 120  # one notch; button_data holds the signed delta as unsigned 16-bit

# Windows virtual-key codes.
VK_BACK, VK_RETURN, VK_SPACE, VK_LEFT, VK_RIGHT = 0x08, 0x0D, 0x20, 0x25, 0x27
VK_SHIFT = 0x10  # the stuck key (`SynthProfile.stuck_key`): typing never uses it
HELD_KEYS = (VK_BACK, VK_LEFT, VK_RIGHT, ord("W"))
WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "open", "world", "agents", "desktop")
AUTO_REPEAT_DELAY_NS = 500 * NS_PER_MS
AUTO_REPEAT_INTERVAL_NS = 33 * NS_PER_MS

WINDOWS = (  # (title, rect as a fraction of the screen, hWnd)
    ("Untitled - Notepad", (0.1, 0.1, 0.6, 0.7), 0x2B0F62),
    ("README.md - owa - Visual Studio Code", (0.0, 0.0, 1.0, 0.96), 0x0D0E98),
    ("Minecraft 1.21.4", (0.0, 0.0, 1.0, 1.0), 0x1A04C2),
)
WINDOW_SWITCH_PROBABILITY = 0.15

# Frame index painting: a grid of cells, one bit each (row-major, least significant first):
# 24 bits of index, then 8 check bits so that a blank or wrong image is rejected instead of misread.
GRID_COLUMNS, GRID_ROWS = 8, 4
INDEX_BITS = 24
MAX_FRAMES = 1 << INDEX_BITS
VIDEO_CODEC = "libx264"
VIDEO_OPTIONS = {"preset": "ultrafast", "crf": "18", "bf": "0", "threads": "1"}
VIDEO_TIME_BASE = Fraction(1, 1000)  # Matroska's native 1 ms tick; pts_ns is always a whole ms


@dataclass(frozen=True)
class SynthProfile:
    """Every knob of a synthetic episode; a rate of 0 disables its topic."""

    duration_s: float = 10.0
    screen_hz: float = 60.0
    raw_mouse_hz: float = 1000.0  # also drives clicks and wheel: at 0 the mouse never moves or clicks
    mouse_hz: float = 100.0  # "move" samples; at 0 the whole `mouse` topic is disabled
    state_hz: float = 1.0  # window, keyboard/state, mouse/state
    typing: bool = True
    video: bool = True
    video_size: tuple[int, int] = (64, 48)  # (width, height) of the encoded frames
    seed: int = 0
    start_ns: int = DEFAULT_START_NS
    screen_size: tuple[int, int] = (1920, 1080)  # desktop (width, height): cursor range, source_shape
    screen_jitter_ms: float = 4.0  # each frame is captured up to this late
    clicks_per_min: float = 10.0
    scrolls_per_min: float = 15.0  # wheel gestures, each of one to five notch events
    keyframe_interval: int = 60  # video GOP, in frames
    stuck_key: bool = False  # VK_SHIFT pressed at the start and never released (auto-repeating throughout)
    raw_mouse_topic: bool = True  # False: the raw input drives the `mouse` view only, as recorders without raw input

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ValueError("duration_s must be positive")
        rates = (self.screen_hz, self.raw_mouse_hz, self.mouse_hz, self.state_hz)
        if min(rates) < 0 or min(self.clicks_per_min, self.scrolls_per_min) < 0:
            raise ValueError("rates must be >= 0")
        if self.state_hz > MAX_STATE_HZ:
            raise ValueError(f"state_hz must be <= {MAX_STATE_HZ}")
        if self.screen_hz and self.screen_jitter_ms * NS_PER_MS >= NS_PER_S / self.screen_hz:
            raise ValueError("screen_jitter_ms must be shorter than the screen period")
        width, height = self.video_size
        if width % 2 or height % 2 or width < 2 * GRID_COLUMNS or height < 2 * GRID_ROWS:
            raise ValueError(f"video_size must be even and at least {2 * GRID_COLUMNS}x{2 * GRID_ROWS}")
        if self.keyframe_interval < 1:
            raise ValueError("keyframe_interval must be >= 1")

    @property
    def duration_ns(self) -> int:
        return round(self.duration_s * NS_PER_S)


@dataclass
class EpisodeManifest:
    """Ground truth of one written episode; every message's log time lies in [start_ns, end_ns)."""

    mcap_path: Path
    video_path: Path | None  # None if no video was written (video=False: the messages still reference it)
    video_uri: str  # media_ref.uri of the screen messages, relative to the .mcap's folder
    seed: int
    start_ns: int  # episode start; video pts 0 corresponds to it
    end_ns: int  # start_ns + duration
    message_counts: dict[str, int]  # per topic
    raw_mouse_motion: tuple[int, int]  # sum of last_x, sum of last_y over mouse/raw
    mouse_clicks: int  # button-down events on mouse/raw (each has its button-up)
    wheel_events: int  # wheel events on mouse/raw
    key_presses: int  # first presses on keyboard (auto-repeats excluded)
    key_repeats: int  # auto-repeat presses of an already pressed key
    key_releases: int


# ---------------------------------------------------------------- frame index painting


def _cell_bounds(height: int, width: int) -> Iterator[tuple[slice, slice]]:
    """Pixel rows and columns of each grid cell, in bit order."""
    for bit in range(GRID_COLUMNS * GRID_ROWS):
        row, column = divmod(bit, GRID_COLUMNS)
        yield (
            slice(row * height // GRID_ROWS, (row + 1) * height // GRID_ROWS),
            slice(column * width // GRID_COLUMNS, (column + 1) * width // GRID_COLUMNS),
        )


def _check_byte(index: int) -> int:
    return ~(index ^ (index >> 8) ^ (index >> 16)) & 0xFF


def paint_frame_index(index: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """Gray (height, width) uint8 image encoding `index`; its inverse is frame_index_from_image."""
    if not 0 <= index < MAX_FRAMES:
        raise ValueError(f"frame index must be in [0, {MAX_FRAMES})")
    width, height = size
    code = index | _check_byte(index) << INDEX_BITS
    image = np.zeros((height, width), np.uint8)
    for bit, (rows, columns) in enumerate(_cell_bounds(height, width)):
        if code >> bit & 1:
            image[rows, columns] = 255
    return image


def frame_index_from_image(rgb: np.ndarray) -> int:
    """Frame index painted by the synthesizer, from a decoded (possibly lossy or resized) image.

    Accepts (H, W), (H, W, 3) or (H, W, 4) arrays; reads the centre of each cell only, so codec
    ringing at cell edges does not matter. Raises ValueError if the image carries no valid index.
    """
    image = np.asarray(rgb, dtype=np.float32)
    luma = image[..., :3].mean(axis=-1) if image.ndim == 3 else image
    code = 0
    for bit, (rows, columns) in enumerate(_cell_bounds(*luma.shape)):
        cell = luma[rows, columns]
        margin_y, margin_x = cell.shape[0] // 4, cell.shape[1] // 4
        centre = cell[margin_y : cell.shape[0] - margin_y, margin_x : cell.shape[1] - margin_x]
        if centre.mean() >= 128:
            code |= 1 << bit
    index = code & (MAX_FRAMES - 1)
    if code >> INDEX_BITS != _check_byte(index):
        raise ValueError("image does not carry a valid synthetic frame index")
    return index


class _FrameEncoder:
    """Encodes one index-painted frame per screen message, at the message's pts, into H.264 Matroska."""

    def __init__(self, path: Path, profile: SynthProfile):
        self._size = profile.video_size
        self._frames_written = 0
        self._container = av.open(str(path), "w", format="matroska")
        # Bit-exact muxing: no random segment UID and no version strings, so the bytes are reproducible.
        self._container.flags |= av.container.Flags.bitexact.value
        self._stream = self._container.add_stream(VIDEO_CODEC, rate=round(profile.screen_hz) or 1)
        self._stream.width, self._stream.height = self._size
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = VIDEO_TIME_BASE
        self._stream.codec_context.time_base = VIDEO_TIME_BASE
        self._stream.options = {**VIDEO_OPTIONS, "g": str(profile.keyframe_interval)}

    def add_frame(self, pts_ns: int) -> None:
        frame = av.VideoFrame.from_ndarray(paint_frame_index(self._frames_written, self._size), format="gray")
        frame.pts = pts_ns // NS_PER_MS
        frame.time_base = VIDEO_TIME_BASE
        self._container.mux(self._stream.encode(frame))
        self._frames_written += 1

    def __enter__(self) -> _FrameEncoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()


# ---------------------------------------------------------------- message streams


def _random_ns(rng: random.Random, low_ms: float, high_ms: float) -> int:
    """A uniform duration in [low_ms, high_ms), in ns."""
    return round(rng.uniform(low_ms, high_ms) * NS_PER_MS)


def _rng(profile: SynthProfile, stream: str) -> random.Random:
    """Independent, reproducible randomness per stream (string seeds are hashed stably by `random`)."""
    return random.Random(f"{profile.seed}:{stream}")


def _periodic_times(
    hz: float, duration_ns: int, rng: random.Random, max_delay_ns: float | None = None, phase_ns: int = 0
) -> Iterator[int]:
    """Ticks at `hz` (none if 0) until the episode ends, each delayed by a uniform [0, max_delay_ns).

    The delay defaults to SAMPLE_JITTER_FRACTION of the period, at most MAX_SAMPLE_DELAY_NS.
    """
    if hz <= 0:
        return
    if max_delay_ns is None:
        max_delay_ns = min(SAMPLE_JITTER_FRACTION * NS_PER_S / hz, MAX_SAMPLE_DELAY_NS)
    for tick in itertools.count():
        t = round(tick * NS_PER_S / hz) + phase_ns + int(rng.random() * max_delay_ns)
        if t >= duration_ns:
            return
        yield t


def _screen_messages(profile: SynthProfile, video_uri: str) -> Iterator[TimedMessage]:
    rng = _rng(profile, "screen")
    times = _periodic_times(profile.screen_hz, profile.duration_ns, rng, profile.screen_jitter_ms * NS_PER_MS)
    previous_pts_ms = -1
    for t in times:
        # The video clock ticks in whole ms: round the capture time, keeping pts strictly increasing.
        pts_ms = max(round(t / NS_PER_MS), previous_pts_ms + 1)
        previous_pts_ms = pts_ms
        yield (
            t,
            "screen",
            ScreenCaptured(
                utc_ns=profile.start_ns + t,
                source_shape=profile.screen_size,
                shape=profile.video_size,
                media_ref={"uri": video_uri, "pts_ns": pts_ms * NS_PER_MS},
            ),
        )


def _window_messages(profile: SynthProfile) -> Iterator[TimedMessage]:
    rng = _rng(profile, "window")
    screen_width, screen_height = profile.screen_size
    current = rng.randrange(len(WINDOWS))
    for t in _periodic_times(profile.state_hz, profile.duration_ns, rng):
        if rng.random() < WINDOW_SWITCH_PROBABILITY:
            current = (current + rng.randrange(1, len(WINDOWS))) % len(WINDOWS)
        title, (left, top, right, bottom), handle = WINDOWS[current]
        rect = (
            round(left * screen_width),
            round(top * screen_height),
            round(right * screen_width),
            round(bottom * screen_height),
        )
        yield t, "window", WindowInfo(title=title, rect=rect, hWnd=handle)


def _mouse_button_gestures(profile: SynthProfile, rng: random.Random) -> Iterator[tuple[int, int, int]]:
    """Endless (time_ns, button_flags, button_data) of clicks and wheel gestures, one gesture at a time."""
    gestures_per_s = (profile.clicks_per_min + profile.scrolls_per_min) / 60
    if gestures_per_s == 0:
        return
    t = 0
    while True:
        t += int(rng.expovariate(gestures_per_s) * NS_PER_S)
        if rng.random() * (profile.clicks_per_min + profile.scrolls_per_min) < profile.clicks_per_min:
            down, up = BUTTON_FLAGS["left" if rng.random() < 0.85 else "right"]
            yield t, down, 0
            t += _random_ns(rng, 60, 160)
            yield t, up, 0
        else:
            direction = rng.choice((1, -1))
            for _ in range(rng.randint(1, 5)):
                notches = 2 if rng.random() < 0.1 else 1  # a fast spin reports two notches at once
                yield t, WHEEL_FLAG, (direction * notches * WHEEL_DELTA) & 0xFFFF
                t += _random_ns(rng, 20, 60)


def _raw_mouse_events(profile: SynthProfile) -> Iterator[tuple[int, RawMouseEvent]]:
    """The device at its polling rate: an Ornstein-Uhlenbeck hand velocity, rounded to whole counts.

    A button or wheel event takes a tick of its own; the motion of that tick is reported on the next one.
    """
    rng = _rng(profile, "mouse/raw")
    hz = profile.raw_mouse_hz
    if hz <= 0:
        return
    dt = 1 / hz
    decay = math.exp(-dt / VELOCITY_TIME_CONSTANT_S)
    velocity_noise = SPEED_STD_COUNTS_PER_S * math.sqrt(1 - decay * decay)
    velocity = [0.0, 0.0]  # counts/s
    position = [0.0, 0.0]  # hand position relative to the start, in counts
    reported = [0, 0]  # motion reported so far
    gestures = _mouse_button_gestures(profile, _rng(profile, "mouse/buttons"))
    next_button = next(gestures, None)
    for t in _periodic_times(hz, profile.duration_ns, rng):
        for axis in (0, 1):
            pull = -CENTER_PULL_PER_S2 * position[axis] * dt
            velocity[axis] = decay * velocity[axis] + velocity_noise * rng.gauss() + pull
            position[axis] += velocity[axis] * dt
        if next_button is not None and next_button[0] <= t:
            _, button_flags, button_data = next_button
            next_button = next(gestures, None)
            yield t, RawMouseEvent(last_x=0, last_y=0, button_flags=button_flags, button_data=button_data)
            continue
        dx, dy = (round(position[axis]) - reported[axis] for axis in (0, 1))
        reported[0] += dx
        reported[1] += dy
        yield t, RawMouseEvent(last_x=dx, last_y=dy)


def _mouse_messages(profile: SynthProfile) -> Iterator[TimedMessage]:
    """mouse/raw, plus the `mouse` and `mouse/state` views of the cursor it drives."""
    duration_ns = profile.duration_ns
    move_times = _periodic_times(profile.mouse_hz, duration_ns, _rng(profile, "mouse"))
    state_times = _periodic_times(
        profile.state_hz, duration_ns, _rng(profile, "mouse/state"), phase_ns=MOUSE_STATE_PHASE_NS
    )
    timeline = heapq.merge(
        ((t, "mouse/raw", raw) for t, raw in _raw_mouse_events(profile)),
        ((t, "mouse", None) for t in move_times),
        ((t, "mouse/state", None) for t in state_times),
        key=itemgetter(0),
    )
    screen_width, screen_height = profile.screen_size
    x, y = screen_width // 2, screen_height // 2
    pressed: set[str] = set()  # one button at a time, so the serialized set has a stable order
    mouse_enabled = profile.mouse_hz > 0
    for t, topic, raw in timeline:
        if topic == "mouse":
            yield t, topic, MouseEvent(event_type="move", x=x, y=y)
        elif topic == "mouse/state":
            yield t, topic, MouseState(x=x, y=y, buttons=pressed)
        else:
            x = min(max(x + raw.last_x, 0), screen_width - 1)
            y = min(max(y + raw.last_y, 0), screen_height - 1)
            if profile.raw_mouse_topic:
                yield t, topic, raw
            if not raw.button_flags:
                continue
            flags = int(raw.button_flags)
            for button, (down_flag, up_flag) in BUTTON_FLAGS.items():
                if not flags & (down_flag | up_flag):
                    continue
                is_down = bool(flags & down_flag)
                if is_down:
                    pressed.add(button)
                else:
                    pressed.discard(button)
                if mouse_enabled:
                    yield t, "mouse", MouseEvent(event_type="click", x=x, y=y, button=button, pressed=is_down)
            if flags & WHEEL_FLAG and mouse_enabled:
                delta = raw.button_data - 0x10000 if raw.button_data & 0x8000 else raw.button_data
                yield t, "mouse", MouseEvent(event_type="scroll", x=x, y=y, dx=0, dy=delta // WHEEL_DELTA)


def _word_burst(rng: random.Random, start_ns: int) -> list[tuple[int, str, int]]:
    """A few typed words with overlapping keystrokes (rollover), as (time_ns, event_type, vk)."""
    keys = []
    for word_index in range(rng.randint(1, 4)):
        if word_index:
            keys.append(VK_SPACE)
        keys.extend(ord(letter.upper()) for letter in rng.choice(WORDS))
    if rng.random() < 0.3:
        keys.append(VK_RETURN)
    events = []
    released_at: dict[int, int] = {}
    t = start_ns
    for vk in keys:
        t = max(t, released_at.get(vk, 0) + 10 * NS_PER_MS)  # a key is released before it is pressed again
        released_at[vk] = t + _random_ns(rng, 50, 120)
        events += [(t, "press", vk), (released_at[vk], "release", vk)]
        t += _random_ns(rng, 70, 180)
    return sorted(events)


def _held_key(rng: random.Random, start_ns: int) -> list[tuple[int, str, int]]:
    """One key held down long enough for OS auto-repeat: a press every interval after the delay."""
    vk = rng.choice(HELD_KEYS)
    release_ns = start_ns + _random_ns(rng, 700, 2000)
    events = [(start_ns, "press", vk)]
    repeat_ns = start_ns + AUTO_REPEAT_DELAY_NS
    while (jittered_ns := repeat_ns + _random_ns(rng, 0, 1)) < release_ns:  # every repeat before the release
        events.append((jittered_ns, "press", vk))
        repeat_ns += AUTO_REPEAT_INTERVAL_NS
    events.append((release_ns, "release", vk))
    return events


def _key_events(profile: SynthProfile) -> Iterator[tuple[int, str, int]]:
    """Typing and, with `stuck_key`, VK_SHIFT held from the start to the end."""
    typing = _typing_events(profile) if profile.typing else iter(())
    if not profile.stuck_key:
        yield from typing
        return
    stuck = [(0, "press", VK_SHIFT)]
    stuck += [(t, "press", VK_SHIFT) for t in range(AUTO_REPEAT_DELAY_NS, profile.duration_ns, AUTO_REPEAT_INTERVAL_NS)]
    yield from heapq.merge(stuck, typing, key=itemgetter(0))


def _typing_events(profile: SynthProfile) -> Iterator[tuple[int, str, int]]:
    """Typing bursts and held keys separated by idle gaps; only activities that end inside the episode."""
    rng = _rng(profile, "keyboard")
    t = _random_ns(rng, 100, 1000)
    while True:
        activity = _held_key(rng, t) if rng.random() < 0.3 else _word_burst(rng, t)
        end_ns = activity[-1][0]
        if end_ns >= profile.duration_ns:
            return
        yield from activity
        t = end_ns + _random_ns(rng, 200, 1500)


def _keyboard_messages(profile: SynthProfile) -> Iterator[TimedMessage]:
    """keyboard, plus keyboard/state snapshots of the keys held at their time."""
    state_rng = _rng(profile, "keyboard/state")
    state_times = _periodic_times(
        profile.state_hz, profile.duration_ns, state_rng, phase_ns=KEYBOARD_STATE_PHASE_NS
    )
    timeline = heapq.merge(_key_events(profile), ((t, "state", 0) for t in state_times), key=itemgetter(0))
    pressed: set[int] = set()
    for t, event_type, vk in timeline:
        if event_type == "state":
            yield t, "keyboard/state", KeyboardState(buttons=pressed)
            continue
        if event_type == "press":
            pressed.add(vk)
        else:
            pressed.discard(vk)
        yield t, "keyboard", KeyboardEvent(event_type=event_type, vk=vk)


class _Tally:
    """Counts what was written, for the manifest."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.raw_motion = [0, 0]
        self.clicks = self.wheel_events = 0
        self.key_presses = self.key_repeats = self.key_releases = 0
        self._keys_down: set[int] = set()

    def observe(self, topic: str, message: OWAMessage) -> None:
        self.counts[topic] += 1
        if topic == "mouse/raw":
            self.raw_motion[0] += message.last_x
            self.raw_motion[1] += message.last_y
            if message.button_flags:
                self.clicks += bool(int(message.button_flags) & ANY_BUTTON_DOWN)
                self.wheel_events += bool(int(message.button_flags) & WHEEL_FLAG)
        elif topic == "keyboard":
            if message.event_type == "release":
                self.key_releases += 1
                self._keys_down.discard(message.vk)
            elif message.vk in self._keys_down:
                self.key_repeats += 1
            else:
                self.key_presses += 1
                self._keys_down.add(message.vk)


# ---------------------------------------------------------------- public API


def synthesize_episode(mcap_path: str | Path, profile: SynthProfile = SynthProfile()) -> EpisodeManifest:
    """Write one episode: `mcap_path` and, if profile.video, the .mkv beside it (same stem)."""
    mcap_path = Path(mcap_path)
    mcap_path.parent.mkdir(parents=True, exist_ok=True)
    video_path = mcap_path.with_suffix(".mkv")
    streams = heapq.merge(
        _window_messages(profile),
        _screen_messages(profile, video_path.name),
        _mouse_messages(profile),
        _keyboard_messages(profile),
        key=itemgetter(0),
    )
    tally = _Tally()
    encoder = _FrameEncoder(video_path, profile) if profile.video else nullcontext()
    with OWAMcapWriter(mcap_path) as writer, encoder:
        for t, topic, message in streams:
            writer.write_message(message, topic=topic, timestamp=profile.start_ns + t)
            tally.observe(topic, message)
            if topic == "screen" and profile.video:
                encoder.add_frame(message.media_ref.pts_ns)
    return EpisodeManifest(
        mcap_path=mcap_path,
        video_path=video_path if profile.video and tally.counts["screen"] else None,  # no frame, no file
        video_uri=video_path.name,
        seed=profile.seed,
        start_ns=profile.start_ns,
        end_ns=profile.start_ns + profile.duration_ns,
        message_counts=dict(sorted(tally.counts.items())),
        raw_mouse_motion=(tally.raw_motion[0], tally.raw_motion[1]),
        mouse_clicks=tally.clicks,
        wheel_events=tally.wheel_events,
        key_presses=tally.key_presses,
        key_repeats=tally.key_repeats,
        key_releases=tally.key_releases,
    )


def episode_seed(seed: int, index: int) -> int:
    """Seed of episode `index` of a recording set seeded with `seed`."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{index}".encode()).digest()[:4], "big")


def synthesize_recordings(
    out_dir: str | Path, episodes: int = 3, profile: SynthProfile = SynthProfile(), layout: str = "flat"
) -> list[EpisodeManifest]:
    """Write `episodes` episodes named episode_000.mcap (+ .mkv), ... into `out_dir`.

    Each episode has its own seed (episode_seed) and starts on a later whole hour than the previous one,
    so the episodes never overlap in time. layout="flat" puts all of them in `out_dir`;
    layout="train_test" puts the last fifth (at least one) in `out_dir`/test and the rest in
    `out_dir`/train, keeping the global numbering so that file names stay unique.
    """
    if layout not in ("flat", "train_test"):
        raise ValueError(f"unknown layout {layout!r}: expected 'flat' or 'train_test'")
    if episodes < (2 if layout == "train_test" else 1):
        raise ValueError(f"too few episodes for layout {layout!r}")
    out_dir = Path(out_dir)
    test_count = max(1, episodes // 5)
    spacing_ns = (profile.duration_ns // HOUR_NS + 1) * HOUR_NS
    manifests = []
    for index in range(episodes):
        folder = out_dir
        if layout == "train_test":
            folder = out_dir / ("test" if index >= episodes - test_count else "train")
        episode_profile = replace(
            profile, seed=episode_seed(profile.seed, index), start_ns=profile.start_ns + index * spacing_ns
        )
        manifests.append(synthesize_episode(folder / f"episode_{index:03d}.mcap", episode_profile))
    return manifests


def _video_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    defaults = SynthProfile()
    parser = argparse.ArgumentParser(
        prog="python -m owa_builders.synth", description="Write synthetic OWAMcap recordings."
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="seconds per episode")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--layout", choices=("flat", "train_test"), default="flat")
    parser.add_argument("--no-video", action="store_true", help="reference the video but do not write it")
    parser.add_argument("--no-typing", action="store_true")
    parser.add_argument("--video-size", type=_video_size, default=defaults.video_size, metavar="WxH")
    parser.add_argument("--screen-hz", type=float, default=defaults.screen_hz)
    parser.add_argument("--raw-mouse-hz", type=float, default=defaults.raw_mouse_hz)
    parser.add_argument("--mouse-hz", type=float, default=defaults.mouse_hz)
    parser.add_argument("--state-hz", type=float, default=defaults.state_hz)
    args = parser.parse_args(argv)
    profile = SynthProfile(
        duration_s=args.duration,
        screen_hz=args.screen_hz,
        raw_mouse_hz=args.raw_mouse_hz,
        mouse_hz=args.mouse_hz,
        state_hz=args.state_hz,
        typing=not args.no_typing,
        video=not args.no_video,
        video_size=args.video_size,
        seed=args.seed,
    )
    for manifest in synthesize_recordings(args.out_dir, args.episodes, profile, args.layout):
        video = manifest.video_path or f"{manifest.video_uri} (not written)"
        print(f"{manifest.mcap_path}  video={video}  seed={manifest.seed}")
        print("    " + "  ".join(f"{topic}={count}" for topic, count in manifest.message_counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
