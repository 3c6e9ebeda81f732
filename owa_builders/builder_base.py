"""What our three builders share on top of datasets' `ArrowBasedBuilder`.

- The recordings are ours to list: every ``*.mcap`` under ``data_dir``, whatever datasets' split
  inference would make of folder and file names. That list, with each file's size and mtime, is the
  ``data_files`` datasets hashes, so adding, removing or modifying a recording misses the cache.
- Bad recordings follow ``on_bad_files`` ("error" | "warn" | "skip"); skips are counted.
- Each episode's accounting is written beside the shards as it is converted (in whichever worker
  process converts it) and merged into ``owa_dataset.json`` in the dataset's cache folder, with what
  else a consumer needs to know about the dataset: builder, config values, the recordings' root
  (media uris resolve against it), and whatever a builder adds in `_dataset_metadata()`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import datasets
import pyarrow as pa
from datasets.builder import Key

from ._registry import builder_name, code_hash
from .accounting import Accounting
from .config_files import NOT_SETTINGS
from .datasets_adapter import BuilderHooks, is_streaming, stamped_data_files
from .metadata import DatasetMetadata
from .recordings.episodes import Episode, episode_stamp, find_episodes
from .recordings.errors import BadRecordingError, NoMessagesError, NoRecordingsError
from .recordings.files import file_stamp
from .recordings.sources import recordings_root

logger = logging.getLogger("owa_builders")
_ACCOUNTING_PARTS = "owa_accounting_parts"


def stamped_files(paths: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """Files with their size and mtime, so that datasets' hash of them changes when any of them changes."""
    return [(path, file_stamp(path)) for path in paths]  # odd files are stamped too; they fail when read


def recordings_data_files(data_dir: str | os.PathLike, episodes: list[Episode]) -> dict[str, list[str]]:
    """The recordings listed under data_dir, stamped with their content identity (local: size and mtime);
    NoRecordingsError when there is none."""
    if not episodes:
        raise NoRecordingsError(data_dir, "holds no recordings (no *.mcap file in it or its subfolders)")
    return stamped_data_files({"recordings": [(episode.path, episode_stamp(episode)) for episode in episodes]})


class RecordingsBuilder(BuilderHooks):
    """Base of the owa_* builders: recordings discovery, bad-file policy and accounting."""

    # Raised as themselves whatever num_proc (see BuilderHooks): a bad recording, or event rows a later
    # stage cannot convert (a ValueError naming the episode and the problem).
    OWN_ERRORS = (BadRecordingError, ValueError)

    def __init__(self, *args, data_dir: str | None = None, data_files=None, hash: str | None = None, **kwargs):
        # The code hash of now, not the one registered at import (load_dataset passes that): the same cache
        # whether built by name or from the class, even when the code changed since the import.
        hash = code_hash(builder_name(type(self)))
        if data_dir is not None:
            data_dir = recordings_root(data_dir)  # a local folder's absolute path, or a URL (Hub: pinned)
            data_files = self._input_files(data_dir, kwargs)
        super().__init__(*args, data_dir=data_dir, data_files=data_files, hash=hash, **kwargs)
        self.config.validate()  # datasets sets keyword overrides on a copy of the named config

    def _input_files(self, data_dir: str, config_kwargs: dict) -> dict[str, list[str]]:
        """The files whose change must rebuild the dataset (datasets hashes them into the cache key)."""
        self._listed_recordings = find_episodes(data_dir)  # listed once (a remote root: one listing)
        return recordings_data_files(data_dir, self._listed_recordings)

    def _recordings(self) -> list[Episode]:
        if not self.config.data_dir:
            raise ValueError(f"{self.name}: pass data_dir= (the folder or URL holding the recordings)")
        return self._listed_recordings

    def _episode_splits(self, splits: dict[str, list], dl_manager) -> list[datasets.SplitGenerator]:
        """One split generator per split; its episodes (the unit of work of num_proc) are numbered in the split.

        Streaming writes nothing, so it leaves no accounting (accounting_dir None)."""
        accounting_dir = (None if dl_manager is None or is_streaming(dl_manager)  # None: `episode_splits`
                          else os.fspath(self.build_folder / _ACCOUNTING_PARTS))
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={"episodes": list(enumerate(episodes)), "split": split, "accounting_dir": accounting_dir},
            )
            for split, episodes in splits.items()
        ]
    def _convert_episode(self, episode, accounting: Accounting) -> Iterator[pa.Table]:
        """One episode's rows as Arrow tables, its counts added to `accounting` (each builder's stage)."""
        raise NotImplementedError

    def _generate_shards(self, episodes: list[tuple[int, Any]], split: str, accounting_dir: str | None) -> Iterator[str]:
        """The original shards: one per episode, named by its path relative to data_dir."""
        for _, episode in episodes:
            yield episode.relative_path if isinstance(episode, Episode) else episode.episode_path

    def _generate_tables(self, episodes: list[tuple[int, Any]], split: str, accounting_dir: str | None
                         ) -> Iterator[tuple[Key, pa.Table]]:
        """Convert each (index in split, episode), saving each episode's accounting.

        Key(shard, table): shard is the episode's position in this call's `episodes` list."""
        for shard, (index, episode) in enumerate(episodes):
            accounting = Accounting()
            for table_index, table in enumerate(self.episode_tables(episode, accounting)):
                yield Key(shard, table_index), table
            if accounting_dir is not None:
                os.makedirs(accounting_dir, exist_ok=True)
                Path(accounting_dir, f"{split}-{index:06d}.json").write_text(accounting.to_json())

    def episode_tables(self, episode, accounting: Accounting) -> Iterator[pa.Table]:
        """One episode's rows under on_bad_files: a bad recording raises, or is skipped and counted in
        `accounting`. What every engine runs per episode (datasets' workers here, `owa_builders.engine`)."""
        started = False
        try:
            for table in self._convert_episode(episode, accounting):
                started = True
                yield table
        except BadRecordingError as error:  # only recordings are bad files; event rows come from a dataset
            if started or self.config.on_bad_files == "error":
                raise
            log = logger.warning if self.config.on_bad_files == "warn" else logger.info
            log("skipping bad recording %s", error)
            accounting.skip(episode.relative_path, error.reason, error.problem)

    def episode_splits(self, num_proc: int | None = None) -> dict[str, list[tuple[int, Any]]]:
        """Each split's (index in split, episode) pairs, as `_generate_tables` gets them, for engines other than
        datasets' (a later stage builds its events first, with num_proc processes)."""
        return {generator.name: generator.gen_kwargs["episodes"]
                for generator in self._split_generators(None, num_proc=num_proc)}

    def _after_splits_written(self) -> None:
        """Merge the episodes' accounting and write owa_dataset.json; refuse a build without a single row."""
        parts = self.build_folder / _ACCOUNTING_PARTS
        by_split: dict[str, Accounting] = {}
        for part in sorted(parts.glob("*.json")):
            split = part.name.rsplit("-", 1)[0]
            by_split.setdefault(split, Accounting()).add(Accounting.from_dict(json.loads(part.read_text())))
            part.unlink()
        if parts.exists():
            parts.rmdir()
        self.write_dataset_metadata(by_split)

    def write_dataset_metadata(self, by_split: dict[str, Accounting]) -> None:
        """Check the accounting (merged per split, splits in name order), refuse a build without a single row
        (`info.splits` says how many) and write owa_dataset.json (and what goes with it) into `build_folder`."""
        total = Accounting()
        for accounting in by_split.values():
            total.add(accounting)
        total.check()
        if not any(split.num_examples for split in self.info.splits.values()):
            self._refuse_empty_build(total)
        entries = dict(
            builder=self.name,
            config=self.config.name,
            version=str(self.config.version),
            settings=self.settings(),
            recordings_root=self.config.data_dir,
            accounting={"splits": {name: a.to_dict() for name, a in by_split.items()}, "total": total.to_dict()},
        )
        DatasetMetadata(**entries | self._dataset_metadata()).write(self.build_folder)
        logger.info("%s/%s accounting:\n%s", self.name, self.config.name, total.summary())

    def settings(self) -> dict[str, Any]:
        """The config's field values that decide the rows (what owa_dataset.json records as "settings")."""
        return {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config) if f.name not in NOT_SETTINGS}

    def _refuse_empty_build(self, total: Accounting) -> None:
        """Say why there is not a single row (datasets would only say "Instruction 'train' corresponds to no data")."""
        skipped = "".join(f"; skipped {s['path']} [{s['reason']}]: {s['problem']}" for s in total.skipped_files)
        counts = total.totals()
        if counts.read == 0:
            raise NoMessagesError(self.config.data_dir, f"its recordings hold no messages{skipped}")
        dropped = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.dropped.items()) if n)
        raise ValueError(f"{self.config.data_dir}: {self.name}/{self.config.name} keeps no row: all {counts.read} "
                         f"messages read were dropped ({dropped}){skipped}")

    def _dataset_metadata(self) -> dict:
        """Builder-specific entries of owa_dataset.json (`DatasetMetadata` fields: the fsl tokenizer, …)."""
        return {}
