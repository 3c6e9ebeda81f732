"""The events stage on synthesized and hand-made recordings: rows, rates, motion, intervals, accounting."""

from __future__ import annotations

from collections import Counter

import numpy as np
import orjson
import pytest
from mcap.reader import make_reader
from recording_fixtures import MS, T0, key, screen, write_recording

from owa_builders.events.rate_limits import DropLimiter
from owa_builders.events.settings import EventsSettings
from owa_builders.events.stage import convert_episode
from owa_builders.recordings.episodes import Episode
from owa_builders.synth import SynthProfile, synthesize_recordings

DURATION_S = 6.0


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    root = tmp_path_factory.mktemp("recordings")
    (manifest,) = synthesize_recordings(root, episodes=1, profile=SynthProfile(duration_s=DURATION_S, seed=7))
    return Episode(str(manifest.mcap_path), str(root)), manifest


def rows(table) -> list[dict]:
    return table.to_pylist()


def test_default_settings_keep_every_message_unchanged(episode):
    ep, manifest = episode
    table, accounting = convert_episode(ep, EventsSettings())
    with open(ep.path, "rb") as f:
        expected = [(c.topic, m.log_time, s.name, m.data) for s, c, m in make_reader(f).iter_messages(log_time_order=False)]
    got = [(r["topic"], r["timestamp_ns"], r["message_type"], r["mcap_message"]) for r in rows(table)]
    assert got == expected
    assert Counter(r[0] for r in got) == Counter(manifest.message_counts)
    assert set(table.column("episode_path").to_pylist()) == {"episode_000.mcap"}
    totals = accounting.totals()
    assert totals.read == totals.kept == len(expected) and not totals.dropped


def test_drop_policy_limits_jittery_60hz_screen_to_exactly_20hz(episode):
    ep, manifest = episode
    settings = EventsSettings(topics=["screen"], rate_limits={"screen": {"hz": 20}})
    table, accounting = convert_episode(ep, settings)
    times = np.array(table.column("timestamp_ns").to_pylist())
    span_s = (times[-1] - times[0]) / 1e9
    assert abs(len(times) - 20 * span_s) <= 1.5, (len(times), span_s)
    counts = accounting.topics["screen"]
    assert counts.read == manifest.message_counts["screen"]
    assert counts.kept == len(times) and counts.dropped["rate_limit"] == counts.read - counts.kept


def test_drop_limiter_holds_the_rate_where_last_kept_spacing_falls_short():
    rng = np.random.default_rng(0)
    times = (np.arange(600) * 1e9 / 60 + rng.uniform(-3e6, 3e6, 600)).astype(np.int64).tolist()
    kept = DropLimiter(20).apply(times, list(range(600)), lambda i: b"").keep
    assert abs(int(kept.sum()) - 200) <= 1
    naive, last = 0, None
    for time in times:
        if last is None or time - last >= 50 * MS:
            naive, last = naive + 1, time
    assert naive < 190  # what the grid fixes: spacing from the last kept event loses slots to jitter


def test_mouse_aggregation_conserves_motion_and_passes_buttons_in_order(episode):
    ep, manifest = episode
    settings = EventsSettings(topics=["mouse/raw"], rate_limits={"mouse/raw": {"hz": 20, "policy": "aggregate"}})
    table, accounting = convert_episode(ep, settings)
    messages = [orjson.loads(m) for m in table.column("mcap_message").to_pylist()]
    assert (sum(m["last_x"] for m in messages), sum(m["last_y"] for m in messages)) == manifest.raw_mouse_motion
    with open(ep.path, "rb") as f:
        source = [orjson.loads(m.data) for _, c, m in make_reader(f).iter_messages(topics=["mouse/raw"])]
    buttons = [m for m in source if m.get("button_flags") or m.get("button_data")]
    assert [m for m in messages if m.get("button_flags") or m.get("button_data")] == buttons
    moves = len(messages) - len(buttons)
    assert moves <= 20 * DURATION_S + len(buttons) + 1
    times = table.column("timestamp_ns").to_pylist()
    assert times == sorted(times)
    counts = accounting.topics["mouse/raw"]
    assert counts.read == len(source) == counts.kept + counts.dropped["merged_by_aggregation"]


def test_desktop_like_settings_account_for_every_message(episode):
    ep, manifest = episode
    settings = EventsSettings(
        topics=["screen", "keyboard", "mouse/raw"],
        rate_limits={"screen": {"hz": 20}, "mouse/raw": {"hz": 20, "policy": "aggregate"}},
        intervals={"inactivity": {"screen_gap_s": 1.0, "input_gap_s": 5.0}},
    )
    table, accounting = convert_episode(ep, settings)
    accounting.check()
    assert accounting.totals().read == sum(manifest.message_counts.values())
    assert accounting.totals().kept == table.num_rows
    for topic in ("window", "keyboard/state", "mouse/state", "mouse"):
        counts = accounting.topics[topic]
        assert counts.dropped == Counter({"topic_filter": manifest.message_counts[topic]})
    assert Counter(table.column("topic").to_pylist())["keyboard"] == manifest.message_counts["keyboard"]


def _edges_recording(tmp_path):
    """Screen every 100 ms over 0–1 s and 3–4 s; keys at 0, 0.5, 1, …, 4 s; F8 at 1.2 s, F9 at 3.5 s."""
    messages = [("screen", screen(t * MS), T0 + t * MS) for t in [*range(0, 1001, 100), *range(3000, 4001, 100)]]
    messages += [("keyboard", key(65 + i % 3), T0 + t * MS) for i, t in enumerate(range(0, 4001, 500))]
    messages += [("keyboard", key(119), T0 + 1200 * MS), ("keyboard", key(120), T0 + 3500 * MS)]
    messages.sort(key=lambda m: m[2])
    return Episode(str(write_recording(tmp_path / "edges.mcap", messages)), str(tmp_path))


def _kept_times_ms(episode, intervals):
    table, accounting = convert_episode(episode, EventsSettings(intervals=intervals))
    accounting.check()
    return [(topic, (t - T0) // MS) for topic, t in zip(table.column("topic").to_pylist(),
                                                          table.column("timestamp_ns").to_pylist())]


def test_screen_gap_removes_the_gap_and_keeps_events_at_its_edges(tmp_path):
    kept = _kept_times_ms(_edges_recording(tmp_path), {"inactivity": {"screen_gap_s": 1.0, "input_gap_s": 5.0}})
    keys = [t for topic, t in kept if topic == "keyboard"]
    assert keys == [0, 500, 1000, 3000, 3500, 3500, 4000]  # 1200, 1500 … 2500 fell in the 1–3 s screen gap
    assert [t for topic, t in kept if topic == "screen"][9:13] == [900, 1000, 3000, 3100]


def test_start_stop_keys_include_both_key_presses(tmp_path):
    kept = _kept_times_ms(_edges_recording(tmp_path), {"start_stop_keys": {"start_vk": 119, "stop_vk": 120}})
    assert kept[0] == ("keyboard", 1200) and kept[-1] == ("keyboard", 3500)
    assert ("keyboard", 1500) in kept and ("screen", 3500) in kept and ("screen", 3600) not in kept


def test_intervals_compose(tmp_path):
    minus = {"minus": ["whole", {"start_stop_keys": {"start_vk": 119, "stop_vk": 120}}]}
    kept = _kept_times_ms(_edges_recording(tmp_path), minus)
    assert all(t < 1200 or t > 3500 for _, t in kept) and ("screen", 1000) in kept and ("screen", 3600) in kept
    both = {"and": [{"start_stop_keys": {"start_vk": 119, "stop_vk": 120}}, {"inactivity": {"screen_gap_s": 1.0}}]}
    kept = _kept_times_ms(_edges_recording(tmp_path), both)
    assert [t for _, t in kept] == [3000, 3000, 3100, 3200, 3300, 3400, 3500, 3500, 3500]


def test_input_gap_removes_idle_stretch(tmp_path):
    messages = [("screen", screen(t * MS), T0 + t * MS) for t in range(0, 9001, 500)]
    messages += [("keyboard", key(65), T0 + t * MS) for t in (0, 1000, 7000, 9000)]
    messages.sort(key=lambda m: m[2])
    episode = Episode(str(write_recording(tmp_path / "idle.mcap", messages)), str(tmp_path))
    kept = _kept_times_ms(episode, {"inactivity": {"screen_gap_s": 1.0, "input_gap_s": 5.0}})
    assert [t for topic, t in kept if topic == "screen"] == [0, 500, 1000, 7000, 7500, 8000, 8500, 9000]


def test_keyboard_uniform_replaces_auto_repeat(tmp_path):
    messages = [("keyboard", key(65), T0)]
    messages += [("keyboard", key(65), T0 + t * MS) for t in range(500, 1000, 33)]  # OS auto-repeat
    messages += [("keyboard", key(65, "release"), T0 + 1000 * MS), ("screen", screen(700 * MS), T0 + 700 * MS)]
    messages.sort(key=lambda m: m[2])
    episode = Episode(str(write_recording(tmp_path / "hold.mcap", messages)), str(tmp_path))
    table, accounting = convert_episode(episode, EventsSettings(rate_limits={"keyboard": {"hz": 20, "policy": "uniform"}}))
    events = [(t, orjson.loads(m)) for t, m in zip(table.column("timestamp_ns").to_pylist(),
                                                   table.column("mcap_message").to_pylist())]
    keys = [((t - T0) // MS, m["event_type"]) for t, m in events if "vk" in m]
    assert keys == [(t, "press") for t in range(0, 1000, 50)] + [(1000, "release")]
    assert [t for t, _ in events] == sorted(t for t, _ in events)
    counts = accounting.topics["keyboard"]
    assert counts.dropped["auto_repeat_replaced"] == 16 and counts.synthesized == 19 and counts.kept == 2


def test_uniform_repeats_stop_at_the_interval_end_and_a_new_interval_starts_fresh(tmp_path):
    """F8 starts and F9 stops the interval while 'A' is held across its end; 'A' is pressed again later."""
    messages = [("keyboard", key(119), T0), ("keyboard", key(65), T0 + 100 * MS)]
    messages += [("keyboard", key(65), T0 + t * MS) for t in range(600, 1000, 33)]  # auto-repeat
    messages += [("keyboard", key(120), T0 + 300 * MS), ("keyboard", key(65, "release"), T0 + 1000 * MS)]
    messages += [("keyboard", key(119), T0 + 2000 * MS), ("keyboard", key(65), T0 + 2100 * MS),
                 ("keyboard", key(65, "release"), T0 + 2200 * MS), ("keyboard", key(120), T0 + 2500 * MS)]
    messages.sort(key=lambda m: m[2])
    episode = Episode(str(write_recording(tmp_path / "edge.mcap", messages, video=None)), str(tmp_path))
    settings = EventsSettings(rate_limits={"keyboard": {"hz": 20, "policy": "uniform"}},
                              intervals={"start_stop_keys": {"start_vk": 119, "stop_vk": 120}})
    table, accounting = convert_episode(episode, settings)
    rows = [((t - T0) // MS, orjson.loads(m)) for t, m in zip(table.column("timestamp_ns").to_pylist(),
                                                               table.column("mcap_message").to_pylist())]
    a_keys = [(t, m["event_type"]) for t, m in rows if m["vk"] == 65]
    assert a_keys == [(100, "press"), (150, "press"), (200, "press"), (250, "press"), (300, "press"),
                      (2100, "press"), (2150, "press"), (2200, "release")]
    accounting.check()
    assert accounting.topics["keyboard"].dropped["outside_intervals"] == 14  # the repeats and release after F9
