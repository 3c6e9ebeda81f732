"""Builder configs as YAML files (``configs/*.yaml``), reviewed in PRs like code.

A file names a builder and one of its named configs, and may set any of that config's fields:

    builder: owa_events
    name: desktop
    version: 1.0.0
    rate_limits: {screen: {hz: 10}}

`read_config_file` checks the names against the builder and returns the `load_dataset` arguments.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import yaml

from ._registry import BUILDERS, builder_class

_NOT_SETTINGS = {"name", "version", "data_dir", "data_files", "description"}


@dataclass(frozen=True)
class ConfigFile:
    builder: str
    name: str
    version: str | None
    values: dict[str, Any]

    def load_dataset_kwargs(self) -> dict[str, Any]:
        """`datasets.load_dataset(**these, data_dir=...)` builds this config."""
        kwargs: dict[str, Any] = {"path": self.builder, "name": self.name, **self.values}
        if self.version is not None:
            kwargs["version"] = self.version
        return kwargs


def settings_fields(builder: str) -> list[str]:
    """The fields a config file (or a keyword override) may set for a builder."""
    config_class = builder_class(builder).BUILDER_CONFIG_CLASS
    return [f.name for f in dataclasses.fields(config_class) if f.name not in _NOT_SETTINGS]


def read_config_file(path: str | os.PathLike) -> ConfigFile:
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file is a mapping with at least 'builder' and 'name'")
    builder, name = data.pop("builder", None), data.pop("name", None)
    if builder not in BUILDERS:
        raise ValueError(f"{path}: 'builder' must be one of {sorted(BUILDERS)}, not {builder!r}")
    named = [config.name for config in builder_class(builder).BUILDER_CONFIGS]
    if name not in named:
        raise ValueError(f"{path}: 'name' must be one of {builder}'s named configs {named}, not {name!r}")
    version = data.pop("version", None)
    unknown = set(data) - set(settings_fields(builder))
    if unknown:
        raise ValueError(f"{path}: unknown fields {sorted(unknown)} for {builder}; known: {settings_fields(builder)}")
    return ConfigFile(builder, name, None if version is None else str(version), data)
