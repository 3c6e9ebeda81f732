"""Which stretches of an episode to keep.

An `IntervalSet` is a sorted list of disjoint *closed* intervals of integer nanoseconds, so an event
exactly at an interval's end is inside it. Extractors watch the messages once (the stage's first pass,
shared by all extractors of an expression) and then give their `IntervalSet`:

- ``"whole"``: the whole episode, its first and last message included.
- ``{"inactivity": {"screen_gap_s": 1, "input_gap_s": 5}}``: the episode minus the stretches where the
  screen stream has a gap longer than ``screen_gap_s`` or the input streams one longer than
  ``input_gap_s`` (a gap is the open stretch between two consecutive events; the episode's first and
  last message bound the leading and trailing gaps).
- ``{"start_stop_keys": {"start_vk": 119, "stop_vk": 120}}``: from a press of the start key to the next
  press of the stop key (or the episode's end); one key may do both (a toggle).
- ``{"and": [...]}``, ``{"or": [...]}``, ``{"minus": [a, b]}``: set algebra on the above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

import numpy as np
import orjson

from ..recordings.mcap_scan import ChannelInfo, MessageBatch
from ..units import NS_PER_S

_MIN = np.iinfo(np.int64).min
_MAX = np.iinfo(np.int64).max
INPUT_TOPICS = ("keyboard", "mouse/raw", "mouse")


@dataclass(frozen=True)
class IntervalSet:
    """Disjoint closed intervals [starts[i], ends[i]], sorted."""

    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int]]) -> IntervalSet:
        merged: list[list[int]] = []
        for start, end in sorted((s, e) for s, e in pairs if s <= e):
            if merged and start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        array = np.array(merged, dtype=np.int64).reshape(-1, 2)
        return cls(array[:, 0].copy(), array[:, 1].copy())

    @classmethod
    def everything(cls) -> IntervalSet:
        return cls.from_pairs([(_MIN, _MAX)])

    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self.starts.tolist(), self.ends.tolist()))

    def contains(self, times: np.ndarray) -> np.ndarray:
        index = self.locate(times)
        return (index >= 0) & (times <= self.ends[np.maximum(index, 0)])

    def locate(self, times: np.ndarray) -> np.ndarray:
        """The index of the interval each (inside) time falls in."""
        return np.searchsorted(self.starts, times, side="right") - 1

    def __or__(self, other: IntervalSet) -> IntervalSet:
        return IntervalSet.from_pairs(self.pairs() + other.pairs())

    def complement(self) -> IntervalSet:
        bounds = [_MIN - 1] + [v for s, e in self.pairs() for v in (s, e)] + [_MAX + 1]
        return IntervalSet.from_pairs((bounds[i] + 1, bounds[i + 1] - 1) for i in range(0, len(bounds), 2))

    def __and__(self, other: IntervalSet) -> IntervalSet:
        return (self.complement() | other.complement()).complement()

    def __sub__(self, other: IntervalSet) -> IntervalSet:
        return self & other.complement()

    def total_ns(self) -> int:
        return int((self.ends - self.starts + 1).sum())


class IntervalExtractor(Protocol):
    def observe(self, channel: ChannelInfo, times: np.ndarray, batch: MessageBatch, indices: np.ndarray) -> None:
        """See the messages of one channel in one batch (times = log times of batch[indices])."""

    def finish(self, episode_start: int, episode_end: int) -> IntervalSet: ...


class WholeEpisode:
    def observe(self, channel, times, batch, indices) -> None:
        pass

    def finish(self, episode_start: int, episode_end: int) -> IntervalSet:
        return IntervalSet.from_pairs([(episode_start, episode_end)])


class GapFilter:
    """The episode minus every gap longer than ``max_gap_ns`` between consecutive events of ``topics``."""

    def __init__(self, topics: Iterable[str], max_gap_ns: int):
        self.topics = frozenset(topics)
        self.max_gap_ns = max_gap_ns
        self._gaps: list[tuple[int, int]] = []  # (last event before, first event after)
        self._first: int | None = None
        self._last: int | None = None
        self._pending: list[np.ndarray] = []  # this batch's times, all channels, merged at batch end

    def observe(self, channel, times, batch, indices) -> None:
        if channel.topic in self.topics and len(times):
            self._pending.append(times)

    def _absorb_pending(self) -> None:
        if not self._pending:
            return
        times = np.sort(np.concatenate(self._pending))
        self._pending.clear()
        if self._last is not None:
            times = np.concatenate(([self._last], times))
        elif self._first is None:
            self._first = int(times[0])
        jumps = np.nonzero(np.diff(times) > self.max_gap_ns)[0]
        self._gaps.extend(zip(times[jumps].tolist(), times[jumps + 1].tolist()))
        self._last = int(times[-1])

    def end_batch(self) -> None:
        self._absorb_pending()

    def finish(self, episode_start: int, episode_end: int) -> IntervalSet:
        self._absorb_pending()
        if self._first is None:
            return IntervalSet.from_pairs([])
        gaps = list(self._gaps)
        if self._first - episode_start > self.max_gap_ns:
            gaps.append((episode_start - 1, self._first))
        if episode_end - self._last > self.max_gap_ns:
            gaps.append((self._last, episode_end + 1))
        removed = IntervalSet.from_pairs((before + 1, after - 1) for before, after in gaps)
        return IntervalSet.from_pairs([(episode_start, episode_end)]) - removed


class StartStopKeys:
    """From a press of ``start_vk`` to the next press of ``stop_vk`` (inclusive), or the episode's end."""

    def __init__(self, start_vk: int, stop_vk: int, topic: str = "keyboard"):
        self.start_vk, self.stop_vk, self.topic = start_vk, stop_vk, topic
        self._pairs: list[tuple[int, int]] = []
        self._started_at: int | None = None

    def observe(self, channel, times, batch, indices) -> None:
        if channel.topic != self.topic:
            return
        for time, index in zip(times.tolist(), indices.tolist()):
            message = orjson.loads(batch.payload(index))
            if message.get("event_type") != "press":
                continue
            vk = message.get("vk")
            if self._started_at is None and vk == self.start_vk:
                self._started_at = time
            elif self._started_at is not None and vk == self.stop_vk:
                self._pairs.append((self._started_at, time))
                self._started_at = None

    def finish(self, episode_start: int, episode_end: int) -> IntervalSet:
        pairs = list(self._pairs)
        if self._started_at is not None:
            pairs.append((self._started_at, episode_end))
        return IntervalSet.from_pairs(pairs)


class Combined:
    def __init__(self, operator: str, parts: list[IntervalExtractor]):
        self.operator, self.parts = operator, parts

    def observe(self, channel, times, batch, indices) -> None:
        for part in self.parts:
            part.observe(channel, times, batch, indices)

    def end_batch(self) -> None:
        for part in self.parts:
            end_batch(part)

    def finish(self, episode_start: int, episode_end: int) -> IntervalSet:
        results = [part.finish(episode_start, episode_end) for part in self.parts]
        combined = results[0]
        for result in results[1:]:
            combined = {"and": combined & result, "or": combined | result, "minus": combined - result}[self.operator]
        return combined


def end_batch(extractor: IntervalExtractor) -> None:
    """Let an extractor fold what it saw in one batch (some sort a batch's channels together)."""
    hook = getattr(extractor, "end_batch", None)
    if hook is not None:
        hook()


def parse_intervals(spec: Any) -> IntervalExtractor:
    """Build the extractor an ``intervals`` setting describes; ValueError names what is wrong."""
    if spec in (None, "whole"):
        return WholeEpisode()
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"intervals must be 'whole' or a one-key mapping, not {spec!r}")
    (kind, args), = spec.items()
    if kind in ("and", "or", "minus"):
        if not isinstance(args, list) or len(args) < 2 or (kind == "minus" and len(args) != 2):
            raise ValueError(f"intervals {kind!r} takes a list of {'two' if kind == 'minus' else 'two or more'} parts")
        return Combined(kind, [parse_intervals(part) for part in args])
    args = args or {}
    if kind == "inactivity":
        unknown = set(args) - {"screen_gap_s", "input_gap_s", "screen_topics", "input_topics"}
        if unknown:
            raise ValueError(f"intervals 'inactivity' has unknown options {sorted(unknown)}")
        return Combined("and", [
            GapFilter(args.get("screen_topics", ["screen"]), int(args.get("screen_gap_s", 1.0) * NS_PER_S)),
            GapFilter(args.get("input_topics", INPUT_TOPICS), int(args.get("input_gap_s", 5.0) * NS_PER_S)),
        ])
    if kind == "start_stop_keys":
        if "start_vk" not in args:
            raise ValueError("intervals 'start_stop_keys' needs start_vk (and stop_vk, default = start_vk)")
        return StartStopKeys(int(args["start_vk"]), int(args.get("stop_vk", args["start_vk"])))
    raise ValueError(f"unknown intervals kind {kind!r}: use whole, inactivity, start_stop_keys, and, or, minus")
