"""Saving and loading our datasets as folders, with the seed's method form of the transform:

    save_to_disk(dataset, "fsl-dataset/")       # rows, with what the builder left beside them
    dataset = load_from_disk("fsl-dataset/")
    dataset["train"].auto_set_transform(stage="fsl", load_images=True)

Our builders leave files beside a dataset's rows: owa_dataset.json (builder, settings, the recordings'
root: what stage inference and media lookup read) and, for fsl, the expanded tokenizer. datasets' own
``save_to_disk`` does not copy them, so save with `save_to_disk` here.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import datasets

from .hf import METADATA_FILE, dataset_folder, read_dataset_metadata


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


def load_from_disk(path: str | os.PathLike, **kwargs) -> OwaDataset | OwaDatasetDict:
    """`datasets.load_from_disk`, returning our classes; kwargs go to datasets."""
    return as_owa_dataset(datasets.load_from_disk(os.fspath(path), **kwargs))


def as_owa_dataset(loaded: datasets.Dataset | datasets.DatasetDict) -> OwaDataset | OwaDatasetDict:
    """`loaded` as our classes (``auto_set_transform`` as a method); a Dataset is changed in place."""
    if isinstance(loaded, datasets.DatasetDict):
        return OwaDatasetDict({split: as_owa_dataset(dataset) for split, dataset in loaded.items()})
    loaded.__class__ = OwaDataset  # a subclass adding methods only: same state, nothing to copy
    return loaded


def save_to_disk(dataset: datasets.Dataset | datasets.DatasetDict, path: str | os.PathLike, **kwargs) -> None:
    """`dataset.save_to_disk(path)`, plus what our builder left beside its rows, in each split's folder."""
    source = dataset_folder(dataset)
    metadata = read_dataset_metadata(dataset)
    companions = [METADATA_FILE] + ([metadata["tokenizer"]["folder"]] if "tokenizer" in metadata else [])
    dataset.save_to_disk(os.fspath(path), **kwargs)
    splits = list(dataset) if isinstance(dataset, datasets.DatasetDict) else [""]
    folders = [Path(path, split) for split in splits]
    for folder, name in itertools.product(folders, companions):
        copy = shutil.copytree if (source / name).is_dir() else shutil.copy
        copy(source / name, folder / name)
