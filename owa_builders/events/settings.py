"""What the events stage does to a recording, as one dataclass.

The owa_events builder config *is* an `EventsSettings` (it inherits these fields), so a named config,
a keyword override in `load_dataset(...)` and a YAML file under ``configs/`` all set the same fields.
Values are plain YAML-friendly types; `validate()` turns mistakes into errors that name the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

BadFilesPolicy = Literal["error", "warn", "skip"]


@dataclass
class EventsSettings:
    # Topic filter: keep only these topics (None keeps all), then drop these.
    topics: list[str] | None = None
    drop_topics: list[str] = field(default_factory=list)
    # Per episode, a topic kept in place of a missing one: {"mouse/raw": "mouse"} keeps `mouse` in the
    # episodes that have no `mouse/raw` message, and drops it ("preferred_topic_present") in the others.
    topic_fallbacks: dict[str, str] = field(default_factory=dict)
    # Per-topic rate limits: {"screen": {"hz": 20}, "mouse/raw": {"hz": 20, "policy": "aggregate"}}.
    # Policies: "drop" (default; one event per 1/hz slot), "aggregate" (mouse/raw: sum plain moves per
    # slot), "latest" (mouse: the latest move per slot, clicks and scrolls kept), "uniform" (keyboard:
    # auto-repeat replaced by presses at hz while a key is held).
    rate_limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Which parts of each episode to keep: "whole", or an expression of
    # {"inactivity": {...}}, {"start_stop_keys": {...}}, {"and"|"or": [...]}, {"minus": [a, b]}.
    intervals: Any = "whole"
    # Train/test split by episode: "auto" uses train/ and test/ folders when the recordings have them,
    # else test_size (a fraction < 1, or a count of episodes; 0 = no test split).
    split_by: Literal["auto", "folders", "test_size"] = "auto"
    test_size: float = 0
    split_seed: int = 0
    # What to do with a recording that cannot be converted (datasets' parquet convention).
    on_bad_files: BadFilesPolicy = "error"
    # Accept screen media referenced by URL, absolute path, or a path leaving the recordings folder.
    allow_external_media: bool = False

    def validate(self) -> None:
        """Raise ValueError naming the first field whose value cannot work."""
        from .intervals import parse_intervals
        from .rate_limits import POLICIES

        check_bad_files_policy(self.on_bad_files)
        if self.split_by not in ("auto", "folders", "test_size"):
            raise ValueError(f"split_by must be 'auto', 'folders' or 'test_size', not {self.split_by!r}")
        if self.test_size < 0 or (self.test_size >= 1 and self.test_size != int(self.test_size)):
            raise ValueError(f"test_size must be a fraction in [0, 1) or a whole count, not {self.test_size!r}")
        for topic, limit in self.rate_limits.items():
            if not isinstance(limit, dict) or set(limit) - {"hz", "policy"} or "hz" not in limit:
                raise ValueError(f"rate_limits[{topic!r}] must be {{'hz': number, 'policy': name}}, not {limit!r}")
            if not limit["hz"] > 0:
                raise ValueError(f"rate_limits[{topic!r}]['hz'] must be > 0, not {limit['hz']!r}")
            if limit.get("policy", "drop") not in POLICIES:
                raise ValueError(f"rate_limits[{topic!r}]['policy'] must be one of {tuple(POLICIES)}")
        parse_intervals(self.intervals)
        for preferred, fallback in self.topic_fallbacks.items():
            if not (isinstance(preferred, str) and isinstance(fallback, str)) or preferred == fallback:
                raise ValueError(f"topic_fallbacks maps a topic to another topic, not {preferred!r} to {fallback!r}")
            if fallback in self.topic_fallbacks:
                raise ValueError(f"topic_fallbacks: {fallback!r} is a fallback and has one itself (no chains)")

    def keeps_topic(self, topic: str) -> bool:
        """Whether the topic filter keeps `topic` in every episode (fallbacks aside)."""
        return (self.topics is None or topic in self.topics) and topic not in self.drop_topics

    def may_keep_topic(self, topic: str) -> bool:
        """Whether `topic` is kept in some episodes: by the filter, or as a fallback."""
        return self.keeps_topic(topic) or (topic in self.topic_fallbacks.values() and topic not in self.drop_topics)

    def episode_topics(self, present: set[str]) -> TopicChoice:
        """The topics kept in an episode whose messages are on the `present` topics."""
        kept = {topic for topic in present if self.keeps_topic(topic)}
        fallbacks, superseded = {}, set()
        for preferred, fallback in sorted(self.topic_fallbacks.items()):
            if fallback in kept or fallback not in present or fallback in self.drop_topics:
                continue
            if preferred in present:
                superseded.add(fallback)
            else:
                kept.add(fallback)
                fallbacks[fallback] = preferred
        return TopicChoice(frozenset(kept), fallbacks, frozenset(superseded))


TOPIC_FILTER = "topic_filter"
PREFERRED_TOPIC_PRESENT = "preferred_topic_present"


@dataclass(frozen=True)
class TopicChoice:
    """The topics kept in one episode, and why the others are not."""

    kept: frozenset[str]
    fallbacks: dict[str, str]  # fallback topic kept -> the missing topic it stands in for
    superseded: frozenset[str]  # fallback topics not kept because the topic they stand in for is there

    def drop_reason(self, topic: str) -> str:
        return PREFERRED_TOPIC_PRESENT if topic in self.superseded else TOPIC_FILTER


def check_bad_files_policy(policy: str) -> None:
    if policy not in ("error", "warn", "skip"):
        raise ValueError(f"on_bad_files must be 'error', 'warn' or 'skip', not {policy!r}")


@dataclass
class EventInputSettings:
    """How a later stage (fsl, binned) gets event rows when its data_dir holds recordings."""

    # The owa_events named config (and keyword overrides) converting the recordings first. Ignored when
    # data_dir holds an event dataset, which is used as it is.
    events_config: str = "desktop"
    events_overrides: dict[str, Any] = field(default_factory=dict)
    # Bad recordings are met by the events stage; this policy is passed on to it.
    on_bad_files: BadFilesPolicy = "error"

    def validate_event_input(self) -> None:
        check_bad_files_policy(self.on_bad_files)
        unknown = set(self.events_overrides) - {f.name for f in fields(EventsSettings)}
        if unknown:
            raise ValueError(f"events_overrides has keys that are no EventsSettings field: {sorted(unknown)}")

    def events_kwargs(self) -> dict[str, Any]:
        """Keyword overrides of the events build. on_bad_files is passed only when not the default, so that
        an unchanged events config shares stage 1's cache with everyone who built it."""
        kwargs = dict(self.events_overrides)
        if self.on_bad_files != EventsSettings.on_bad_files:
            kwargs.setdefault("on_bad_files", self.on_bad_files)
        return kwargs
