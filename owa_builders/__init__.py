"""owa-builders: HuggingFace dataset builders for OWAMcap desktop recordings.

Importing the package registers its builders with `datasets`, so that

    import owa_builders, datasets
    datasets.load_dataset("owa_events", "desktop", data_dir="recordings/")

runs our builder with datasets' own caching, ``num_proc`` and streaming. `push_dataset` shares a built
dataset on the Hub with the videos its rows reference; `load_from_hub` gets it back, frames and all.

Importing is cheap: what training or sharing needs (media decoders, the Hub upload machinery) is
imported when first used. Logging follows datasets' convention: the "owa_builders" logger has no handler
and its level is the application's to set (the CLI configures it for itself).
"""

from __future__ import annotations

import importlib

from ._registry import BUILDERS, builder_class, register_builders
from .accounting import Accounting
from .metadata import DatasetMetadata, read_accounting, read_dataset_metadata

__version__ = "0.1.0"

# name -> module (relative to this package) that defines it, imported on first access
_LAZY = {
    "OwaDataset": "datasets_io", "OwaDatasetDict": "datasets_io", "load_from_disk": "datasets_io",
    "save_to_disk": "datasets_io", "BuildReport": "engine", "build_dataset": "engine",
    "FslCollator": "media", "HubMediaRoot": "media", "LocalMediaRoot": "media", "MalformedRowError": "media",
    "MediaRoot": "media", "MissingFrameError": "media", "RemoteMediaRoot": "media", "auto_set_transform": "media",
    "make_transform": "media",
    "PushReport": "publish", "load_from_hub": "publish", "push_dataset": "publish",
}

__all__ = ["Accounting", "BUILDERS", "DatasetMetadata", "builder_class", "read_accounting", "read_dataset_metadata",
           "register_builders", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


register_builders()
