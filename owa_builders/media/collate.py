"""Collating fsl rows into model batches, padded or padding-free.

- padded: ``input_ids``, ``attention_mask`` and ``labels`` of shape (rows, longest row), right-padded;
- padding-free: the batch's attended tokens as one sequence of shape (1, tokens), the shape
  transformers' ``DataCollatorWithFlattening`` makes: ``position_ids`` restarting at every sequence
  (a row, or an event with ``sequences="events"``), the first label of each sequence ignored, and the
  FlashAttention boundaries ``cu_seq_lens_q/k`` (int32) and ``max_length_q/k``.

In both, labels ignore padding and image tokens. Frames travel beside the tokens: ``pixel_values``
joined along their first axis, or ``images`` as one list per row of the frames the transform delivered
(PIL images, or RGB arrays with ``images_as="array"``). Rows may come from the fsl transform (tensors)
or straight from the dataset (lists).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..metadata import read_dataset_metadata
from .tensors import TensorType, as_tensor, check_tensor_type, concatenate

IGNORE_INDEX = -100  # the label loss functions skip


@dataclass(frozen=True)
class FslCollator:
    """Turns a list of fsl rows into a batch; see the module docstring for the two layouts."""

    pad_token_id: int
    image_token_ids: Sequence[int] = ()  # masked out of the labels
    padding_free: bool = False
    sequences: Literal["rows", "events"] = "rows"  # padding-free: where positions restart (see event_offsets)
    pad_to_multiple_of: int | None = None  # padded: round the batch length up
    return_tensors: TensorType | None = None  # "pt" when torch is installed, else "np"

    def __post_init__(self):
        if self.sequences not in ("rows", "events"):
            raise ValueError(f"sequences must be 'rows' or 'events', not {self.sequences!r}")
        object.__setattr__(self, "return_tensors", check_tensor_type(self.return_tensors))

    @classmethod
    def from_dataset(cls, dataset, **options) -> FslCollator:
        """A collator with the pad and image token ids an owa_fsl dataset was built with (owa_dataset.json)."""
        tokenizer = read_dataset_metadata(dataset).tokenizer
        return cls(tokenizer["pad_token_id"], tuple(sorted(set(tokenizer["image_token_ids"]))), **options)

    @classmethod
    def from_tokenizer(cls, tokenizer, image_pattern, **options) -> FslCollator:
        """A collator with `tokenizer`'s pad id and the ids it writes `image_pattern` with: a family of
        `owa_builders.fsl.tokenizer.IMAGE_PATTERNS` ("internvl", "smolvlm") or an `ImagePattern`."""
        from ..fsl.tokenizer import IMAGE_PATTERNS

        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; pass pad_token_id= to FslCollator")
        pattern = IMAGE_PATTERNS[image_pattern] if isinstance(image_pattern, str) else image_pattern
        image_ids = tokenizer.encode(pattern.text, add_special_tokens=False)
        return cls(tokenizer.pad_token_id, tuple(sorted(set(image_ids))), **options)

    def __call__(self, rows: list[dict]) -> dict:
        input_ids = [np.asarray(row["input_ids"], np.int64) for row in rows]
        attended = [np.asarray(row["attention_mask"]).astype(bool) for row in rows]
        if self.padding_free:
            batch = self._padding_free(rows, input_ids, attended)
        else:
            batch = self._padded(input_ids, attended)
        if "pixel_values" in rows[0]:
            pixel_values = [row["pixel_values"] for row in rows if row["pixel_values"] is not None]
            batch["pixel_values"] = concatenate(pixel_values) if pixel_values else None
        elif "images" in rows[0]:
            batch["images"] = [row["images"] for row in rows]
        if "missing_frames" in rows[0]:
            batch["missing_frames"] = sum(row["missing_frames"] for row in rows)
        return batch

    def _labels(self, input_ids: np.ndarray, attended: np.ndarray) -> np.ndarray:
        return np.where(attended & ~np.isin(input_ids, self.image_token_ids), input_ids, IGNORE_INDEX)

    def _padded(self, input_ids: list[np.ndarray], attended: list[np.ndarray]) -> dict:
        length = max(len(ids) for ids in input_ids)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids = np.full((len(input_ids), length), self.pad_token_id, np.int64)
        mask = np.zeros((len(input_ids), length), bool)
        for i, (row_ids, row_mask) in enumerate(zip(input_ids, attended)):
            ids[i, : len(row_ids)] = row_ids
            mask[i, : len(row_mask)] = row_mask
        return {
            "input_ids": as_tensor(ids, self.return_tensors),
            "attention_mask": as_tensor(mask, self.return_tensors),
            "labels": as_tensor(self._labels(ids, mask), self.return_tensors),
        }

    def _padding_free(self, rows: list[dict], input_ids: list[np.ndarray], attended: list[np.ndarray]) -> dict:
        kept, starts, offset = [], [], 0  # attended tokens of each row; where each sequence starts
        for row, row_ids, row_mask in zip(rows, input_ids, attended):
            kept.append(row_ids[row_mask])
            starts.append(offset + self._sequence_starts(row, row_mask))
            offset += len(kept[-1])
        ids = np.concatenate(kept)
        starts = np.concatenate(starts)
        boundaries = np.append(starts, len(ids))
        lengths = np.diff(boundaries)
        labels = self._labels(ids, np.ones(len(ids), bool))
        labels[starts] = IGNORE_INDEX  # nothing before a sequence's first token predicts it
        position_ids = np.arange(len(ids)) - np.repeat(starts, lengths)
        cu_seq_lens = as_tensor(boundaries, self.return_tensors, np.int32)
        max_length = int(lengths.max(initial=0))
        return {
            "input_ids": as_tensor(ids[None], self.return_tensors),
            "labels": as_tensor(labels[None], self.return_tensors),
            "position_ids": as_tensor(position_ids[None], self.return_tensors),
            "cu_seq_lens_q": cu_seq_lens,
            "cu_seq_lens_k": cu_seq_lens,
            "max_length_q": max_length,
            "max_length_k": max_length,
        }

    def _sequence_starts(self, row: dict, attended: np.ndarray) -> np.ndarray:
        """Where the row's sequences start among its attended tokens: 0, plus each event start with "events"."""
        if not attended.any():
            return np.zeros(0, np.int64)
        if self.sequences == "rows":
            return np.zeros(1, np.int64)
        attended_before = np.concatenate([[0], np.cumsum(attended)])  # attended tokens before each offset
        offsets = np.clip(np.asarray(row["event_offsets"], np.int64), 0, len(attended))
        starts = np.unique(np.concatenate([[0], attended_before[offsets]]))
        return starts[starts < attended_before[-1]]
