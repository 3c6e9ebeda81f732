"""The binned stage on event rows with known timestamps: grid, carried state, filtering, accounting, windows."""

from __future__ import annotations

import datasets
import pyarrow as pa
import pytest
from datasets.table import InMemoryTable
from hypothesis import given, settings
from hypothesis import strategies as st

from owa_builders.accounting import Accounting, TopicCounts
from owa_builders.binned.settings import BinnedSettings
from owa_builders.binned.stage import BINNED_SCHEMA, iter_binned_tables
from owa_builders.events.event_input import episode_rows
from owa_builders.events.stage import EVENT_SCHEMA

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
ACTION_TOPICS = ("keyboard", "mouse/raw", "mouse")


def episode(events: list[tuple[str, int]]):
    """One episode's event rows from (topic, ms after T0); each payload names its event."""
    table = pa.Table.from_pylist(
        [{"episode_path": "ep.mcap", "topic": topic, "timestamp_ns": T0 + ms * MS, "message_type": "t",
          "mcap_message": f"{topic}@{ms}".encode()} for topic, ms in events],
        schema=EVENT_SCHEMA,
    )
    (rows,) = episode_rows(datasets.Dataset(InMemoryTable(table)), "test")
    return rows


def binned(rows, fps=10, window_rows=65_536, rows_per_table=16_384, **fields) -> tuple[list[dict], Accounting]:
    accounting = Accounting()
    tables = list(iter_binned_tables(rows, BinnedSettings(fps=fps, **fields), accounting, window_rows, rows_per_table))
    assert all(table.schema == BINNED_SCHEMA for table in tables)
    return [row for table in tables for row in table.to_pylist()], accounting


def short(row: dict) -> tuple:
    """A row as (bin_idx, state payloads, state_carried, action payloads)."""
    return (row["bin_idx"], [p.decode() for p in row["state"]], row["state_carried"], [p.decode() for p in row["actions"]])


def test_an_event_on_a_bin_start_belongs_to_that_bin():
    rows, _ = binned(episode([("keyboard", 0), ("screen", 99), ("mouse/raw", 100), ("screen", 100), ("keyboard", 200)]))
    assert [short(r) for r in rows] == [
        (0, ["screen@99"], False, ["keyboard@0"]),
        (1, ["screen@100"], False, ["mouse/raw@100"]),
        (2, ["screen@100"], True, ["keyboard@200"]),
    ]
    assert [r["timestamp_ns"] for r in rows] == [T0, T0 + 100 * MS, T0 + 200 * MS]


def test_the_grid_starts_at_the_first_state_or_action_event_not_at_other_topics():
    rows, accounting = binned(episode([("window", 0), ("screen", 30), ("keyboard", 129), ("keyboard", 130), ("window", 140)]))
    assert [(r["bin_idx"], r["timestamp_ns"] - T0) for r in rows] == [(0, 30 * MS), (1, 130 * MS)]
    assert [short(r)[3] for r in rows] == [["keyboard@129"], ["keyboard@130"]]
    assert accounting.topics["window"].dropped["not_state_or_action_topic"] == 2


def test_a_gap_carries_the_latest_frame_forward_and_shows_it():
    rows, _ = binned(episode([("screen", 0), ("screen", 40), ("keyboard", 50), ("keyboard", 420)]))
    assert [short(r) for r in rows] == [
        (0, ["screen@0", "screen@40"], False, ["keyboard@50"]),  # every frame of a bin, in time order
        (1, ["screen@40"], True, []),
        (2, ["screen@40"], True, []),
        (3, ["screen@40"], True, []),
        (4, ["screen@40"], True, ["keyboard@420"]),
    ]
    carried = rows[1]
    assert carried["state_timestamps_ns"] == [T0 + 40 * MS] and carried["state_timestamps_ns"][0] < carried["timestamp_ns"]
    assert rows[4]["action_topics"] == ["keyboard"] and rows[4]["action_timestamps_ns"] == [T0 + 420 * MS]


def test_bins_before_the_first_frame_have_an_empty_state():
    rows, _ = binned(episode([("keyboard", 0), ("mouse", 150), ("screen", 210)]))
    assert [short(r) for r in rows] == [
        (0, [], False, ["keyboard@0"]),
        (1, [], False, ["mouse@150"]),
        (2, ["screen@210"], False, []),
    ]
    assert rows[0]["state_timestamps_ns"] == []


def test_actions_keep_time_order_with_their_topics():
    rows, _ = binned(episode([("keyboard", 0), ("mouse/raw", 10), ("mouse", 10), ("keyboard", 99)]))
    (row,) = rows
    assert row["action_topics"] == ["keyboard", "mouse/raw", "mouse", "keyboard"]
    assert row["action_timestamps_ns"] == [T0, T0 + 10 * MS, T0 + 10 * MS, T0 + 99 * MS]


def test_filter_empty_actions_counts_the_frames_no_row_holds():
    events = [("screen", 0), ("keyboard", 10),  # bin 0: a row
              ("screen", 120), ("screen", 150),  # bin 1: no action, no row
              ("screen", 260),  # bin 2: no action, no row; its frame is carried into bin 3
              ("keyboard", 310),  # bin 3: a row
              ("screen", 420), ("mouse", 590)]  # bin 4: no row, its frame carried into bin 5, a row
    rows, accounting = binned(episode(events), filter_empty_actions=True)
    assert [short(r) for r in rows] == [
        (0, ["screen@0"], False, ["keyboard@10"]),
        (3, ["screen@260"], True, ["keyboard@310"]),
        (5, ["screen@420"], True, ["mouse@590"]),
    ]
    screen = accounting.topics["screen"]
    assert (screen.read, screen.kept, dict(screen.dropped)) == (5, 3, {"bin_without_actions": 2})
    accounting.check()
    all_rows, all_accounting = binned(episode(events))
    assert len(all_rows) == 6 and all_accounting.topics["screen"].kept == 5


def test_fps_sets_the_bin_width():
    events = [("screen", 0), ("keyboard", 199), ("keyboard", 200)]
    assert [r["bin_idx"] for r in binned(episode(events), fps=5)[0]] == [0, 1]
    assert [r["bin_idx"] for r in binned(episode(events), fps=20)[0]] == [0, 1, 2, 3, 4]


def test_events_out_of_time_order_are_refused():
    with pytest.raises(ValueError, match="ep.mcap: event rows are not in time order"):
        binned(episode([("screen", 0), ("keyboard", 50), ("keyboard", 40)]))


@pytest.mark.parametrize("fields, field", [
    ({"fps": 0}, "fps"),
    ({"action_topics": ["screen"]}, "state_topic"),
    ({"on_bad_files": "ignore"}, "on_bad_files"),
    ({"events_overrides": {"topic": ["screen"]}}, "events_overrides"),
])
def test_settings_name_the_field_at_fault(fields, field):
    with pytest.raises(ValueError, match=field):
        BinnedSettings(**fields).validate()


def reference_bins(events: list[tuple[str, int]], period_ms: int, filter_empty_actions: bool) -> list[tuple]:
    """The rows `short` gives, computed the slow and obvious way."""
    binned_events = [(t, ms) for t, ms in events if t == "screen" or t in ACTION_TOPICS]
    if not binned_events:
        return []
    start = binned_events[0][1]
    last_bin = (binned_events[-1][1] - start) // period_ms
    rows, latest = [], None
    for index in range(last_bin + 1):
        inside = [(t, ms) for t, ms in binned_events if (ms - start) // period_ms == index]
        frames = [f"{t}@{ms}" for t, ms in inside if t == "screen"]
        actions = [f"{t}@{ms}" for t, ms in inside if t != "screen"]
        state, carried = (frames, False) if frames else (([latest], True) if latest else ([], False))
        latest = frames[-1] if frames else latest
        if actions or not filter_empty_actions:
            rows.append((index, state, carried, actions))
    return rows


event_lists = st.lists(
    st.tuples(st.sampled_from(("screen", "keyboard", "mouse/raw", "mouse", "window")), st.integers(0, 2_000)),
    max_size=60, unique_by=lambda event: event[1],  # distinct times: payloads name their event
).map(lambda events: sorted(events, key=lambda e: e[1]))


@settings(max_examples=150, deadline=None)
@given(events=event_lists, fps=st.sampled_from((5, 10, 20, 1000)), filter_empty_actions=st.booleans(),
       window_rows=st.integers(1, 8), rows_per_table=st.integers(1, 5))
def test_rows_match_a_reference_whatever_the_window_and_table_sizes(events, fps, filter_empty_actions, window_rows,
                                                                    rows_per_table):
    if not events:
        return
    rows, accounting = binned(episode(events), fps, window_rows, rows_per_table, filter_empty_actions=filter_empty_actions)
    assert [short(r) for r in rows] == reference_bins(events, 1000 // fps, filter_empty_actions)
    # every action event in exactly one row, inside that row's bin
    for row in rows:
        assert all(row["timestamp_ns"] <= t < row["timestamp_ns"] + 10**9 // fps for t in row["action_timestamps_ns"])
    assert sum(len(r["actions"]) for r in rows) == sum(t in ACTION_TOPICS for t, _ in events)
    accounting.check()
    assert accounting.totals().read == len(events)
    held = {frame for row in rows for frame in row["state"]}
    assert accounting.topics.get("screen", TopicCounts()).kept == len(held)  # each frame counted once
