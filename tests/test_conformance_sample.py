"""The events stage on a real recording from the upstream recorder (runs where ../shared/samples exists)."""

from __future__ import annotations

from collections import Counter

import datasets
from mcap.reader import make_reader

import owa_builders
from owa_builders.events.settings import EventsSettings
from owa_builders.events.stage import convert_episode
from owa_builders.recordings.episodes import Episode


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
    topics = Counter(ds["train"]["topic"])
    assert topics["keyboard"] == 20 and set(topics) <= {"screen", "keyboard"}  # the sample has no mouse/raw
    accounting = owa_builders.read_accounting(ds)["total"]
    assert accounting["topics"]["mouse"]["dropped"] == {"topic_filter": 218}
    assert accounting["totals"]["read"] == 267
    assert accounting["totals"]["kept"] == ds["train"].num_rows
