"""YAML config files, their version lock, and the owa-builders command."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from hub_server import HubServer
from mcap.reader import make_reader
from PIL import Image

import owa_builders
from owa_builders import cli, config_files
from owa_builders.config_files import (
    UPDATE_LOCK_COMMAND,
    lock_entries,
    lock_entry,
    lock_problems,
    named_config,
    named_configs_from_files,
    read_config_file,
    read_lock,
    settings_fields,
)
from owa_builders.synth import SynthProfile, synthesize_recordings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LOCK = CONFIGS / "versions.lock.json"
STAND_IN_OF_PATTERN = {"internvl": "internvl_folder", "smolvlm": "smolvlm_folder"}  # fixtures of fsl_fixtures
pytest_plugins = ["fsl_fixtures"]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    synthesize_recordings(root, episodes=2, profile=SynthProfile(duration_s=2.0, seed=5))
    return root


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_each_yaml_builds_its_named_config(path, recordings, tmp_path, request):
    config_file = read_config_file(path)
    builder, named = config_file.builder, named_config(config_file.builder, config_file.name)
    # offline, the fsl configs load a stand-in of their model's tokenizer; the YAML keeps the Hub name
    offline = {"tokenizer": str(request.getfixturevalue(STAND_IN_OF_PATTERN[named.image_pattern]))} if (
        builder == "owa_fsl") else {}
    built = datasets.load_dataset(**config_file.load_dataset_kwargs() | offline, data_dir=str(recordings),
                                  cache_dir=str(tmp_path / "yaml"))
    direct = datasets.load_dataset(builder, config_file.name, **offline, data_dir=str(recordings),
                                   cache_dir=str(tmp_path / "named"))
    assert built["train"].num_rows > 0
    assert built["train"].to_list() == direct["train"].to_list()


def test_named_configs_are_read_from_their_yaml_files_only(tmp_path):
    config_class = owa_builders.builder_class("owa_events").BUILDER_CONFIG_CLASS
    (tmp_path / "events_quiet.yaml").write_text(
        'builder: owa_events\nname: quiet\nversion: 2.0.0\ndescription: "Keyboard only."\ntopics: [keyboard]\n')
    (tmp_path / "fsl_other.yaml").write_text("builder: owa_fsl\nname: other\n")  # another builder's: not read
    [quiet] = named_configs_from_files("owa_events", config_class, tmp_path)
    assert (quiet.name, str(quiet.version), quiet.description, quiet.topics) == ("quiet", "2.0.0", "Keyboard only.", ["keyboard"])
    (tmp_path / "events_typo.yaml").write_text('builder: owa_events\nname: typo\nversion: 1.0.0\ndescription: "x"\ntopic: [a]\n')
    with pytest.raises(ValueError, match=r"configs/events_typo.yaml: .*unknown fields: \['topic'\]"):
        named_configs_from_files("owa_events", config_class, tmp_path)


def test_the_version_lock_matches_the_named_configs():
    assert lock_problems(read_lock(LOCK)) == []


def test_changed_values_need_a_new_version_and_a_refreshed_lock():
    locked = read_lock(LOCK)
    changed = dataclasses.replace(named_config("owa_binned", "10fps"), fps=12)
    version = changed.version
    current = lock_entries() | {"owa_binned/10fps": lock_entry("owa_binned", changed)}
    [problem] = lock_problems(locked, current)
    assert problem.startswith(f"owa_binned/10fps: its values changed but its version ({version}) did not")
    assert "configs/binned_10fps.yaml" in problem and "builders/" not in problem  # one place to bump
    assert UPDATE_LOCK_COMMAND in problem
    changed.version = datasets.Version(f"{version.major}.{version.minor + 1}.0")
    current["owa_binned/10fps"] = lock_entry("owa_binned", changed)
    assert lock_problems(locked, current) == [
        f"owa_binned/10fps: version {changed.version}, the lock says {version}; refresh it: {UPDATE_LOCK_COMMAND}"]


def test_the_lock_command_writes_the_lock_and_refuses_an_unbumped_change(tmp_path, capsys):
    assert config_files.main(["--update-lock", "--lock", str(tmp_path / "fresh.json")]) == 0
    assert read_lock(tmp_path / "fresh.json") == read_lock(LOCK)
    stale = read_lock(LOCK)
    stale["owa_events/desktop"]["values_hash"] = "0" * 16  # as if desktop's values changed since
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    capsys.readouterr()
    assert config_files.main(["--lock", str(tmp_path / "stale.json")]) == 1
    assert "owa_events/desktop: its values changed" in capsys.readouterr().err
    assert config_files.main(["--update-lock", "--lock", str(tmp_path / "stale.json")]) == 1
    refused = capsys.readouterr().err
    assert "owa_events/desktop" in refused and "bump it" in refused
    assert read_lock(tmp_path / "stale.json") == stale
    assert config_files.main(["--update-lock", "--force", "--lock", str(tmp_path / "stale.json")]) == 0
    assert read_lock(tmp_path / "stale.json") == read_lock(LOCK)


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


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "owa_builders.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


def png_size(path: Path) -> tuple[int, int]:
    assert path.stat().st_size > 15_000  # more than a blank canvas
    with Image.open(path) as image:
        return image.size


def timeline_size(episode: Path) -> tuple[int, int]:
    """A timeline's pixels: title, legend and axis, and a lane per topic of the episode."""
    with open(episode, "rb") as f:
        topics = {channel.topic for channel in make_reader(f).get_summary().channels.values()}
    return 1300, 190 + 62 * len(topics)


def test_cli_build_saves_the_dataset_with_its_metadata(recordings, tmp_path):
    out = tmp_path / "events"
    result = run_cli("build", "--config", str(CONFIGS / "events_desktop.yaml"), "--data-dir", str(recordings),
                     "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"), "--set", "test_size=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"owa_events/desktop, version {named_config('owa_events', 'desktop').version}" in result.stdout and "rows: train" in result.stdout
    assert ", test " in result.stdout and "TOTAL" in result.stdout
    saved = datasets.load_from_disk(str(out))
    assert set(saved) == {"train", "test"} and owa_builders.read_dataset_metadata(saved).config == "desktop"


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


def cli_help(*args: str, capsys) -> str:
    """What `owa-builders ARGS --help` prints (it exits 0)."""
    with pytest.raises(SystemExit) as exit_:
        cli.main([*args, "--help"])
    assert exit_.value.code == 0, args
    return capsys.readouterr().out


def test_cli_help_teaches_each_command_with_examples(tmp_path, capsys):
    overview = run_cli("--help", cwd=tmp_path)
    assert overview.returncode == 0 and "exit codes" in overview.stdout
    for command in ("build", "summary", "push"):
        assert f"owa-builders {command}" in overview.stdout
    for command in (["build"], ["summary", "recordings"], ["summary", "dataset"], ["push"]):
        assert "examples:" in cli_help(*command, capsys=capsys), command
    for command in ("synth", "demo"):  # their own parsers answer
        assert "--episodes" in cli_help(command, capsys=capsys)
    assert run_cli("summary", cwd=tmp_path).returncode == 2
    assert run_cli("nosuch", cwd=tmp_path).returncode == 2


def test_cli_builds_the_three_stages_like_the_seed_and_summarizes_them(recordings, smolvlm_folder, tmp_path):
    """The README's quick start: events from recordings, fsl and binned from the saved event dataset."""
    cache = ["--cache-dir", str(tmp_path / "cache"), "--quiet"]
    steps = {
        "events": ["--config", str(CONFIGS / "events_desktop.yaml"), "--data-dir", str(recordings)],
        "fsl": ["--config", str(CONFIGS / "fsl_smolvlm2.yaml"), "--data-dir", str(tmp_path / "events"),
                "--set", f"tokenizer={smolvlm_folder}"],
        "binned": ["--config", str(CONFIGS / "binned_10fps.yaml"), "--data-dir", str(tmp_path / "events"),
                   "--set", "filter_empty_actions=true"],
    }
    for stage, args in steps.items():
        result = run_cli("build", *args, "--output-dir", str(tmp_path / stage), *cache, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "%|" not in result.stderr  # --quiet: no progress bars

    summary = run_cli("summary", "dataset", str(tmp_path / "fsl"), "--plot", str(tmp_path / "plots"), cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    assert f"owa_fsl/smolvlm2, version {named_config('owa_fsl', 'smolvlm2').version}" in summary.stdout and "fill: train" in summary.stdout
    assert "accounting of the events it was built from (owa_events/desktop)" in summary.stdout
    assert png_size(tmp_path / "plots" / "fsl_row_train_0.png") == (1300, 433)
    assert png_size(tmp_path / "plots" / "timeline_episode_000.png") == timeline_size(recordings / "episode_000.mcap")
    as_json = run_cli("summary", "dataset", str(tmp_path / "binned"), "--json", cwd=tmp_path)
    binned = json.loads(as_json.stdout)
    assert (binned["builder"], binned["config"], binned["settings"]["filter_empty_actions"]) == (
        "owa_binned", "10fps", True)
    assert binned["rows"] == {"train": datasets.load_from_disk(str(tmp_path / "binned"))["train"].num_rows}
    assert binned["events"]["config"] == "desktop"

    out_of_range = run_cli("summary", "dataset", str(tmp_path / "fsl"), "--plot", str(tmp_path), "--row", "999",
                           cwd=tmp_path)
    assert out_of_range.returncode == 1 and "row 999 is out of range" in out_of_range.stderr
    not_a_dataset = run_cli("summary", "dataset", str(recordings), cwd=tmp_path)
    assert not_a_dataset.returncode == 1 and str(recordings) in not_a_dataset.stderr


def test_cli_summarizes_recordings_and_draws_their_timelines(recordings, tmp_path):
    result = run_cli("summary", "recordings", str(recordings), "--events-config", str(CONFIGS / "events_desktop.yaml"),
                     "--plot", str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 episode(s)" in result.stdout and "0 with a problem" in result.stdout
    assert "desktop/ScreenCaptured" in result.stdout and "episode_000.mkv (120 frames)" in result.stdout
    for episode in ("episode_000", "episode_001"):
        assert png_size(tmp_path / "plots" / f"timeline_{episode}.png") == timeline_size(recordings / f"{episode}.mcap")
    as_json = json.loads(run_cli("summary", "recordings", str(recordings), "--json", "-q", cwd=tmp_path).stdout)
    assert [e["path"] for e in as_json["episodes"]] == ["episode_000.mcap", "episode_001.mcap"]
    assert as_json["episodes"][0]["topics"]["screen"]["rate_hz"] == pytest.approx(60, rel=0.03)

    missing = run_cli("summary", "recordings", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 1 and "nowhere" in missing.stderr
    no_config = run_cli("summary", "recordings", str(recordings), "--events-config", "nosuch", cwd=tmp_path)
    assert no_config.returncode == 1 and "'nosuch' is none of owa_events's named configs" in no_config.stderr


def test_cli_reports_every_bad_recording_and_exits_1(recordings, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("episode_000.mcap", "episode_000.mkv", "episode_001.mcap"):  # episode_001's video is missing
        (folder / name).write_bytes((recordings / name).read_bytes())
    (folder / "broken.mcap").write_bytes(b"not an mcap at all")
    result = run_cli("summary", "recordings", str(folder), "--plot", str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 1
    assert "broken.mcap [corrupt_mcap]: not an MCAP file" in result.stdout
    assert "episode_001.mcap [bad_media_reference]: screen media 'episode_001.mkv' is missing" in result.stdout
    assert "2 recording(s) with a problem" in result.stderr
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["timeline_episode_000.png"]  # the good one


def test_cli_pushes_a_saved_dataset_to_the_hub(recordings, tmp_path):
    assert run_cli("push", cwd=tmp_path).returncode == 2
    missing = run_cli("push", str(tmp_path / "nowhere"), "tester/events", cwd=tmp_path)
    assert missing.returncode == 1 and "nowhere" in missing.stderr
    events = datasets.load_dataset("owa_events", "desktop", data_dir=str(recordings), cache_dir=str(tmp_path / "c"))
    owa_builders.save_to_disk(events, tmp_path / "events")
    with HubServer(tmp_path / "hub") as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
               "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_CACHE": str(tmp_path / "hub_cache")}
        result = run_cli("push", str(tmp_path / "events"), "tester/events", "--config-name", "desk", "--private",
                         "--token", hub.token, "-q", cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
        assert "tester/events" in result.stdout and "desk" in result.stdout
        files = {entry["path"] for entry in hub.tree("tester/events", "main", "", recursive=True)}
    assert {"README.md", "desk/owa_dataset.json", "desk/media/episode_000.mkv"} <= files
    assert any(path.startswith("desk/data/train-") for path in files)
