"""owa_fsl: fixed-sequence-length rows of pre-tokenized events for VLM training (episode-aware packing).

    datasets.load_dataset("owa_fsl", "internvl3", data_dir="recordings/")     # converted by owa_events first
    datasets.load_dataset("owa_fsl", "internvl3", data_dir="event-dataset/")  # an event dataset, as it is
    datasets.load_dataset("owa_fsl", data_dir=..., tokenizer="org/model", image_pattern={...})  # another model

Encoders, tokenizer preparation and packing live in `owa_builders.fsl`, the named configs (one per model) in
configs/fsl_*.yaml; this module wires them to datasets. The expanded tokenizer is saved beside the rows (`load_fsl_tokenizer`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow.compute as pc
import pyarrow.parquet as pq

from owa_builders.config_files import named_configs_from_files
from owa_builders.datasets_adapter import written_split_files
from owa_builders.events.event_input import EventRowsBuilder, folder_files
from owa_builders.fsl.settings import FslSettings
from owa_builders.fsl.stage import iter_fsl_tables, row_schema
from owa_builders.fsl.tokenizer import TOKENIZER_FOLDER, prepare_tokenizer

logger = logging.getLogger("owa_builders")


@dataclass
class OwaFslConfig(datasets.BuilderConfig, FslSettings):
    """A named fsl config (one per model); every FslSettings field can be overridden by keyword."""


class OwaFsl(EventRowsBuilder):
    BUILDER_CONFIG_CLASS = OwaFslConfig
    BUILDER_CONFIGS = named_configs_from_files("owa_fsl", OwaFslConfig)  # configs/fsl_*.yaml: one per model
    # No default: without a config name, keyword overrides make a custom config that must name its tokenizer
    # *and* image pattern; a model is never assumed.

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=self.config.description,
            features=datasets.Features.from_arrow_schema(row_schema(self.config)),
        )

    def _input_files(self, data_dir: str, config_kwargs: dict):
        files = super()._input_files(data_dir, config_kwargs)
        tokenizer = config_kwargs.get("tokenizer")
        if tokenizer and os.path.isdir(tokenizer):  # a local tokenizer decides the ids: its change rebuilds
            files["tokenizer"] = folder_files(tokenizer)
        return files

    def _prepare(self, events):
        self._tokenizer = prepare_tokenizer(self.config.tokenizer, self.config.encoder,
                                            self.config.resolved_image_pattern(), self.config.pad_token)

    def _convert_episode(self, rows, accounting):
        return iter_fsl_tables(rows, self.config, self._tokenizer, accounting)

    def _dataset_metadata(self) -> dict:
        self._tokenizer.save(Path(self.build_folder, TOKENIZER_FOLDER))  # the ids of the rows go with them
        fill = self._fill()
        logger.info("%s/%s: %d rows of %d tokens, fill %.2f%% (tokens that are not padding)", self.name,
                    self.config.name, fill["total"]["rows"], self.config.max_length, 100 * fill["total"]["fill"])
        for name, split in fill["splits"].items():
            if not split["rows"]:  # datasets refuses to load an empty split ("corresponds to no data")
                logger.warning("%s/%s: split %r has no rows; its events were all dropped (see the accounting)",
                               self.name, self.config.name, name)
        return {**super()._dataset_metadata(), "tokenizer": self._tokenizer.metadata(), "fill": fill}

    def _fill(self) -> dict:
        """Rows, tokens and fill (tokens ÷ rows × max_length) per split and in total, read from the written rows."""
        counts = {}
        for name, split in self.info.splits.items():
            tokens = sum(pc.sum(self._written_column(path, "num_tokens")).as_py() or 0
                         for path in written_split_files(self, split))
            counts[name] = (split.num_examples, tokens)
        total = tuple(map(sum, zip(*counts.values()))) if counts else (0, 0)
        return {"splits": {name: self._fill_entry(*c) for name, c in counts.items()}, "total": self._fill_entry(*total)}

    def _written_column(self, path: str, column: str):
        if self.build_file_format == "parquet":
            return pq.read_table(path, columns=[column]).column(column)
        return datasets.Dataset.from_file(path).data.column(column)

    def _fill_entry(self, rows: int, tokens: int) -> dict:
        return {"rows": rows, "tokens": tokens, "fill": tokens / (rows * self.config.max_length) if rows else 0.0}
