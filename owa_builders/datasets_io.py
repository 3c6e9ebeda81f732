"""Saving and loading our datasets as folders, with the method form of the transform (as in upstream owa-data):

    save_to_disk(dataset, "fsl-dataset/")       # rows, with what the builder left beside them
    dataset = load_from_disk("fsl-dataset/")
    dataset["train"].auto_set_transform(stage="fsl", load_images=True)

Our builders leave files beside a dataset's rows: owa_dataset.json (builder, settings, the recordings'
root: what stage inference and media lookup read) and, for fsl, the expanded tokenizer. datasets' own
``save_to_disk`` does not copy them, so save with `save_to_disk` here. `load_from_disk` also loads the
parquet folders `owa_builders.build_dataset` writes (the Hub's layout: ``data/<split>-*.parquet`` beside
owa_dataset.json), putting the companions beside the loaded rows.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import datasets

from .metadata import METADATA_FILE, DatasetMetadata, dataset_folder


def _auto_set_transform(self, *args, **kwargs):
    """`owa_builders.auto_set_transform(self, ...)`; the media decoders it needs are imported on first use."""
    from .media.transforms import auto_set_transform

    return auto_set_transform(self, *args, **kwargs)


class OwaDataset(datasets.Dataset):
    """A `datasets.Dataset` with ``auto_set_transform`` as a method (what `load_from_disk` returns)."""

    auto_set_transform = _auto_set_transform


class OwaDatasetDict(datasets.DatasetDict):
    """A `datasets.DatasetDict` of `OwaDataset` splits, with ``auto_set_transform`` for all of them."""

    auto_set_transform = _auto_set_transform


PARQUET_DATA_FOLDER = "data"  # the rows of a parquet folder: data/<split>-<i>-of-<n>.parquet


def load_from_disk(path: str | os.PathLike, **kwargs) -> OwaDataset | OwaDatasetDict:
    """`datasets.load_from_disk`, or for a parquet folder `datasets.load_dataset(path)`, returning our classes,
    with owa_dataset.json (and the fsl tokenizer) beside the rows; kwargs go to datasets."""
    if not parquet_shards(path):
        return as_owa_dataset(datasets.load_from_disk(os.fspath(path), **kwargs))
    loaded = datasets.load_dataset(os.fspath(path), **kwargs)
    _copy_companions(Path(path), [dataset_folder(loaded)])
    return as_owa_dataset(loaded)


def parquet_shards(path: str | os.PathLike) -> list[Path]:
    """The shards of a parquet folder (data/*.parquet beside owa_dataset.json); [] for any other folder."""
    folder = Path(path)
    if not (folder / METADATA_FILE).is_file():
        return []
    return sorted((folder / PARQUET_DATA_FOLDER).glob("*.parquet"))


def as_owa_dataset(loaded: datasets.Dataset | datasets.DatasetDict) -> OwaDataset | OwaDatasetDict:
    """`loaded` as our classes (``auto_set_transform`` as a method); a Dataset is changed in place."""
    if isinstance(loaded, datasets.DatasetDict):
        return OwaDatasetDict({split: as_owa_dataset(dataset) for split, dataset in loaded.items()})
    loaded.__class__ = OwaDataset  # a subclass adding methods only: same state, nothing to copy
    return loaded


def save_to_disk(dataset: datasets.Dataset | datasets.DatasetDict, path: str | os.PathLike, **kwargs) -> None:
    """`dataset.save_to_disk(path)`, plus what our builder left beside its rows, in each split's folder."""
    dataset.save_to_disk(os.fspath(path), **kwargs)
    splits = list(dataset) if isinstance(dataset, datasets.DatasetDict) else [""]
    _copy_companions(dataset_folder(dataset), [Path(path, split) for split in splits])


def _copy_companions(source: Path, folders: list[Path]) -> None:
    """Copy owa_dataset.json and what it names (the fsl tokenizer folder) from source into each folder."""
    metadata = DatasetMetadata.read(source)
    companions = [METADATA_FILE] + ([metadata.tokenizer["folder"]] if metadata.tokenizer is not None else [])
    for folder, name in itertools.product(folders, companions):
        if (source / name).is_dir():
            shutil.copytree(source / name, folder / name, dirs_exist_ok=True)
        else:
            shutil.copy(source / name, folder / name)
