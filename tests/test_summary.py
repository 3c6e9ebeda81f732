"""Summaries of a recordings folder (every message counted, bad files reported one by one) and of built datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest
from recording_fixtures import MS, T0, key, screen, write_recording

import owa_builders
from owa_builders.metadata import DatasetMetadata, MetadataError
from owa_builders.summary import summarize_dataset, summarize_recordings
from owa_builders.synth import SynthProfile, synthesize_recordings

pytest_plugins = ["fsl_fixtures"]  # smolvlm_folder: a stand-in tokenizer


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """Two 2-second episodes and their ground truth."""
    root = tmp_path_factory.mktemp("recordings")
    return root, synthesize_recordings(root, episodes=2, profile=SynthProfile(duration_s=2.0, seed=11))


def test_every_message_is_counted_with_its_topic_rate_type_and_video(synthesized):
    root, manifests = synthesized
    summary = summarize_recordings(root)
    assert [episode.path for episode in summary.episodes] == [m.mcap_path.name for m in manifests]
    for episode, manifest in zip(summary.episodes, manifests, strict=True):
        assert {topic: stats.messages for topic, stats in episode.topics.items()} == manifest.message_counts
        assert episode.messages == sum(manifest.message_counts.values())
        assert episode.start_ns >= manifest.start_ns and episode.end_ns < manifest.end_ns
        assert episode.duration_s == pytest.approx(2.0, abs=0.05)
        assert episode.topics["screen"].rate_hz == pytest.approx(60, rel=0.03)
        assert episode.topics["mouse/raw"].rate_hz == pytest.approx(1000, rel=0.03)
        assert episode.topics["screen"].message_types == ["desktop/ScreenCaptured"]
        [video] = episode.media
        assert (video.uri, video.present, video.frames) == (manifest.video_uri, True, manifest.message_counts["screen"])
        assert Path(video.path) == manifest.video_path.resolve()
        assert episode.problem is None
    assert summary.bad_episodes == []
    text = summary.render()
    assert "2 episode(s)" in text and "episode_001.mcap" in text and "desktop/RawMouseEvent" in text
    assert json.loads(json.dumps(summary.to_dict()))["episodes"][0]["topics"]["screen"]["messages"] == 120


def test_each_bad_file_is_reported_with_its_problem_and_the_others_summarized(synthesized, tmp_path):
    root, manifests = synthesized
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(manifests[0].mcap_path, folder)
    shutil.copy(manifests[0].video_path, folder)
    (folder / "no_video").mkdir()
    shutil.copy(manifests[1].mcap_path, folder / "no_video")  # its video stays behind
    (folder / "truncated.mcap").write_bytes(manifests[1].mcap_path.read_bytes()[:4000])
    write_recording(folder / "backwards.mcap", [("screen", screen(0, "backwards.mkv"), T0 + 10 * MS),
                                                ("keyboard", key(65), T0 + 5 * MS)], video="backwards.mkv")

    summary = summarize_recordings(folder)
    problems = {episode.path: episode.problem and episode.problem.reason for episode in summary.episodes}
    assert problems == {"backwards.mcap": "time_goes_backwards", "episode_000.mcap": None,
                        "no_video/episode_001.mcap": "bad_media_reference", "truncated.mcap": "truncated"}
    by_path = {episode.path: episode for episode in summary.episodes}
    assert [(m.uri, m.present) for m in by_path["no_video/episode_001.mcap"].media] == [("episode_001.mkv", False)]
    assert by_path["no_video/episode_001.mcap"].messages == sum(manifests[1].message_counts.values())
    assert by_path["episode_000.mcap"].messages == sum(manifests[0].message_counts.values())
    text = summary.render()
    assert "3 with a problem" in text and "MISSING" in text
    for path, reason in problems.items():
        if reason:
            assert f"{path} [{reason}]" in text


def test_no_recordings_is_an_error_naming_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no \\*.mcap recordings"):
        summarize_recordings(tmp_path)


def test_dataset_summary_has_rows_accounting_and_for_fsl_fill_and_tokenizer(synthesized, smolvlm_folder, tmp_path):
    root, _ = synthesized
    cache = str(tmp_path / "cache")
    events = datasets.load_dataset("owa_events", "desktop", data_dir=str(root), cache_dir=cache, test_size=1)
    owa_builders.save_to_disk(events, tmp_path / "events")
    for summary in (summarize_dataset(events), summarize_dataset(tmp_path / "events")):
        assert (summary.builder, summary.config, summary.version) == ("owa_events", "desktop", "1.1.0")
        assert summary.rows == {"train": events["train"].num_rows, "test": events["test"].num_rows}
        assert summary.accounting == owa_builders.read_accounting(events)
        assert summary.fill is None and summary.recordings_root == str(root)
    text = summarize_dataset(tmp_path / "events").render()
    assert "owa_events/desktop, version 1.1.0" in text and "TOTAL" in text and "rate_limit" in text

    fsl = datasets.load_dataset("owa_fsl", "smolvlm2", data_dir=str(tmp_path / "events"), cache_dir=cache,
                                tokenizer=str(smolvlm_folder))
    summary = summarize_dataset(fsl)
    metadata = owa_builders.read_dataset_metadata(fsl)
    assert summary.fill == metadata.fill and summary.tokenizer["source"] == str(smolvlm_folder)
    assert summary.events["config"] == "desktop"
    text = summary.render()
    assert f"fill: train {metadata.fill['splits']['train']['fill']:.1%}" in text and "STAND-IN" in text
    assert "accounting of the events it was built from (owa_events/desktop)" in text
    assert json.loads(json.dumps(summary.to_dict()))["rows"] == {name: split.num_rows for name, split in fsl.items()}


def test_a_folder_that_is_no_dataset_is_an_error(synthesized):
    root, _ = synthesized
    with pytest.raises(FileNotFoundError, match="neither a `Dataset` directory nor a `DatasetDict` directory"):
        summarize_dataset(root)


def test_odd_files_and_hostile_uris_are_reported_not_raised(tmp_path):
    write_recording(tmp_path / "good.mcap", [("keyboard", key(65), T0)])
    (tmp_path / "dangling.mcap").symlink_to(tmp_path / "nowhere.mcap")
    write_recording(tmp_path / "bad_uri.mcap", [("screen", screen(0, uri="video\n.mkv"), T0)], video=None)
    summary = summarize_recordings(tmp_path)
    problems = {episode.path: (episode.problem.reason if episode.problem else None) for episode in summary.episodes}
    assert problems == {"good.mcap": None, "dangling.mcap": "dangling_symlink", "bad_uri.mcap": "bad_media_reference"}
    bad_uri = next(episode for episode in summary.episodes if episode.path == "bad_uri.mcap")
    assert [(m.uri, m.path, m.present) for m in bad_uri.media] == [("video\n.mkv", None, None)]
    assert "dangling.mcap [dangling_symlink]" in summary.render()


def test_owa_dataset_json_is_a_versioned_record_refused_when_newer_or_malformed(tmp_path):
    fields = {"builder": "owa_events", "config": "desktop", "version": "1.1.0", "settings": {},
              "recordings_root": None, "accounting": {"splits": {}, "total": {}}}
    DatasetMetadata(**fields).write(tmp_path)
    assert DatasetMetadata.read(tmp_path) == DatasetMetadata(**fields)
    assert json.loads((tmp_path / "owa_dataset.json").read_text())["format_version"] == 1
    for content, problem in [
        (fields | {"format_version": 99}, "format_version 99 is newer than this owa-builders reads"),
        ({k: v for k, v in fields.items() if k != "accounting"}, r"missing entries \['accounting'\]"),
        (fields | {"settings": []}, r"entries of the wrong type \['settings'\]"),
        (fields | {"tokenizer_folder": "x"}, r"unknown entries \['tokenizer_folder'\]"),
        ([fields], "not a JSON object"),
    ]:
        (tmp_path / "owa_dataset.json").write_text(json.dumps(content))
        with pytest.raises(MetadataError, match=rf"^{tmp_path}/owa_dataset.json: {problem}"):
            DatasetMetadata.read(tmp_path)
    (tmp_path / "owa_dataset.json").write_text("{")
    with pytest.raises(MetadataError, match=r"owa_dataset.json: not JSON"):
        DatasetMetadata.read(tmp_path / "owa_dataset.json")
