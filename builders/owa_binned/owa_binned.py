"""owa_binned: time-binned state/action steps (RLDS / LeRobot style), one row per bin of an episode.

    datasets.load_dataset("owa_binned", "10fps", data_dir="recordings/")      # converted by owa_events first
    datasets.load_dataset("owa_binned", "10fps", data_dir="event-dataset/")   # an event dataset, as it is

The binning lives in `owa_builders.binned`, the named configs in configs/binned_*.yaml; this module wires
them to datasets.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from owa_builders.binned.actions import action_vector_layout
from owa_builders.binned.settings import BinnedSettings
from owa_builders.binned.stage import BINNED_SCHEMA, iter_binned_tables, topic_message_types
from owa_builders.config_files import named_configs_from_files
from owa_builders.events.event_input import EventRowsBuilder


@dataclass
class OwaBinnedConfig(datasets.BuilderConfig, BinnedSettings):
    """A named binned config; every BinnedSettings field can be overridden by keyword."""


class OwaBinned(EventRowsBuilder):
    BUILDER_CONFIG_CLASS = OwaBinnedConfig
    BUILDER_CONFIGS = named_configs_from_files("owa_binned", OwaBinnedConfig)  # configs/binned_*.yaml
    DEFAULT_CONFIG_NAME = "10fps"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=self.config.description,
            features=datasets.Features.from_arrow_schema(BINNED_SCHEMA),
        )

    def _prepare(self, events):
        self._message_types = topic_message_types(events.splits, self.config)

    def _convert_episode(self, rows, accounting):
        return iter_binned_tables(rows, self.config, accounting)

    def _dataset_metadata(self) -> dict:
        return {**super()._dataset_metadata(), "message_types": self._message_types,
                "action_vector": action_vector_layout()}
