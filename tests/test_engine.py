"""build_dataset / `owa-builders build --format parquet | --engine ray`: the Hub's parquet layout, the same rows,
splits and owa_dataset.json as datasets.load_dataset, resumable per episode, on the local and Ray engines."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from ray_cluster import ray_environment, two_node_cluster
from test_publish import hub  # noqa: F401 (the local Hub fixture)

import owa_builders
from owa_builders.cli import main
from owa_builders.engine.parquet_output import WORK_FOLDER
from owa_builders.metadata import METADATA_FILE, dataset_folder
from owa_builders.recordings.errors import McapFormatError
from owa_builders.synth import SynthProfile, synthesize_recordings

CLI = [sys.executable, "-m", "owa_builders.cli"]


def _recordings(root: Path, episodes: int, duration_s: float) -> Path:
    for manifest in synthesize_recordings(root, episodes=episodes,
                                          profile=SynthProfile(duration_s=duration_s, seed=11, video=False)):
        (Path(manifest.mcap_path).parent / manifest.video_uri).write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """Five 6-second episodes (videos referenced, never opened)."""
    return _recordings(tmp_path_factory.mktemp("engine_recordings"), 5, 6.0)


def _reference(name: str, config: str, data_dir: Path, cache: Path, **overrides):
    """load_dataset's build and its owa_dataset.json."""
    built = datasets.load_dataset(name, config, data_dir=str(data_dir), cache_dir=str(cache), **overrides)
    return built, json.loads((dataset_folder(built) / METADATA_FILE).read_text())


def _assert_same_as(reference: datasets.DatasetDict, metadata: dict, output: Path, cache: Path) -> None:
    """Row for row, split for split, features and owa_dataset.json, as loaded by plain datasets."""
    loaded = datasets.load_dataset(str(output), cache_dir=str(cache))
    assert list(loaded) == list(reference)
    for split in reference:
        assert loaded[split].features == reference[split].features
        assert loaded[split].data.table.equals(reference[split].data.table), split
    assert json.loads((output / METADATA_FILE).read_text()) == metadata


def _episode_files(output: Path) -> list[str]:
    return sorted(path.name for path in (output / WORK_FOLDER).glob("*.parquet"))


@pytest.mark.parametrize("num_proc", [None, 2])
def test_events_as_parquet_equal_load_dataset(recordings, tmp_path, num_proc):
    reference, metadata = _reference("owa_events", "desktop", recordings, tmp_path / "cache", test_size=0.4)
    report = owa_builders.build_dataset("owa_events", "desktop", recordings, tmp_path / "out", num_proc=num_proc,
                                        progress=False, test_size=0.4)
    assert (report.converted, report.reused) == (5, 0)
    assert report.rows == {split: len(rows) for split, rows in reference.items()}
    assert sorted(path.name for path in (tmp_path / "out" / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    _assert_same_as(reference, metadata, tmp_path / "out", tmp_path / "loaded")
    assert report.messages_read == metadata["accounting"]["total"]["totals"]["read"]


def test_fsl_and_binned_as_parquet_equal_load_dataset(recordings, internvl_folder, tmp_path):
    for name, config, overrides in [("owa_fsl", "internvl3", {"tokenizer": str(internvl_folder), "max_length": 512}),
                                    ("owa_binned", "10fps", {})]:
        reference, metadata = _reference(name, config, recordings, tmp_path / "cache", **overrides)
        owa_builders.build_dataset(name, config, recordings, tmp_path / name, num_proc=2, progress=False,
                                   cache_dir=str(tmp_path / "cache"), **overrides)
        _assert_same_as(reference, metadata, tmp_path / name, tmp_path / "loaded")
    assert sorted(p.name for p in (tmp_path / "owa_fsl" / "tokenizer").iterdir()) == sorted(
        p.name for p in (dataset_folder(datasets.load_dataset(
            "owa_fsl", "internvl3", data_dir=str(recordings), cache_dir=str(tmp_path / "cache"),
            tokenizer=str(internvl_folder), max_length=512)) / "tokenizer").iterdir())


def test_shards_are_cut_by_size_in_row_order(recordings, tmp_path, monkeypatch):
    monkeypatch.setattr("owa_builders.engine.parquet_output.MAX_SHARD_BYTES", 20_000)
    reference, metadata = _reference("owa_events", "default", recordings, tmp_path / "cache")
    owa_builders.build_dataset("owa_events", "default", recordings, tmp_path / "out", progress=False)
    shards = sorted((tmp_path / "out" / "data").iterdir())
    assert len(shards) > 5  # more shards than episodes: episodes are cut too
    assert all(path.stat().st_size < 2 * 20_000 for path in shards)
    _assert_same_as(reference, metadata, tmp_path / "out", tmp_path / "loaded")


def test_plain_datasets_loads_it_without_owa_builders(recordings, tmp_path):
    owa_builders.build_dataset("owa_events", "desktop", recordings, tmp_path / "out", progress=False)
    code = ("import datasets, sys; d = datasets.load_dataset(sys.argv[1], cache_dir=sys.argv[2]); "
            "assert 'owa_builders' not in sys.modules; print(d['train'].num_rows)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out"), str(tmp_path / "cache")],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) == pq.read_metadata(tmp_path / "out" / "data" / "train-00000-of-00001.parquet").num_rows


def test_load_from_disk_summary_and_transform_work_on_it(recordings, tmp_path, capsys):
    owa_builders.build_dataset("owa_events", "desktop", recordings, tmp_path / "out", progress=False)
    loaded = owa_builders.load_from_disk(tmp_path / "out")
    assert owa_builders.read_dataset_metadata(loaded) == owa_builders.DatasetMetadata.read(tmp_path / "out")
    loaded["train"].auto_set_transform(stage="events", missing_media="placeholder")  # the videos are empty files
    screens = [row for row in loaded["train"].select(range(50)) if row["topic"] == "screen"]
    assert screens and all(row["image"].mode == "RGB" for row in screens)  # placeholders: the media was looked up
    assert main(["summary", "dataset", str(tmp_path / "out")]) == 0
    shown = capsys.readouterr().out
    assert str(tmp_path / "out") in shown and f"rows: train {loaded['train'].num_rows:,}" in shown


def test_rerun_reuses_episodes_and_a_changed_config_converts_again(recordings, tmp_path):
    first = owa_builders.build_dataset("owa_events", "desktop", recordings, tmp_path / "out", progress=False)
    shard = tmp_path / "out" / "data" / "train-00000-of-00001.parquet"
    rows, written = pq.read_table(shard), shard.stat().st_mtime_ns
    again = owa_builders.build_dataset("owa_events", "desktop", recordings, tmp_path / "out", progress=False)
    assert (again.converted, again.reused) == (0, 5) and again.rows == first.rows
    assert shard.stat().st_mtime_ns == written  # a finished folder is left as it is
    (tmp_path / "out" / "data" / shard.name).unlink()  # ... unless it lost its rows: written again
    owa_builders.build_dataset("owa_events", "desktop", recordings, tmp_path / "out", progress=False)
    assert pq.read_table(shard).equals(rows)
    changed = owa_builders.build_dataset("owa_events", "desktop", recordings, tmp_path / "out", progress=False,
                                         topics=["screen", "keyboard"])
    assert (changed.converted, changed.reused) == (5, 0)
    assert json.loads((tmp_path / "out" / METADATA_FILE).read_text())["settings"]["topics"] == ["screen", "keyboard"]


def test_a_recording_changed_since_is_converted_again(tmp_path):
    recordings = _recordings(tmp_path / "rec", 3, 4.0)
    owa_builders.build_dataset("owa_events", "default", recordings, tmp_path / "out", progress=False)
    changed = recordings / "episode_001.mcap"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    again = owa_builders.build_dataset("owa_events", "default", recordings, tmp_path / "out", progress=False)
    assert (again.converted, again.reused) == (1, 2)


def test_killed_build_resumes_with_the_same_rows(tmp_path):
    recordings = _recordings(tmp_path / "rec", 8, 30.0)
    out = tmp_path / "out"
    build = [*CLI, "build", "owa_events", "--name", "desktop", "--data-dir", str(recordings), "--output-dir", str(out),
             "--format", "parquet", "-q"]
    process = subprocess.Popen(build, env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list((out / WORK_FOLDER).glob("*.json"))) < 2:
        assert process.poll() is None, "the build ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / METADATA_FILE).exists()
    committed = len(list((out / WORK_FOLDER).glob("*.json")))

    report = owa_builders.build_dataset("owa_events", "desktop", recordings, out, progress=False)
    assert report.reused >= committed >= 2 and report.reused + report.converted == 8 and report.converted > 0
    reference, metadata = _reference("owa_events", "desktop", recordings, tmp_path / "cache")
    _assert_same_as(reference, metadata, out, tmp_path / "loaded")


@pytest.fixture
def with_a_bad_recording(tmp_path) -> Path:
    recordings = _recordings(tmp_path / "rec", 2, 4.0)
    (recordings / "broken.mcap").write_bytes(b"not an mcap at all")
    return recordings


def test_bad_files_skipped_as_in_a_local_build(with_a_bad_recording, tmp_path):
    reference, metadata = _reference("owa_events", "default", with_a_bad_recording, tmp_path / "cache",
                                     on_bad_files="skip")
    owa_builders.build_dataset("owa_events", "default", with_a_bad_recording, tmp_path / "out", num_proc=2,
                               progress=False, on_bad_files="skip")
    _assert_same_as(reference, metadata, tmp_path / "out", tmp_path / "loaded")
    [skipped] = metadata["accounting"]["total"]["skipped_files"]
    assert skipped["path"] == "broken.mcap"


def test_a_bad_file_is_our_error_and_one_cli_line(with_a_bad_recording, tmp_path, capsys):
    with pytest.raises(McapFormatError, match="broken.mcap"):
        owa_builders.build_dataset("owa_events", "default", with_a_bad_recording, tmp_path / "out", num_proc=2,
                                   progress=False)
    code = main(["build", "owa_events", "--name", "default", "--data-dir", str(with_a_bad_recording),
                 "--output-dir", str(tmp_path / "out"), "--format", "parquet", "-q"])
    error = capsys.readouterr().err.strip()
    assert code == 1 and error.count("\n") == 0
    assert error.startswith("owa-builders: error: ") and "broken.mcap" in error


def test_progress_bar_of_episodes_and_quiet(recordings, tmp_path):
    args = ["build", "owa_events", "--name", "desktop", "--data-dir", str(recordings), "--format", "parquet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    loud = subprocess.run([*CLI, *args, "--output-dir", str(tmp_path / "a")], capture_output=True, text=True, env=env)
    quiet = subprocess.run([*CLI, *args, "--output-dir", str(tmp_path / "b"), "-q"], capture_output=True, text=True,
                           env=env)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "5/5" in loud.stderr and "messages/s" in loud.stderr and "episode" in loud.stderr
    assert quiet.stderr == ""
    assert "5 episode(s) converted, 0 reused" in quiet.stdout


def test_usage_errors(recordings, capsys):
    assert main(["build", "owa_events", "--name", "desktop", "--data-dir", str(recordings), "--engine", "ray"]) == 2
    assert "--output-dir" in capsys.readouterr().err
    assert main(["build", "owa_events", "--name", "desktop", "--data-dir", str(recordings),
                 "--ray-address", "127.0.0.1:1"]) == 2
    assert "--engine ray" in capsys.readouterr().err


@pytest.fixture
def ray_env() -> dict[str, str]:
    with ray_environment() as environment:
        yield environment


@pytest.mark.ray
def test_ray_local_instance_equals_load_dataset(recordings, with_a_bad_recording, tmp_path, monkeypatch, ray_env):
    for key, value in ray_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    reference, metadata = _reference("owa_events", "desktop", recordings, tmp_path / "cache", test_size=0.4)
    report = owa_builders.build_dataset("owa_events", "desktop", recordings, tmp_path / "out", engine="ray",
                                        num_proc=2, progress=False, test_size=0.4)
    assert (report.converted, report.reused) == (5, 0)
    _assert_same_as(reference, metadata, tmp_path / "out", tmp_path / "loaded")

    # an error in a worker is the error a local build raises, not Ray's wrapper with the remote traceback
    with pytest.raises(McapFormatError) as local:
        owa_builders.build_dataset("owa_events", "default", with_a_bad_recording, tmp_path / "bad", progress=False)
    with pytest.raises(McapFormatError) as remote:
        owa_builders.build_dataset("owa_events", "default", with_a_bad_recording, tmp_path / "bad", engine="ray",
                                   num_proc=2, progress=False)
    assert type(remote.value) is type(local.value) and str(remote.value) == str(local.value)


@pytest.mark.ray
def test_ray_two_node_cluster_equals_load_dataset(recordings, with_a_bad_recording, internvl_folder, tmp_path,
                                                  ray_env):
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, **ray_env, "HF_HUB_OFFLINE": "1"}
    with two_node_cluster(ray_env) as address:
        for name, config, overrides in [("owa_events", "desktop", []),
                                        ("owa_fsl", "internvl3", [f"tokenizer={internvl_folder}", "max_length=512"])]:
            out = tmp_path / name
            done = subprocess.run(
                [*CLI, "build", name, "--name", config, "--data-dir", str(recordings), "--output-dir", str(out),
                 "--engine", "ray", "--ray-address", address, "--cache-dir", str(tmp_path / "cache"), "-q",
                 *[arg for override in overrides for arg in ("--set", override)]],
                capture_output=True, text=True, env=env, timeout=600)
            assert done.returncode == 0, done.stderr
            assert "5 episode(s) converted, 0 reused" in done.stdout
            reference, metadata = _reference(name, config, recordings, tmp_path / "cache",
                                             **dict(o.split("=", 1) for o in overrides) | (
                                                 {"max_length": 512} if overrides else {}))
            _assert_same_as(reference, metadata, out, tmp_path / "loaded")
        bad = subprocess.run([*CLI, "build", "owa_events", "--name", "default", "--data-dir", str(with_a_bad_recording),
                              "--output-dir", str(tmp_path / "bad"), "--engine", "ray", "--ray-address", address, "-q"],
                             capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 1
    [line] = bad.stderr.strip().splitlines()
    assert line.startswith("owa-builders: error: ") and "broken.mcap" in line and "Traceback" not in line


def test_push_of_a_large_parquet_folder_sends_its_shards_as_they_are(recordings, hub, tmp_path):
    from huggingface_hub import HfApi

    from owa_builders.publish import push_folder

    owa_builders.build_dataset("owa_events", "desktop", recordings, tmp_path / "out", progress=False, test_size=0.4)
    shards = sorted((tmp_path / "out" / "data").iterdir())
    report = push_folder(tmp_path / "out", "tester/large", token=hub.token, large_folder_bytes=0)
    remote = {entry.path: entry for entry in HfApi().list_repo_tree("tester/large", repo_type="dataset",
                                                                     recursive=True)}
    for shard in shards:  # as built, not re-sharded by datasets
        assert remote[f"desktop/data/{shard.name}"].lfs.sha256 == hashlib.sha256(shard.read_bytes()).hexdigest()
    assert {"desktop/owa_dataset.json", "README.md", *(f"desktop/data/{s.name}" for s in shards)} <= set(report.uploaded)
    loaded = datasets.load_dataset("tester/large", "desktop", cache_dir=str(tmp_path / "cache"))
    local = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    for split in local:
        assert loaded[split].data.table.equals(local[split].data.table)
    from_hub = owa_builders.load_from_hub("tester/large", "desktop", cache_dir=str(tmp_path / "cache"))
    assert owa_builders.read_dataset_metadata(from_hub).accounting == json.loads(
        (tmp_path / "out" / METADATA_FILE).read_text())["accounting"]

    uploads = len(hub.uploads)
    again = push_folder(tmp_path / "out", "tester/large", token=hub.token, large_folder_bytes=0)
    assert len(hub.uploads) == uploads  # a resumed or repeated push sends no content the repository has
    assert again.uploaded == () and again.uploaded_bytes == 0 and set(again.unchanged) == set(report.uploaded)
    assert not (tmp_path / "out" / ".owa_push").exists()
