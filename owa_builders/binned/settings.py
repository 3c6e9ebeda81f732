"""What the binned stage does to an episode's events, as one dataclass.

The owa_binned builder config *is* a `BinnedSettings` (it inherits these fields), so a named config and a
keyword override in `load_dataset(...)` set the same fields. `validate()` names the field at fault.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..events.settings import EventInputSettings
from ..units import NS_PER_S


@dataclass
class BinnedSettings(EventInputSettings):
    # Bins per second; a bin is [start, start + period_ns) with period_ns = round(1e9 / fps).
    fps: float = 10.0
    # Drop the bins without any action event (the screen events seen only in them are counted as dropped).
    filter_empty_actions: bool = False
    # The topic whose events are a bin's state (carried forward into bins without one), and the action topics.
    state_topic: str = "screen"
    action_topics: list[str] = field(default_factory=lambda: ["keyboard", "mouse/raw", "mouse"])

    @property
    def period_ns(self) -> int:
        return round(NS_PER_S / self.fps)

    def validate(self) -> None:
        """Raise ValueError naming the first field whose value cannot work."""
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and 0 < self.fps <= NS_PER_S):
            raise ValueError(f"fps must be a number in (0, 1e9], not {self.fps!r}")
        if self.state_topic in self.action_topics:
            raise ValueError(f"state_topic {self.state_topic!r} is also in action_topics {self.action_topics}")
        self.validate_event_input()
