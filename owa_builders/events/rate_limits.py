"""Per-topic rate-limit policies of the events stage.

Each policy sees one topic's messages (already inside the episode's intervals, in time order) and says
which pass through unchanged, which rows it makes instead, and why the rest were dropped. Slots follow a
fixed 1/hz grid that restarts after a gap (`SlotClock`), so a jittery 60 Hz stream limited to 20 Hz comes
out at exactly 20 Hz (two kept events can then be closer than 1/hz by up to one source period).

- `DropLimiter` ("drop"): keeps the first event of each slot.
- `MouseAggregator` ("aggregate", for ``mouse/raw``): sums the relative motion of plain moves in each
  slot into one event, stamped with the slot's last move. Button, wheel and flagged events pass through
  in order; pending motion is emitted before them and at an interval's or the episode's end, so no motion
  inside the intervals is lost.
- `LatestPosition` ("latest", for absolute ``mouse``): keeps the latest move of each slot. Clicks and
  scrolls pass through in order, each after the slot's latest move before it, so a click happens where
  the cursor was.
- `KeyboardUniform` ("uniform", for ``keyboard``): keeps the first press of a hold and every release;
  the OS auto-repeat presses in between are replaced by presses every 1/hz after the first press. A hold
  whose release falls outside the intervals repeats until its interval's end. Repeats are made as soon as
  later keyboard events show the key still held, so a key stuck down for an hour holds nothing back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from ..units import NS_PER_S
from .payload_columns import MALFORMED, OTHER, PLAIN_MOVE, Payloads, RawMouseReader

MALFORMED_PAYLOAD = "malformed_payload"


@dataclass
class PolicyOutput:
    keep: npt.NDArray[np.bool_]  # per input message: passes through unchanged
    made: list[tuple[int, int, bytes]] = field(default_factory=list)  # (timestamp_ns, order key, payload)
    dropped: Counter = field(default_factory=Counter)  # reason -> input messages not in the output
    synthesized: int = 0  # rows in `made` that stand for no input message


class RatePolicy(Protocol):
    """A topic's rate limit. `apply` gets the topic's messages in time order (their order keys break ties);
    rows it makes may come later, never earlier than `holdback()`; `flush` ends what is pending."""

    reads_payloads: bool  # False: `apply` gets payloads=None

    def apply(self, times: npt.NDArray[np.int64], orders: npt.NDArray[np.int64], payloads: Payloads | None
              ) -> PolicyOutput: ...

    def holdback(self) -> int | None: ...

    def flush(self, until: int | None = None) -> PolicyOutput: ...


class SlotClock:
    """Tells which times start a new 1/hz slot of a fixed grid (restarted after an empty slot)."""

    def __init__(self, hz: float):
        self.period = int(round(NS_PER_S / hz))
        self.slot_end: int | None = None

    def new_slots(self, times: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """For each time (ascending, and after those of earlier calls): does it start a new slot?"""
        new = np.zeros(len(times), bool)
        period = self.period
        # Within a run of times less than a period apart the grid cannot restart: slots are a division.
        bounds = [0, *(np.flatnonzero(np.diff(times) >= period) + 1).tolist(), len(times)]
        for start, stop in zip(bounds[:-1], bounds[1:]):
            run = times[start:stop]
            first = int(run[0])
            restart = self.slot_end is None or first >= self.slot_end + period
            anchor = first if restart else self.slot_end - period
            slots = (run - anchor) // period
            new[start] = restart or first >= self.slot_end
            new[start + 1 : stop] = slots[1:] != slots[:-1]
            self.slot_end = anchor + (int(slots[-1]) + 1) * period
        return new


class DropLimiter:
    reads_payloads = False  # decides on timestamps alone

    def __init__(self, hz: float):
        self.clock = SlotClock(hz)

    def apply(self, times, orders, payloads) -> PolicyOutput:
        keep = self.clock.new_slots(times)
        return PolicyOutput(keep, dropped=Counter({"rate_limit": int(len(times) - keep.sum())}))

    def holdback(self) -> int | None:
        return None

    def flush(self, until: int | None = None) -> PolicyOutput:
        return PolicyOutput(np.zeros(0, dtype=bool))


@dataclass
class _Group:
    """The moves of one slot so far."""

    first_time: int
    last_time: int
    last_order: int
    count: int
    dx: int
    dy: int
    payload: bytes  # the first move's (aggregate) or the latest move's (latest)


class _SlotMoves:
    """Base of the policies where one row stands for a slot's moves and other events pass through.

    A group is the moves of one slot not separated by another event; it ends at the next slot, at
    another event (emitted before it), or at a flush. Subclasses say what is a move and what row a group
    becomes."""

    reads_payloads = True
    merged_reason: str  # the drop reason of the moves a group's row stands for
    keeps_first_payload: bool  # a group keeps its first move's payload (else its latest)

    def __init__(self, hz: float):
        self.clock = SlotClock(hz)
        self._open: _Group | None = None

    def _classify(self, payloads: Payloads) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(kind, dx, dy) per message: kind PLAIN_MOVE, OTHER or MALFORMED."""
        raise NotImplementedError

    def _row(self, group: _Group) -> bytes:
        raise NotImplementedError

    def _close(self, output: PolicyOutput) -> None:
        group, self._open = self._open, None
        if group is not None:
            output.made.append((group.last_time, group.last_order, self._row(group)))
            output.dropped[self.merged_reason] += group.count - 1

    def apply(self, times, orders, payloads: Payloads) -> PolicyOutput:
        if not len(times):
            return PolicyOutput(np.zeros(0, dtype=bool))
        kinds, dx, dy = self._classify(payloads)
        output = PolicyOutput(kinds == OTHER)
        output.dropped[MALFORMED_PAYLOAD] += int((kinds == MALFORMED).sum())
        others_so_far = np.cumsum(kinds == OTHER)  # other events at or before each message
        moves = np.flatnonzero(kinds == PLAIN_MOVE)
        if len(moves):
            interrupted = np.diff(others_so_far[moves], prepend=0) > 0  # another event since the last move
            starts = self.clock.new_slots(times[moves]) | interrupted
            starts[0] |= self._open is None
            firsts = np.flatnonzero(starts)
            if firsts[0] > 0:  # the first moves continue the open group
                firsts = np.concatenate(([0], firsts))
            lasts = np.append(firsts[1:], len(moves)) - 1
            sums_x, sums_y = np.add.reduceat(dx[moves], firsts), np.add.reduceat(dy[moves], firsts)
            columns = (firsts, lasts, sums_x, sums_y, starts[firsts], moves[firsts], moves[lasts])
            for first, last, sum_x, sum_y, new, first_at, last_at in zip(*(c.tolist() for c in columns)):
                if new:
                    self._close(output)
                    self._open = _Group(int(times[first_at]), 0, 0, 0, 0, 0, payloads[first_at])
                group = self._open
                group.last_time, group.last_order = int(times[last_at]), int(orders[last_at])
                group.count += last - first + 1
                group.dx += sum_x
                group.dy += sum_y
                if not self.keeps_first_payload:
                    group.payload = payloads[last_at]
        if others_so_far[-1] > (others_so_far[moves[-1]] if len(moves) else 0):
            self._close(output)  # ended by an event after the last move
        return output

    def holdback(self) -> int | None:
        return None if self._open is None else self._open.first_time

    def flush(self, until: int | None = None) -> PolicyOutput:
        """Emit the pending group (at the end of an interval or of the episode)."""
        output = PolicyOutput(np.zeros(0, dtype=bool))
        self._close(output)
        return output


class MouseAggregator(_SlotMoves):
    merged_reason = "merged_by_aggregation"
    keeps_first_payload = True

    def __init__(self, hz: float):
        super().__init__(hz)
        self._reader = RawMouseReader()

    def _classify(self, payloads):
        return self._reader.columns(payloads)

    def _row(self, group: _Group) -> bytes:
        if group.count == 1:
            return group.payload
        return orjson.dumps({"last_x": group.dx, "last_y": group.dy, "us_flags": 0, "button_flags": 0, "button_data": 0})


class LatestPosition(_SlotMoves):
    merged_reason = "rate_limit"
    keeps_first_payload = False

    def _classify(self, payloads):
        which, distinct = payloads.distinct()
        kinds = np.array([_mouse_event_kind(payload) for payload in distinct], np.int8)[which]
        zeros = np.zeros(len(kinds), np.int64)
        return kinds, zeros, zeros

    def _row(self, group: _Group) -> bytes:
        return group.payload


def _mouse_event_kind(raw: bytes) -> int:
    """A desktop/MouseEvent payload's kind: a move, another event (click, scroll), or malformed."""
    try:
        event_type = orjson.loads(raw).get("event_type")
    except (orjson.JSONDecodeError, AttributeError):
        return MALFORMED
    return PLAIN_MOVE if event_type == "move" else OTHER if event_type in ("click", "scroll") else MALFORMED


class KeyboardUniform:
    reads_payloads = True

    def __init__(self, hz: float):
        self.period = int(round(NS_PER_S / hz))
        self._held: dict[int, tuple[int, int]] = {}  # vk -> (its next repeat's time, its press's order key)
        self._last_time: int | None = None

    def _repeat(self, vk: int, until: int, output: PolicyOutput) -> None:
        """Make the key's repeats before `until`."""
        next_time, order = self._held[vk]
        times = range(next_time, until, self.period)
        payload = orjson.dumps({"event_type": "press", "vk": vk})
        output.made.extend((time, order, payload) for time in times)
        output.synthesized += len(times)
        self._held[vk] = (next_time + len(times) * self.period, order)

    def apply(self, times, orders, payloads: Payloads) -> PolicyOutput:
        keep = np.zeros(len(times), dtype=bool)
        output = PolicyOutput(keep)
        for position, (time, order, raw) in enumerate(zip(times.tolist(), orders.tolist(), payloads.tolist())):
            self._last_time = time
            try:
                message = orjson.loads(raw)
                vk, kind = int(message["vk"]), message["event_type"]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                output.dropped[MALFORMED_PAYLOAD] += 1
                continue
            if kind == "press" and vk in self._held:
                output.dropped["auto_repeat_replaced"] += 1
                continue
            if kind == "press":
                self._held[vk] = (time + self.period, order)
            elif vk in self._held:
                self._repeat(vk, time, output)
                del self._held[vk]
            keep[position] = True
        if self._last_time is not None:  # held keys are still down at the latest keyboard event
            for vk in sorted(self._held):
                self._repeat(vk, self._last_time + 1, output)
        return output

    def holdback(self) -> int | None:
        return min((next_time for next_time, _ in self._held.values()), default=None)

    def flush(self, until: int | None = None) -> PolicyOutput:
        """Keys still held repeat until `until` (an interval's end), else until the last keyboard event."""
        output = PolicyOutput(np.zeros(0, dtype=bool))
        for vk in sorted(self._held):
            self._repeat(vk, self._last_time + 1 if until is None else until, output)
        self._held.clear()
        return output


POLICIES: dict[str, type] = {
    "drop": DropLimiter, "aggregate": MouseAggregator, "latest": LatestPosition, "uniform": KeyboardUniform,
}


def make_policy(limit: dict[str, Any]) -> RatePolicy:
    return POLICIES[limit.get("policy", "drop")](float(limit["hz"]))
