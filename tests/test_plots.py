"""The pictures: checked by their size and by counting the colours they are drawn with."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

import owa_builders
from owa_builders.events.settings import EventsSettings
from owa_builders.events.stage import survey_episode
from owa_builders.fsl.tokenizer import IMAGE_PATTERNS, prepare_tokenizer
from owa_builders.plots import (
    DROPPED,
    EVENT_A,
    EVENT_B,
    IMAGE,
    INTERVAL,
    KEPT,
    PADDING,
    plot_dataset,
    plot_episode_timeline,
    plot_fsl_row,
)
from owa_builders.recordings.episodes import Episode
from owa_builders.synth import SynthProfile, synthesize_recordings

pytest_plugins = ["fsl_fixtures"]  # smolvlm_folder: a stand-in tokenizer
TOPICS = 7  # of the episodes below (4 s: typing included)
TIMELINE_SIZE = (1300, 190 + 62 * TOPICS)  # pixels: title and legend, x axis, a lane per topic
FSL_ROW_SIZE = (1300, 433)  # a row of 4096 tokens: 32 lines of 128 square cells, title, legend and axis


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    synthesize_recordings(root, episodes=2, profile=SynthProfile(duration_s=4.0, seed=3))
    return root


@pytest.fixture(scope="module")
def fsl(recordings, smolvlm_folder, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    return datasets.load_dataset("owa_fsl", "smolvlm2", data_dir=str(recordings), cache_dir=cache,
                                 tokenizer=str(smolvlm_folder))


def pixels(png: Path, size: tuple[int, int]) -> np.ndarray:
    """The PNG's RGB pixels, after checking its size (and that it is more than a blank canvas)."""
    assert png.stat().st_size > 15_000
    with Image.open(png) as image:
        assert image.size == size
        return np.asarray(image.convert("RGB"))


def count(rgb: np.ndarray, color: str) -> int:
    target = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)
    return int((rgb == target).all(axis=-1).sum())


def test_timeline_draws_dropped_messages_only_when_some_are_dropped(recordings, tmp_path):
    episode = recordings / "episode_000.mcap"
    everything = pixels(plot_episode_timeline(episode, "default", tmp_path / "default.png"), TIMELINE_SIZE)
    desktop = pixels(plot_episode_timeline(episode, "desktop", tmp_path / "desktop.png"), TIMELINE_SIZE)
    # "default" drops nothing: its red is the legend's swatch alone; "desktop" drops most messages
    assert count(desktop, DROPPED) > 20 * count(everything, DROPPED) > 0
    assert count(everything, KEPT) > count(desktop, KEPT) > 0


def test_timeline_shades_the_kept_intervals(recordings, tmp_path):
    """Along a pixel row between two lanes, the shaded share of the time axis is the intervals' share."""
    settings = EventsSettings(intervals={"inactivity": {"screen_gap_s": 1.0, "input_gap_s": 0.15,
                                                        "input_topics": ["keyboard"]}})
    episode = recordings / "episode_000.mcap"
    survey = survey_episode(Episode(str(episode), str(recordings)), settings)
    kept = survey.intervals.total_ns() / (survey.end_ns - survey.start_ns)
    assert 0.5 < kept < 0.9  # the stretch after the last key press is cut
    rgb = pixels(plot_episode_timeline(episode, settings, tmp_path / "gaps.png"), TIMELINE_SIZE)
    between_lanes = [row for row in rgb if count(row[None], INTERVAL) and not count(row[None], KEPT)
                     and not count(row[None], DROPPED)]
    row = between_lanes[len(between_lanes) // 2]
    frame = np.flatnonzero((row == 0).all(axis=-1))  # the axes' black left and right edges
    inside = row[frame[0] + 1:frame[-1]]
    shaded, blank = count(inside[None], INTERVAL), count(inside[None], "#ffffff")
    assert shaded / (shaded + blank) == pytest.approx(kept / 1.02, abs=0.02)  # the axis spans 102% of the episode


def test_fsl_row_colours_each_token_by_what_it_is(fsl, smolvlm_folder, tmp_path):
    row = fsl["train"][0]
    metadata = owa_builders.read_dataset_metadata(fsl)
    rgb = pixels(plot_fsl_row(row, metadata, tmp_path / "row.png", episode_start=True), FSL_ROW_SIZE)
    cells = {name: count(rgb, color) for name, color in
             {"image": IMAGE, "padding": PADDING, "event": EVENT_A, "other_event": EVENT_B}.items()}
    ids, used = np.array(row["input_ids"]), np.array(row["attention_mask"], dtype=bool)
    image_tokens = row["num_images"] * len(metadata.tokenizer["image_token_ids"])
    total = sum(cells.values())
    assert cells["image"] / total == pytest.approx(image_tokens / len(ids), abs=0.01)
    assert cells["padding"] / total == pytest.approx((~used).sum() / len(ids), abs=0.01)
    assert cells["event"] and cells["other_event"]  # consecutive events in alternating shades

    tokenizer = prepare_tokenizer(str(smolvlm_folder), "factorized", IMAGE_PATTERNS["smolvlm"])
    again = plot_fsl_row(row, tokenizer, tmp_path / "again.png", episode_start=True)
    assert again.read_bytes() == (tmp_path / "row.png").read_bytes()  # the tokenizer tells the same image ids


def test_dataset_pictures_are_its_row_and_its_episode_timeline(fsl, recordings, tmp_path):
    owa_builders.save_to_disk(fsl, tmp_path / "fsl")
    saved = owa_builders.load_from_disk(tmp_path / "fsl")
    written = plot_dataset(saved, tmp_path / "plots", row=1)
    episode = Path(saved["train"][1]["episode_path"]).stem
    assert written == [tmp_path / "plots" / "fsl_row_train_1.png", tmp_path / "plots" / f"timeline_{episode}.png"]
    pixels(written[0], FSL_ROW_SIZE)
    timeline = pixels(written[1], TIMELINE_SIZE)
    assert count(timeline, DROPPED) > 10_000  # the rows went through owa_events "desktop"
    with pytest.raises(ValueError, match="row 999 is out of range"):
        plot_dataset(saved, tmp_path / "plots", row=999)

    copy = shutil.copytree(recordings, tmp_path / "recordings")
    events = datasets.load_dataset("owa_events", "desktop", data_dir=str(copy), cache_dir=str(tmp_path / "cache"))
    owa_builders.save_to_disk(events, tmp_path / "events")
    assert len(plot_dataset(owa_builders.load_from_disk(tmp_path / "events"), tmp_path / "events_plots")) == 1
    shutil.rmtree(copy)
    assert plot_dataset(owa_builders.load_from_disk(tmp_path / "events"), tmp_path / "events_plots") == []
