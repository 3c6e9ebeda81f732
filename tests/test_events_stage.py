"""The events stage on synthesized and hand-made recordings: rows, rates, motion, intervals, accounting."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mcap.reader import make_reader
from recording_fixtures import MS, T0, key, one_by_one_slots, screen, write_recording

from owa_builders.config_files import named_config
from owa_builders.events import stage as stage_module
from owa_builders.events.payload_columns import MALFORMED, OTHER, PLAIN_MOVE, Payloads, RawMouseReader
from owa_builders.events.rate_limits import DropLimiter, KeyboardUniform, SlotClock
from owa_builders.events.settings import EventsSettings
from owa_builders.events.stage import convert_episode, survey_episode
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
    kept = DropLimiter(20).apply(np.array(times), np.arange(600), None).keep
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


# -- the slot grid, raw mouse payloads, absolute mouse, stuck keys -------------------------------------------


@given(st.lists(st.integers(0, 200), max_size=300), st.integers(1, 60), st.lists(st.integers(0, 300), max_size=4))
def test_slot_grid_over_numpy_runs_matches_the_grid_one_time_at_a_time(gaps, period, cuts):
    times = np.cumsum(np.array(gaps, np.int64))
    clock = SlotClock(1e9 / period)
    bounds = sorted({0, len(times), *(min(c, len(times)) for c in cuts)})
    got = np.concatenate([clock.new_slots(times[a:b]) for a, b in zip(bounds[:-1], bounds[1:])] or [np.zeros(0, bool)])
    assert got.tolist() == one_by_one_slots(times.tolist(), clock.period)


def _payloads(messages: list[bytes]) -> Payloads:
    buffer, starts, ends = b"", [], []
    for message in messages:
        buffer += b"\x05header"  # payloads sit between other bytes in a chunk
        starts.append(len(buffer))
        buffer += message
        ends.append(len(buffer))
    return Payloads(buffer, np.array(starts, np.int64), np.array(ends, np.int64))


@hypothesis_settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=6)), max_size=30))
def test_payloads_distinct_gives_back_each_payload(gaps_and_messages):
    buffer, starts, ends = b"", [], []
    for gap, message in gaps_and_messages:  # payloads next to each other, or apart; empty ones too
        buffer += b"\x00" * gap
        starts.append(len(buffer))
        buffer += message
        ends.append(len(buffer))
    which, distinct = Payloads(buffer, np.array(starts, np.int64), np.array(ends, np.int64)).distinct()
    messages = [message for _, message in gaps_and_messages]
    assert [distinct[i] for i in which.tolist()] == messages
    assert sorted(distinct) == sorted(set(messages))


@pytest.mark.parametrize("starts, ends", [([3, 0], [5, 2]), ([4, 6], [2, 8]), ([-5], [1]), ([2], [7])])
def test_payloads_distinct_refuses_payloads_outside_the_buffer_or_out_of_order(starts, ends):
    with pytest.raises(ValueError, match="in the buffer, in buffer order"):
        Payloads(b"abcdef", np.array(starts, np.int64), np.array(ends, np.int64)).distinct()


def _expected_raw_mouse(message: bytes) -> tuple[int, int, int]:
    try:
        value = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        return MALFORMED, 0, 0
    x, y = (value.get("last_x"), value.get("last_y")) if isinstance(value, dict) else (None, None)
    if not (type(x) is int and type(y) is int and abs(x) < 2**31 and abs(y) < 2**31):
        return MALFORMED, 0, 0
    flagged = value.get("us_flags") or value.get("button_flags") or value.get("button_data")
    return (OTHER if flagged else PLAIN_MOVE), x, y


raw_mouse_payloads = st.one_of(
    st.builds(lambda x, y, flags: orjson.dumps({"last_x": x, "last_y": y, "us_flags": flags[0],
                                                "button_flags": flags[1], "button_data": flags[2]}),
              st.integers(-5, 5), st.integers(-5, 5), st.sampled_from([(0, 0, 0), (0, 1, 0), (1, 0, 0), (0, 1024, 120)])),
    st.builds(lambda x, y: orjson.dumps({"last_y": y, "last_x": x, "device_handle": None, "timestamp": 7}),
              st.integers(-2**40, 2**40), st.integers(-3, 3)),
    st.sampled_from([b"", b"{", b"[]", b'{"last_x":"1","last_y":2}', b'{"last_x":1.5,"last_y":2}',
                     b'{"last_x":true,"last_y":2}', b'{"last_y":2}', b"null", b'{"last_x":1,"last_y":2}']),
    st.binary(max_size=20),
)


@hypothesis_settings(max_examples=200)
@given(st.lists(st.lists(raw_mouse_payloads, max_size=20), max_size=4))
def test_raw_mouse_reader_reads_every_payload_as_json_says(batches):
    reader = RawMouseReader()
    reader.MAX_DISTINCT = 8  # forgets often: results must not depend on what it remembers
    largest = 0
    for messages in batches:
        kinds, xs, ys = reader.columns(_payloads(messages))
        assert list(zip(kinds.tolist(), xs.tolist(), ys.tolist())) == [_expected_raw_mouse(m) for m in messages]
        largest = max(largest, len(messages))
        assert len(reader._ids) <= max(8, largest)  # bounded by the bound, or by one batch


def test_desktop_keeps_absolute_mouse_where_an_episode_has_no_raw_mouse(tmp_path):
    (manifest,) = synthesize_recordings(tmp_path, episodes=1, profile=SynthProfile(
        duration_s=DURATION_S, seed=3, video=False, raw_mouse_topic=False, clicks_per_min=60, scrolls_per_min=60))
    (tmp_path / manifest.video_uri).write_bytes(b"")
    ep = Episode(str(manifest.mcap_path), str(tmp_path))
    table, accounting = convert_episode(ep, named_config("owa_events", "desktop"))
    with open(ep.path, "rb") as f:
        source = [(m.log_time, m.data) for _, c, m in make_reader(f).iter_messages(topics=["mouse"])]
    inside = accounting.topics["mouse"].read - accounting.topics["mouse"].dropped["outside_intervals"]
    kept = [(t, m) for t, m, topic in zip(table.column("timestamp_ns").to_pylist(), table.column("mcap_message").to_pylist(),
                                          table.column("topic").to_pylist()) if topic == "mouse"]
    assert set(kept) <= set(source)  # absolute events are kept as recorded, never made up
    kind = {m: orjson.loads(m)["event_type"] for _, m in source}
    actions = [(t, m) for t, m in source if kind[m] != "move"]
    assert actions and [(t, m) for t, m in kept if kind[m] != "move"] == actions  # every click and scroll, in order
    for action in actions:  # each after the move that preceded it in the recording
        before = [row for row in source if row < action and kind[row[1]] == "move"]
        assert kept[kept.index(action) - 1] == before[-1]
    moves = [t for t, m in kept if kind[m] == "move"]
    assert len(moves) <= 20 * DURATION_S + len(actions) + 1
    counts = accounting.topics["mouse"]
    assert counts.kept == len(kept) and counts.kept + counts.dropped["rate_limit"] == inside
    assert accounting.fallbacks == [{"path": ep.relative_path, "topic": "mouse", "instead_of": "mouse/raw"}]
    assert "mouse/raw" not in accounting.topics


def test_desktop_keeps_raw_mouse_alone_where_an_episode_has_both(episode):
    ep, manifest = episode
    table, accounting = convert_episode(ep, named_config("owa_events", "desktop"))
    assert "mouse" not in set(table.column("topic").to_pylist())
    assert accounting.topics["mouse"].dropped == Counter({"preferred_topic_present": manifest.message_counts["mouse"]})
    assert accounting.fallbacks == [] and accounting.topics["mouse/raw"].kept > 0


def test_keyboard_uniform_holds_nothing_back_for_a_stuck_key():
    policy = KeyboardUniform(20)
    period, made = 50 * MS, []
    repeats = np.arange(500 * MS, 600_000 * MS, 33 * MS)  # OS auto-repeat of a key never released
    times = np.concatenate([[0], repeats]).astype(np.int64)
    payload = orjson.dumps({"event_type": "press", "vk": 16})
    for start in range(0, len(times), 100):
        chunk = times[start : start + 100]
        output = policy.apply(chunk, np.arange(start, start + len(chunk)), _payloads([payload] * len(chunk)))
        made += [time for time, _, _ in output.made]
        assert policy.holdback() > chunk[-1]  # rows after the latest event only: nothing piles up
    made += [time for time, _, _ in policy.flush().made]
    assert made == list(range(period, int(times[-1]) + 1, period))


def test_stuck_key_episode_under_uniform_keyboard(tmp_path):
    (manifest,) = synthesize_recordings(tmp_path, episodes=1, profile=SynthProfile(
        duration_s=DURATION_S, seed=2, video=False, stuck_key=True, typing=False))
    (tmp_path / manifest.video_uri).write_bytes(b"")
    settings = EventsSettings(topics=["keyboard"], rate_limits={"keyboard": {"hz": 20, "policy": "uniform"}})
    table, accounting = convert_episode(Episode(str(manifest.mcap_path), str(tmp_path)), settings)
    times = table.column("timestamp_ns").to_pylist()
    assert np.diff(times).tolist() == [50 * MS] * (len(times) - 1)  # the press, then a press every 50 ms
    counts = accounting.topics["keyboard"]
    assert counts.kept == 1 and counts.synthesized == len(times) - 1
    assert counts.dropped == Counter({"auto_repeat_replaced": manifest.message_counts["keyboard"] - 1})


def test_the_file_is_read_once_when_its_messages_fit_and_twice_otherwise_with_the_same_rows(episode, monkeypatch):
    ep, _ = episode
    settings = named_config("owa_events", "desktop")
    assert survey_episode(ep, settings).batches is None  # keep nothing by default (summaries, plots)
    kept = survey_episode(ep, settings, keep_bytes=1 << 30).batches
    assert kept and sum(len(batch) for batch in kept) == survey_episode(ep, settings).message_count
    over = sum(len(batch.buffer) for batch in kept) - 1
    assert survey_episode(ep, settings, keep_bytes=over).batches is None  # a byte over the budget: read again
    once, once_counts = convert_episode(ep, settings)
    monkeypatch.setattr(stage_module, "KEPT_MESSAGES_BYTES", 0)
    twice, twice_counts = convert_episode(ep, settings)
    assert once.equals(twice) and once_counts.to_dict() == twice_counts.to_dict()
