"""FslCollator: padded batches, and padding-free ones shaped like transformers' DataCollatorWithFlattening."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from media_fixtures import load_fsl
from transformers import DataCollatorWithFlattening

from owa_builders.fsl.tokenizer import load_fsl_tokenizer
from owa_builders.media import FslCollator
from owa_builders.media.collate import IGNORE_INDEX as X
from owa_builders.synth import SynthProfile, synthesize_recordings

PAD_ID = 0
IMAGE_IDS = (6, 7, 8)  # say <img>, <IMG_CONTEXT>, </img>
IMG = IMAGE_IDS[1]


def row(tokens: list[int], padding: int = 0, event_offsets: list[int] | None = None) -> dict:
    return {
        "input_ids": tokens + [PAD_ID] * padding,
        "attention_mask": [1] * len(tokens) + [0] * padding,
        "event_offsets": event_offsets or [0],
    }


def test_padded_batch_masks_padding_and_image_tokens_in_labels():
    collator = FslCollator(PAD_ID, IMAGE_IDS, pad_to_multiple_of=4)
    batch = collator([row([2, 3, IMG, IMG, 4], padding=1), row([2, 5])])
    assert batch["input_ids"].tolist() == [[2, 3, IMG, IMG, 4, 0, 0, 0], [2, 5, 0, 0, 0, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0]]
    assert batch["labels"].tolist() == [[2, 3, X, X, 4, X, X, X], [2, 5, X, X, X, X, X, X]]
    assert batch["input_ids"].dtype == torch.int64


def test_padding_free_rows_match_transformers_flattening_collator():
    rows = [row([2, 3, 4, 5], padding=3), row([2, 4]), row([3, 4, 5], padding=1)]
    ours = FslCollator(PAD_ID, padding_free=True)(rows)
    unpadded = [{"input_ids": [t for t, m in zip(r["input_ids"], r["attention_mask"]) if m]} for r in rows]
    theirs = DataCollatorWithFlattening(return_flash_attn_kwargs=True, return_tensors="pt")(unpadded)
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert (torch.equal(ours[key], value) if isinstance(value, torch.Tensor) else ours[key] == value), key
    assert ours["cu_seq_lens_q"].dtype == torch.int32 and ours["cu_seq_lens_q"].tolist() == [0, 4, 6, 9]


def test_padding_free_per_event_restarts_positions_at_every_event():
    rows = [row([2, 3, 2, IMG, IMG, 2, 4], padding=2, event_offsets=[0, 2, 5]),
            row([2, 5, 2, 4], event_offsets=[0, 2])]
    batch = FslCollator(PAD_ID, IMAGE_IDS, padding_free=True, sequences="events")(rows)
    assert batch["input_ids"].tolist() == [[2, 3, 2, IMG, IMG, 2, 4, 2, 5, 2, 4]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1, 2, 0, 1, 0, 1, 0, 1]]
    assert batch["labels"].tolist() == [[X, 3, X, X, X, X, 4, X, 5, X, 4]]
    assert batch["cu_seq_lens_k"].tolist() == [0, 2, 5, 7, 9, 11] and batch["max_length_k"] == 3


def test_token_ids_from_an_fsl_dataset_and_from_its_tokenizer_agree(internvl_folder, tmp_path):
    synthesize_recordings(tmp_path / "recordings", episodes=1, profile=SynthProfile(duration_s=2))
    fsl = load_fsl(tmp_path / "recordings", tmp_path / "cache", internvl_folder)
    from_dataset = FslCollator.from_dataset(fsl, padding_free=True)
    tokenizer = load_fsl_tokenizer(fsl)
    assert FslCollator.from_tokenizer(tokenizer, "internvl", padding_free=True) == from_dataset
    assert from_dataset.pad_token_id == tokenizer.pad_token_id
    image_tokens = ["<img>", "<IMG_CONTEXT>", "</img>"]
    assert sorted(from_dataset.image_token_ids) == sorted(tokenizer.convert_tokens_to_ids(image_tokens))
    labels = from_dataset([fsl["train"][0]])["labels"][0]
    assert (labels != X).sum() == fsl["train"][0]["num_tokens"] - 258 * fsl["train"][0]["num_images"] - 1


def test_frames_travel_beside_the_tokens():
    pixel_rows = [dict(row([2]), pixel_values=torch.ones(2, 3, 4, 4), missing_frames=1),
                  dict(row([2]), pixel_values=None, missing_frames=0),
                  dict(row([2]), pixel_values=torch.zeros(1, 3, 4, 4), missing_frames=0)]
    batch = FslCollator(PAD_ID)(pixel_rows)
    assert batch["pixel_values"].shape == (3, 3, 4, 4) and batch["pixel_values"][2].sum() == 0
    assert batch["missing_frames"] == 1
    image_rows = [dict(row([2]), images=["a", "b"]), dict(row([2]), images=[])]
    assert FslCollator(PAD_ID, return_tensors="np")(image_rows)["images"] == [["a", "b"], []]


def test_numpy_batches_and_bad_options():
    batch = FslCollator(PAD_ID, return_tensors="np", padding_free=True)([row([2, 3])])
    assert isinstance(batch["input_ids"], np.ndarray) and batch["cu_seq_lens_q"].dtype == np.int32
    with pytest.raises(ValueError, match="sequences"):
        FslCollator(PAD_ID, sequences="episodes")
