"""YAML config files and the owa-builders command."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

import owa_builders
from owa_builders.config_files import read_config_file, settings_fields
from owa_builders.synth import SynthProfile, synthesize_recordings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    synthesize_recordings(root, episodes=2, profile=SynthProfile(duration_s=2.0, seed=5))
    return root


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("events_*.yaml")), ids=lambda p: p.name)
def test_each_yaml_equals_the_named_config_and_builds(path, recordings, tmp_path):
    config_file = read_config_file(path)
    named = {c.name: c for c in owa_builders.builder_class(config_file.builder).BUILDER_CONFIGS}[config_file.name]
    for field in settings_fields(config_file.builder):
        expected = getattr(named, field)
        assert config_file.values.get(field, expected) == expected, field
    assert config_file.version == str(named.version)
    built = datasets.load_dataset(**config_file.load_dataset_kwargs(), data_dir=str(recordings), cache_dir=str(tmp_path))
    direct = datasets.load_dataset(config_file.builder, config_file.name, data_dir=str(recordings), cache_dir=str(tmp_path / "d"))
    assert built["train"].to_list() == direct["train"].to_list()


def test_yaml_overrides_fields_and_refuses_unknown_ones(recordings, tmp_path):
    override = tmp_path / "screen_only.yaml"
    override.write_text("builder: owa_events\nname: desktop\ntopics: [screen]\nrate_limits: {screen: {hz: 5}}\n")
    ds = datasets.load_dataset(**read_config_file(override).load_dataset_kwargs(), data_dir=str(recordings), cache_dir=str(tmp_path))
    assert ds["train"].unique("topic") == ["screen"]
    assert ds["train"].num_rows <= 2 * (5 * 2 + 1)
    typo = tmp_path / "typo.yaml"
    typo.write_text("builder: owa_events\nname: desktop\ntopic: [screen]\n")
    with pytest.raises(ValueError, match="unknown fields \\['topic'\\]"):
        read_config_file(typo)
    with pytest.raises(ValueError, match="named configs"):
        typo.write_text("builder: owa_events\nname: nosuch\n")
        read_config_file(typo)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "owa_builders.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_build_saves_the_dataset_with_its_metadata(recordings, tmp_path):
    out = tmp_path / "events"
    result = run_cli("build", "--config", str(CONFIGS / "events_desktop.yaml"), "--data-dir", str(recordings),
                     "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"), "--set", "test_size=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "train:" in result.stdout and "test:" in result.stdout and "TOTAL" in result.stdout
    saved = datasets.load_from_disk(str(out))
    assert set(saved) == {"train", "test"} and owa_builders.read_dataset_metadata(saved)["config"] == "desktop"


def test_cli_names_the_bad_file_and_exits_1(recordings, tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "broken.mcap").write_bytes(b"not an mcap at all")
    result = run_cli("build", "owa_events", "--name", "default", "--data-dir", str(root),
                     "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert result.returncode == 1
    assert "broken.mcap" in result.stderr and "MCAP" in result.stderr
    usage = run_cli("build", "--data-dir", str(root), cwd=tmp_path)
    assert usage.returncode == 2


def test_builder_config_fields_are_the_settings_fields():
    from owa_builders.events.settings import EventsSettings

    assert settings_fields("owa_events") == [f.name for f in dataclasses.fields(EventsSettings)]
