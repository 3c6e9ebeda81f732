"""What a built dataset carries beside its rows: ``owa_dataset.json``, as one typed, versioned record.

Every stage writes it (`DatasetMetadata.write`) and everything that needs to know how a dataset was made
reads it through `DatasetMetadata.read` (or `read_dataset_metadata` for a loaded dataset): which builder
and config, the config's values, where the recordings' media resolve, where every input message went, and
what a stage adds (the fsl tokenizer and fill, the binned action layout, the event dataset a later stage
came from, what a push published). A file written by a newer owa-builders (a higher `format_version`) or
not in this shape is refused with an error naming the file and the problem.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

METADATA_FILE = "owa_dataset.json"
FORMAT_VERSION = 1


class MetadataError(ValueError):
    """An owa_dataset.json that cannot be read: malformed, or written by a newer owa-builders."""


@dataclass(frozen=True)
class DatasetMetadata:
    builder: str  # owa_events, owa_fsl or owa_binned
    config: str  # the named config built (with `settings` as its values)
    version: str  # the named config's version
    settings: dict[str, Any]  # every settings field of the config, as built
    recordings_root: str | None  # where the rows' media uris resolve (a folder or an fsspec URL)
    accounting: dict[str, Any]  # {"splits": {split: counts}, "total": counts} (Accounting.to_dict)
    tokenizer: dict[str, Any] | None = None  # owa_fsl: the tokenizer the ids come from (FslTokenizer.metadata)
    fill: dict[str, Any] | None = None  # owa_fsl: rows, tokens and fill per split and in total
    events: dict[str, Any] | None = None  # later stages: builder, config, settings, accounting of their events
    message_types: dict[str, Any] | None = None  # owa_binned: the message type of each state/action topic
    action_vector: dict[str, Any] | None = None  # owa_binned: the layout of the `action` column
    published: dict[str, Any] | None = None  # push_dataset: what the repository's config holds
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, default=str)

    @classmethod
    def from_json(cls, text: str, where: str) -> DatasetMetadata:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise MetadataError(f"{where}: not JSON ({error})") from None
        if not isinstance(data, dict):
            raise MetadataError(f"{where}: not a JSON object")
        format_version = data.get("format_version", FORMAT_VERSION)  # files before format_version were 1
        if not isinstance(format_version, int) or format_version > FORMAT_VERSION:
            raise MetadataError(f"{where}: format_version {format_version!r} is newer than this owa-builders reads "
                                f"({FORMAT_VERSION}); upgrade owa-builders")
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise MetadataError(f"{where}: unknown entries {unknown}")
        missing = sorted(name for name, field in fields.items()
                         if field.default is dataclasses.MISSING and name not in data)
        if missing:
            raise MetadataError(f"{where}: missing entries {missing}")
        wrong = sorted(name for name, value in data.items() if not _fits(fields[name], value))
        if wrong:
            raise MetadataError(f"{where}: entries of the wrong type {wrong}")
        return cls(**data)

    def write(self, folder: str | os.PathLike) -> Path:
        path = Path(folder, METADATA_FILE)
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, folder_or_file: str | os.PathLike) -> DatasetMetadata:
        """The record in a folder (or the file itself); FileNotFoundError naming it when there is none."""
        path = Path(folder_or_file)
        if path.is_dir():
            path = path / METADATA_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (was this dataset built by an owa_builders builder?)")
        return cls.from_json(path.read_text(), str(path))

    def replace(self, **changes: Any) -> DatasetMetadata:
        return dataclasses.replace(self, **changes)


def dataset_folder(dataset: datasets.Dataset | datasets.DatasetDict) -> Path:
    """The folder of a built dataset's files, where our builders leave what goes with its rows."""
    if isinstance(dataset, datasets.DatasetDict):
        dataset = next(iter(dataset.values()))
    if not dataset.cache_files:
        raise ValueError("this dataset has no cache files (in memory or streamed): nothing was stored with it")
    return Path(dataset.cache_files[0]["filename"]).parent


def read_dataset_metadata(dataset: datasets.Dataset | datasets.DatasetDict) -> DatasetMetadata:
    """The owa_dataset.json stored with a dataset built by one of our builders (found via its cache files)."""
    return DatasetMetadata.read(dataset_folder(dataset))


def read_accounting(dataset: datasets.Dataset | datasets.DatasetDict) -> dict:
    """Where every input message went: {"splits": {name: counts}, "total": counts}."""
    return read_dataset_metadata(dataset).accounting


_TYPES = {"str": str, "int": int, "dict[str, Any]": dict}


def _fits(field: dataclasses.Field, value: Any) -> bool:
    """Whether a JSON value has the field's type (None where the field is optional)."""
    annotation = str(field.type)
    if value is None:
        return annotation.endswith("| None")
    expected = _TYPES[annotation.removesuffix(" | None")]
    return isinstance(value, expected) and not isinstance(value, bool)
