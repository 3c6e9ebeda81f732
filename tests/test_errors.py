"""Errors a user can act on: our own typed error whatever num_proc, from load_dataset, the builder and the CLI;
folder mistakes named; odd files met when read (never while the builder is set up)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from recording_fixtures import copy_episode, write_recording

import owa_builders
from owa_builders.cli import main as cli_main
from owa_builders.recordings.errors import (
    DanglingSymlinkError,
    IsADirectoryRecordingError,
    NoMessagesError,
    NoRecordingsError,
    RecordingsFolderError,
    SpecialFileError,
    TruncatedMcapError,
)
from owa_builders.synth import SynthProfile, synthesize_recordings


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("good")
    synthesize_recordings(root, episodes=3, profile=SynthProfile(duration_s=2.0, seed=4, video=False))
    for mcap in root.glob("*.mcap"):
        (root / f"{mcap.stem}.mkv").write_bytes(b"")  # referenced, never opened during conversion
    return root


@pytest.fixture(scope="module")
def with_truncated(good, tmp_path_factory) -> tuple[Path, Path]:
    """Three episodes, the middle one cut in half: (folder, the bad file)."""
    root = tmp_path_factory.mktemp("with_truncated")
    for mcap in sorted(good.glob("*.mcap")):
        copy_episode(mcap, root)
    bad = root / "episode_001.mcap"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    return root, bad


def expect_truncated(caught: pytest.ExceptionInfo, bad: Path) -> None:
    assert caught.type is TruncatedMcapError
    assert caught.value.path == str(bad) and caught.value.problem.startswith("truncated: ")
    assert str(caught.value) == f"{bad}: {caught.value.problem}"  # the traceback's last line


STAGES = [("owa_events", "default"), ("owa_binned", "10fps")]  # stage 1, and a later stage from recordings


@pytest.mark.parametrize("num_proc", [1, 2])
@pytest.mark.parametrize(("builder", "config"), STAGES)
def test_load_dataset_raises_our_error_whatever_num_proc(with_truncated, tmp_path, builder, config, num_proc):
    root, bad = with_truncated
    with pytest.raises(TruncatedMcapError) as caught:
        datasets.load_dataset(builder, config, data_dir=str(root), cache_dir=str(tmp_path), num_proc=num_proc)
    expect_truncated(caught, bad)
    assert not list(tmp_path.rglob("*.arrow"))  # nothing half-built is left to be taken for a cache hit


@pytest.mark.parametrize("num_proc", [1, 2])
@pytest.mark.parametrize(("builder", "config"), STAGES)
def test_download_and_prepare_raises_our_error_whatever_num_proc(with_truncated, tmp_path, builder, config, num_proc):
    root, bad = with_truncated
    stage = owa_builders.builder_class(builder)(config_name=config, data_dir=str(root), cache_dir=str(tmp_path))
    with pytest.raises(TruncatedMcapError) as caught:
        stage.download_and_prepare(num_proc=num_proc)
    expect_truncated(caught, bad)


def cli_error(capsys, *argv: str) -> str:
    """Run the CLI; it must exit 1 with exactly one line on stderr after any progress bars, and no traceback."""
    assert cli_main(["build", *argv, "-q"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("num_proc", ["1", "2"])
@pytest.mark.parametrize(("builder", "config"), STAGES)
def test_cli_prints_one_line_naming_the_file_and_the_problem(with_truncated, tmp_path, capsys, builder, config,
                                                             num_proc):
    root, bad = with_truncated
    line = cli_error(capsys, builder, "--name", config, "--data-dir", str(root), "--cache-dir", str(tmp_path),
                     "--num-proc", num_proc)
    assert line.startswith(f"owa-builders: error: {bad}: truncated: ")


def test_cli_debug_shows_the_traceback(with_truncated, tmp_path):
    root, bad = with_truncated
    with pytest.raises(TruncatedMcapError):
        cli_main(["build", "owa_events", "--name", "default", "--data-dir", str(root), "--cache-dir", str(tmp_path),
                  "-q", "--debug"])


def write_empty_recordings(root: Path) -> Path:
    write_recording(root / "a.mcap", [])
    write_recording(root / "sub" / "b.mcap", [])
    return root


@pytest.mark.parametrize("builder, config", STAGES)
def test_folder_mistakes_are_named(tmp_path, capsys, builder, config):
    missing, a_file, empty = tmp_path / "missing", tmp_path / "a_file.mcap", tmp_path / "empty"
    a_file.write_bytes(b"")
    empty.mkdir()
    (empty / "notes.txt").write_text("no recording here")
    cases = [
        (missing, RecordingsFolderError, "recordings folder does not exist"),
        (a_file, RecordingsFolderError, "recordings folder is a file, not a folder"),
        (empty, NoRecordingsError, "holds no recordings" if builder == "owa_events" else "holds neither recordings"),
        (write_empty_recordings(tmp_path / "no_messages"), NoMessagesError, "its recordings hold no messages"),
    ]
    for folder, error_type, problem in cases:
        with pytest.raises(error_type) as caught:
            datasets.load_dataset(builder, config, data_dir=str(folder), cache_dir=str(tmp_path / "cache"))
        assert caught.type is error_type
        assert caught.value.path == str(folder) and caught.value.problem.startswith(problem), caught.value
        line = cli_error(capsys, builder, "--name", config, "--data-dir", str(folder),
                         "--cache-dir", str(tmp_path / "cache"))
        assert line == f"owa-builders: error: {caught.value}"


def test_a_build_that_keeps_no_row_says_why(good, tmp_path):
    with pytest.raises(ValueError) as caught:
        datasets.load_dataset("owa_events", "default", data_dir=str(good), cache_dir=str(tmp_path), topics=["nothing"])
    assert caught.type is ValueError
    assert str(caught.value).startswith(f"{good}: owa_events/default keeps no row: all ")
    assert "were dropped (topic_filter " in str(caught.value)


def test_odd_files_are_met_when_read_and_follow_on_bad_files(good, tmp_path):
    root = tmp_path / "odd"
    copy_episode(good / "episode_000.mcap", root)
    (root / "dangling.mcap").symlink_to(root / "gone.mcap")
    (root / "folder.mcap").mkdir()
    os.mkfifo(root / "fifo.mcap")
    # Set up (listing and the cache key) without raising; the first odd file read fails the build...
    builder = owa_builders.builder_class("owa_events")(config_name="default", data_dir=str(root),
                                                       cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DanglingSymlinkError) as caught:
        builder.download_and_prepare()
    assert caught.value.path == str(root / "dangling.mcap") and "does not exist" in caught.value.problem
    # ...and under skip each is skipped, counted with its reason.
    ds = datasets.load_dataset("owa_events", "default", data_dir=str(root), cache_dir=str(tmp_path / "cache"),
                               on_bad_files="skip", num_proc=2)
    assert ds["train"].unique("episode_path") == ["episode_000.mcap"]
    skipped = owa_builders.read_accounting(ds)["total"]["skipped_files"]
    assert sorted((s["path"], s["reason"]) for s in skipped) == [
        ("dangling.mcap", DanglingSymlinkError.reason), ("fifo.mcap", SpecialFileError.reason),
        ("folder.mcap", IsADirectoryRecordingError.reason)]


def test_an_unsupported_datasets_version_stops_the_tests_with_one_clear_message(tmp_path):
    from owa_builders.datasets_adapter import supported_datasets_problem

    assert supported_datasets_problem() is None
    problem = supported_datasets_problem("4.0.0")
    assert re.match(r"datasets 4\.0\.0 is installed, but owa-builders supports datasets(<5\.3,>=5\.2|>=5\.2,<5\.3) ", problem)
    # The suite itself, as run under that version: conftest stops it before any test, with that message.
    tests = Path(__file__).parent
    script = ("import importlib.metadata as m, sys, pytest\n"
              "real = m.version\n"
              "m.version = lambda name: '4.0.0' if name == 'datasets' else real(name)\n"
              f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {str(tests / 'test_errors.py')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [f"Exit: owa-builders tests cannot run: {problem}"]
