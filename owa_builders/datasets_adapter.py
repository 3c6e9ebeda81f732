"""Every use of `datasets` beyond its public API, in one place.

Each entry says why we need it and what change in datasets would break it. Nothing else in owa_builders
imports a private name of datasets or overrides a private builder method; when a datasets release breaks
one of these, this module is the one to fix (and `supported_datasets_problem` is what the tests check first).
The supported range is the ``datasets`` requirement in pyproject.toml.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Iterator

import datasets
from datasets.exceptions import DatasetGenerationError
from datasets.table import ConcatenationTable, MemoryMappedTable


def supported_datasets_problem(installed: str | None = None) -> str | None:
    """Why the installed datasets (or `installed`) is outside the range pyproject.toml declares; None if inside."""
    from packaging.requirements import Requirement

    installed = installed or importlib.metadata.version("datasets")
    requirement = next(Requirement(text) for text in importlib.metadata.requires("owa-builders") or []
                       if Requirement(text).name == "datasets")
    if requirement.specifier.contains(installed, prereleases=True):
        return None
    return (f"datasets {installed} is installed, but owa-builders supports datasets{requirement.specifier} "
            "(it relies on datasets internals listed in owa_builders/datasets_adapter.py); "
            f"install a supported version: pip install 'datasets{requirement.specifier}'")


try:
    from datasets.data_files import DataFilesDict, DataFilesList
    from datasets.download.streaming_download_manager import StreamingDownloadManager
    from datasets.load import DatasetModule, PackagedDatasetModuleFactory
    from datasets.naming import filenames_for_dataset_split
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES
except ImportError as error:  # a datasets release that moved them: say what to do, not where it broke
    raise ImportError(supported_datasets_problem() or f"owa-builders: a datasets internal moved ({error})") from error


# Registration. `load_dataset("owa_events")` resolves a bare name through the packaged-modules table
# (name -> (module path, hash)); there is no public registry. Breaks if the table is renamed or its
# value changes shape.
def register_packaged_module(name: str, module_path: str, code_hash: str) -> None:
    _PACKAGED_DATASETS_MODULES[name] = (module_path, code_hash)
    _OWN_MODULES.add(name)


# For a packaged name, datasets globs every file under data_dir into split patterns before any builder
# runs, and fails with its own "doesn't contain any data files" on a missing or empty folder. Our builders
# list their inputs themselves (and name a folder mistake), so for our names only that step is skipped:
# the builder gets data_dir and empty data_files (load_dataset_builder refuses None for a packaged name).
# Breaks if the factory class, its `get_module`, its `name` attribute or DatasetModule's fields change.
_OWN_MODULES: set[str] = set()
_datasets_get_module = PackagedDatasetModuleFactory.get_module


def _get_module(factory: PackagedDatasetModuleFactory) -> DatasetModule:
    if factory.name not in _OWN_MODULES:
        return _datasets_get_module(factory)
    module_path, code_hash = _PACKAGED_DATASETS_MODULES[factory.name]
    return DatasetModule(module_path, code_hash, {"data_files": DataFilesDict(), "dataset_name": factory.name})


PackagedDatasetModuleFactory.get_module = _get_module


def registered_packaged_module(name: str) -> tuple[str, str] | None:
    return _PACKAGED_DATASETS_MODULES.get(name)


# Cache key. datasets hashes `config.data_files` into the cache folder's name, origin metadata included;
# we list the recordings ourselves and give each file's (size, mtime) as its origin metadata, so that a
# changed file misses the cache. Breaks if DataFilesList's constructor or what config_id hashes changes.
def stamped_data_files(files: dict[str, list[tuple[str, tuple[str, ...]]]]) -> DataFilesDict:
    """{name: [(path, stamp), ...]} as the data_files datasets hashes."""
    return DataFilesDict({name: DataFilesList([path for path, _ in entries], [stamp for _, stamp in entries])
                          for name, entries in files.items()})


# Streaming. A streamed build writes nothing, so it leaves no accounting; the download manager's class is
# the only sign of it in `_split_generators`. Breaks if the class moves.
def is_streaming(dl_manager) -> bool:
    return isinstance(dl_manager, StreamingDownloadManager)


# Where a builder's stage 1 goes: the cache root the user gave the later stage (`cache_dir=`), so that
# both share one cache. Breaks if the attribute is renamed.
def cache_root(builder: datasets.DatasetBuilder) -> str:
    return builder._cache_dir_root


# The Arrow files whose whole contents, in order, are a Dataset's rows: its table is memory-mapped files
# stacked one after the other, none of them sliced or otherwise changed since it was mapped (the operations
# a MemoryMappedTable replays; new schema metadata changes no row). None for anything else (in-memory rows,
# slices, columns added side by side). `cache_files` alone cannot tell (a slice of a file lists the whole
# file). Breaks if datasets.table's classes or replay names change.
_ROW_PRESERVING_REPLAYS = {"replace_schema_metadata"}


def whole_arrow_files(dataset: datasets.Dataset) -> list[str] | None:
    table = dataset.data
    blocks = table.blocks if isinstance(table, ConcatenationTable) else [[table]]
    files = []
    for row in blocks:
        if not (len(row) == 1 and isinstance(row[0], MemoryMappedTable)
                and all(name in _ROW_PRESERVING_REPLAYS for name, _, _ in row[0].replays)):
            return None
        files.append(row[0].path)
    return files


# A selected or shuffled Dataset reads its rows through an indices mapping; we read Arrow tables in stored
# order and must flatten it first. No public way to ask; breaks if the attribute is renamed.
def has_indices_mapping(dataset: datasets.Dataset) -> bool:
    return dataset._indices is not None


class BuilderHooks(datasets.ArrowBasedBuilder):
    """Three builder hooks datasets has only in private form, overridden here and nowhere else."""

    # Set for the duration of a build (download_and_prepare, not streaming): the folder the splits are
    # written into (datasets' temporary one, moved into place when the build succeeds, so a build either
    # has its owa_dataset.json or is not there) and the file format ("arrow" or "parquet").
    build_folder: Path | None = None
    build_file_format: str | None = None

    def _after_splits_written(self) -> None:
        """Called once every split is written into `build_folder`, before datasets moves it into place."""

    # `_split_generators` gets num_proc (stage 1, built by a later stage's split generators, converts with
    # as many processes). datasets offers this hook for packaged builders; breaks if it is renamed.
    def _make_split_generators_kwargs(self, prepare_split_kwargs: dict) -> dict:
        return {"num_proc": prepare_split_kwargs.get("num_proc")}

    # `_output_dir` is the temporary folder during this call and `_file_format` the format download_and_prepare
    # was asked for; breaks if the method or either attribute is renamed.
    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        self.build_folder, self.build_file_format = Path(self._output_dir), self._file_format
        super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        self._after_splits_written()

    # datasets wraps whatever `_generate_tables` raises in "DatasetGenerationError: An error occurred while
    # generating the dataset" (with num_proc > 1 the cause, our error, is lost in the worker). Our own
    # errors (OWN_ERRORS: they name the file and the problem, and pickle) are raised as themselves, in the
    # worker, so they reach the user whatever num_proc. Breaks if the per-job writer method is renamed.
    OWN_ERRORS: tuple[type[Exception], ...] = ()

    def _prepare_split_single(self, *args, **kwargs) -> Iterator:
        try:
            yield from super()._prepare_split_single(*args, **kwargs)
        except DatasetGenerationError as error:
            cause = error.__cause__
            if isinstance(cause, self.OWN_ERRORS):
                raise cause.with_traceback(cause.__traceback__) from None
            raise


# The files datasets wrote for a split, to read back a column after the build (the fsl fill). Their names
# follow datasets' naming scheme; breaks if it changes.
def written_split_files(builder: BuilderHooks, split: datasets.SplitInfo) -> list[str]:
    """The files of `split` in the build folder, during `_after_splits_written`."""
    return filenames_for_dataset_split(os.fspath(builder.build_folder), builder.dataset_name, split.name,
                                       builder.build_file_format, split.shard_lengths)
