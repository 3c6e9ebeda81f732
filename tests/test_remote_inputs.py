"""Recordings where they live: builds from hf://datasets/... (the local Hub of tests/hub_server.py, real
huggingface_hub and datasets clients) and from memory:// (fsspec), compared row for row with the local
builds; the server's request log shows that conversion reads only the .mcap files and that frames are
fetched lazily at training time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import fsspec
import huggingface_hub
import numpy as np
import pytest
from hub_server import HubServer
from huggingface_hub import HfApi, HfFileSystem
from media_fixtures import frame_indices, load_events, load_fsl
from recording_fixtures import MS, key, screen, write_recording

import owa_builders
from owa_builders.media import make_transform
from owa_builders.recordings.errors import MediaReferenceError, RecordingsFolderError
from owa_builders.summary import summarize_recordings
from owa_builders.synth import SynthProfile, frame_index_from_image, synthesize_recordings

pytest_plugins = ["fsl_fixtures"]  # internvl_folder: the InternVL stand-in tokenizer
REPO = "tester/recordings"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The local Hub, with huggingface_hub (and so HfFileSystem) pointed at it and the test token in the
    environment, as a user's HF_ENDPOINT and token would be."""
    with HubServer(tmp_path_factory.mktemp("hub")) as server, pytest.MonkeyPatch.context() as patch:
        for name, value in {"ENDPOINT": server.url,
                            "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
                            "HF_HUB_OFFLINE": False, "HF_HUB_DISABLE_XET": True,
                            "HF_HUB_DISABLE_TELEMETRY": True,
                            "HF_HUB_CACHE": str(tmp_path_factory.mktemp("hf_hub_cache"))}.items():
            patch.setattr(huggingface_hub.constants, name, value)
        patch.setenv("HF_TOKEN", server.token)
        HfFileSystem.clear_instance_cache()  # none made for another endpoint
        yield server
        HfFileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def uploaded(hub, recordings) -> str:
    """The recordings (mcap + video) in a Hub repository's subfolder; returns its hf:// URL."""
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    api.upload_folder(repo_id=REPO, repo_type="dataset", folder_path=recordings, path_in_repo="data")
    return f"hf://datasets/{REPO}/data"


def rows(dataset: datasets.DatasetDict) -> dict[str, list[dict]]:
    return {split: dataset[split].to_list() for split in sorted(dataset)}


def requested(hub: HubServer, since: int, suffix: str) -> list[str]:
    """The paths of file downloads (GET …/resolve/…) asked since request number `since`, ending with `suffix`."""
    return [path for method, path in hub.requests[since:] if method == "GET" and "/resolve/" in path
            and path.endswith(suffix)]


def commit_of(repo: str) -> str:
    return HfApi().repo_info(repo, repo_type="dataset").sha


def test_events_from_the_hub_read_only_the_mcaps_and_equal_the_local_build(hub, uploaded, recordings, tmp_path):
    before = len(hub.requests)
    remote = load_events(uploaded, tmp_path / "remote")
    assert requested(hub, before, ".mkv") == []
    # stage 1 reads an episode once (its messages fit in what the survey keeps for the rows pass), and a file
    # smaller than a read-ahead block in one request
    assert Counter(requested(hub, before, ".mcap")) == {
        f"/datasets/{REPO}/resolve/{commit_of(REPO)}/data/{name}": 1
        for name in ("train/episode_000.mcap", "test/episode_001.mcap")}
    assert rows(remote) == rows(load_events(recordings, tmp_path / "local"))
    metadata = json.loads(Path(remote["train"].cache_files[0]["filename"]).with_name("owa_dataset.json").read_text())
    assert metadata["recordings_root"] == f"hf://datasets/{REPO}@{commit_of(REPO)}/data"


def test_fsl_from_the_hub_equals_local_and_decodes_frames_fetched_once(hub, uploaded, recordings, internvl_folder,
                                                                       tmp_path, monkeypatch):
    before = len(hub.requests)
    remote = load_fsl(uploaded, tmp_path / "remote", internvl_folder)
    assert requested(hub, before, ".mkv") == [] and requested(hub, before, ".mcap")
    assert rows(remote) == rows(load_fsl(recordings, tmp_path / "local", internvl_folder))

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "media_cache")
    train = remote["train"]
    train.set_transform(make_transform(train, stage="fsl", load_images=True))
    before = len(hub.requests)
    for row, stored in zip(train, remote["train"].to_list()):
        expected = frame_indices(recordings, row["episode_path"], stored["images"])
        assert [frame_index_from_image(np.asarray(image)) for image in row["images"]] == expected
    assert requested(hub, before, ".mkv") == [f"/datasets/{REPO}/resolve/{commit_of(REPO)}/data/train/episode_000.mkv"]
    assert len(list((tmp_path / "media_cache").rglob("episode_000.mkv"))) == 1


def test_unchanged_remote_recordings_hit_the_cache_and_a_changed_file_rebuilds(hub, recordings, tmp_path):
    repo = "tester/changing"
    HfApi().create_repo(repo, repo_type="dataset")
    HfApi().upload_folder(repo_id=repo, repo_type="dataset", folder_path=recordings)
    url, cache = f"hf://datasets/{repo}", tmp_path / "cache"
    first = load_events(url, cache)
    before = len(hub.requests)
    assert rows(load_events(url, cache)) == rows(first)
    assert requested(hub, before, ".mcap") == []

    other = tmp_path / "other"
    synthesize_recordings(other, episodes=1, profile=SynthProfile(duration_s=2, seed=7))
    HfApi().upload_file(repo_id=repo, repo_type="dataset", path_or_fileobj=other / "episode_000.mcap",
                        path_in_repo="train/episode_000.mcap")
    before = len(hub.requests)
    rebuilt = load_events(url, cache)
    assert requested(hub, before, ".mcap") != [] and requested(hub, before, ".mkv") == []
    assert rows(rebuilt)["test"] == rows(first)["test"] and rows(rebuilt)["train"] != rows(first)["train"]


@pytest.mark.parametrize("path, problem", [
    ("hf://datasets/tester/nothing-here", "recordings cannot be reached: .*repository not found"),
    (f"hf://datasets/{REPO}@no-such-branch/data", "recordings cannot be reached: .*revision not found"),
    (f"hf://datasets/{REPO}/no-such-folder", "recordings folder does not exist"),
    (f"hf://datasets/{REPO}/data/train/episode_000.mkv", "recordings folder is a file, not a folder"),
])
def test_a_missing_repository_revision_or_folder_is_one_clear_error(hub, uploaded, path, problem, tmp_path):
    with pytest.raises(RecordingsFolderError, match=problem) as raised:
        load_events(path, tmp_path)
    # named as given, or with the revision pinned once the repository was found
    assert raised.value.path in (path, path.replace(REPO, f"{REPO}@{commit_of(REPO)}", 1))
    assert str(raised.value).startswith(f"{raised.value.path}: ") and "\n" not in str(raised.value)


# -- memory:// ------------------------------------------------------------------------------------------


def to_memory(folder: Path, url: str) -> str:
    fs = fsspec.filesystem("memory")
    fs.rm(url, recursive=True) if fs.exists(url) else None
    fs.put(str(folder), url, recursive=True)
    return url


def test_events_from_memory_equal_the_local_build_and_frames_resolve(recordings, tmp_path, monkeypatch):
    url = to_memory(recordings, "memory://owa-test/recordings")
    remote = load_events(url, tmp_path / "remote")
    assert rows(remote) == rows(load_events(recordings, tmp_path / "local"))

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "media_cache")
    test = remote["test"]
    screens = [(i, row["mcap_message"]) for i, row in enumerate(test.to_list()) if row["topic"] == "screen"][:3]
    test.set_transform(make_transform(test, stage="events", load_images=True))
    for index, payload in screens:
        row = test[index]
        assert frame_index_from_image(np.asarray(row["image"])) == frame_indices(
            recordings, row["episode_path"], [payload])[0]
    assert [path.name for path in (tmp_path / "media_cache").rglob("*.mkv")] == ["episode_001.mkv"]


def test_remote_uris_leaving_the_root_or_missing_are_refused_naming_the_url_or_counted_under_skip(tmp_path):
    folder = tmp_path / "recordings"
    write_recording(folder / "good.mcap", [("screen", screen(0), 1 * MS), ("keyboard", key(65), 2 * MS)])
    write_recording(folder / "inside" / "leaves.mcap", [("screen", screen(0, uri="../../elsewhere.mkv"), 1 * MS)])
    write_recording(folder / "inside" / "missing.mcap", [("screen", screen(0, uri="gone.mkv"), 1 * MS)], video=None)
    url = to_memory(folder, "memory://owa-test/hostile")
    with pytest.raises(MediaReferenceError) as raised:
        load_events(url, tmp_path / "cache")
    assert str(raised.value) == (f"{url}/inside/leaves.mcap: screen media uri '../../elsewhere.mkv' leaves the "
                                 f"recordings folder {url}; pass allow_external_media=True to accept it")

    built = load_events(url, tmp_path / "cache", on_bad_files="skip")
    skipped = owa_builders.read_accounting(built)["total"]["skipped_files"]
    assert [(s["path"], s["reason"]) for s in skipped] == [("inside/leaves.mcap", "bad_media_reference"),
                                                            ("inside/missing.mcap", "bad_media_reference")]
    assert skipped[1]["problem"] == f"screen media 'gone.mkv' is missing (looked for {url}/inside/gone.mkv)"
    assert set(built["train"]["episode_path"]) == {"good.mcap"}


def test_a_later_stage_reads_a_remote_event_dataset_like_a_local_one(recordings, tmp_path):
    """Parquet files and owa_dataset.json in a bucket (memory://): copied into the cache once, then read as
    the same folder on disk would be."""
    events = load_events(recordings, tmp_path / "events_cache")
    local = tmp_path / "event-dataset"
    for split in events:
        events[split].to_parquet(local / "data" / f"{split}-00000-of-00001.parquet")
    owa_builders.read_dataset_metadata(events).write(local)
    url = to_memory(local, "memory://owa-test/event-dataset")

    remote = datasets.load_dataset("owa_binned", "10fps", data_dir=url, cache_dir=str(tmp_path / "remote"))
    assert rows(remote) == rows(datasets.load_dataset("owa_binned", "10fps", data_dir=str(local),
                                                      cache_dir=str(tmp_path / "local")))
    assert owa_builders.read_dataset_metadata(remote).recordings_root == str(recordings)
    assert sorted(p.relative_to(next((tmp_path / "remote" / "owa_remote_inputs").iterdir())).as_posix()
                  for p in (tmp_path / "remote" / "owa_remote_inputs").rglob("*") if p.is_file()) == [
        "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet", "owa_dataset.json"]


def test_remote_episodes_convert_in_worker_processes_with_the_same_rows(hub, tmp_path):
    """Four episodes in one split, two processes: each gets episodes (with the listing) pickled."""
    folder, repo = tmp_path / "four", "tester/four"
    synthesize_recordings(folder, episodes=4, profile=SynthProfile(duration_s=1))
    HfApi().create_repo(repo, repo_type="dataset")
    HfApi().upload_folder(repo_id=repo, repo_type="dataset", folder_path=folder)
    before = len(hub.requests)
    two = load_events(f"hf://datasets/{repo}", tmp_path / "two", num_proc=2)
    assert len(set(two["train"]["episode_path"])) == 4 and requested(hub, before, ".mkv") == []
    assert rows(two) == rows(load_events(folder, tmp_path / "one"))


def test_the_command_line_builds_from_the_hub_named_by_hf_endpoint(hub, uploaded, recordings, tmp_path):
    """`--data-dir hf://…` in a fresh process: HF_ENDPOINT and HF_TOKEN of the environment are what it uses."""
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_CACHE": str(tmp_path / "hub_cache")}
    before = len(hub.requests)
    done = subprocess.run([sys.executable, "-m", "owa_builders.cli", "build", "owa_events", "--name", "desktop", "-q",
                           "--data-dir", uploaded, "--output-dir", str(tmp_path / "out"),
                           "--cache-dir", str(tmp_path / "cache")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert requested(hub, before, ".mkv") == [] and requested(hub, before, ".mcap")
    saved = owa_builders.load_from_disk(str(tmp_path / "out"))
    assert rows(saved) == rows(load_events(recordings, tmp_path / "local"))
    assert owa_builders.read_dataset_metadata(saved).recordings_root == (
        f"hf://datasets/{REPO}@{commit_of(REPO)}/data")

    missing = subprocess.run([sys.executable, "-m", "owa_builders.cli", "build", "owa_events", "--name", "desktop",
                              "--data-dir", "hf://datasets/tester/nothing-here"], env=env, capture_output=True, text=True)
    assert missing.returncode == 1
    assert missing.stderr.startswith("owa-builders: error: hf://datasets/tester/nothing-here: recordings cannot be reached: ")
    assert "repository not found" in missing.stderr and missing.stderr.count("\n") == 1


def test_summary_of_remote_recordings_checks_videos_against_the_listing(recordings, tmp_path):
    url = to_memory(recordings, "memory://owa-test/summary")
    fsspec.filesystem("memory").rm(f"{url}/test/episode_001.mkv")
    summary = summarize_recordings(url)
    present = {episode.path: [(m.uri, m.present) for m in episode.media] for episode in summary.episodes}
    assert present == {"test/episode_001.mcap": [("episode_001.mkv", False)],
                       "train/episode_000.mcap": [("episode_000.mkv", True)]}
    assert [(e.path, e.problem.reason) for e in summary.bad_episodes] == [("test/episode_001.mcap", "bad_media_reference")]
