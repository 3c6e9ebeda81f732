"""owa_events: one row per event of OWAMcap recordings (RLDS-Event), nothing binned.

    datasets.load_dataset("owa_events", "desktop", data_dir="recordings/")

The conversion lives in `owa_builders.events`, the named configs in configs/events_*.yaml; this module
wires them to datasets.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from owa_builders.builder_base import RecordingsBuilder
from owa_builders.config_files import named_configs_from_files
from owa_builders.events.settings import EventsSettings
from owa_builders.events.splits import split_episodes
from owa_builders.events.stage import EVENT_SCHEMA, ROWS_PER_TABLE, iter_event_tables


@dataclass
class OwaEventsConfig(datasets.BuilderConfig, EventsSettings):
    """A named events config; every EventsSettings field can be overridden by keyword."""


class OwaEvents(RecordingsBuilder):
    BUILDER_CONFIG_CLASS = OwaEventsConfig
    BUILDER_CONFIGS = named_configs_from_files("owa_events", OwaEventsConfig)  # configs/events_*.yaml
    DEFAULT_CONFIG_NAME = "default"
    # Arrow record batches of the stage's tables, not datasets' 100 rows for binary columns (sized for images):
    # reading the cache then touches a few large batches, not 10,000 small ones per hour of recordings.
    DEFAULT_WRITER_BATCH_SIZE = ROWS_PER_TABLE

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=self.config.description,
            features=datasets.Features.from_arrow_schema(EVENT_SCHEMA),
        )

    def _split_generators(self, dl_manager, num_proc: int | None = None):  # num_proc: converted by datasets' workers
        return self._episode_splits(split_episodes(self._recordings(), self.config), dl_manager)

    def _convert_episode(self, episode, accounting):
        return iter_event_tables(episode, self.config, accounting)
