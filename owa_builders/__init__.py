"""owa-builders: HuggingFace dataset builders for OWAMcap desktop recordings.

Importing the package registers its builders with `datasets`, so that

    import owa_builders, datasets
    datasets.load_dataset("owa_events", "desktop", data_dir="recordings/")

runs our builder with datasets' own caching, ``num_proc`` and streaming. `push_dataset` shares a built
dataset on the Hub with the videos its rows reference; `load_from_hub` gets it back, frames and all.
"""

from __future__ import annotations

import logging

from ._registry import BUILDERS, builder_class, register_builders
from .accounting import Accounting
from .datasets_io import OwaDataset, OwaDatasetDict, load_from_disk, save_to_disk
from .hf import read_accounting, read_dataset_metadata
from .media import (
    FslCollator,
    HubMediaRoot,
    LocalMediaRoot,
    MediaRoot,
    MissingFrameError,
    auto_set_transform,
    make_transform,
)
from .publish import PushReport, load_from_hub, push_dataset

__version__ = "0.1.0"
__all__ = [
    "Accounting", "BUILDERS", "builder_class", "read_accounting", "read_dataset_metadata", "register_builders",
    "FslCollator", "HubMediaRoot", "LocalMediaRoot", "MediaRoot", "MissingFrameError", "OwaDataset", "OwaDatasetDict",
    "PushReport", "auto_set_transform", "load_from_disk", "load_from_hub", "make_transform", "push_dataset",
    "save_to_disk",
]

_logger = logging.getLogger("owa_builders")
if not _logger.handlers:  # show build summaries by default; an application's own logging config wins
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    _logger.addHandler(_handler)
    _logger.setLevel(logging.INFO)
    _logger.propagate = False

register_builders()
