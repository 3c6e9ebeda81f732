"""push_dataset against a local Hub (tests/hub_server.py) with the real huggingface_hub and datasets clients:
a self-contained repository of several configs, loadable without owa-builders, whose frames our transforms
fetch from the repository; re-pushes send no video again."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
from hub_server import HubServer
from huggingface_hub import DatasetCard, HfApi, hf_hub_download, snapshot_download
from media_fixtures import frame_indices, load_events, load_fsl
from transformers import AutoTokenizer

import owa_builders
from owa_builders.fsl.tokenizer import check_vocabulary, load_fsl_tokenizer, vocabulary_hash
from owa_builders.media import HubMediaRoot, make_transform
from owa_builders.recordings.errors import MediaReferenceError
from owa_builders.synth import SynthProfile, frame_index_from_image, synthesize_recordings

pytest_plugins = ["fsl_fixtures"]  # internvl_folder: the InternVL stand-in tokenizer
REPO = "tester/desktop"
VIDEOS = ("train/episode_000.mkv", "test/episode_001.mkv")  # the recordings' layout, kept in the repository


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The local Hub, and this process's huggingface_hub and datasets pointed at it (their settings are read
    from the environment at import, before the server's port is known)."""
    cache = tmp_path_factory.mktemp("hf_hub_cache")
    with HubServer(tmp_path_factory.mktemp("hub")) as server, pytest.MonkeyPatch.context() as patch:
        for module, values in {
            huggingface_hub.constants: {
                "ENDPOINT": server.url,
                "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
                "HF_HUB_OFFLINE": False, "HF_HUB_DISABLE_XET": True, "HF_HUB_DISABLE_TELEMETRY": True,
                "HF_HUB_CACHE": str(cache),
            },
            datasets.config: {
                "HF_ENDPOINT": server.url,
                "HUB_DATASETS_URL": server.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
                "HF_HUB_OFFLINE": False, "HF_DATASETS_OFFLINE": False,
                "USE_PARQUET_EXPORT": False,  # the local Hub has no dataset viewer
            },
        }.items():
            for name, value in values.items():
                patch.setattr(module, name, value)
        patch.setenv("HF_TOKEN", server.token)  # every client call gets the test token, never a stored one
        yield server


@pytest.fixture(scope="module")
def built(tmp_path_factory, internvl_folder):
    """Recordings, and the events, fsl and binned datasets built from them (moved away once pushed)."""
    recordings = tmp_path_factory.mktemp("recordings")
    synthesize_recordings(recordings, episodes=2, profile=SynthProfile(duration_s=2), layout="train_test")
    cache = tmp_path_factory.mktemp("cache")
    binned = datasets.load_dataset("owa_binned", "10fps", data_dir=str(recordings), cache_dir=str(cache))
    return recordings, load_events(recordings, cache), load_fsl(recordings, cache, internvl_folder), binned


@pytest.fixture(scope="module")
def pushed(hub, built, tmp_path_factory):
    """The three configs pushed into one repository; then the recordings are moved, so frames can only come
    from the Hub. Returns the recordings' new place, the push reports and the LFS uploads of each push."""
    recordings, *built_datasets = built
    reports, uploads = [], []
    for dataset in built_datasets:
        before = len(hub.uploads)
        reports.append(owa_builders.push_dataset(dataset, REPO, token=hub.token))
        uploads.append(hub.uploads[before:])
    moved = tmp_path_factory.mktemp("moved") / "recordings"
    recordings.rename(moved)
    return moved, reports, uploads


def test_push_uploads_media_metadata_tokenizer_and_rows(pushed, built):
    recordings, (events_report, fsl_report, binned_report), (events_uploads, *later_uploads) = pushed
    files = {entry.path for entry in HfApi().list_repo_tree(REPO, repo_type="dataset", recursive=True)}
    for report, config in ((events_report, "desktop"), (fsl_report, "internvl3"), (binned_report, "10fps")):
        assert report.config_name == config and report.unchanged == () and report.deleted == ()
        media = {f"{config}/media/{video}" for video in VIDEOS}
        assert media | {f"{config}/owa_dataset.json", "README.md"} <= set(report.uploaded)
        assert media | {f"{config}/owa_dataset.json", f"{config}/data/train-00000-of-00001.parquet"} <= files
    assert {"internvl3/tokenizer/tokenizer.json", "internvl3/tokenizer/tokenizer_config.json"} <= files
    assert binned_report.commit == HfApi().repo_info(REPO, repo_type="dataset").sha
    # the videos were sent once: the later configs' are the events config's, content the repository has
    videos = {_sha256(recordings / video) for video in VIDEOS}
    assert videos <= {oid for _, oid, _ in events_uploads}
    assert not videos & {oid for uploads in later_uploads for _, oid, _ in uploads}
    video_bytes = sum((recordings / video).stat().st_size for video in VIDEOS)
    assert events_report.uploaded_bytes > video_bytes > 0


def test_plain_datasets_loads_both_configs_without_owa_builders(pushed, built, hub, tmp_path):
    _, events, fsl, _ = built
    script = f"""
import json, sys
sys.modules["owa_builders"] = None  # importing it fails: the rows must load without it
import datasets
datasets.config.USE_PARQUET_EXPORT = False  # the local Hub has no dataset viewer
fsl = datasets.load_dataset("{REPO}", "internvl3")
events = datasets.load_dataset("{REPO}", "desktop")
print(json.dumps({{"fsl_rows": fsl.num_rows, "events_rows": events.num_rows, "ids": fsl["test"][1]["input_ids"],
                  "images": fsl["test"][1]["images"], "event": events["train"][5]["mcap_message"].decode()}}))
"""
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0",
           "HF_HOME": str(tmp_path / "home"), "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["fsl_rows"] == fsl.num_rows and loaded["events_rows"] == events.num_rows
    assert loaded["ids"] == fsl["test"][1]["input_ids"] and loaded["images"] == fsl["test"][1]["images"]
    assert loaded["event"] == events["train"][5]["mcap_message"].decode()


def test_frames_come_from_the_repository_through_the_transform(pushed, built):
    recordings, *_ = pushed
    _, _, fsl, _ = built
    dataset = owa_builders.load_from_hub(REPO, "internvl3")
    train = dataset["train"]
    stored = train[:]
    train.auto_set_transform(load_images=True)
    transform = make_transform(train)
    assert isinstance(transform.frames.root, HubMediaRoot) and pickle.loads(pickle.dumps(transform)) == transform
    assert len(train) == len(fsl["train"]) and stored["input_ids"] == fsl["train"][:]["input_ids"]
    for index in (0, len(train) - 1):
        row = train[index]
        expected = frame_indices(recordings, row["episode_path"], stored["images"][index])
        assert [frame_index_from_image(np.asarray(image)) for image in row["images"]] == expected
        assert len(expected) == row["num_images"] > 0

    # rows from plain load_dataset: the stage and the repository's media named
    rows = datasets.load_dataset(REPO, "internvl3", split="train")
    plain = rows.with_transform(make_transform(rows, stage="fsl", media_root=HubMediaRoot(REPO, "internvl3")))
    assert [frame_index_from_image(np.asarray(image)) for image in plain[0]["images"]] == frame_indices(
        recordings, stored["episode_path"][0], stored["images"][0])

    events = owa_builders.load_from_hub(REPO, "desktop", split="train")
    screens = [i for i, t in enumerate(events["message_type"]) if t == "desktop/ScreenCaptured"]
    payload = events[screens[-1]]["mcap_message"]
    events.auto_set_transform()
    row = events[screens[-1]]
    assert frame_index_from_image(np.asarray(row["image"])) == frame_indices(recordings, row["episode_path"], [payload])[0]

    binned = owa_builders.load_from_hub(REPO, "10fps", split="train")
    states = binned[-3:]["state"]
    binned.auto_set_transform()
    for state, images, episode in zip(states, binned[-3:]["images"], binned[-3:]["episode_path"]):
        assert [frame_index_from_image(np.asarray(image)) for image in images] == frame_indices(recordings, episode, state)


def test_card_lists_every_config_with_its_facts(pushed, built):
    _, *pushed_datasets = built
    fsl = pushed_datasets[1]
    card = DatasetCard.load(hf_hub_download(REPO, "README.md", repo_type="dataset"))
    assert {config["config_name"]: config["data_files"] for config in card.data.configs} == {
        name: [{"split": split, "path": f"{name}/data/{split}-*"} for split in ("train", "test")]
        for name in ("desktop", "internvl3", "10fps")}
    assert {info["config_name"] for info in card.data.dataset_info} == {"desktop", "internvl3", "10fps"}
    assert card.data.license == "unknown"
    assert {"owa", "desktop-agent", "mcap", "owa-events", "owa-fsl", "owa-binned"} <= set(card.data.tags)
    for dataset in pushed_datasets:
        metadata = owa_builders.read_dataset_metadata(dataset)
        summary = owa_builders.Accounting.from_dict(metadata.accounting["total"]).summary()
        assert summary in card.text and f"{metadata.builder} {metadata.version}" in card.text
    assert "max_length: 2048" in card.text and "from 2 episodes" in card.text
    assert f'datasets.load_dataset("{REPO}", "internvl3", split="train")' in card.text
    assert owa_builders.read_dataset_metadata(fsl).tokenizer["vocabulary_hash"] in card.text

    # its examples run (this test's own generated card, not a downloaded one's code)
    session = {}
    for example in re.findall(r"```python\n(.*?)```", card.text, re.DOTALL):
        exec(example, session)  # noqa: S102 (the examples of the card this test pushed)
    assert len(next(iter(session["loader"]))["images"]) == 4
    assert [frame_index_from_image(np.asarray(image)) for image in session["rows"][0]["images"]] == [
        frame_index_from_image(np.asarray(image)) for image in session["dataset"][0]["images"]]


def test_tokenizer_in_the_repository_has_the_recorded_vocabulary(pushed, built):
    _, _, fsl, _ = built
    expected = owa_builders.read_dataset_metadata(fsl).tokenizer["vocabulary_hash"]
    published = json.loads(Path(hf_hub_download(REPO, "internvl3/owa_dataset.json", repo_type="dataset")).read_text())
    assert published["tokenizer"]["vocabulary_hash"] == expected
    assert published["recordings_root"] == f"hf://datasets/{REPO}/internvl3/media"
    snapshot = snapshot_download(REPO, repo_type="dataset", allow_patterns="internvl3/tokenizer/*")
    assert vocabulary_hash(AutoTokenizer.from_pretrained(str(Path(snapshot, "internvl3", "tokenizer")))) == expected

    dataset = owa_builders.load_from_hub(REPO, "internvl3")
    check_vocabulary(load_fsl_tokenizer(dataset), dataset)
    assert owa_builders.FslCollator.from_dataset(dataset["train"]) == owa_builders.FslCollator.from_dataset(fsl)


def test_repush_sends_no_video_again(hub, built, pushed, tmp_path_factory, internvl_folder):
    recordings, *_ = pushed
    _, _, fsl, _ = built
    repo = "tester/repush"
    first = owa_builders.push_dataset(fsl, repo, token=hub.token, license="cc-by-4.0", media_root=recordings)
    videos = {_sha256(recordings / video) for video in VIDEOS}
    assert videos <= {oid for pushed_to, oid, _ in hub.uploads if pushed_to == repo}

    uploads, commits = len(hub.uploads), _commits(hub)
    again = owa_builders.push_dataset(fsl, repo, token=hub.token, media_root=recordings)
    assert again.uploaded == () and again.uploaded_bytes == 0 and set(again.unchanged) == set(first.uploaded)
    assert len(hub.uploads) == uploads and _commits(hub) == commits  # nothing sent, no commit

    # a new build with one episode fewer and shorter rows: rows and card change, the kept video is not sent
    shorter = load_fsl(_copy_of(recordings, "train/episode_000", tmp_path_factory.mktemp("one_episode")),
                       tmp_path_factory.mktemp("cache"), internvl_folder, max_images_per_row=3)
    changed = owa_builders.push_dataset(shorter, repo, token=hub.token)
    assert "internvl3/media/train/episode_000.mkv" in changed.unchanged
    assert changed.deleted == ("internvl3/media/test/episode_001.mkv",)
    assert {"internvl3/owa_dataset.json", "README.md"} <= set(changed.uploaded)
    sent = {oid for _, oid, _ in hub.uploads[uploads:]}
    assert sent and not sent & videos  # the new parquet shard only
    card = DatasetCard.load(hf_hub_download(repo, "README.md", repo_type="dataset"))
    assert card.data.license == "cc-by-4.0" and "max_images_per_row: 3" in card.text
    assert datasets.load_dataset(repo, "internvl3", split="train")["input_ids"] == shorter["train"]["input_ids"]


def test_push_to_a_branch_leaves_main_alone(built, pushed):
    recordings, *_ = pushed
    _, events, _, _ = built
    report = owa_builders.push_dataset(events, "tester/branches", revision="dev", media_root=recordings)
    assert HfApi().repo_info("tester/branches", repo_type="dataset", revision="dev").sha == report.commit
    assert HfApi().list_repo_files("tester/branches", repo_type="dataset") == []  # main: still empty
    rows = owa_builders.load_from_hub("tester/branches", "desktop", revision="dev", split="train")
    assert rows.num_rows == events["train"].num_rows


def test_hub_media_root_refuses_uris_that_leave_the_repository(pushed):
    recordings, *_ = pushed
    root = HubMediaRoot(REPO, "internvl3")
    assert root.revision == HfApi().repo_info(REPO, repo_type="dataset").sha
    assert Path(root.locate("train/episode_000.mcap", "episode_000.mkv")).read_bytes() == (
        recordings / VIDEOS[0]).read_bytes()
    for episode_path, uri in [("train/episode_000.mcap", "../../owa_dataset.json"),  # internvl3/owa_dataset.json
                              ("train/episode_000.mcap", "../../../desktop/media/train/episode_000.mkv"),
                              ("../episode_000.mcap", "episode_000.mkv"), ("train/episode_000.mcap", "/etc/passwd"),
                              ("train/episode_000.mcap", "https://example.com/episode_000.mkv")]:
        with pytest.raises(MediaReferenceError):
            root.locate(episode_path, uri)
    assert root.locate("train/episode_000.mcap", "data:image/png;base64,AAAA") == "data:image/png;base64,AAAA"

    # a row carrying such a uri fails in the transform, before any download
    dataset = owa_builders.load_from_hub(REPO, "internvl3", split="train")
    screen = json.loads(dataset[0]["images"][0])
    screen["media_ref"]["uri"] = "../../README.md"
    bad = dataset.map(lambda row: {"images": [json.dumps(screen)]})
    with pytest.raises(MediaReferenceError, match="leaves"):
        bad.with_transform(make_transform(bad, media_root=root))[0]


def _copy_of(recordings: Path, episode: str, folder: Path) -> Path:
    """`folder` holding a copy of one episode of `recordings` (its .mcap and video, at the same place)."""
    (folder / episode).parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".mcap", ".mkv"):
        shutil.copy(recordings / f"{episode}{suffix}", folder / f"{episode}{suffix}")
    return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _commits(hub: HubServer) -> int:
    return sum(1 for method, path in hub.requests if method == "POST" and "/commit/" in path)
