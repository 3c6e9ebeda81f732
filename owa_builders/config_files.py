"""Builder configs as YAML files (``configs/*.yaml``), reviewed in PRs like code, and the version lock.

The named configs are defined there and nowhere else: each builder reads its own files
(`named_configs_from_files`; installed as the package ``owa_builders.named_configs``). A file names a
builder and one of its named configs, and may set any of that config's fields:

    builder: owa_events
    name: desktop
    version: 1.0.0
    rate_limits: {screen: {hz: 10}}

`read_config_file` checks the names against the builder and returns the `load_dataset` arguments.

``configs/versions.lock.json`` records, per named config, its version and a hash of its field values. A
named config whose values change must get a new version (datasets and users tell builds apart by it);
`lock_problems` says where that was forgotten, and the lock is refreshed, at the repository's root, with

    python -m owa_builders.config_files --update-lock

which refuses while a config's values changed under an unchanged version.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import datasets
import yaml

from ._registry import BUILDERS, builder_class

NOT_SETTINGS = frozenset({"name", "version", "data_dir", "data_files", "description"})  # BuilderConfig's own
NAMED_CONFIGS_PACKAGE = "owa_builders.named_configs"  # configs/ of the repository
LOCK_FILE = Path("configs", "versions.lock.json")  # relative to the repository's root
UPDATE_LOCK_COMMAND = "python -m owa_builders.config_files --update-lock"


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

    def config(self) -> datasets.BuilderConfig:
        """The builder config this file describes: the named config with the file's values set."""
        config = dataclasses.replace(named_config(self.builder, self.name), **self.values)
        if self.version is not None:
            config.version = datasets.Version(self.version)
        config.validate()
        return config


def named_configs_from_files(builder: str, config_class: type[datasets.BuilderConfig], folder=None
                             ) -> list[datasets.BuilderConfig]:
    """A builder's named configs, from its YAML files (``configs/<stage>_<name>.yaml``; `folder`: another
    folder of them), in natural name order. Called by the builder module as it is imported (so it must not
    need the builder class)."""
    prefix = config_file_name(builder, "").removesuffix(".yaml")
    configs = []
    for resource in sorted((folder or files(NAMED_CONFIGS_PACKAGE)).iterdir(), key=lambda item: item.name):
        if not (resource.name.startswith(prefix) and resource.name.endswith(".yaml")):
            continue
        data = yaml.safe_load(resource.read_text()) or {}
        where = f"configs/{resource.name}"
        if data.get("builder") != builder or config_file_name(builder, str(data.get("name"))) != resource.name:
            raise ValueError(f"{where}: must name builder {builder!r} and the config its file name says")
        name, version, description = data.pop("name"), data.pop("version", None), data.pop("description", None)
        del data["builder"]
        unknown = set(data) - {f.name for f in dataclasses.fields(config_class)} | (set(data) & NOT_SETTINGS)
        if unknown or version is None or not description:
            raise ValueError(f"{where}: needs a version and a description; unknown fields: {sorted(unknown)}")
        configs.append(config_class(name=name, version=datasets.Version(str(version)), description=description, **data))
    return sorted(configs, key=lambda config: [int(part) if part.isdigit() else part
                                                for part in re.split(r"(\d+)", config.name)])


def settings_fields(builder: str) -> list[str]:
    """The fields a config file (or a keyword override) may set for a builder."""
    config_class = builder_class(builder).BUILDER_CONFIG_CLASS
    return [f.name for f in dataclasses.fields(config_class) if f.name not in NOT_SETTINGS]


def named_config(builder: str, name: str) -> datasets.BuilderConfig:
    """One of a builder's named configs; ValueError listing them when `name` is none of them."""
    configs = {config.name: config for config in builder_class(builder).BUILDER_CONFIGS}
    if name not in configs:
        raise ValueError(f"{name!r} is none of {builder}'s named configs {list(configs)}")
    return configs[name]


def config_file_name(builder: str, name: str) -> str:
    """The YAML file of a named config under configs/: ``events_desktop.yaml``, ``fsl_internvl3.yaml``, …"""
    return f"{builder.removeprefix('owa_')}_{name}.yaml"


def read_config_file(path: str | os.PathLike) -> ConfigFile:
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file is a mapping with at least 'builder' and 'name'")
    builder, name = data.pop("builder", None), data.pop("name", None)
    if builder not in BUILDERS:
        raise ValueError(f"{path}: 'builder' must be one of {sorted(BUILDERS)}, not {builder!r}")
    try:
        named_config(builder, name)
    except ValueError as error:
        raise ValueError(f"{path}: 'name': {error}") from None
    version = data.pop("version", None)
    data.pop("description", None)
    unknown = set(data) - set(settings_fields(builder))
    if unknown:
        raise ValueError(f"{path}: unknown fields {sorted(unknown)} for {builder}; "
                         f"known: {settings_fields(builder)}")
    return ConfigFile(builder, name, None if version is None else str(version), data)


def load_config(builder: str, name_or_file: str | os.PathLike) -> datasets.BuilderConfig:
    """A builder config from a named config's name or a YAML file (which must be of `builder`)."""
    if not str(name_or_file).endswith((".yaml", ".yml")):
        return named_config(builder, str(name_or_file))
    config_file = read_config_file(name_or_file)
    if config_file.builder != builder:
        raise ValueError(f"{name_or_file}: a config of {config_file.builder}, not of {builder}")
    return config_file.config()


# -- the version lock -----------------------------------------------------------------------------------


def values_hash(builder: str, config: datasets.BuilderConfig) -> str:
    """A stable hash of a config's field values (every settings field, defaults included)."""
    values = {name: getattr(config, name) for name in settings_fields(builder)}
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lock_entry(builder: str, config: datasets.BuilderConfig) -> dict[str, str]:
    return {"version": str(config.version), "values_hash": values_hash(builder, config)}


def lock_entries() -> dict[str, dict[str, str]]:
    """``builder/name`` -> {version, values_hash} of every named config of every builder."""
    return {f"{builder}/{config.name}": lock_entry(builder, config)
            for builder in sorted(BUILDERS) for config in builder_class(builder).BUILDER_CONFIGS}


def read_lock(path: str | os.PathLike = LOCK_FILE) -> dict[str, dict[str, str]]:
    return json.loads(Path(path).read_text())


def unbumped_configs(locked: dict, current: dict) -> list[str]:
    """The configs whose values changed while their version stayed the same."""
    return [key for key, entry in current.items() if key in locked
            and locked[key]["version"] == entry["version"] and locked[key]["values_hash"] != entry["values_hash"]]


def lock_problems(locked: dict, current: dict | None = None) -> list[str]:
    """What is wrong between the lock and the named configs (`current`, default: as the code has them)."""
    current = lock_entries() if current is None else current
    problems = []
    for key in unbumped_configs(locked, current):
        builder, name = key.split("/")
        problems.append(
            f"{key}: its values changed but its version ({current[key]['version']}) did not. Bump the "
            f"version in configs/{config_file_name(builder, name)}, then refresh the lock: {UPDATE_LOCK_COMMAND}"
        )
    for key in sorted(set(current) | set(locked)):
        if key not in locked:
            problems.append(f"{key}: a named config missing from the lock; refresh it: {UPDATE_LOCK_COMMAND}")
        elif key not in current:
            problems.append(f"{key}: in the lock but no longer a named config; refresh it: {UPDATE_LOCK_COMMAND}")
        elif locked[key]["version"] != current[key]["version"]:
            problems.append(f"{key}: version {current[key]['version']}, the lock says {locked[key]['version']}; "
                            f"refresh it: {UPDATE_LOCK_COMMAND}")
    return problems


def update_lock(path: str | os.PathLike = LOCK_FILE, force: bool = False) -> None:
    """Write the lock; ValueError (unless `force`) when a config's values changed under the same version."""
    current = lock_entries()
    if Path(path).exists() and not force:
        unbumped = unbumped_configs(read_lock(path), current)
        if unbumped:
            raise ValueError(f"{path}: not updated: the values of {', '.join(unbumped)} changed but not the "
                             "version; bump it in its YAML first")
    Path(path).write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m owa_builders.config_files",
        description="Check the named configs against configs/versions.lock.json, or refresh it.",
        epilog="After changing a named config's values: bump its version (in its YAML), then "
               f"{UPDATE_LOCK_COMMAND}",
    )
    parser.add_argument("--update-lock", action="store_true", help="write the lock from the named configs")
    parser.add_argument("--force", action="store_true",
                        help="with --update-lock: accept changed values under an unchanged version (only for "
                             "changes that cannot alter any output, e.g. a new field whose default keeps the old "
                             "behaviour)")
    parser.add_argument("--lock", type=Path, default=LOCK_FILE, help=f"the lock file (default {LOCK_FILE})")
    args = parser.parse_args(argv)
    try:
        if args.update_lock:
            update_lock(args.lock, args.force)
            print(f"{args.lock}: updated")
            return 0
        problems = lock_problems(read_lock(args.lock))
    except (ValueError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
