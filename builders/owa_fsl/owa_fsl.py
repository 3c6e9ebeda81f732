"""owa_fsl: fixed-sequence-length rows of pre-tokenized events for VLM training (episode-aware packing).

    datasets.load_dataset("owa_fsl", "internvl3", data_dir="recordings/")     # converted by owa_events first
    datasets.load_dataset("owa_fsl", "internvl3", data_dir="event-dataset/")  # an event dataset, as it is
    datasets.load_dataset("owa_fsl", data_dir=..., tokenizer="org/model", image_pattern={...})  # another model

Encoders, tokenizer preparation and packing live in `owa_builders.fsl`; this module only names configs and
wires splits. The expanded tokenizer is saved beside the rows (`load_fsl_tokenizer`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow.compute as pc
from datasets.naming import filenames_for_dataset_split

from owa_builders.events.source import input_data_files, load_event_splits
from owa_builders.fsl.settings import MODEL_CONFIGS, FslSettings
from owa_builders.fsl.stage import iter_episode_tables, row_schema
from owa_builders.fsl.tokenizer import TOKENIZER_FOLDER, prepare_tokenizer
from owa_builders.hf import RecordingsBuilder

logger = logging.getLogger("owa_builders")


@dataclass
class OwaFslConfig(datasets.BuilderConfig, FslSettings):
    """A named fsl config (one per model); every FslSettings field can be overridden by keyword."""


class OwaFsl(RecordingsBuilder):
    BUILDER_CONFIG_CLASS = OwaFslConfig
    BUILDER_CONFIGS = [
        OwaFslConfig(
            name=name,
            version=datasets.Version("1.0.0"),
            description=f"Packed rows of pre-tokenized events for {model['tokenizer']} "
                        f"({model['image_pattern']} image pattern), images kept as references.",
            **model,
        )
        for name, model in MODEL_CONFIGS.items()
    ]
    # No default: without a config name, keyword overrides make a custom config that must name its tokenizer
    # *and* image pattern; a model is never assumed.
    _input_files = staticmethod(input_data_files)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=self.config.description,
            features=datasets.Features.from_arrow_schema(row_schema(self.config)),
        )

    def _split_generators(self, dl_manager):
        if not self.config.data_dir:
            raise ValueError(f"{self.name}: pass data_dir= (recordings, or an event dataset)")
        self._events = load_event_splits(self.config.data_dir, self.config.events_config, self.config.events_kwargs(),
                                         cache_dir=self._cache_dir_root)
        self._tokenizer = prepare_tokenizer(self.config.tokenizer, self.config.encoder,
                                            self.config.resolved_image_pattern(), self.config.pad_token)
        accounting_dir = self._accounting_dir(dl_manager)
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={"episodes": list(enumerate(rows)), "split": split, "accounting_dir": accounting_dir},
            )
            for split, rows in self._events.splits.items()
        ]

    def _generate_tables(self, episodes, split, accounting_dir):
        convert = lambda rows, accounting: iter_episode_tables(rows, self.config, self._tokenizer, accounting)
        yield from self._convert_episodes(episodes, split, accounting_dir, convert)

    def _dataset_metadata(self) -> dict:
        self._tokenizer.save(Path(self._output_dir, TOKENIZER_FOLDER))  # the ids of the rows go with them
        fill = self._fill()
        logger.info("%s/%s: %d rows of %d tokens, fill %.2f%% (tokens that are not padding)", self.name,
                    self.config.name, fill["total"]["rows"], self.config.max_length, 100 * fill["total"]["fill"])
        for name, split in fill["splits"].items():
            if not split["rows"]:  # datasets refuses to load an empty split ("corresponds to no data")
                logger.warning("%s/%s: split %r has no rows; its events were all dropped (see the accounting)",
                               self.name, self.config.name, name)
        events = self._events.events_metadata
        return {
            "recordings_root": events.get("recordings_root"),  # where the screen media uris resolve
            "tokenizer": self._tokenizer.metadata(),
            "fill": fill,
            "events": {key: events.get(key) for key in ("builder", "config", "settings", "accounting")},
        }

    def _fill(self) -> dict:
        """Rows, tokens and fill (tokens ÷ rows × max_length) per split and in total, read from the rows."""
        counts = {}
        for name, split in self.info.splits.items():
            paths = filenames_for_dataset_split(self._output_dir, self.dataset_name, name, "arrow", split.shard_lengths)
            tokens = sum(pc.sum(datasets.Dataset.from_file(path).data.column("num_tokens")).as_py() or 0
                         for path in paths)
            counts[name] = (split.num_examples, tokens)
        total = tuple(map(sum, zip(*counts.values()))) if counts else (0, 0)
        return {"splits": {name: self._fill_entry(*c) for name, c in counts.items()}, "total": self._fill_entry(*total)}

    def _fill_entry(self, rows: int, tokens: int) -> dict:
        return {"rows": rows, "tokens": tokens, "fill": tokens / (rows * self.config.max_length) if rows else 0.0}
