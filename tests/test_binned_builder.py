"""The owa_binned builder through datasets: from recordings and from event datasets, configs, caching, num_proc."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import orjson
import pytest
import torch
from owa.core import MESSAGES
from owa.msgs.desktop.mouse import MouseEvent
from recording_fixtures import MS, T0, copy_episode, key, move, screen, write_recording

import owa_builders
from owa_builders.binned.actions import ACTION_VECTOR_LENGTH, action_vector_layout
from owa_builders.media.transforms import BinnedTransform
from owa_builders.recordings.errors import NoRecordingsError, TruncatedMcapError
from owa_builders.synth import EpisodeManifest, SynthProfile, synthesize_episode, synthesize_recordings

ACTION_TOPICS = {"keyboard", "mouse/raw", "mouse"}


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory) -> tuple[Path, list[EpisodeManifest]]:
    root = tmp_path_factory.mktemp("recordings")
    return root, synthesize_recordings(root, episodes=3, profile=SynthProfile(duration_s=6.0, seed=1))


@pytest.fixture(scope="module")
def recordings(synthesized) -> Path:
    return synthesized[0]


def load(builder, data_dir, name, cache_dir, **kwargs):
    return datasets.load_dataset(builder, name, data_dir=str(data_dir), cache_dir=str(cache_dir), **kwargs)


def table_rows(dataset) -> list[tuple]:
    return [tuple(row.values()) for row in dataset.to_list()]


def test_from_recordings_every_action_is_in_exactly_one_bin(recordings, tmp_path):
    binned = load("owa_binned", recordings, "10fps", tmp_path)["train"]
    events = load("owa_events", recordings, "desktop", tmp_path)["train"]  # the build binned used (cache hit)
    assert binned.features["bin_idx"].dtype == "int32"
    assert binned.unique("episode_path") == events.unique("episode_path")
    for path in events.unique("episode_path"):
        episode = events.filter(lambda row, path=path: row["episode_path"] == path)
        bins = binned.filter(lambda row, path=path: row["episode_path"] == path)
        actions = [(t, ts, m) for t, ts, m in zip(episode["topic"], episode["timestamp_ns"], episode["mcap_message"])
                   if t in ACTION_TOPICS]
        assert [(t, ts, m) for row in bins for t, ts, m in
                zip(row["action_topics"], row["action_timestamps_ns"], row["actions"])] == actions
        start = min(episode["timestamp_ns"])
        assert bins["bin_idx"] == list(range(len(bins)))  # every bin, gaps included
        assert bins["timestamp_ns"] == [start + i * 100 * MS for i in range(len(bins))]
        assert sum(len(state) for state, carried in zip(bins["state"], bins["state_carried"]) if not carried) == \
            episode["topic"].count("screen")
    metadata = owa_builders.read_dataset_metadata(binned)
    assert metadata.recordings_root == str(recordings)
    assert metadata.events["config"] == "desktop"
    assert metadata.message_types == {"keyboard": "desktop/KeyboardEvent", "mouse/raw": "desktop/RawMouseEvent",
                                         "screen": "desktop/ScreenCaptured"}
    accounting = metadata.accounting["total"]
    assert accounting["totals"]["read"] == accounting["totals"]["kept"] == events.num_rows


def test_named_configs_set_the_bin_width(recordings, tmp_path):
    spans = {}  # episode -> (first, last) event time
    for row in load("owa_events", recordings, "desktop", tmp_path)["train"]:
        first, _ = spans.get(row["episode_path"], (row["timestamp_ns"], None))
        spans[row["episode_path"]] = (first, row["timestamp_ns"])
    assert [c.name for c in owa_builders.builder_class("owa_binned").BUILDER_CONFIGS] == ["5fps", "10fps", "20fps"]
    for fps in (5, 10, 20):
        binned = load("owa_binned", recordings, f"{fps}fps", tmp_path)["train"]
        expected = sum((last - first) * fps // 10**9 + 1 for first, last in spans.values())
        assert binned.num_rows == expected, fps


def test_filter_empty_actions_keeps_bins_with_actions_and_counts_the_rest(recordings, tmp_path):
    keyboard_only = {"topics": ["screen", "keyboard"]}  # desktop's 20 Hz mouse moves would fill every bin
    every = load("owa_binned", recordings, "10fps", tmp_path, events_overrides=keyboard_only)["train"]
    filtered = load("owa_binned", recordings, "10fps", tmp_path, events_overrides=keyboard_only,
                    filter_empty_actions=True)
    rows = filtered["train"]
    assert all(rows["actions"]) and 0 < rows.num_rows == sum(1 for actions in every["actions"] if actions) < every.num_rows
    screen = owa_builders.read_accounting(filtered)["total"]["topics"]["screen"]
    assert screen["dropped"]["bin_without_actions"] > 0
    assert screen["read"] == screen["kept"] + screen["dropped"]["bin_without_actions"]


def test_hand_made_recording_gives_exact_rows(tmp_path):
    """100 ms bins from the first event (a key press at 0): a screen at 250 carried into 300-400, mouse at 320."""
    write_recording(tmp_path / "rec" / "ep.mcap", [
        ("keyboard", key(65), T0),
        ("screen", screen(250 * MS), T0 + 250 * MS),
        ("mouse/raw", move(3, -2), T0 + 320 * MS),
    ])
    dataset = load("owa_binned", tmp_path / "rec", "10fps", tmp_path / "cache", events_config="default")
    rows = dataset["train"].to_list()
    assert [(r["bin_idx"], r["timestamp_ns"] - T0, r["state_carried"], r["action_topics"]) for r in rows] == [
        (0, 0, False, ["keyboard"]), (1, 100 * MS, False, []), (2, 200 * MS, False, []), (3, 300 * MS, True, ["mouse/raw"])]
    assert [r["state_timestamps_ns"] for r in rows] == [[], [], [T0 + 250 * MS], [T0 + 250 * MS]]
    types = owa_builders.read_dataset_metadata(dataset).message_types

    def decode(topic, payload):
        return MESSAGES[types[topic]].model_validate_json(payload)

    assert decode("keyboard", rows[0]["actions"][0]).vk == 65
    assert decode("mouse/raw", rows[3]["actions"][0]).last_x == 3
    assert decode("screen", rows[3]["state"][0]).media_ref.pts_ns == 250 * MS


def test_event_dataset_on_disk_gives_the_rows_of_the_recordings(recordings, tmp_path):
    from_recordings = load("owa_binned", recordings, "10fps", tmp_path)
    events = load("owa_events", recordings, "desktop", tmp_path)
    saved = tmp_path / "saved"
    owa_builders.save_to_disk(events, saved)  # keeps owa_dataset.json (the recordings' root) with the rows
    from_saved = load("owa_binned", saved, "10fps", tmp_path)
    assert table_rows(from_saved["train"]) == table_rows(from_recordings["train"])
    assert owa_builders.read_dataset_metadata(from_saved).recordings_root == str(recordings)
    parquet = tmp_path / "parquet"
    events["train"].to_parquet(str(parquet / "train.parquet"))
    from_parquet = load("owa_binned", parquet, "10fps", tmp_path)
    assert table_rows(from_parquet["train"]) == table_rows(from_recordings["train"])
    assert owa_builders.read_dataset_metadata(from_parquet).recordings_root is None  # no sidecar: unknown


def test_splits_follow_the_events_and_num_proc_gives_identical_rows(recordings, tmp_path):
    one = load("owa_binned", recordings, "10fps", tmp_path / "one", events_overrides={"test_size": 1})
    two = load("owa_binned", recordings, "10fps", tmp_path / "two", events_overrides={"test_size": 1}, num_proc=2)
    assert set(one) == {"train", "test"} and len(one["test"].unique("episode_path")) == 1
    for split in ("train", "test"):
        assert table_rows(one[split]) == table_rows(two[split])
    assert owa_builders.read_accounting(one) == owa_builders.read_accounting(two)


def test_streaming_gives_the_same_rows(recordings, tmp_path):
    built = load("owa_binned", recordings, "10fps", tmp_path)
    streamed = load("owa_binned", recordings, "10fps", tmp_path / "s", streaming=True)
    assert [tuple(r.values()) for r in streamed["train"]] == table_rows(built["train"])


def _built(data_dir, cache_dir, **kwargs):
    builder = owa_builders.builder_class("owa_binned")(config_name="10fps", data_dir=str(data_dir),
                                                       cache_dir=str(cache_dir), **kwargs)
    builder.download_and_prepare()
    return builder


def test_cache_hits_on_repeat_and_misses_after_a_change(recordings, tmp_path):
    root = tmp_path / "recordings"
    for index in range(2):
        copy_episode(recordings / f"episode_{index:03d}.mcap", root)
    first = _built(root, tmp_path / "cache")
    arrow_files = sorted(Path(first.cache_dir).glob("*.arrow"))
    stamps = [f.stat().st_mtime_ns for f in arrow_files]
    again = _built(root, tmp_path / "cache")
    assert again.cache_dir == first.cache_dir and [f.stat().st_mtime_ns for f in arrow_files] == stamps
    seen = {first.cache_dir}
    for builder in (
        _built(root, tmp_path / "cache", filter_empty_actions=True),  # a binned setting
        _built(root, tmp_path / "cache", events_overrides={"topics": ["screen", "keyboard"]}),  # an events setting
    ):
        assert builder.cache_dir not in seen
        seen.add(builder.cache_dir)
    synthesize_episode(root / "episode_001.mcap", SynthProfile(duration_s=3.0, seed=99))  # a recording modified
    assert _built(root, tmp_path / "cache").cache_dir not in seen


def test_bad_recordings_follow_on_bad_files_and_are_listed(recordings, tmp_path):
    root = tmp_path / "mixed"
    copy_episode(recordings / "episode_000.mcap", root)
    bad = copy_episode(recordings / "episode_001.mcap", root)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(TruncatedMcapError, match=r"episode_001\.mcap: truncated"):
        load("owa_binned", root, "10fps", tmp_path)
    dataset = load("owa_binned", root, "10fps", tmp_path, on_bad_files="skip")
    assert dataset["train"].unique("episode_path") == ["episode_000.mcap"]
    skipped = owa_builders.read_dataset_metadata(dataset).events["accounting"]["total"]["skipped_files"]
    assert [(s["path"], s["reason"]) for s in skipped] == [("episode_001.mcap", "truncated")]


def test_a_folder_with_neither_recordings_nor_events_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no recordings here")
    with pytest.raises(NoRecordingsError, match=r"notes: holds neither recordings"):
        load("owa_binned", tmp_path / "notes", "10fps", tmp_path)


def test_numeric_actions_add_up_to_what_was_recorded(synthesized, tmp_path):
    """Every message kept (events config `default`): the columns match the synthesizer's ground truth."""
    recordings, manifests = synthesized
    dataset = load("owa_binned", recordings, "10fps", tmp_path, events_config="default")
    rows = dataset["train"]
    clamped = owa_builders.read_accounting(dataset)["total"]["topics"]
    for manifest in manifests:
        bins = rows.filter(lambda row, path=manifest.mcap_path.name: row["episode_path"] == path)
        assert (sum(bins["mouse_dx"]), sum(bins["mouse_dy"])) == manifest.raw_mouse_motion
        assert sum(map(len, bins["keys_pressed"])) == manifest.key_presses
        assert sum(map(len, bins["keys_released"])) == manifest.key_releases
        assert sum(map(len, bins["buttons_pressed"])) == manifest.mouse_clicks
        assert bins["keys_down"][-1] == [] and bins["buttons_down"][-1] == []  # the synthesizer releases all
        assert bins["mouse_x"][0] is None or bins["timestamp_ns"][0] == bins["action_timestamps_ns"][0][0]
    assert clamped["keyboard"]["clamped"] == {"key_press_while_down": sum(m.key_repeats for m in manifests)}
    # each click is seen on mouse/raw, then as a MouseEvent click: not a second press or release
    clicks = sum(m.mouse_clicks for m in manifests)
    assert clamped["mouse"]["clamped"] == {"button_press_while_down": clicks, "button_release_while_up": clicks}
    known = [x is not None for x in rows["mouse_x"]]
    assert any(known) and known == sorted(known)  # once known, the position is carried


def test_numeric_motion_sums_to_the_kept_raw_motion_under_desktop(recordings, tmp_path):
    binned = load("owa_binned", recordings, "10fps", tmp_path)["train"]
    events = load("owa_events", recordings, "desktop", tmp_path)["train"]
    moves = [orjson.loads(m) for t, m in zip(events["topic"], events["mcap_message"]) if t == "mouse/raw"]
    assert sum(binned["mouse_dx"]) == sum(m["last_x"] for m in moves) != 0
    assert sum(binned["mouse_dy"]) == sum(m["last_y"] for m in moves)
    assert set(binned["mouse_x"]) == {None}  # desktop keeps no absolute mouse events
    assert binned.features["action"] == datasets.List(datasets.Value("float32"), length=ACTION_VECTOR_LENGTH)
    assert owa_builders.read_dataset_metadata(binned).action_vector == action_vector_layout()


def test_absolute_mouse_recording_gives_the_cursor_and_clicks(tmp_path):
    write_recording(tmp_path / "rec" / "ep.mcap", [
        ("screen", screen(0), T0),
        ("mouse", MouseEvent(event_type="move", x=300, y=200), T0 + 30 * MS),
        ("mouse", MouseEvent(event_type="click", x=310, y=205, button="left", pressed=True), T0 + 120 * MS),
        ("mouse", MouseEvent(event_type="click", x=310, y=205, button="left", pressed=False), T0 + 340 * MS),
    ])
    rows = load("owa_binned", tmp_path / "rec", "10fps", tmp_path / "cache", events_config="default")["train"]
    assert [(r["mouse_x"], r["mouse_y"], r["buttons_down"]) for r in rows] == [
        (300, 200, []), (310, 205, ["left"]), (310, 205, ["left"]), (310, 205, [])]
    assert rows["buttons_released"] == [[], [], [], ["left"]]


def test_the_transform_gives_numeric_columns_as_tensors(recordings, tmp_path):
    rows = load("owa_binned", recordings, "10fps", tmp_path)["train"]
    stored = rows[:4]
    owa_builders.auto_set_transform(rows, load_images=False)
    as_torch = rows[:4]
    as_numpy = BinnedTransform(None, return_tensors="np")(stored)
    for index in range(4):
        assert as_torch["action"][index].dtype == torch.float32
        assert torch.equal(as_torch["action"][index], torch.tensor(stored["action"][index]))
        assert as_numpy["action"][index].tolist() == stored["action"][index]
        assert as_torch["mouse_dx"][index].item() == as_numpy["mouse_dx"][index] == stored["mouse_dx"][index]
        assert as_numpy["keys_down"][index].dtype == np.int64
        assert as_numpy["keys_down"][index].tolist() == stored["keys_down"][index]
        assert not as_numpy["mouse_xy_known"][index] and as_numpy["mouse_x"][index] == 0  # no absolute mouse
    assert as_torch["buttons_down"] == stored["buttons_down"]  # names stay names
