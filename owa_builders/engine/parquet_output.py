"""The output folder of `build_dataset`: the Hub's parquet layout, and the episodes committed so far.

    OUT/data/<split>-<i:05d>-of-<n:05d>.parquet   the rows: splits and row order as load_dataset's, shards ≤ 500 MB
    OUT/owa_dataset.json                           what a local build stores beside its rows
    OUT/tokenizer/                                 fsl: the expanded tokenizer the ids were made with
    OUT/.owa_build/<split>-<index>.parquet, .json  each converted episode's rows and marker (what a rerun reuses)

An episode is committed in two atomic steps: its rows (written to a temporary name, fsynced, renamed), then its
marker (likewise), which holds its accounting, its row count and its key. The key is a hash of the episode's
input identity (its data_files stamp), the builder, config values and the code hash: a rerun with the same
arguments reuses every episode whose marker has the same key, and converts the others again. The shards are
written from the committed episodes once all are there. ``.owa_build/`` is hidden from datasets' data-file
discovery; delete it once the build is done unless a later rerun should reuse it. A rerun that reuses every
episode leaves the finished folder as it is (``.owa_build/written.json`` names the episodes it holds).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.table import table_cast

from .._registry import code_hash
from ..accounting import Accounting
from ..builder_base import RecordingsBuilder
from ..datasets_adapter import written_split_files
from ..metadata import METADATA_FILE
from ..recordings.episodes import Episode

DATA_FOLDER = "data"
WORK_FOLDER = ".owa_build"
MAX_SHARD_BYTES = 500 * 10**6
ROW_GROUP_BYTES = 64 * 2**20  # a reader's unit of work (the Hub's viewer, datasets' streaming): tens of MB
_TEMPORARY = ".partial"


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to convert: its place in its split and the key its output is committed under."""

    split: str
    index: int
    episode: Any  # an Episode (recordings) or EpisodeRows (event rows), as the builder's splits hold it
    key: str

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:06d}"


@dataclass(frozen=True)
class ShardPart:
    """Rows [start, stop) of one committed episode, going into a shard."""

    episode_file: str
    start: int
    stop: int


def episode_jobs(builder: RecordingsBuilder, splits: dict[str, list[tuple[int, Any]]]) -> list[EpisodeJob]:
    """Every episode of every split, in output order, keyed by its input identity, the config and the code."""
    stamps = dict(entry for files in builder.config.data_files.values() for entry in _stamped(files))
    recipe = {"builder": builder.name, "config": builder.config.name, "version": str(builder.config.version),
              "settings": builder.settings(), "code": code_hash(builder.name)}
    return [EpisodeJob(split, index, episode, _key(recipe, _episode_inputs(builder, episode, stamps), split, index))
            for split, episodes in splits.items() for index, episode in episodes]


def _stamped(files) -> list[tuple[str, Any]]:
    """(path, stamp) of a data_files entry: datasets' list with origin metadata, or a builder's own list of pairs
    (the fsl builder's local tokenizer files)."""
    if hasattr(files, "origin_metadata"):
        return list(zip(files, files.origin_metadata))
    return [(path, stamp) for path, stamp in files]


def _episode_inputs(builder: RecordingsBuilder, episode, stamps: dict[str, Any]) -> dict[str, Any]:
    """The stamps of the files an episode's rows come from: its recording (with the inputs every episode
    shares, such as a local tokenizer), or, for an episode of an event dataset, all of that dataset's files."""
    path = episode.path if isinstance(episode, Episode) else os.path.join(builder.config.data_dir, episode.episode_path)
    if path not in stamps:
        return stamps
    recordings = set(builder.config.data_files.get("recordings", []))
    return {name: stamp for name, stamp in stamps.items() if name == path or name not in recordings}


def _key(recipe: dict, inputs: dict, split: str, index: int) -> str:
    identity = json.dumps({**recipe, "inputs": sorted(inputs.items()), "split": split, "index": index},
                          sort_keys=True, default=str)
    return hashlib.sha256(identity.encode()).hexdigest()


class ParquetOutput:
    """An output folder being built (see the module's docstring)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.work = self.folder / WORK_FOLDER
        self.work.mkdir(parents=True, exist_ok=True)
        for leftover in self.work.glob(f"*{_TEMPORARY}*"):  # what a killed run was writing
            leftover.unlink()

    def committed(self, job: EpisodeJob) -> dict | None:
        """The marker of `job` if a previous run committed it with the same key."""
        marker = self.work / f"{job.name}.json"
        if not marker.exists() or not (self.work / f"{job.name}.parquet").exists():
            return None
        content = json.loads(marker.read_text())
        return content if content["key"] == job.key else None

    def write_dataset(self, builder: RecordingsBuilder, jobs: list[EpisodeJob], markers: dict[str, dict],
                      write_shards) -> dict[str, int]:
        """Write the shards of every split from the committed episodes (`write_shards(plan)` writes a list of
        (path, [ShardPart])), then owa_dataset.json and the tokenizer; returns the rows per split. Nothing is
        rewritten when the folder already holds the dataset of exactly these episodes (a rerun of a finished build)."""
        written = self.work / "written.json"
        episodes_key = hashlib.sha256("".join(job.key for job in jobs).encode()).hexdigest()
        if written.exists():
            record = json.loads(written.read_text())
            files = [self.folder / name for name in record["files"]]
            if record["episodes_key"] == episodes_key and all(path.exists() for path in files):
                return record["rows"]
        written.unlink(missing_ok=True)
        by_split: dict[str, Accounting] = {}
        split_jobs: dict[str, list[EpisodeJob]] = {}
        for job in jobs:
            split_jobs.setdefault(job.split, []).append(job)
            by_split.setdefault(job.split, Accounting()).add(Accounting.from_dict(markers[job.name]["accounting"]))
        staging = self.work / "dataset"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        builder.build_folder, builder.build_file_format = staging, "parquet"
        builder.info.splits = datasets.SplitDict(dataset_name=builder.dataset_name)
        plan = []
        for split, split_jobs_ in split_jobs.items():
            shards = self._shard_parts(split_jobs_, markers)
            info = datasets.SplitInfo(split, num_examples=sum(markers[job.name]["rows"] for job in split_jobs_),
                                      shard_lengths=[sum(p.stop - p.start for p in parts) for parts in shards],
                                      dataset_name=builder.dataset_name)
            builder.info.splits.add(info)
            plan.extend(zip(written_split_files(builder, info), shards))
        write_shards(plan, builder.info.features.arrow_schema)
        builder.write_dataset_metadata(dict(sorted(by_split.items())))  # split order of the local build's
        files = [*self._publish(staging, builder), METADATA_FILE]
        rows = {name: split.num_examples for name, split in builder.info.splits.items()}
        _write_atomically(written, json.dumps({"episodes_key": episodes_key, "rows": rows, "files": files}).encode())
        return rows

    def _shard_parts(self, jobs: list[EpisodeJob], markers: dict[str, dict]) -> list[list[ShardPart]]:
        """The split's rows, in order, cut into shards of at most MAX_SHARD_BYTES (estimated from the episodes'
        files); always at least one shard, so that an empty split still has its schema."""
        shards: list[list[ShardPart]] = [[]]
        room = MAX_SHARD_BYTES
        for job in jobs:
            rows, path = markers[job.name]["rows"], self.work / f"{job.name}.parquet"
            row_bytes = max(1, path.stat().st_size // max(rows, 1))
            start = 0
            while start < rows:
                if room < row_bytes and shards[-1]:
                    shards.append([])
                    room = MAX_SHARD_BYTES
                stop = min(rows, start + max(1, room // row_bytes))
                shards[-1].append(ShardPart(os.fspath(path), start, stop))
                room -= (stop - start) * row_bytes
                start = stop
        return shards

    def _publish(self, staging: Path, builder: RecordingsBuilder) -> list[str]:
        """Move the staged dataset into the output folder under the Hub's names, replacing a previous build's;
        returns the shards' paths in the folder."""
        data = self.folder / DATA_FOLDER
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        shards = []
        for split in builder.info.splits.values():
            files = written_split_files(builder, split)
            for i, path in enumerate(files):
                shards.append(f"{DATA_FOLDER}/{split.name}-{i:05d}-of-{len(files):05d}.parquet")
                os.replace(path, self.folder / shards[-1])
        for companion in staging.iterdir():  # owa_dataset.json and what the builder saved beside it
            target = self.folder / companion.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(companion, target)
        staging.rmdir()
        return shards


def convert_episode(builder: RecordingsBuilder, work: str, job: EpisodeJob) -> dict:
    """Convert one episode with the builder's own per-episode function and commit it; returns its marker."""
    accounting = Accounting()
    schema = builder.info.features.arrow_schema
    rows_file = Path(work, f"{job.name}.parquet")
    partial = rows_file.with_name(f"{rows_file.name}{_TEMPORARY}-{os.getpid()}")
    rows = 0
    with pq.ParquetWriter(partial, schema) as writer:
        for table in builder.episode_tables(job.episode, accounting):
            writer.write_table(table_cast(table, schema))
            rows += table.num_rows
    _commit(partial, rows_file)
    marker = {"episode": job.name, "key": job.key, "rows": rows, "accounting": accounting.to_dict()}
    _write_atomically(Path(work, f"{job.name}.json"), json.dumps(marker).encode())
    return marker


def write_shard(path: str, parts: list[ShardPart], schema: pa.Schema) -> None:
    """One shard from its episodes' rows, in row groups of about ROW_GROUP_BYTES (small episodes share one)."""
    partial = Path(f"{path}{_TEMPORARY}")
    pending: list[pa.Table] = []
    with pq.ParquetWriter(partial, schema) as writer:
        for part in parts:
            table = pq.read_table(part.episode_file, schema=schema).slice(part.start, part.stop - part.start)
            for batch in table.to_batches():
                pending.append(pa.Table.from_batches([batch], schema))
                if sum(t.nbytes for t in pending) >= ROW_GROUP_BYTES:
                    _write_row_group(writer, pending)
        _write_row_group(writer, pending)
    _commit(partial, Path(path))


def _write_row_group(writer: pq.ParquetWriter, tables: list[pa.Table]) -> None:
    if tables:
        table = pa.concat_tables(tables)
        writer.write_table(table, row_group_size=table.num_rows)
        tables.clear()


def _write_atomically(path: Path, content: bytes) -> None:
    partial = path.with_name(f"{path.name}{_TEMPORARY}-{os.getpid()}")
    partial.write_bytes(content)
    _commit(partial, path)


def _commit(partial: Path, path: Path) -> None:
    """fsync `partial` and rename it to `path` (and fsync the folder, so the rename survives a crash)."""
    with open(partial, "rb+") as file:
        os.fsync(file.fileno())
    os.replace(partial, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)

