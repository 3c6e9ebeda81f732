"""Datasets for the media tests, made by our builders from synthesized recordings with real videos.

Also a pytest plugin (registered in conftest.py): the `recordings` and `events` fixtures."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import av
import datasets
import numpy as np
import orjson
import pytest

from owa_builders.synth import SynthProfile, synthesize_recordings


def load_events(recordings: Path, cache_dir: Path, **kwargs) -> datasets.DatasetDict:
    return datasets.load_dataset("owa_events", "desktop", data_dir=str(recordings), cache_dir=str(cache_dir), **kwargs)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    synthesize_recordings(root, episodes=2, profile=SynthProfile(duration_s=3), layout="train_test")
    return root


@pytest.fixture(scope="module")
def events(recordings, tmp_path_factory) -> datasets.DatasetDict:
    return load_events(recordings, tmp_path_factory.mktemp("cache"))


def load_fsl(recordings: Path, cache_dir: Path, tokenizer: Path, **kwargs) -> datasets.DatasetDict:
    """InternVL3 rows (with the offline stand-in tokenizer) of 2048 tokens: about 7 images a row."""
    return datasets.load_dataset("owa_fsl", "internvl3", data_dir=str(recordings), cache_dir=str(cache_dir),
                                 tokenizer=str(tokenizer), max_length=2048, **kwargs)


def pyav_frames(video: Path) -> dict[int, np.ndarray]:
    """Every frame of `video` by pts in ns, decoded independently with PyAV as RGB (once per file version)."""
    return _pyav_frames(str(video), os.stat(video).st_mtime_ns)


@functools.cache
def _pyav_frames(video: str, mtime_ns: int) -> dict[int, np.ndarray]:
    with av.open(video) as container:
        stream = container.streams.video[0]
        return {int(frame.pts * stream.time_base * 10**9): frame.to_ndarray(format="rgb24")
                for frame in container.decode(stream)}


def screen_pts(payload: bytes | str) -> tuple[str, int]:
    media = orjson.loads(payload)["media_ref"]
    return media["uri"], media["pts_ns"]


def frame_indices(recordings: Path, episode_path: str, screens: list[str | bytes]) -> list[int]:
    """Which frame of its video (by pts order) each screen message of an episode references."""
    indices = []
    for screen in screens:
        uri, pts_ns = screen_pts(screen)
        indices.append(sorted(pyav_frames(recordings / Path(episode_path).parent / uri)).index(pts_ns))
    return indices
