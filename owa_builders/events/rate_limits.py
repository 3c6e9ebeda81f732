"""Per-topic rate-limit policies of the events stage.

Each policy sees one topic's messages (already inside the episode's intervals, in time order) and says
which pass through unchanged, which rows it makes instead, and why the rest were dropped:

- `DropLimiter` ("drop"): keeps the first event of each 1/hz slot. Slots follow a fixed grid that
  restarts after a gap, so a 60 Hz stream limited to 20 Hz comes out at exactly 20 Hz even with jittery
  timestamps (two kept events can then be closer than 1/hz by up to one source period).
- `MouseAggregator` ("aggregate", for ``mouse/raw``): sums the relative motion of plain moves in each
  slot into one event, stamped with the slot's last move. Button, wheel and absolute events pass through
  in order; pending motion is emitted before them and at an interval's or the episode's end, so no motion
  inside the intervals is lost.
- `KeyboardUniform` ("uniform", for ``keyboard``): keeps the first press of a hold and every release;
  the OS auto-repeat presses in between are replaced by presses every 1/hz after the first press. A hold
  whose release falls outside the intervals repeats until its interval's end.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

_NS_PER_S = 1_000_000_000


@dataclass
class PolicyOutput:
    keep: np.ndarray  # bool per input message: passes through unchanged
    made: list[tuple[int, int, bytes]] = field(default_factory=list)  # (timestamp_ns, order key, payload)
    dropped: Counter = field(default_factory=Counter)  # reason -> input messages not in the output
    synthesized: int = 0  # rows in `made` that stand for no input message


class SlotClock:
    """Tells whether a time starts a new 1/hz slot of a fixed grid (restarted after a gap)."""

    def __init__(self, hz: float):
        self.period = int(round(_NS_PER_S / hz))
        self.slot_end: int | None = None

    def new_slot(self, time: int) -> bool:
        if self.slot_end is not None and time < self.slot_end:
            return False
        if self.slot_end is not None and time < self.slot_end + self.period:
            self.slot_end += self.period
        else:
            self.slot_end = time + self.period
        return True


class DropLimiter:
    reads_payloads = False  # decides on timestamps alone

    def __init__(self, hz: float):
        self.clock = SlotClock(hz)

    def apply(self, times: list[int], orders: list[int], payloads: list[bytes] | None) -> PolicyOutput:
        new_slot = self.clock.new_slot
        keep = np.fromiter(map(new_slot, times), dtype=bool, count=len(times))
        return PolicyOutput(keep, dropped=Counter({"rate_limit": int(len(times) - keep.sum())}))

    def holdback(self) -> int | None:
        return None

    def flush(self, until: int | None = None) -> PolicyOutput:
        return PolicyOutput(np.zeros(0, dtype=bool))


def _raw_move_payload(dx: int, dy: int) -> bytes:
    return orjson.dumps({"last_x": dx, "last_y": dy, "us_flags": 0, "button_flags": 0, "button_data": 0})


class MouseAggregator:
    reads_payloads = True

    def __init__(self, hz: float):
        self.clock = SlotClock(hz)
        self._group: list[Any] | None = None  # [first_time, last_time, last_order, dx, dy, count, first_payload]

    def _close_group(self, output: PolicyOutput) -> None:
        if self._group is None:
            return
        first_time, last_time, last_order, dx, dy, count, first_payload = self._group
        payload = first_payload if count == 1 else _raw_move_payload(dx, dy)
        output.made.append((last_time, last_order, payload))
        output.dropped["merged_by_aggregation"] += count - 1
        self._group = None

    def apply(self, times: list[int], orders: list[int], payloads: list[bytes]) -> PolicyOutput:
        keep = np.zeros(len(times), dtype=bool)
        output = PolicyOutput(keep)
        new_slot, loads = self.clock.new_slot, orjson.loads
        for position, (time, order, raw) in enumerate(zip(times, orders, payloads)):
            try:
                message = loads(raw)
                plain_move = not (message.get("us_flags") or message.get("button_flags") or message.get("button_data"))
                dx, dy = int(message["last_x"]), int(message["last_y"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                output.dropped["malformed_payload"] += 1
                continue
            if not plain_move:
                self._close_group(output)
                keep[position] = True
                continue
            group = self._group
            if new_slot(time) or group is None:
                self._close_group(output)
                self._group = [time, time, order, dx, dy, 1, raw]
            else:
                group[1], group[2] = time, order
                group[3] += dx
                group[4] += dy
                group[5] += 1
        return output

    def holdback(self) -> int | None:
        return None if self._group is None else self._group[0]

    def flush(self, until: int | None = None) -> PolicyOutput:
        """Emit pending motion (at the end of an interval or of the episode)."""
        output = PolicyOutput(np.zeros(0, dtype=bool))
        self._close_group(output)
        return output


class KeyboardUniform:
    reads_payloads = True

    def __init__(self, hz: float):
        self.period = int(round(_NS_PER_S / hz))
        self._held: dict[int, tuple[int, int]] = {}  # vk -> (first press time, its order key)
        self._last_time: int | None = None

    def _repeats(self, vk: int, until: int, output: PolicyOutput) -> None:
        pressed_at, order = self._held.pop(vk)
        payload = orjson.dumps({"event_type": "press", "vk": vk})
        for time in range(pressed_at + self.period, until, self.period):
            output.made.append((time, order, payload))
            output.synthesized += 1

    def apply(self, times: list[int], orders: list[int], payloads: list[bytes]) -> PolicyOutput:
        keep = np.zeros(len(times), dtype=bool)
        output = PolicyOutput(keep)
        for position, (time, order, raw) in enumerate(zip(times, orders, payloads)):
            self._last_time = time
            try:
                message = orjson.loads(raw)
                vk, kind = int(message["vk"]), message["event_type"]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                output.dropped["malformed_payload"] += 1
                continue
            if kind == "press" and vk in self._held:
                output.dropped["auto_repeat_replaced"] += 1
                continue
            if kind == "press":
                self._held[vk] = (time, order)
            elif vk in self._held:
                self._repeats(vk, time, output)
            keep[position] = True
        return output

    def holdback(self) -> int | None:
        return min((pressed_at for pressed_at, _ in self._held.values()), default=None)

    def flush(self, until: int | None = None) -> PolicyOutput:
        """Keys still held repeat until `until` (an interval's end), else until the last keyboard event."""
        output = PolicyOutput(np.zeros(0, dtype=bool))
        for vk in sorted(self._held):
            self._repeats(vk, self._last_time + 1 if until is None else until, output)
        return output


POLICIES = {"drop": DropLimiter, "aggregate": MouseAggregator, "uniform": KeyboardUniform}


def make_policy(limit: dict[str, Any]):
    return POLICIES[limit.get("policy", "drop")](float(limit["hz"]))
