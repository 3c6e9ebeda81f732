"""Hand-made recordings for tests that need exact timestamps or broken files, written with the real writers."""

from __future__ import annotations

import shutil
from pathlib import Path

from mcap_owa.highlevel import OWAMcapWriter
from owa.msgs.desktop.keyboard import KeyboardEvent
from owa.msgs.desktop.mouse import RawMouseEvent
from owa.msgs.desktop.screen import ScreenCaptured

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def screen(pts_ns: int, uri: str = "video.mkv") -> ScreenCaptured:
    return ScreenCaptured(utc_ns=T0 + pts_ns, source_shape=(64, 48), shape=(64, 48),
                          media_ref={"uri": uri, "pts_ns": pts_ns})


def key(vk: int, event_type: str = "press") -> KeyboardEvent:
    return KeyboardEvent(event_type=event_type, vk=vk)


def move(dx: int, dy: int, **fields) -> RawMouseEvent:
    return RawMouseEvent(last_x=dx, last_y=dy, **fields)


def write_recording(path: Path, messages: list[tuple[str, object, int]], video: str | None = "video.mkv") -> Path:
    """Write (topic, message, log_time) in the given order; create the referenced video file (never decoded)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with OWAMcapWriter(str(path)) as writer:
        for topic, message, time in messages:
            writer.write_message(message, topic=topic, timestamp=time)
    if video:
        (path.parent / video).write_bytes(b"not decoded during conversion")
    return path


def copy_episode(mcap: Path, folder: Path) -> Path:
    """Copy an episode (the .mcap and the media files named like it) into folder, keeping names."""
    folder.mkdir(parents=True, exist_ok=True)
    for file in mcap.parent.glob(mcap.stem + ".*"):
        shutil.copy(file, folder / file.name)
    return folder / mcap.name


def one_by_one_slots(times: list[int], period: int) -> list[bool]:
    """The rate limits' slot grid stated plainly, one time at a time: which times start a new slot.

    A slot is [end - period, end); a time in the next slot moves the grid on by one slot, a later one
    restarts it at that time."""
    new, end = [], None
    for time in times:
        if end is not None and time < end:
            new.append(False)
            continue
        end = end + period if end is not None and time < end + period else time + period
        new.append(True)
    return new
