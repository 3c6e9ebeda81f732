"""Frames decoded through the transforms: the right pixels, found where the dataset says, errors that name the frame."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from media_fixtures import load_events, pyav_frames, screen_pts

import owa_builders
from owa_builders.events.stage import SCREEN_MESSAGE_TYPE
from owa_builders.media import LocalMediaRoot, MissingFrameError, make_transform
from owa_builders.recordings.errors import MediaReferenceError
from owa_builders.synth import SynthProfile, frame_index_from_image, synthesize_episode



def transformed(dataset: datasets.Dataset, **options) -> datasets.Dataset:
    return dataset.with_transform(make_transform(dataset, **options))


def screen_rows(dataset: datasets.Dataset) -> datasets.Dataset:
    return dataset.filter(lambda message_type: message_type == SCREEN_MESSAGE_TYPE, input_columns="message_type")


def test_frames_equal_frames_decoded_with_pyav_at_the_same_pts(events, recordings):
    for split in events.values():
        screens = screen_rows(split)
        episode_folder = recordings / Path(screens[0]["episode_path"]).parent
        rows = transformed(screens)[:]  # the whole split in one call
        assert len(rows["image"]) > 50
        for payload, episode_path, image in zip(screens["mcap_message"], rows["episode_path"], rows["image"]):
            uri, pts_ns = screen_pts(payload)
            video = recordings / Path(episode_path).parent / uri
            assert video.parent == episode_folder
            frames = pyav_frames(video)
            assert image.mode == "RGB" and np.array_equal(np.asarray(image), frames[pts_ns])
            assert frame_index_from_image(np.asarray(image)) == sorted(frames).index(pts_ns)


def test_one_row_at_a_time_gives_the_same_frames(events):
    dataset = transformed(events["train"])
    whole = dataset[:40]["image"]
    for index, image in enumerate(whole):
        single = dataset[index]["image"]
        assert (single is None) == (image is None)
        assert single is None or np.array_equal(np.asarray(single), np.asarray(image))


def test_upstream_sample_hevc_frames_equal_pyav(shared_samples, tmp_path):
    dataset = load_events(shared_samples, tmp_path, intervals=None, rate_limits={})["train"]
    screens = screen_rows(dataset)
    frames = pyav_frames(shared_samples / "0.5.1.mkv")
    images = transformed(screens)[:]["image"]
    assert len(images) == 17 and images[0].size == (1026, 1018)
    for payload, image in zip(screens["mcap_message"], images):
        assert np.array_equal(np.asarray(image), frames[screen_pts(payload)[1]])


def test_events_rows_come_back_decoded(events):
    row = transformed(events["train"], load_images=False)[0]
    assert row["mcap_message"]["media_ref"]["uri"] == "episode_000.mkv" and "image" not in row


@pytest.fixture
def copied_recordings(recordings, tmp_path) -> Path:
    return Path(shutil.copytree(recordings, tmp_path / "recordings"))


def test_missing_video_is_an_error_naming_the_file_and_pts(copied_recordings, tmp_path):
    events = load_events(copied_recordings, tmp_path / "cache")["train"]
    video = copied_recordings / "train" / "episode_000.mkv"
    video.unlink()
    first_screen = screen_rows(events)[0]
    pts_ns = screen_pts(first_screen["mcap_message"])[1]
    dataset = transformed(events)
    with pytest.raises(MissingFrameError, match=f"{video}: no frame at pts_ns={pts_ns} .*not found") as error:
        dataset[0]
    assert error.value.media == str(video) and error.value.pts_ns == pts_ns
    assert "placeholder" in str(error.value)


def test_placeholders_are_black_and_counted(copied_recordings, tmp_path):
    events = load_events(copied_recordings, tmp_path / "cache")["train"]
    (copied_recordings / "train" / "episode_000.mkv").unlink()
    rows = transformed(events, missing_media="placeholder")[:10]
    screens = [image for image in rows["image"] if image is not None]
    assert screens and all(image.size == (64, 48) and not np.asarray(image).any() for image in screens)
    assert rows["missing_frames"] == [int(image is not None) for image in rows["image"]]


def test_a_video_shorter_than_its_references_names_the_first_frame_past_its_end(copied_recordings, tmp_path):
    events = load_events(copied_recordings, tmp_path / "cache")["train"]
    short = synthesize_episode(tmp_path / "short" / "episode.mcap", SynthProfile(duration_s=1))
    shutil.copy(short.video_path, copied_recordings / "train" / "episode_000.mkv")
    last_frame_ns = max(pyav_frames(short.video_path))
    screens = screen_rows(events)
    times = [screen_pts(payload)[1] for payload in screens["mcap_message"]]
    rows = transformed(screens, missing_media="placeholder")[:]
    missing = dict(zip(times, rows["missing_frames"]))
    assert all(missing[pts] == 0 for pts in times if pts <= last_frame_ns)
    assert all(missing[pts] == 1 for pts in times if pts > last_frame_ns + 50_000_000)
    first_past_end = next(pts for pts in times if missing[pts])
    with pytest.raises(MissingFrameError, match=f"pts_ns={first_past_end} .*outside the stream"):
        transformed(screens)[:]


def test_a_moved_recordings_folder_is_found_through_media_root(copied_recordings, tmp_path):
    events = load_events(copied_recordings, tmp_path / "cache")["train"]
    moved = copied_recordings.rename(tmp_path / "moved")
    with pytest.raises(FileNotFoundError, match="pass media_root="):
        make_transform(events)
    for root in (moved, str(moved), LocalMediaRoot(str(moved))):
        image = transformed(events, media_root=root)[0]["image"]
        assert frame_index_from_image(np.asarray(image)) == 0


def test_the_root_travels_with_a_dataset_saved_elsewhere(events, recordings, tmp_path):
    owa_builders.save_to_disk(events, tmp_path / "saved")
    loaded = owa_builders.load_from_disk(tmp_path / "saved")
    loaded["train"].auto_set_transform(stage="events")
    assert frame_index_from_image(np.asarray(loaded["train"][0]["image"])) == 0
    assert owa_builders.read_dataset_metadata(loaded)["recordings_root"] == str(recordings)


@pytest.mark.parametrize("uri", ["../outside.mkv", "/tmp/outside.mkv", "https://example.com/outside.mkv"])
def test_media_outside_the_root_is_refused_unless_allowed(copied_recordings, uri):
    """As in conversion: the episode's folder is the root here, so ../ leaves it."""
    root = copied_recordings / "train"
    first_pts_ns = min(pyav_frames(root / "episode_000.mkv"))
    rows = {
        "episode_path": ["episode_000.mcap"],
        "message_type": [SCREEN_MESSAGE_TYPE],
        "mcap_message": [f'{{"shape":[64,48],"media_ref":{{"uri":"{uri}","pts_ns":{first_pts_ns}}}}}'.encode()],
    }
    dataset = datasets.Dataset.from_dict(rows)
    with pytest.raises(MediaReferenceError, match="allow_external_media"):
        transformed(dataset, stage="events", media_root=root)[0]
    if uri == "../outside.mkv":
        shutil.copy(root / "episode_000.mkv", copied_recordings / "outside.mkv")
        image = transformed(dataset, stage="events", media_root=root, allow_external_media=True)[0]["image"]
        assert frame_index_from_image(np.asarray(image)) == 0
