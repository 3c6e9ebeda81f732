"""Dataset transforms: rows of any of our stages, ready for a model, decoded on access.

    auto_set_transform(dataset, load_images=True)       # stage and recordings' root from the dataset
    dataset[0]["images"]                                 # fsl: list of PIL images, in row order
    auto_set_transform(dataset, images_as="array")      # ... or of RGB arrays, (height, width, 3) uint8

A transform is applied by datasets on every access (``set_transform``), to one row or a batch of rows;
all frames of the call are decoded together (see `frames`). What each stage's rows become:

- fsl: ``input_ids`` / ``attention_mask`` as int64 tensors; ``images`` as frames, or, with an
  ``image_processor``, ``pixel_values`` in their place;
- events: ``mcap_message`` as the decoded message (a dict) and ``image``: the frame of a screen event
  (None for other events);
- binned: ``state`` and ``actions`` as decoded messages, ``images``: the frames of the state, and the
  numeric action columns as tensors.

Frames are PIL images (RGB), or with ``images_as="array"`` RGB numpy arrays (height, width, 3) uint8 made
without PIL (at 1080p PIL's conversion takes half the loading time: `BENCHMARKS.md`). The arrays are
read-only: they are shared with the loader's frame cache and with other requests for the same frame, so an
in-place edit would change frames delivered later. Copy one to write to it (``np.array(frame)``);
``torch.from_numpy`` warns once per process that the array is not writable (and a tensor made from it must
not be edited in place either); ``torch.tensor(frame)`` copies. Batches from DataLoader workers arrive in
the main process unpickled, as writable arrays.

Other columns pass through. With ``missing_media="placeholder"`` each row also gets ``missing_frames``,
how many of its frames are black placeholders. Stored JSON that cannot be read raises `MalformedRowError`
naming the episode, the row and the column. Transforms pickle (DataLoader workers).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import Any, Literal, get_args

import datasets
import orjson
from PIL import Image

from ..metadata import DatasetMetadata, read_dataset_metadata
from ..payloads import SCREEN_CAPTURED
from ..stages import STAGE_OF_BUILDER, Stage
from .frames import DEFAULT_FRAME_CACHE_BYTES, Decoder, FrameLoader, FrameRequest, MissingMedia
from .roots import MediaRoot, media_root_for
from .tensors import TensorType, as_tensor, check_tensor_type


class MalformedRowError(ValueError):
    """A row whose stored JSON (an event payload, a state or action, an image reference) cannot be read."""


ImagesAs = Literal["pil", "array"]
ROW_KEYS = ("bin_idx", "timestamp_ns", "first_timestamp_ns")  # what names a row of each stage in its episode


def _decoded_rows(batch: Mapping[str, list], column: str, nested: bool = True) -> list:
    """`column` of each row of `batch` decoded from JSON (`nested`: a list of JSON values per row); a value
    that is not JSON raises MalformedRowError naming the episode, the row and the column."""
    rows = []
    for i, value in enumerate(batch[column]):
        try:
            rows.append([orjson.loads(item) for item in value] if nested else orjson.loads(value))
        except orjson.JSONDecodeError as error:
            raise MalformedRowError(f"{_row_name(batch, i)}: {column} is not valid JSON ({error})") from None
    return rows


def _row_name(batch: Mapping[str, list], i: int) -> str:
    keys = ", ".join(f"{key}={batch[key][i]}" for key in ROW_KEYS if key in batch)
    return f"episode {batch['episode_path'][i]}, row with {keys}"


@dataclass(frozen=True)
class _Transform:
    frames: FrameLoader | None  # None: frames are not loaded
    images_as: ImagesAs = field(default="pil", kw_only=True)  # frames as PIL images or read-only RGB arrays

    def __post_init__(self):
        if self.images_as not in get_args(ImagesAs):
            raise ValueError(f"images_as must be 'pil' or 'array', not {self.images_as!r}")

    def _row_frames(self, out: dict, screens: Sequence[Sequence[Mapping]], images_as: ImagesAs) -> list[list]:
        """Each row's frames (of its screen messages) as `images_as` says, all rows decoded in one call.

        With placeholders allowed, each row's count of them goes to ``out["missing_frames"]``."""
        requests = [FrameRequest(out["episode_path"][i], screen, _row_name(out, i))
                    for i, row in enumerate(screens) for screen in row]
        loaded = self.frames.load(requests)
        if images_as == "pil":
            images = [Image.fromarray(frame) for frame in loaded.frames]
        else:
            images = loaded.frames
            for frame in images:  # read-only whether the cache kept it or not: one contract for all
                frame.flags.writeable = False
        rows = list(pairwise(accumulate(map(len, screens), initial=0)))  # each row's (start, end) in requests
        if self.frames.missing_media == "placeholder":
            out["missing_frames"] = [sum(start <= i < end for i in loaded.placeholders) for start, end in rows]
        return [images[start:end] for start, end in rows]


@dataclass(frozen=True)
class FslTransform(_Transform):
    """fsl rows: token tensors, and the row's frames (or an image processor's pixel_values)."""

    image_processor: Any = None  # e.g. a transformers image processor: called on each row's images
    return_tensors: TensorType | None = None  # "pt" when torch is installed, else "np"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "return_tensors", check_tensor_type(self.return_tensors))

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out = dict(batch)
        for column in ("input_ids", "attention_mask"):
            out[column] = [as_tensor(row, self.return_tensors) for row in batch[column]]
        if self.frames is None:
            return out
        screens = _decoded_rows(batch, "images")
        if self.image_processor is None:
            out["images"] = self._row_frames(out, screens, self.images_as)
        else:  # the processor takes the RGB arrays: no PIL images in between
            del out["images"]
            out["pixel_values"] = [self._pixel_values(row) for row in self._row_frames(out, screens, "array")]
        return out

    def _pixel_values(self, frames: list):
        if not frames:
            return None
        return self.image_processor(images=frames, return_tensors=self.return_tensors)["pixel_values"]


@dataclass(frozen=True)
class EventsTransform(_Transform):
    """events rows: the decoded message, and the frame of screen events."""

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out = dict(batch)
        out["mcap_message"] = messages = _decoded_rows(batch, "mcap_message", nested=False)
        if self.frames is not None:
            screens = [[m] if t == SCREEN_CAPTURED else [] for m, t in zip(messages, batch["message_type"])]
            frames = self._row_frames(out, screens, self.images_as)
            out["image"] = [row[0] if row else None for row in frames]
        return out


@dataclass(frozen=True)
class BinnedTransform(_Transform):
    """binned rows: decoded state and actions, the state's frames, and the numeric action columns as
    tensors; ``mouse_x`` / ``mouse_y`` are 0 while unknown, with ``mouse_xy_known`` telling which."""

    return_tensors: TensorType | None = None  # "pt" when torch is installed, else "np"

    TENSOR_DTYPES = {"mouse_dx": "int64", "mouse_dy": "int64", "wheel": "int64", "hwheel": "int64",
                     "keys_down": "int64", "keys_pressed": "int64", "keys_released": "int64", "action": "float32"}

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "return_tensors", check_tensor_type(self.return_tensors))

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out = dict(batch)
        out["state"] = _decoded_rows(batch, "state")
        out["actions"] = _decoded_rows(batch, "actions")
        if "action" in batch:  # rows built before the numeric columns (owa_binned < 1.1.0) have none
            for column, dtype in self.TENSOR_DTYPES.items():
                out[column] = [as_tensor(value, self.return_tensors, dtype) for value in batch[column]]
            out["mouse_xy_known"] = [as_tensor(x is not None, self.return_tensors, "bool") for x in batch["mouse_x"]]
            for column in ("mouse_x", "mouse_y"):
                out[column] = [as_tensor(value or 0, self.return_tensors, "int64") for value in batch[column]]
        if self.frames is not None:
            out["images"] = self._row_frames(out, out["state"], self.images_as)
        return out


def _metadata(dataset: datasets.Dataset) -> DatasetMetadata | None:
    """The dataset's owa_dataset.json, or None for datasets without one (in memory, saved elsewhere)."""
    if not dataset.cache_files:
        return None
    try:
        return read_dataset_metadata(dataset)
    except FileNotFoundError:
        return None


def _checked_stage(stage: Stage | None, builder: str | None) -> Stage:
    """`stage`, or the stage of the builder that made the dataset when None; refuses a mismatch."""
    known = STAGE_OF_BUILDER.get(builder)
    if stage is None:
        if known is None:
            raise ValueError("cannot tell which stage this dataset is from: pass stage='fsl', 'events' or 'binned'")
        return known
    if stage not in STAGE_OF_BUILDER.values():
        raise ValueError(f"unknown stage {stage!r}; ours are 'fsl', 'events' and 'binned'")
    if known is not None and known != stage:
        raise ValueError(f"stage={stage!r}, but this dataset was built by {builder} (stage {known!r})")
    return stage


def make_transform(
    dataset: datasets.Dataset | datasets.DatasetDict,
    stage: Stage | None = None,
    *,
    load_images: bool = True,
    media_root: str | os.PathLike | MediaRoot | None = None,
    allow_external_media: bool = False,
    missing_media: MissingMedia = "error",
    image_processor: Any = None,
    return_tensors: TensorType | None = None,
    decoder: Decoder = "pyav",
    image_size: tuple[int, int] | None = None,
    frame_cache_bytes: int = DEFAULT_FRAME_CACHE_BYTES,
    images_as: ImagesAs = "pil",
) -> FslTransform | EventsTransform | BinnedTransform:
    """The transform for `dataset`'s rows (for ``set_transform``, ``with_transform`` or your own loop).

    stage: inferred from the dataset when None. media_root: a folder, a `MediaRoot` (e.g. a `HubMediaRoot`
    for rows loaded from a repository made by `push_dataset`) or the ``hf://`` uri of one, overriding the
    recordings' root the dataset carries; allow_external_media applies to roots given as a folder, a uri or
    carried.
    missing_media: "error" (default) or "placeholder". image_processor applies to fsl rows; return_tensors
    ("pt" when torch is installed, else "np") to fsl and binned rows.
    decoder: "pyav" (default: one pass per GOP segment of the frames a call needs), or mediaref's
    "tensorcodec" / "torchcodec" (an ImportError says why torchcodec cannot run, if it cannot).
    image_size: (width, height) every frame is resized to in the worker (the model's input), None: as
    recorded. frame_cache_bytes: pixels of recently delivered frames kept per process (open decoders:
    `frames.MAX_OPEN_VIDEOS`). See `owa_builders.media.frames`.
    images_as: "pil" (default) or "array": frames as PIL images, or as read-only RGB numpy arrays
    (height, width, 3) uint8 shared with the frame cache, made without PIL (see the module docstring);
    with an image_processor the processor gets the arrays either way.
    """
    split = next(iter(dataset.values())) if isinstance(dataset, datasets.DatasetDict) else dataset
    metadata = _metadata(split)
    stage = _checked_stage(stage, metadata.builder if metadata else split.info.builder_name)
    frames = None
    if load_images:
        root = media_root_for(metadata, media_root, allow_external_media)
        frames = FrameLoader(root, missing_media, decoder, image_size, frame_cache_bytes)
    if stage == "fsl":
        return FslTransform(frames, image_processor, return_tensors, images_as=images_as)
    if image_processor is not None:
        raise ValueError(f"image_processor applies to fsl rows, not {stage} rows")
    if stage == "events":
        return EventsTransform(frames, images_as=images_as)
    return BinnedTransform(frames, return_tensors, images_as=images_as)


def auto_set_transform(
    dataset: datasets.Dataset | datasets.DatasetDict, stage: Stage | None = None, **options
) -> None:
    """Set the transform of `dataset`'s stage on it, in place like ``set_transform``; options: `make_transform`."""
    dataset.set_transform(make_transform(dataset, stage, **options))
