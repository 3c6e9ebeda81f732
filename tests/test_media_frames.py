"""Frames decoded through the transforms: the right pixels, found where the dataset says, errors that name the frame."""

from __future__ import annotations

import pickle
import random
import shutil
from pathlib import Path

import av
import datasets
import numpy as np
import pytest
from media_fixtures import load_events, pyav_frames, screen_pts

import owa_builders
from owa_builders.media import FrameLoader, FrameRequest, LocalMediaRoot, MissingFrameError, make_transform
from owa_builders.media import frames as frames_module
from owa_builders.payloads import SCREEN_CAPTURED
from owa_builders.recordings.errors import MediaReferenceError
from owa_builders.synth import SynthProfile, frame_index_from_image, synthesize_episode


def transformed(dataset: datasets.Dataset, **options) -> datasets.Dataset:
    return dataset.with_transform(make_transform(dataset, **options))


def screen_rows(dataset: datasets.Dataset) -> datasets.Dataset:
    return dataset.filter(lambda message_type: message_type == SCREEN_CAPTURED, input_columns="message_type")


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
    assert owa_builders.read_dataset_metadata(loaded).recordings_root == str(recordings)


@pytest.mark.parametrize("uri", ["../outside.mkv", "/tmp/outside.mkv", "https://example.com/outside.mkv"])
def test_media_outside_the_root_is_refused_unless_allowed(copied_recordings, uri):
    """As in conversion: the episode's folder is the root here, so ../ leaves it."""
    root = copied_recordings / "train"
    first_pts_ns = min(pyav_frames(root / "episode_000.mkv"))
    rows = {
        "episode_path": ["episode_000.mcap"],
        "message_type": [SCREEN_CAPTURED],
        "mcap_message": [f'{{"shape":[64,48],"media_ref":{{"uri":"{uri}","pts_ns":{first_pts_ns}}}}}'.encode()],
    }
    dataset = datasets.Dataset.from_dict(rows)
    with pytest.raises(MediaReferenceError, match="allow_external_media"):
        transformed(dataset, stage="events", media_root=root)[0]
    if uri == "../outside.mkv":
        shutil.copy(root / "episode_000.mkv", copied_recordings / "outside.mkv")
        image = transformed(dataset, stage="events", media_root=root, allow_external_media=True)[0]["image"]
        assert frame_index_from_image(np.asarray(image)) == 0


# ---------------------------------------------------------------- decoding options: segments, cache, resize, backends

GOP = 30  # frames per keyframe in the video below (the upstream recorder's)


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory) -> Path:
    """A 3-second, 60 Hz, 64×48 H.264 video with a keyframe every 30 frames, and its .mcap."""
    mcap = tmp_path_factory.mktemp("gop") / "episode.mcap"
    synthesize_episode(mcap, SynthProfile(duration_s=3, keyframe_interval=GOP))
    return mcap.with_suffix(".mkv")


def frame_requests(video: Path, indices: list[int]) -> list[FrameRequest]:
    """Screen messages of episode.mcap referencing the frames of `video` at `indices` (in pts order)."""
    times = sorted(pyav_frames(video))
    return [FrameRequest("episode.mcap", {"shape": [64, 48], "media_ref": {"uri": video.name, "pts_ns": times[i]}})
            for i in indices]


def test_frames_are_decoded_in_one_pass_per_gop_segment(gop_video):
    loader = FrameLoader(LocalMediaRoot(str(gop_video.parent)))
    wanted = [50, 35, 40, 95]  # two segments: from keyframe 30 through 50, from keyframe 90 through 95
    frames = loader.load(frame_requests(gop_video, wanted)).frames
    assert [frame_index_from_image(frame) for frame in frames] == wanted
    assert loader.counts["seeks"] == 2 and loader.counts["decoded"] == (50 - 30 + 1) + (95 - 90 + 1)
    loader.load(frame_requests(gop_video, [100]))  # goes on from frame 95: no seek
    assert loader.counts["seeks"] == 2 and loader.counts["decoded"] == 27 + 5
    loader.load(frame_requests(gop_video, [10]))  # behind: seeks back to keyframe 0
    assert loader.counts["seeks"] == 3 and loader.counts["decoded"] == 32 + 11
    assert loader.counts["delivered"] == 6 and loader.counts["from_cache"] == 0


def test_frames_of_a_shuffled_batch_equal_pyav_and_repeat_from_the_cache(gop_video):
    loader = FrameLoader(LocalMediaRoot(str(gop_video.parent)))
    frames = pyav_frames(gop_video)
    wanted = random.Random(0).sample(range(len(frames)), 40)
    loaded = loader.load(frame_requests(gop_video, wanted)).frames
    assert all(np.array_equal(frame, frames[sorted(frames)[i]]) for frame, i in zip(loaded, wanted, strict=True))
    decoded = loader.counts["decoded"]
    again = loader.load(frame_requests(gop_video, wanted[:10])).frames
    assert loader.counts["from_cache"] == 10 and loader.counts["decoded"] == decoded
    assert all(a is b and not a.flags.writeable for a, b in zip(again, loaded))


def test_the_frame_cache_holds_at_most_its_bytes(gop_video):
    frame_bytes = 64 * 48 * 3
    loader = FrameLoader(LocalMediaRoot(str(gop_video.parent)), frame_cache_bytes=5 * frame_bytes + 1)
    loader.load(frame_requests(gop_video, list(range(20))))
    assert loader.cache.frames_size == 5 * frame_bytes
    loader.load(frame_requests(gop_video, [15, 19]))  # the five most recent are kept
    assert loader.counts["from_cache"] == 2
    loader.load(frame_requests(gop_video, [14]))
    assert loader.counts["from_cache"] == 2 and loader.counts["decoded"] == 20 + 15
    nothing_kept = FrameLoader(LocalMediaRoot(str(gop_video.parent)), frame_cache_bytes=0)
    nothing_kept.load(frame_requests(gop_video, [3, 3]))
    assert nothing_kept.cache.frames_size == 0 and nothing_kept.counts["from_cache"] == 0


def test_open_decoders_are_bounded_and_not_pickled(gop_video, tmp_path, monkeypatch):
    monkeypatch.setattr(frames_module, "MAX_OPEN_VIDEOS", 1)
    first, second = (Path(shutil.copy(gop_video, tmp_path / name)) for name in ("first.mkv", "second.mkv"))
    loader = FrameLoader(LocalMediaRoot(str(tmp_path)))
    frame = loader.load(frame_requests(first, [5])).frames[0]
    first_decoder = loader.cache.video(str(first))
    loader.load(frame_requests(second, [6]))
    assert first_decoder._container is None  # closed: the second video took the only place
    copy = pickle.loads(pickle.dumps(loader))
    assert copy._cache is None and copy.counts["decoded"] == 0
    assert np.array_equal(copy.load(frame_requests(first, [5])).frames[0], frame)


@pytest.mark.parametrize("size", [(32, 24), (48, 48)])
def test_image_size_resizes_the_decoded_frame_as_pyav_does(gop_video, size):
    loader = FrameLoader(LocalMediaRoot(str(gop_video.parent)), image_size=size)
    wanted = [0, 31, 77]
    frames = loader.load(frame_requests(gop_video, wanted)).frames
    with av.open(str(gop_video)) as container:
        expected = [frame.reformat(width=size[0], height=size[1], interpolation="AREA").to_ndarray(format="rgb24")
                    for i, frame in enumerate(container.decode(video=0)) if i in wanted]
    assert all(frame.shape == (size[1], size[0], 3) for frame in frames)
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))


def test_image_size_through_make_transform_and_for_placeholders(events, copied_recordings, tmp_path):
    rows = transformed(screen_rows(events["train"]), image_size=(40, 30))[:3]["image"]
    assert [image.size for image in rows] == [(40, 30)] * 3
    arrays = transformed(screen_rows(events["train"]), image_size=(40, 30), images_as="array")[:3]["image"]
    assert all(np.array_equal(array, np.asarray(image)) for array, image in zip(arrays, rows, strict=True))
    moved_events = load_events(copied_recordings, tmp_path / "cache")["train"]
    (copied_recordings / "train" / "episode_000.mkv").unlink()
    for images_as in ("pil", "array"):
        image = transformed(screen_rows(moved_events), image_size=(40, 30), missing_media="placeholder",
                            images_as=images_as)[0]["image"]
        assert np.asarray(image).shape == (30, 40, 3) and not np.asarray(image).any()
    with pytest.raises(ValueError, match=r"image_size must be \(width, height\) in positive pixels, not \(0, 30\)"):
        make_transform(events["train"], image_size=(0, 30))


def test_tensorcodec_backend_gives_the_same_frames(gop_video):
    requests = frame_requests(gop_video, [70, 2, 150])
    ours = FrameLoader(LocalMediaRoot(str(gop_video.parent))).load(requests).frames
    theirs = FrameLoader(LocalMediaRoot(str(gop_video.parent)), decoder="tensorcodec").load(requests).frames
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_torchcodec_backend_works_or_says_why_not(gop_video):
    root = LocalMediaRoot(str(gop_video.parent))
    try:
        frames_module.check_torchcodec()
    except ImportError as error:  # here: no torchcodec, or one that cannot load (torch build, FFmpeg libraries)
        assert str(error).startswith("decoder='torchcodec'") and "decoder='pyav'" in str(error)
        with pytest.raises(ImportError, match="decoder='torchcodec'"):
            FrameLoader(root, decoder="torchcodec")
        return
    requests = frame_requests(gop_video, [70, 2])
    theirs = FrameLoader(root, decoder="torchcodec").load(requests).frames
    assert all(np.array_equal(a, b) for a, b in zip(FrameLoader(root).load(requests).frames, theirs, strict=True))


def test_an_unknown_decoder_is_refused(events):
    with pytest.raises(ValueError, match="decoder must be one of 'pyav', 'tensorcodec', 'torchcodec', not 'opencv'"):
        make_transform(events["train"], decoder="opencv")


def test_dataloader_workers_decode_the_same_frames_with_their_own_decoders(events):
    torch_data = pytest.importorskip("torch.utils.data")
    screens = screen_rows(events["train"]).select(range(24))
    dataset = transformed(screens)
    in_process = [np.asarray(image) for image in dataset[:]["image"]]  # the parent's decoders are open now
    loader = torch_data.DataLoader(dataset, batch_size=4, num_workers=2, timeout=60, multiprocessing_context="fork",
                                   collate_fn=lambda rows: [row["image"] for row in rows])
    from_workers = [np.asarray(image) for batch in loader for image in batch]
    assert len(from_workers) == 24
    assert all(np.array_equal(a, b) for a, b in zip(from_workers, in_process, strict=True))
