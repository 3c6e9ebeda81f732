"""The recording synthesizer: what it writes is read back with the `mcap` library, PyAV and mediaref."""

from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest
from mcap.reader import NonSeekingReader, make_reader
from mediaref import batch_decode
from owa.msgs.desktop.keyboard import KeyboardEvent, KeyboardState
from owa.msgs.desktop.mouse import MouseEvent, MouseState, RawMouseEvent
from owa.msgs.desktop.screen import ScreenCaptured
from owa.msgs.desktop.window import WindowInfo
from PIL import Image

from owa_builders.synth import (
    MAX_FRAMES,
    EpisodeManifest,
    SynthProfile,
    frame_index_from_image,
    main,
    paint_frame_index,
    synthesize_episode,
    synthesize_recordings,
)

# Seed 14 is picked so that these 4 s hold typing, a held key with auto-repeat, clicks and wheel events.
PROFILE = SynthProfile(duration_s=4.0, seed=14, clicks_per_min=60, scrolls_per_min=60)
NS = 1_000_000_000
MESSAGE_CLASSES = {
    cls._type: cls
    for cls in (
        ScreenCaptured,
        RawMouseEvent,
        MouseEvent,
        MouseState,
        KeyboardEvent,
        KeyboardState,
        WindowInfo,
    )
}
TOPIC_SCHEMAS = {
    "screen": "desktop/ScreenCaptured",
    "mouse/raw": "desktop/RawMouseEvent",
    "mouse": "desktop/MouseEvent",
    "mouse/state": "desktop/MouseState",
    "keyboard": "desktop/KeyboardEvent",
    "keyboard/state": "desktop/KeyboardState",
    "window": "desktop/WindowInfo",
}


@dataclass
class Written:
    topic: str
    schema: str
    log_time: int
    data: bytes

    @property
    def message(self):
        return MESSAGE_CLASSES[self.schema].model_validate_json(self.data)


def read_in_file_order(mcap_path: Path) -> list[Written]:
    with open(mcap_path, "rb") as stream:
        return [
            Written(channel.topic, schema.name, message.log_time, message.data)
            for schema, channel, message in NonSeekingReader(stream).iter_messages(log_time_order=False)
        ]


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> EpisodeManifest:
    return synthesize_episode(tmp_path_factory.mktemp("synth") / "episode.mcap", PROFILE)


@pytest.fixture(scope="module")
def written(episode) -> list[Written]:
    return read_in_file_order(episode.mcap_path)


def of_topic(written: list[Written], topic: str) -> list:
    return [(item.log_time, item.message) for item in written if item.topic == topic]


def test_counts_match_manifest_and_rates(episode, written):
    assert dict(Counter(item.topic for item in written)) == episode.message_counts
    counts = episode.message_counts
    seconds = PROFILE.duration_s
    rates = {"screen": 60, "mouse/raw": 1000, "window": 1, "keyboard/state": 1, "mouse/state": 1}
    for topic, hz in rates.items():
        assert abs(counts[topic] - seconds * hz) <= 1, topic
    moves = sum(message.event_type == "move" for _, message in of_topic(written, "mouse"))
    assert abs(moves - seconds * 100) <= 1
    assert counts["mouse"] == moves + 2 * episode.mouse_clicks + episode.wheel_events
    assert counts["keyboard"] == episode.key_presses + episode.key_repeats + episode.key_releases
    assert episode.mouse_clicks > 0 and episode.wheel_events > 0
    assert episode.key_presses == episode.key_releases > 0 and episode.key_repeats > 0


def test_timestamps_ordered_and_inside_episode(episode, written):
    times = [item.log_time for item in written]
    assert times == sorted(times)
    assert episode.start_ns <= times[0] and times[-1] < episode.end_ns
    assert episode.end_ns - episode.start_ns == 4 * NS
    screen_times = [t for t, _ in of_topic(written, "screen")]
    gaps = np.diff(screen_times) / 1e6
    assert gaps.min() < 16 < 17 < gaps.max() < 21  # jittered around 16.7 ms


def test_payloads_validate_as_owa_messages(episode, written):
    with open(episode.mcap_path, "rb") as stream:
        assert make_reader(stream).get_header().profile == "owa"
    for item in written:
        assert TOPIC_SCHEMAS[item.topic] == item.schema
        assert isinstance(item.message, MESSAGE_CLASSES[item.schema])  # validates the payload
    screen = next(item.message for item in written if item.topic == "screen")
    assert screen.source_shape == (1920, 1080) and screen.shape == (64, 48)
    assert screen.media_ref.uri == "episode.mkv"


def test_mouse_views_follow_raw_motion(episode, written):
    raw = of_topic(written, "mouse/raw")
    assert episode.raw_mouse_motion == (sum(m.last_x for _, m in raw), sum(m.last_y for _, m in raw))
    assert max(max(abs(m.last_x), abs(m.last_y)) for _, m in raw) <= 10
    x, y, buttons = 960, 540, set()
    expected_mouse_events = []
    for item in written:
        if item.topic == "mouse/raw":
            event = item.message
            x, y = min(max(x + event.last_x, 0), 1919), min(max(y + event.last_y, 0), 1079)
            if event.button_flags:
                assert event.last_x == event.last_y == 0
            for button, down, up in [("left", 0x1, 0x2), ("right", 0x4, 0x8)]:
                if event.button_flags & (down | up):
                    pressed = bool(event.button_flags & down)
                    (buttons.add if pressed else buttons.discard)(button)
                    expected_mouse_events.append((item.log_time, "click", button, pressed))
            if event.button_flags & 0x400:
                assert event.button_data in (120, 240, 65416, 65296)
                delta = event.button_data - 0x10000 if event.button_data > 0x7FFF else event.button_data
                expected_mouse_events.append((item.log_time, "scroll", 0, delta // 120))
        elif item.topic == "mouse":
            event = item.message
            assert (event.x, event.y) == (x, y)
            if event.event_type == "click":
                assert expected_mouse_events.pop(0) == (item.log_time, "click", event.button, event.pressed)
            elif event.event_type == "scroll":
                assert expected_mouse_events.pop(0) == (item.log_time, "scroll", event.dx, event.dy)
        elif item.topic == "mouse/state":
            state = item.message
            assert (state.x, state.y, state.buttons) == (x, y, buttons)
    assert expected_mouse_events == []


def test_typing_has_rollover_free_pairs_and_auto_repeat(written):
    held: dict[int, list[int]] = {}  # vk -> press times while held
    repeat_runs = []
    for item in written:
        if item.topic == "keyboard":
            event = item.message
            if event.event_type == "press":
                held.setdefault(event.vk, []).append(item.log_time)
            else:
                presses = held.pop(event.vk)
                if len(presses) > 1:
                    repeat_runs.append(presses)
        elif item.topic == "keyboard/state":
            assert item.message.buttons == set(held)
    assert held == {}
    assert repeat_runs
    for presses in repeat_runs:
        intervals_ms = np.diff(presses) / 1e6
        assert 499 <= intervals_ms[0] <= 501  # initial auto-repeat delay
        assert all(32 <= interval <= 34 for interval in intervals_ms[1:])


def decode_all_frames(video_path: Path) -> list[tuple[int, int]]:
    """(pts in ns, painted index) of every frame, in presentation order."""
    frames = []
    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            pts_ns = frame.pts * stream.time_base * NS
            assert pts_ns.denominator == 1
            frames.append((int(pts_ns), frame_index_from_image(frame.to_ndarray(format="rgb24"))))
    return frames


def test_every_screen_message_points_at_its_frame(episode, written):
    screen = of_topic(written, "screen")
    frames = decode_all_frames(episode.video_path)
    assert len(frames) == len(screen) == episode.message_counts["screen"]
    for order, ((log_time, message), (pts_ns, painted_index)) in enumerate(zip(screen, frames, strict=True)):
        assert message.media_ref.pts_ns == pts_ns
        assert painted_index == order
        assert message.utc_ns == log_time
        assert abs(pts_ns - (log_time - episode.start_ns)) <= 1_000_000  # pts is the capture time in whole ms


@pytest.mark.parametrize("decoder", ["tensorcodec", "pyav"])
def test_mediaref_decodes_the_referenced_frames(episode, written, decoder):
    screen = [message for _, message in of_topic(written, "screen")]
    orders = [0, 1, 59, 60, 61, 110, 160, 200, len(screen) - 1]  # around the first keyframe, and the end
    refs = [screen[order].media_ref.resolve_relative_path(str(episode.mcap_path.parent)) for order in orders]
    assert Path(refs[0].uri) == episode.video_path
    for order, ref in zip(orders[:2], refs[:2], strict=True):
        assert frame_index_from_image(ref.to_ndarray(decoder=decoder)) == order
    decoded = batch_decode(refs, decoder=decoder)
    assert [frame_index_from_image(image) for image in decoded] == orders


def test_same_seed_same_bytes(tmp_path):
    profile = SynthProfile(duration_s=1.0, seed=3)
    first = synthesize_episode(tmp_path / "a" / "episode.mcap", profile)
    second = synthesize_episode(tmp_path / "b" / "episode.mcap", profile)
    assert first.mcap_path.read_bytes() == second.mcap_path.read_bytes()
    assert first.video_path.read_bytes() == second.video_path.read_bytes()
    other = synthesize_episode(tmp_path / "c" / "episode.mcap", SynthProfile(duration_s=1.0, seed=4))
    assert other.mcap_path.read_bytes() != first.mcap_path.read_bytes()


def test_without_video_messages_still_reference_it(tmp_path):
    manifest = synthesize_episode(tmp_path / "episode.mcap", SynthProfile(duration_s=0.5, video=False))
    assert manifest.video_path is None and not (tmp_path / "episode.mkv").exists()
    screen = of_topic(read_in_file_order(manifest.mcap_path), "screen")
    assert len(screen) == 30 and all(message.media_ref.uri == "episode.mkv" for _, message in screen)


def test_zero_rates_disable_topics(tmp_path):
    profile = SynthProfile(duration_s=0.5, video=False, mouse_hz=0, state_hz=0, screen_hz=0, typing=False)
    manifest = synthesize_episode(tmp_path / "episode.mcap", profile)
    assert manifest.message_counts == {"mouse/raw": 500}


def test_recordings_layouts(tmp_path):
    profile = SynthProfile(duration_s=0.3, video=False)
    flat = synthesize_recordings(tmp_path / "flat", episodes=3, profile=profile)
    assert [m.mcap_path.name for m in flat] == ["episode_000.mcap", "episode_001.mcap", "episode_002.mcap"]
    assert len({m.seed for m in flat}) == 3
    assert all(earlier.end_ns <= later.start_ns for earlier, later in pairwise(flat))
    for manifest in flat:
        times = [item.log_time for item in read_in_file_order(manifest.mcap_path)]
        assert manifest.start_ns <= times[0] and times[-1] < manifest.end_ns

    split = synthesize_recordings(tmp_path / "split", episodes=3, profile=profile, layout="train_test")
    assert [m.mcap_path.relative_to(tmp_path / "split").as_posix() for m in split] == [
        "train/episode_000.mcap",
        "train/episode_001.mcap",
        "test/episode_002.mcap",
    ]
    assert [m.seed for m in split] == [m.seed for m in flat]


def test_cli(tmp_path, capsys):
    assert main([str(tmp_path), "--episodes", "2", "--duration", "0.2", "--video-size", "32x16"]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "episode_000.mcap",
        "episode_000.mkv",
        "episode_001.mcap",
        "episode_001.mkv",
    ]
    assert "episode_001.mcap" in capsys.readouterr().out


@pytest.mark.parametrize("index", [0, 1, 0xA5, 12345, MAX_FRAMES - 1])
def test_frame_index_survives_resizing(index):
    gray = paint_frame_index(index, (64, 48))
    rgb = np.repeat(gray[..., None], 3, axis=2)
    assert frame_index_from_image(gray) == frame_index_from_image(rgb) == index
    for size in [(32, 24), (100, 75), (640, 480)]:
        resized = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        assert frame_index_from_image(resized) == index


def test_frame_index_rejects_foreign_images():
    for image in [np.zeros((48, 64, 3), np.uint8), np.full((48, 64), 255, np.uint8)]:
        with pytest.raises(ValueError):
            frame_index_from_image(image)


def test_profile_validation():
    with pytest.raises(ValueError):
        SynthProfile(video_size=(63, 48))
    with pytest.raises(ValueError):
        SynthProfile(screen_hz=500, screen_jitter_ms=4)


def test_hour_of_typing_stays_in_time_order(tmp_path):
    """Regression: an auto-repeat jittered past its key's release once put a press after the release."""
    profile = SynthProfile(duration_s=3600, screen_hz=0, raw_mouse_hz=0, mouse_hz=0, state_hz=0, video=False, seed=0)
    manifest = synthesize_episode(tmp_path / "typing.mcap", profile)
    with open(manifest.mcap_path, "rb") as f:
        times = [message.log_time for _, _, message in make_reader(f).iter_messages(log_time_order=False)]
    assert times == sorted(times) and len(times) == manifest.message_counts["keyboard"]
