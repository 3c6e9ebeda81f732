"""Event rows for the later stages (fsl, binned), one episode at a time.

A later stage's ``data_dir`` holds either

- recordings (``*.mcap``): they are converted with a named events config through the owa_events builder,
  so stage 1's cache is shared with anyone else who built the same events config; or
- an event dataset written by stage 1: a `save_to_disk` folder, or parquet files.

Either way the result is, per split, a list of `EpisodeRows`: the contiguous row range of one episode
in a memory-mapped dataset. They pickle as file references, so `num_proc` workers (or another engine)
can each read their own episodes.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._registry import builder_class
from ..builder_base import RecordingsBuilder, recordings_data_files, stamped_files
from ..datasets_adapter import cache_root, has_indices_mapping, stamped_data_files, whole_arrow_files
from ..metadata import METADATA_FILE, DatasetMetadata, read_dataset_metadata
from ..recordings.episodes import find_episodes
from ..recordings.errors import NoRecordingsError
from ..recordings.sources import RemoteRoot, is_url
from .stage import EVENT_SCHEMA

InputKind = Literal["recordings", "saved_dataset", "parquet"]
_EVENT_DATASET_FILES = (".parquet", ".arrow", ".json")  # what a remote event dataset is read from


@dataclass(frozen=True)
class StoredBatch:
    """A record batch of an Arrow stream file (datasets' cache format): where its message starts, and the
    split's row it starts with."""

    path: str
    offset: int  # bytes
    first_row: int


@dataclass(frozen=True)
class EpisodeRows:
    """The event rows of one episode: rows [start, stop) of one split, ordered by time."""

    dataset: datasets.Dataset
    start: int
    stop: int
    episode_path: str
    stored_from: StoredBatch | None = None  # the batch the rows start in, when all of them are in its file

    def table(self) -> pa.Table:
        """The rows. Stored rows are read from their own record batches through a memory map of their own,
        unmapped with the table: the pages one episode reads do not stay resident while later ones are
        converted, and no other batch of the file is touched."""
        if self.stored_from is None:
            return self.dataset.data.table.slice(self.start, len(self))
        batch = self.stored_from
        source = pa.memory_map(batch.path)
        schema = pa.ipc.read_schema(pa.ipc.read_message(source))  # a stream starts with its schema
        source.seek(batch.offset)
        batches, end = [], batch.first_row
        while end < self.stop:
            batches.append(pa.ipc.read_record_batch(pa.ipc.read_message(source), schema))
            end += batches[-1].num_rows
        return pa.Table.from_batches(batches, schema).slice(self.start - batch.first_row, len(self))

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class EventSplits:
    splits: dict[str, list[EpisodeRows]]
    events_metadata: DatasetMetadata | None  # owa_dataset.json of the event dataset (None when it had none)


def input_kind(data_dir: str | os.PathLike | RemoteRoot) -> InputKind:
    """What a later stage's data_dir (an existing folder, or a remote root's listing) holds; NoRecordingsError
    when it is none of what we read."""
    if find_episodes(data_dir):
        return "recordings"
    if isinstance(data_dir, RemoteRoot):
        where, names = data_dir.url, list(data_dir.files)
    else:
        where, names = data_dir, [p.relative_to(data_dir).as_posix() for p in Path(data_dir).rglob("*") if p.is_file()]
    if {"dataset_dict.json", "state.json"} & set(names):
        return "saved_dataset"
    if any(name.endswith(".parquet") for name in names):
        return "parquet"
    raise NoRecordingsError(where, "holds neither recordings (*.mcap) nor an event dataset "
                                   "(a save_to_disk folder or parquet files)")


def input_data_files(data_dir: str | os.PathLike) -> dict[str, list[str]]:
    """The files whose change must rebuild a later stage: the recordings, or the event dataset's files."""
    listed = RemoteRoot.list(data_dir) if is_url(data_dir) else data_dir
    if input_kind(listed) == "recordings":
        return recordings_data_files(data_dir, find_episodes(listed))
    if isinstance(listed, RemoteRoot):
        return stamped_data_files({"events": [(listed.url_of(name), identity)
                                              for name, identity in sorted(listed.files.items())]})
    return stamped_data_files({"events": folder_files(data_dir)})


def folder_files(folder: str | os.PathLike) -> list[tuple[str, tuple[str, ...]]]:
    """Every file under folder, stamped (for the cache key)."""
    return stamped_files(sorted(str(p) for p in Path(folder).rglob("*") if p.is_file()))


def build_events(data_dir: str | os.PathLike, events_config: str, events_overrides: dict[str, Any] | None = None,
                 cache_dir: str | None = None, num_proc: int | None = None) -> datasets.DatasetDict:
    """Stage 1 of recordings, through its builder class: the cache `load_dataset("owa_events", ...)` uses."""
    builder = builder_class("owa_events")(config_name=events_config, data_dir=str(data_dir), cache_dir=cache_dir,
                                          **(events_overrides or {}))
    builder.download_and_prepare(num_proc=num_proc)
    return builder.as_dataset()


def load_event_splits(
    data_dir: str | os.PathLike,
    events_config: str,
    events_overrides: dict[str, Any] | None = None,
    cache_dir: str | None = None,
    num_proc: int | None = None,
) -> EventSplits:
    """Event rows per split and episode, converting recordings with ``events_config`` if need be.

    A remote event dataset (a URL) is copied into the cache first, its data files only, and read from there."""
    where = data_dir
    listed = RemoteRoot.list(data_dir) if is_url(data_dir) else data_dir
    kind = input_kind(listed)
    if kind != "recordings" and isinstance(listed, RemoteRoot):
        data_dir = listed.mirror([name for name in listed.files if name.endswith(_EVENT_DATASET_FILES)],
                                 cache_dir or datasets.config.HF_DATASETS_CACHE)
    if kind == "recordings":
        built = build_events(data_dir, events_config, events_overrides, cache_dir, num_proc)
        metadata = read_dataset_metadata(built)
    elif kind == "saved_dataset":  # saved by owa_builders.save_to_disk, its metadata is beside each split
        built = datasets.load_from_disk(str(data_dir))
        metadata = _metadata_if_any(built)
    else:
        built = datasets.load_dataset("parquet", data_dir=str(data_dir), cache_dir=cache_dir)
        sidecar = Path(data_dir, METADATA_FILE)
        metadata = DatasetMetadata.read(sidecar) if sidecar.exists() else None
    if isinstance(built, datasets.Dataset):
        built = datasets.DatasetDict({"train": built})
    return EventSplits({name: episode_rows(split, f"{where} [{name}]") for name, split in built.items()}, metadata)


def _metadata_if_any(dataset) -> DatasetMetadata | None:
    try:
        return read_dataset_metadata(dataset)
    except FileNotFoundError:  # an event dataset saved by datasets itself carries none
        return None


def episode_rows(dataset: datasets.Dataset, where: str) -> list[EpisodeRows]:
    """Cut a split into episodes; refuse an event dataset whose rows are not grouped by episode."""
    missing = set(EVENT_SCHEMA.names) - set(dataset.column_names)
    if missing:
        raise ValueError(f"{where}: not an event dataset, columns {sorted(missing)} are missing")
    if has_indices_mapping(dataset):  # a selected or shuffled view: rows must be read in stored order
        dataset = dataset.flatten_indices()
    starts, names = [], []  # where each run of one episode's rows starts, found record batch by record batch
    offset, previous = 0, None  # (memory stays flat: no copy of the column, which grows with the recordings)
    for chunk in dataset.data.table.column("episode_path").chunks:
        if chunk.null_count:
            raise ValueError(f"{where}: not an event dataset, some rows have no episode_path")
        if len(chunk):
            changes = np.flatnonzero(pc.not_equal(chunk[1:], chunk[:-1]).to_numpy(zero_copy_only=False)) + 1
            first = chunk[0].as_py()
            for start in ([0] if first != previous else []) + changes.tolist():
                starts.append(offset + start)
                names.append(chunk[start].as_py())
            offset, previous = offset + len(chunk), chunk[-1].as_py()
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: rows of one episode are not contiguous (the event dataset is not ordered by episode)")
    stops = starts[1:] + [offset]
    batches = _stored_batches(dataset)
    first_rows = [batch.first_row for batch in batches]
    episodes = []
    for start, stop, name in zip(starts, stops, names):
        i = bisect.bisect_right(first_rows, start) - 1
        same_file = batches and all(batch.path == batches[i].path for batch in batches[i : bisect.bisect_left(first_rows, stop)])
        episodes.append(EpisodeRows(dataset, start, stop, name, batches[i] if same_file else None))
    return episodes


def _stored_batches(dataset: datasets.Dataset) -> list[StoredBatch]:
    """Every record batch of the Arrow files that hold exactly the split's rows, in order; none when the rows
    are not simply those files (in memory, sliced, other columns) or the files hold other than record batches."""
    batches: list[StoredBatch] = []
    first_row = 0
    for path in whole_arrow_files(dataset) or []:
        source = pa.memory_map(path)
        schema = pa.ipc.read_schema(pa.ipc.read_message(source))
        if not schema.equals(dataset.data.schema, check_metadata=False):
            return []
        while True:
            offset = source.tell()
            try:
                message = pa.ipc.read_message(source)
            except EOFError:
                break
            if message.type != "record batch":  # e.g. dictionary batches: read through the dataset instead
                return []
            rows = pa.ipc.read_record_batch(message, schema).num_rows
            batches.append(StoredBatch(path, offset, first_row))
            first_row += rows
    return batches if first_row == dataset.num_rows else []


class EventRowsBuilder(RecordingsBuilder):
    """Base of the builders whose input is event rows (fsl, binned): one episode's rows per unit of work."""

    def _input_files(self, data_dir: str, config_kwargs: dict) -> dict[str, list[str]]:
        return input_data_files(data_dir)

    def _split_generators(self, dl_manager, num_proc: int | None = None):
        if not self.config.data_dir:
            raise ValueError(f"{self.name}: pass data_dir= (recordings, or an event dataset)")
        self._events = load_event_splits(self.config.data_dir, self.config.events_config, self.config.events_kwargs(),
                                         cache_dir=cache_root(self), num_proc=num_proc)
        self._prepare(self._events)
        return self._episode_splits(self._events.splits, dl_manager)

    def _prepare(self, events: EventSplits) -> None:
        """What the stage needs to know before converting episodes (e.g. the fsl tokenizer)."""

    def _dataset_metadata(self) -> dict:
        events = self._events.events_metadata
        if events is None:
            return {"recordings_root": None, "events": None}
        return {
            "recordings_root": events.recordings_root,  # where the screen media uris resolve
            "events": {"builder": events.builder, "config": events.config, "settings": events.settings,
                       "accounting": events.accounting},
        }
