"""owa_events: one row per event of OWAMcap recordings (RLDS-Event), nothing binned.

    datasets.load_dataset("owa_events", "desktop", data_dir="recordings/")

The conversion lives in `owa_builders.events`; this module only names configs and wires splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from owa_builders.events.settings import EventsSettings
from owa_builders.events.splits import split_episodes
from owa_builders.events.stage import EVENT_SCHEMA, iter_episode_tables
from owa_builders.hf import RecordingsBuilder


@dataclass
class OwaEventsConfig(datasets.BuilderConfig, EventsSettings):
    """A named events config; every EventsSettings field can be overridden by keyword."""


class OwaEvents(RecordingsBuilder):
    BUILDER_CONFIG_CLASS = OwaEventsConfig
    BUILDER_CONFIGS = [
        OwaEventsConfig(
            name="default",
            version=datasets.Version("1.0.1"),
            description="Every message of every recording, unchanged.",
        ),
        OwaEventsConfig(
            name="desktop",
            version=datasets.Version("1.1.0"),
            description="Screen, keyboard and mouse for desktop agents: raw mouse where an episode has it, else "
                        "absolute mouse; screen and mouse at 20 Hz, idle stretches removed.",
            topics=["screen", "keyboard", "mouse/raw"],
            topic_fallbacks={"mouse/raw": "mouse"},
            rate_limits={"screen": {"hz": 20, "policy": "drop"}, "mouse/raw": {"hz": 20, "policy": "aggregate"},
                         "mouse": {"hz": 20, "policy": "latest"}},
            intervals={"inactivity": {"screen_gap_s": 1.0, "input_gap_s": 5.0}},
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=self.config.description,
            features=datasets.Features.from_arrow_schema(EVENT_SCHEMA),
        )

    def _split_generators(self, dl_manager, num_proc: int | None = None):  # num_proc: converted by datasets' workers
        return self._episode_splits(split_episodes(self._recordings(), self.config), dl_manager)

    def _convert_episode(self, episode, accounting):
        return iter_episode_tables(episode, self.config, accounting)
