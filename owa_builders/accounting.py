"""Accounting: where every input message went.

Per episode and topic: messages ``read``, ``kept`` (in the output, unchanged or as the representative
of a merged group), ``dropped`` per named reason, and rows ``synthesized`` from no single input message;
``clamped`` counts, per named reason, values of kept messages changed to fit the output format.
``read == kept + sum(dropped)`` always holds (`check()`); files skipped as bad are listed with their
reason. Stages fill it per episode; builders merge the episodes and store the total beside the dataset.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TopicCounts:
    read: int = 0
    kept: int = 0
    synthesized: int = 0
    dropped: Counter = field(default_factory=Counter)
    clamped: Counter = field(default_factory=Counter)

    def add(self, other: TopicCounts) -> None:
        self.read += other.read
        self.kept += other.kept
        self.synthesized += other.synthesized
        self.dropped.update(other.dropped)
        self.clamped.update(other.clamped)

    def to_dict(self) -> dict[str, Any]:
        counts = {"read": self.read, "kept": self.kept, "synthesized": self.synthesized,
                  "dropped": dict(sorted((k, v) for k, v in self.dropped.items() if v))}
        if +self.clamped:  # only stages that change values report it
            counts["clamped"] = dict(sorted((+self.clamped).items()))
        return counts


@dataclass
class Accounting:
    topics: dict[str, TopicCounts] = field(default_factory=dict)
    episodes: int = 0
    skipped_files: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason", "problem"}
    fallbacks: list[dict[str, str]] = field(default_factory=list)  # {"path", "topic", "instead_of"}

    def topic(self, name: str) -> TopicCounts:
        counts = self.topics.get(name)
        if counts is None:
            counts = self.topics[name] = TopicCounts()
        return counts

    def skip(self, path: str, reason: str, problem: str) -> None:
        self.skipped_files.append({"path": path, "reason": reason, "problem": problem})

    def fall_back(self, path: str, topic: str, instead_of: str) -> None:
        """Record that episode `path` keeps `topic` in place of `instead_of`, which it does not have."""
        self.fallbacks.append({"path": path, "topic": topic, "instead_of": instead_of})

    def add(self, other: Accounting) -> None:
        for name, counts in other.topics.items():
            self.topic(name).add(counts)
        self.episodes += other.episodes
        self.skipped_files.extend(other.skipped_files)
        self.fallbacks.extend(other.fallbacks)

    def totals(self) -> TopicCounts:
        total = TopicCounts()
        for counts in self.topics.values():
            total.add(counts)
        return total

    def check(self) -> None:
        """Raise if some topic's messages are not all accounted for."""
        for name, counts in self.topics.items():
            if counts.read != counts.kept + sum(counts.dropped.values()):
                raise AssertionError(f"accounting of topic {name!r} does not reconcile: {counts.to_dict()}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "totals": self.totals().to_dict(),
            "topics": {name: self.topics[name].to_dict() for name in sorted(self.topics)},
            "skipped_files": self.skipped_files,
            "fallbacks": self.fallbacks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Accounting:
        accounting = cls(episodes=data["episodes"], skipped_files=list(data["skipped_files"]),
                         fallbacks=list(data.get("fallbacks", [])))
        for name, counts in data["topics"].items():
            accounting.topics[name] = TopicCounts(
                counts["read"], counts["kept"], counts["synthesized"], Counter(counts["dropped"]),
                Counter(counts.get("clamped", {})),
            )
        return accounting

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def summary(self) -> str:
        """A few readable lines: per topic read → kept, with drop reasons; skipped files."""
        lines = [f"{self.episodes} episode(s) converted"]
        width = max((len(name) for name in self.topics), default=5)
        for name in sorted(self.topics) + ["TOTAL"]:
            counts = self.totals() if name == "TOTAL" else self.topics[name]
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.dropped.items()) if n)
            clamps = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.clamped.items()) if n)
            extra = f" (+{counts.synthesized} synthesized)" if counts.synthesized else ""
            lines.append(f"  {name:<{width}}  read {counts.read:>9}  kept {counts.kept:>9}{extra}"
                         + (f"  dropped: {reasons}" if reasons else "") + (f"  clamped: {clamps}" if clamps else ""))
        for fallback in self.fallbacks:
            lines.append(f"  FALLBACK {fallback['path']}: kept {fallback['topic']} (it has no {fallback['instead_of']})")
        for skipped in self.skipped_files:
            lines.append(f"  SKIPPED {skipped['path']} [{skipped['reason']}]: {skipped['problem']}")
        return "\n".join(lines)
