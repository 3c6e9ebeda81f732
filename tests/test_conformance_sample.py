"""The events stage on a real recording from the upstream recorder (runs where ../shared/samples exists)."""

from __future__ import annotations

from collections import Counter

import datasets
import orjson
from mcap.reader import make_reader
from recording_fixtures import one_by_one_slots

import owa_builders
from owa_builders.config_files import named_config
from owa_builders.events.settings import EventsSettings
from owa_builders.events.stage import convert_episode
from owa_builders.recordings.episodes import Episode
from owa_builders.summary import summarize_recordings


def test_sample_converts_every_message_unchanged(shared_samples):
    path = shared_samples / "0.5.1.mcap"
    table, accounting = convert_episode(Episode(str(path), str(shared_samples)), EventsSettings())
    with open(path, "rb") as f:
        expected = [(c.topic, m.log_time, s.name, m.data) for s, c, m in make_reader(f).iter_messages()]
    got = list(zip(*(table.column(name).to_pylist() for name in ("topic", "timestamp_ns", "message_type", "mcap_message"))))
    assert got == expected and len(got) == 267
    assert Counter(table.column("topic").to_pylist()) == {
        "mouse": 218, "keyboard": 20, "screen": 17, "window": 4, "keyboard/state": 4, "mouse/state": 4}
    assert accounting.totals().read == accounting.totals().kept == 267


def test_sample_through_the_desktop_config(shared_samples, tmp_path):
    ds = datasets.load_dataset("owa_events", "desktop", data_dir=str(shared_samples), cache_dir=str(tmp_path))
    rows = ds["train"].to_list()
    topics = Counter(row["topic"] for row in rows)
    assert topics["keyboard"] == 20 and set(topics) == {"screen", "keyboard", "mouse"}  # no mouse/raw: mouse instead
    mouse = [orjson.loads(row["mcap_message"]) | {"t": row["timestamp_ns"]} for row in rows if row["topic"] == "mouse"]
    assert [m["pressed"] for m in mouse if m["event_type"] == "click"] == [True, False]  # its 2 clicks (down, up)
    with open(shared_samples / "0.5.1.mcap", "rb") as f:
        source = [(m.log_time, orjson.loads(m.data)["event_type"]) for _, _, m in make_reader(f).iter_messages(["mouse"])]
    moves = [t for t, kind in source if kind == "move"]
    clicks = [t for t, kind in source if kind == "click"]
    new_slot = one_by_one_slots(moves, 50_000_000) + [True]  # 20 Hz
    latest = [t for i, t in enumerate(moves)  # of each slot, and the last move before each click
              if new_slot[i + 1] or any(t < click <= moves[i + 1] for click in clicks)]
    assert [m["t"] for m in mouse if m["event_type"] == "move"] == latest
    accounting = owa_builders.read_accounting(ds)["total"]
    assert accounting["topics"]["mouse"]["dropped"] == {"rate_limit": 218 - len(mouse)}
    assert accounting["fallbacks"] == [{"path": "0.5.1.mcap", "topic": "mouse", "instead_of": "mouse/raw"}]
    assert accounting["totals"]["read"] == 267
    assert accounting["totals"]["kept"] == ds["train"].num_rows


def test_sample_fsl_rows_hold_its_mouse(shared_samples, internvl_folder, tmp_path):
    ds = datasets.load_dataset("owa_fsl", "internvl3", data_dir=str(shared_samples), cache_dir=str(tmp_path),
                               tokenizer=str(internvl_folder))
    text = "".join(ds["train"]["texts"])
    assert text.count("<MOUSE_CLICK>") == 2 and text.count("<MOUSE_MOVE>") >= 16
    assert "<BUTTON_LEFT><press>" in text and "<BUTTON_LEFT><release>" in text


def test_summary_warns_where_a_config_would_drop_all_of_an_input_kind(shared_samples):
    (episode,) = summarize_recordings(shared_samples, EventsSettings(topics=["screen", "keyboard", "mouse/raw"])).episodes
    assert episode.warnings == ["every mouse event would be dropped (its topics mouse: topic_filter)"]
    (episode,) = summarize_recordings(shared_samples, named_config("owa_events", "desktop")).episodes
    assert episode.warnings == []
