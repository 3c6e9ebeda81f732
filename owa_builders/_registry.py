"""Registering our builder modules with datasets (its packaged-modules table, by module path).

datasets keys its cache on the hash registered here, so the hash covers the builder module, its named
configs (configs/*.yaml) *and* every library module whose code decides that builder's rows: editing any of
them misses the cache.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from importlib.resources import files
from pathlib import Path

import datasets

from .datasets_adapter import register_packaged_module
from .stages import STAGE_OF_BUILDER

_PACKAGE = Path(__file__).resolve().parent

# stage -> library parts (relative to owa_builders/) whose code affects its rows
_STAGE_PARTS = ("recordings", "events", "payloads.py", "accounting.py", "builder_base.py")
_PARTS = {"events": _STAGE_PARTS, "fsl": (*_STAGE_PARTS, "fsl"), "binned": (*_STAGE_PARTS, "binned")}
BUILDERS: dict[str, tuple[str, ...]] = {builder: _PARTS[stage] for builder, stage in STAGE_OF_BUILDER.items()}


def module_path(name: str) -> str:
    return f"owa_builders.builders.{name}.{name}"


def _sources(name: str) -> list[Path]:
    spec = importlib.util.find_spec(module_path(name))
    sources = [Path(spec.origin)]
    named_configs = Path(str(files("owa_builders.named_configs")))
    sources.extend(sorted(named_configs.glob(f"{name.removeprefix('owa_')}_*.yaml")))
    for part in BUILDERS[name]:
        path = _PACKAGE / part
        sources.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return sources


def code_hash(name: str) -> str:
    digest = hashlib.sha256()
    for path in _sources(name):
        digest.update(path.relative_to(path.parents[1]).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def register_builders() -> None:
    """Make `datasets.load_dataset("owa_events", ...)` (and the other stages) find our builders."""
    for name in BUILDERS:
        register_packaged_module(name, module_path(name), code_hash(name))


def builder_name(builder: type[datasets.DatasetBuilder]) -> str:
    """Our name of a builder class (its module is ``owa_builders.builders.<name>.<name>``)."""
    return builder.__module__.rsplit(".", 1)[-1]


def builder_class(name: str) -> type[datasets.DatasetBuilder]:
    """The builder class of a stage, for `builder_class("owa_events")(config_name=..., data_dir=...)`."""
    if name not in BUILDERS:
        raise ValueError(f"unknown builder {name!r}; ours are {sorted(BUILDERS)}")
    module = importlib.import_module(module_path(name))
    return next(
        value for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, datasets.ArrowBasedBuilder) and value.__module__ == module.__name__
    )
