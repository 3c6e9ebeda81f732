"""The owa_events builder through datasets: registration, configs, splits, caching, num_proc, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import pytest
from recording_fixtures import copy_episode

import owa_builders
from owa_builders._registry import code_hash, module_path
from owa_builders.datasets_adapter import registered_packaged_module
from owa_builders.recordings.errors import TruncatedMcapError
from owa_builders.synth import SynthProfile, synthesize_episode, synthesize_recordings


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    synthesize_recordings(root, episodes=4, profile=SynthProfile(duration_s=3.0, seed=1))
    return root


def load(data_dir, name="default", cache_dir=None, **kwargs):
    return datasets.load_dataset("owa_events", name, data_dir=str(data_dir), cache_dir=str(cache_dir) if cache_dir else None, **kwargs)


def table_rows(dataset) -> list[tuple]:
    return [tuple(row.values()) for row in dataset.to_list()]


def test_load_dataset_runs_our_builder_with_named_configs(recordings, tmp_path):
    default = load(recordings, cache_dir=tmp_path)
    desktop = load(recordings, "desktop", cache_dir=tmp_path)
    assert list(default) == ["train"]
    assert default["train"].features["timestamp_ns"].dtype == "int64"
    assert set(default["train"].unique("episode_path")) == {f"episode_{i:03d}.mcap" for i in range(4)}
    assert set(desktop["train"].unique("topic")) == {"screen", "keyboard", "mouse/raw"}
    metadata = owa_builders.read_dataset_metadata(desktop)
    assert metadata.config == "desktop" and metadata.settings["rate_limits"]["screen"] == {"hz": 20, "policy": "drop"}
    assert metadata.recordings_root == str(recordings)
    accounting = owa_builders.read_accounting(desktop)
    assert accounting["total"]["episodes"] == 4
    assert accounting["total"]["totals"]["read"] == default["train"].num_rows
    assert accounting["total"]["totals"]["kept"] == desktop["train"].num_rows


def test_rows_are_ordered_by_episode_then_time(recordings, tmp_path):
    rows = load(recordings, "desktop", cache_dir=tmp_path)["train"].select_columns(["episode_path", "timestamp_ns"])
    keys = list(zip(rows["episode_path"], rows["timestamp_ns"]))
    assert keys == sorted(keys)


def test_keyword_overrides_every_field(recordings, tmp_path):
    ds = load(recordings, "desktop", cache_dir=tmp_path, topics=["keyboard"], test_size=1)
    assert set(ds) == {"train", "test"}
    assert ds["test"].unique("topic") == ["keyboard"] and len(ds["test"].unique("episode_path")) == 1
    with pytest.raises(ValueError, match="on_bad_files"):
        load(recordings, cache_dir=tmp_path, on_bad_files="ignore")


def test_split_is_deterministic_and_never_divides_an_episode(recordings, tmp_path):
    first = load(recordings, cache_dir=tmp_path, test_size=0.5, split_seed=3)
    again = load(recordings, cache_dir=tmp_path / "other", test_size=0.5, split_seed=3)
    train, test = set(first["train"].unique("episode_path")), set(first["test"].unique("episode_path"))
    assert len(train) == len(test) == 2 and not train & test
    assert set(again["test"].unique("episode_path")) == test


def test_split_from_train_and_test_folders(recordings, tmp_path):
    root = tmp_path / "laid_out"
    for index, split in enumerate(["train", "train", "test", "test"]):
        copy_episode(recordings / f"episode_{index:03d}.mcap", root / split)
    ds = load(root, cache_dir=tmp_path)
    assert ds["train"].unique("episode_path") == ["train/episode_000.mcap", "train/episode_001.mcap"]
    assert ds["test"].unique("episode_path") == ["test/episode_002.mcap", "test/episode_003.mcap"]


def test_names_that_datasets_would_read_as_splits_are_still_converted(recordings, tmp_path):
    """datasets' split inference would drop plain files next to a test/ folder or a *_validation* name."""
    root = tmp_path / "tricky"
    copy_episode(recordings / "episode_000.mcap", root / "notes_validation")
    copy_episode(recordings / "episode_001.mcap", root / "session_test_run")
    copy_episode(recordings / "episode_002.mcap", root)
    ds = load(root, cache_dir=tmp_path)
    assert list(ds) == ["train"]
    assert ds["train"].unique("episode_path") == [
        "episode_002.mcap", "notes_validation/episode_000.mcap", "session_test_run/episode_001.mcap"]
    laid_out = tmp_path / "half_laid_out"
    copy_episode(recordings / "episode_000.mcap", laid_out / "test")
    copy_episode(recordings / "episode_001.mcap", laid_out)
    with pytest.raises(ValueError, match="in none of them"):
        load(laid_out, cache_dir=tmp_path)


def _built(data_dir, cache_dir, name="default", **kwargs):
    builder = owa_builders.builder_class("owa_events")(config_name=name, data_dir=str(data_dir), cache_dir=str(cache_dir), **kwargs)
    builder.download_and_prepare()
    return builder


def test_cache_hits_on_repeat_and_misses_after_each_kind_of_change(recordings, tmp_path):
    root = tmp_path / "recordings"
    for index in range(3):
        copy_episode(recordings / f"episode_{index:03d}.mcap", root)
    cache = tmp_path / "cache"
    first = _built(root, cache)
    arrow_files = sorted(Path(first.cache_dir).glob("*.arrow"))
    stamps = [f.stat().st_mtime_ns for f in arrow_files]
    again = _built(root, cache)
    assert again.cache_dir == first.cache_dir and [f.stat().st_mtime_ns for f in arrow_files] == stamps

    seen = {first.cache_dir}

    def misses(builder):
        assert builder.cache_dir not in seen
        seen.add(builder.cache_dir)

    misses(_built(root, cache, topics=["screen"]))  # a config value
    misses(_built(root, cache, name="desktop"))  # another named config
    copy_episode(recordings / "episode_003.mcap", root)  # a recording added
    misses(_built(root, cache))
    (root / "episode_000.mcap").unlink()  # removed
    misses(_built(root, cache))
    synthesize_episode(root / "episode_001.mcap", SynthProfile(duration_s=3.0, seed=99))  # modified
    misses(_built(root, cache))


def test_code_hash_covers_the_library_code_that_decides_rows(tmp_path, monkeypatch):
    import owa_builders._registry as registry

    package = tmp_path / "owa_builders"
    shutil.copytree(registry._PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(registry, "_PACKAGE", package)
    before = code_hash("owa_events")
    (package / "media" / "unrelated.py").write_text("X = 1\n")
    assert code_hash("owa_events") == before  # code that cannot change event rows
    with open(package / "events" / "rate_limits.py", "a") as f:
        f.write("\n# a change\n")
    assert code_hash("owa_events") != before
    monkeypatch.undo()
    assert registered_packaged_module("owa_events") == (module_path("owa_events"), code_hash("owa_events"))


def test_num_proc_gives_identical_rows(recordings, tmp_path):
    one = load(recordings, "desktop", cache_dir=tmp_path / "one", test_size=1)
    two = load(recordings, "desktop", cache_dir=tmp_path / "two", test_size=1, num_proc=2)
    for split in ("train", "test"):
        assert table_rows(one[split]) == table_rows(two[split])
    assert owa_builders.read_accounting(one)["total"] == owa_builders.read_accounting(two)["total"]


def test_streaming_gives_the_same_rows(recordings, tmp_path):
    built = load(recordings, "desktop", cache_dir=tmp_path)
    streamed = load(recordings, "desktop", cache_dir=tmp_path / "s", streaming=True)
    assert [tuple(r.values()) for r in streamed["train"]] == table_rows(built["train"])


def test_bad_files_error_by_default_and_are_counted_when_skipped(recordings, tmp_path):
    root = tmp_path / "mixed"
    copy_episode(recordings / "episode_000.mcap", root)
    bad = copy_episode(recordings / "episode_001.mcap", root)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(TruncatedMcapError) as caught:
        load(root, cache_dir=tmp_path)
    assert caught.value.path == str(bad) and caught.value.problem.startswith("truncated")
    ds = load(root, cache_dir=tmp_path, on_bad_files="skip")
    assert ds["train"].unique("episode_path") == ["episode_000.mcap"]
    skipped = owa_builders.read_accounting(ds)["total"]["skipped_files"]
    assert [(s["path"], s["reason"]) for s in skipped] == [("episode_001.mcap", "truncated")]


def test_wheel_install_registers_the_builders(recordings, tmp_path):
    """A plain (non-editable) wheel must carry the builder modules where registration looks for them."""
    import subprocess
    import sys
    import sysconfig

    project = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(project)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("owa_builders-*.whl")
    # A fresh venv that sees this one's dependencies (but not its editable install of the project).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    script = (
        "import owa_builders, datasets\n"
        f"assert owa_builders.__file__.startswith({str(site)!r}), owa_builders.__file__\n"
        f"ds = datasets.load_dataset('owa_events', 'desktop', data_dir={str(recordings)!r}, cache_dir={str(tmp_path / 'c')!r})\n"
        "print(ds['train'].num_rows)\n"
    )
    result = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) > 0
