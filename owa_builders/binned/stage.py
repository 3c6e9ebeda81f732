"""The binned stage: one episode's event rows in, time-binned steps (and their accounting) out.

The grid: bins of `period_ns` anchored at the episode's first state or action event. Bin k covers
[start + k·period, start + (k+1)·period) and its row's `timestamp_ns` is that start, so an event exactly
on a bin start belongs to that bin and every event to exactly one bin. Every bin from the first to the
last state/action event is a row, gaps included, unless `filter_empty_actions` drops the bins without
actions.

A row's `state` holds every state event (screen frame) of its bin in time order. A bin without one
carries the latest earlier frame forward: `state_carried` is true and the frame's timestamp in
`state_timestamps_ns` lies before the bin. A bin before the episode's first frame has an empty state
(and `state_carried` false). `actions` are the bin's action events in time order, with their topics and
timestamps in parallel lists. Payloads are stage 1's `mcap_message` bytes, unchanged. The same actions
as numbers (motion, wheel, cursor, buttons and keys pressed, released and held, one `action` vector)
are the columns of `actions.ACTION_COLUMNS`; what is held carries over from bin to bin and window to window.

The episode is read in windows of rows; only complete bins leave a window (the unfinished last bin
starts the next one), so memory is bounded by the window and the largest bin, not by the episode.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..accounting import Accounting
from ..events.event_input import EpisodeRows
from ..events.stage import EVENT_SCHEMA
from .actions import BINNED_ACTION_SCHEMA, ActionReader
from .settings import BinnedSettings

BINNED_SCHEMA = pa.schema([
    ("episode_path", pa.string()),
    ("bin_idx", pa.int32()),
    ("timestamp_ns", pa.int64()),  # bin start
    ("state", pa.list_(pa.binary())),
    ("state_timestamps_ns", pa.list_(pa.int64())),
    ("state_carried", pa.bool_()),
    ("actions", pa.list_(pa.binary())),
    ("action_topics", pa.list_(pa.string())),
    ("action_timestamps_ns", pa.list_(pa.int64())),
    *BINNED_ACTION_SCHEMA,  # the actions as numbers (actions.py)
])
_READ_SCHEMA = pa.schema([EVENT_SCHEMA.field(name)
                          for name in ("topic", "timestamp_ns", "message_type", "mcap_message")])
WINDOW_ROWS = 65_536  # event rows read at a time (a window grows only while a single bin fills it)
ROWS_PER_TABLE = 16_384  # binned rows per emitted table
MAX_BINS = 2**31  # bin_idx is int32

NOT_BINNED = "not_state_or_action_topic"
BIN_WITHOUT_ACTIONS = "bin_without_actions"


def iter_binned_tables(
    rows: EpisodeRows,
    settings: BinnedSettings,
    accounting: Accounting,
    window_rows: int = WINDOW_ROWS,
    rows_per_table: int = ROWS_PER_TABLE,
) -> Iterator[pa.Table]:
    """Bin one episode's event rows (tables of `BINNED_SCHEMA`), adding its counts to `accounting`."""
    binner = _EpisodeBinner(rows.episode_path, settings, rows_per_table)
    events = rows.table().select(_READ_SCHEMA.names).cast(_READ_SCHEMA)
    action_topics = pa.array(settings.action_topics, pa.string())
    position, size = 0, window_rows
    while position < events.num_rows:
        window = events.slice(position, size)
        times = window.column("timestamp_ns").to_numpy()
        binner.check_time_order(times)
        is_state = pc.equal(window.column("topic"), settings.state_topic).to_numpy(zero_copy_only=False)
        is_action = pc.is_in(window.column("topic"), action_topics).to_numpy(zero_copy_only=False)
        binner.anchor(times[is_state | is_action])
        cut = len(times)
        if position + cut < events.num_rows and binner.start is not None:
            bins = binner.bins(times)
            cut = int(np.searchsorted(bins, bins[-1], "left"))  # the last bin may go on after the window
            if cut == 0:  # a single bin fills the window: read more
                size *= 2
                continue
        yield from binner.add(window.slice(0, cut), times[:cut], is_state[:cut], is_action[:cut])
        position, size = position + cut, window_rows
    binner.settle_frame()
    binner.actions.finish()
    binner.counts.check()
    accounting.add(binner.counts)


class _EpisodeBinner:
    """Emits the rows of complete bins, window after window, keeping the latest frame to carry forward."""

    def __init__(self, episode_path: str, settings: BinnedSettings, rows_per_table: int):
        self.episode_path = episode_path
        self.settings = settings
        self.period = settings.period_ns
        self.rows_per_table = rows_per_table
        self.counts = Accounting(episodes=1)
        self.actions = ActionReader(episode_path, self.counts)  # what is held, across windows
        self.start: int | None = None  # the grid's anchor: the first state or action event
        self.next_bin = 0  # the first bin not emitted yet
        self.last_time: int | None = None
        # The latest frame so far, as (1-element payload array, timestamp). Whether some row holds it is
        # known only once a later frame replaces it or the episode ends, so it is counted then.
        self.frame: tuple[pa.Array, int] | None = None
        self.frame_in_rows = False

    def check_time_order(self, times: np.ndarray) -> None:
        if (self.last_time is not None and times[0] < self.last_time) or (np.diff(times) < 0).any():
            raise ValueError(f"{self.episode_path}: event rows are not in time order; "
                             "an event dataset must list each episode's events by timestamp_ns")

    def anchor(self, binned_times: np.ndarray) -> None:
        if self.start is None and len(binned_times):
            self.start = int(binned_times[0])

    def bins(self, times: np.ndarray) -> np.ndarray:
        return (times - self.start) // self.period

    def add(self, events: pa.Table, times: np.ndarray, is_state: np.ndarray,
            is_action: np.ndarray) -> Iterator[pa.Table]:
        """Emit the rows for these events, whose bins are complete (no later event falls in them)."""
        self._count_topics(events.column("topic"))
        self.last_time = int(times[-1])
        binned = np.flatnonzero(is_state | is_action)
        if not len(binned):
            return
        bins = self.bins(times)
        last_bin = int(bins[binned[-1]])
        if last_bin >= MAX_BINS:
            raise ValueError(f"{self.episode_path}: more than {MAX_BINS} bins at fps={self.settings.fps}")
        state_at, action_at = np.flatnonzero(is_state), np.flatnonzero(is_action)
        payloads = events.column("mcap_message")
        carried_in = [self.frame] if self.frame is not None else []
        grid = _Grid(
            frame_bins=bins[state_at],
            carried_in=len(carried_in),
            frames=pa.concat_arrays([f[0] for f in carried_in] + [payloads.take(state_at).combine_chunks()]),
            frame_times=np.concatenate([np.array([f[1] for f in carried_in], np.int64), times[state_at]]),
            action_bins=bins[action_at],
            actions=payloads.take(action_at).combine_chunks(),
            action_topics=events.column("topic").take(action_at).combine_chunks(),
            action_times=times[action_at],
        )
        if self.settings.filter_empty_actions:
            emitted = np.unique(grid.action_bins)
        else:
            emitted = np.arange(self.next_bin, last_bin + 1)
        action_types = events.column("message_type").take(action_at).combine_chunks()
        numeric = self.actions.columns(emitted, grid.action_bins, grid.action_topics, action_types, grid.actions)
        for first in range(0, len(emitted), self.rows_per_table):
            rows = slice(first, first + self.rows_per_table)
            yield self._table(grid, emitted[rows], numeric.slice(first, self.rows_per_table))
        self.next_bin = last_bin + 1
        self._count_frames(grid)

    def _table(self, grid: _Grid, bins: np.ndarray, numeric: pa.RecordBatch) -> pa.Table:
        return pa.Table.from_arrays(
            [
                pa.array([self.episode_path] * len(bins), pa.string()),
                pa.array(bins.astype(np.int32)),
                pa.array(self.start + bins * self.period, pa.int64()),
                *grid.state_columns(bins),
                *grid.action_columns(bins),
                *numeric.columns,
            ],
            schema=BINNED_SCHEMA,
        )

    def _count_topics(self, topics: pa.ChunkedArray) -> None:
        for entry in pc.value_counts(topics).to_pylist():
            topic, n = entry["values"], entry["counts"]
            counts = self.counts.topic(topic)
            counts.read += n
            if topic in self.settings.action_topics:
                counts.kept += n  # every action is in its bin, and a bin with actions is always a row
            elif topic != self.settings.state_topic:
                counts.dropped[NOT_BINNED] += n
            # frames are kept or dropped once it is known whether a row holds them (_count_frames)

    def _count_frames(self, grid: _Grid) -> None:
        """A frame is kept if some row holds it, as its bin's own or carried forward; else dropped."""
        in_rows = grid.frame_in_rows
        if grid.carried_in:
            self.frame_in_rows |= bool(in_rows[0])
        new = in_rows[grid.carried_in:]
        if not len(new):
            return
        self.settle_frame()
        counts = self.counts.topic(self.settings.state_topic)
        counts.kept += int(new[:-1].sum())
        counts.dropped[BIN_WITHOUT_ACTIONS] += int((~new[:-1]).sum())
        self.frame = (grid.frames.slice(len(grid.frames) - 1, 1), int(grid.frame_times[-1]))
        self.frame_in_rows = bool(new[-1])

    def settle_frame(self) -> None:
        """Count the latest frame, which no later window can carry any more."""
        if self.frame is None:
            return
        counts = self.counts.topic(self.settings.state_topic)
        if self.frame_in_rows:
            counts.kept += 1
        else:
            counts.dropped[BIN_WITHOUT_ACTIONS] += 1
        self.frame = None


@dataclass
class _Grid:
    """One window's frames and actions by bin; builds the list columns of any increasing run of its bins."""

    frame_bins: np.ndarray
    carried_in: int  # 1 when frames[0] is the frame carried in from earlier windows, then come the window's
    frames: pa.Array
    frame_times: np.ndarray
    action_bins: np.ndarray
    actions: pa.Array
    action_topics: pa.Array
    action_times: np.ndarray

    def __post_init__(self):
        self.frame_in_rows = np.zeros(len(self.frames), bool)  # which frames the built rows hold

    def state_columns(self, bins: np.ndarray) -> tuple[pa.Array, pa.Array, pa.Array]:
        """state, state_timestamps_ns, state_carried of these bins."""
        first = np.searchsorted(self.frame_bins, bins, "left")
        own = np.searchsorted(self.frame_bins, bins, "right") - first
        # a bin without frames holds the latest earlier one, if any (index -1 when there is none)
        first = np.where(own > 0, first, first - 1) + self.carried_in
        lengths = np.where(own > 0, own, first >= 0)
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        take = np.repeat(first - offsets[:-1], lengths) + np.arange(offsets[-1])
        self.frame_in_rows[take] = True
        return (_lists(offsets, self.frames.take(take)), _lists(offsets, pa.array(self.frame_times[take])),
                pa.array((own == 0) & (lengths > 0)))

    def action_columns(self, bins: np.ndarray) -> tuple[pa.Array, pa.Array, pa.Array]:
        """actions, action_topics, action_timestamps_ns of these bins (every action of the window lies in
        one of them or outside [bins[0], bins[-1]])."""
        starts = np.searchsorted(self.action_bins, bins, "left")
        stop = int(np.searchsorted(self.action_bins, bins[-1], "right"))
        offsets = np.append(starts, stop) - starts[0]
        values = slice(int(starts[0]), stop)
        return (_lists(offsets, self.actions[values]), _lists(offsets, self.action_topics[values]),
                _lists(offsets, pa.array(self.action_times[values])))


def _lists(offsets: np.ndarray, values: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def topic_message_types(splits: dict[str, list[EpisodeRows]], settings: BinnedSettings) -> dict[str, str]:
    """The message type of each binned topic in these event rows: what a consumer decodes payloads with.

    Rows keep topics, not message types, so a topic of several message types cannot be binned."""
    datasets_by_id = {id(rows[0].dataset): rows[0].dataset for rows in splits.values() if rows}
    found: dict[str, set[str]] = {}
    for dataset in datasets_by_id.values():
        keys = ["topic", "message_type"]
        pairs = dataset.data.table.select(keys).group_by(keys).aggregate([])
        for topic, message_type in zip(pairs["topic"].to_pylist(), pairs["message_type"].to_pylist()):
            if topic == settings.state_topic or topic in settings.action_topics:
                found.setdefault(topic, set()).add(message_type)
    several = {topic: sorted(types) for topic, types in found.items() if len(types) > 1}
    if several:
        raise ValueError(f"topics with several message types cannot be binned (rows keep the topic only): {several}")
    return {topic: types.pop() for topic, types in sorted(found.items())}
