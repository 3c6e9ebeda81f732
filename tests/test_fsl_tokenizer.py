"""Tokenizer preparation of the fsl stage: spec order of added tokens, image patterns, lookup = tokenizer,
vocabulary hash, and the settings that name a model (never guessed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fsl_helpers import lookup_ids, tokenizer_ids
from transformers import AutoTokenizer

from owa_builders.fsl.encoders import ENCODERS, get_encoder
from owa_builders.fsl.settings import MODEL_CONFIGS, FslSettings
from owa_builders.fsl.tokenizer import (
    IMAGE_PATTERNS,
    STAND_IN_NOTE,
    ImagePattern,
    prepare_tokenizer,
    vocabulary_hash,
)

SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "spec"
INTERNVL, SMOLVLM = IMAGE_PATTERNS["internvl"], IMAGE_PATTERNS["smolvlm"]


def golden_events() -> list[dict]:
    path = SPEC / "golden-events.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_internvl_gets_the_reference_ids_then_the_encoders_extra_tokens(internvl_folder):
    base = AutoTokenizer.from_pretrained(str(internvl_folder))
    prepared = prepare_tokenizer(str(internvl_folder), "factorized", INTERNVL)
    encoder = get_encoder("factorized")
    # the image tokens exist: only the 291 event tokens are new, in the reference's order, then ours
    assert prepared.added_tokens == encoder.reference_vocab + encoder.extra_tokens
    ids = prepared.tokenizer.convert_tokens_to_ids(list(prepared.added_tokens))
    assert ids == list(range(len(base), len(base) + 300))
    assert prepared.tokenizer.convert_tokens_to_ids(["<0>", "<press>", "<release>"]) == [
        len(base), len(base) + 289, len(base) + 290]
    image = base.convert_tokens_to_ids([INTERNVL.prefix, INTERNVL.token, INTERNVL.suffix])
    assert prepared.image_ids.tolist() == [image[0]] + [image[1]] * 256 + [image[2]]
    assert prepared.pad_token_id == base.pad_token_id
    assert prepared.stand_in == (internvl_folder / STAND_IN_NOTE).read_text()


def test_smolvlm_adds_the_joined_prefix_as_the_reference_does(smolvlm_folder):
    base = AutoTokenizer.from_pretrained(str(smolvlm_folder))
    prepared = prepare_tokenizer(str(smolvlm_folder), "factorized", SMOLVLM)
    reference = prepared.added_tokens[:292]
    assert len(prepared.added_tokens) == 292 + 9 and SMOLVLM.prefix in reference
    assert reference.index("<VK_9>") + 1 == reference.index(SMOLVLM.prefix) == reference.index("<press>") - 1
    # never emitted: the prefix is written as its two special tokens
    parts = base.convert_tokens_to_ids(["<fake_token_around_image>", "<global-img>", "<image>"])
    assert prepared.image_ids.tolist() == [parts[0], parts[1]] + [parts[2]] * 64 + [parts[0]]


def test_json_encoder_adds_nothing_where_the_image_tokens_exist(internvl_folder):
    prepared = prepare_tokenizer(str(internvl_folder), "json", INTERNVL)
    assert prepared.added_tokens == ()
    assert prepared.vocabulary_hash == vocabulary_hash(AutoTokenizer.from_pretrained(str(internvl_folder)))


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("family", sorted(IMAGE_PATTERNS))
def test_lookup_ids_are_what_the_tokenizer_gives(encoder, family, internvl_folder, smolvlm_folder):
    """Every golden event line, each encoder, each image family: lookup == tokenizer on the event's text."""
    folder = internvl_folder if family == "internvl" else smolvlm_folder
    prepared = prepare_tokenizer(str(folder), encoder, IMAGE_PATTERNS[family])
    checked = 0
    for line in golden_events():
        encoded = get_encoder(encoder).encode(line["topic"], line["message_type"], line["timestamp_ns"],
                                              line["message"].encode())
        if encoded is not None:
            assert lookup_ids(prepared, encoded) == tokenizer_ids(prepared, encoded), line
            checked += 1
    assert checked > 100


def test_vocabulary_hash_names_the_ids(internvl_folder):
    prepared = prepare_tokenizer(str(internvl_folder), "factorized", INTERNVL)
    assert prepared.vocabulary_hash == vocabulary_hash(prepared.tokenizer)
    assert vocabulary_hash(AutoTokenizer.from_pretrained(str(internvl_folder))) != prepared.vocabulary_hash
    prepared.tokenizer.add_tokens(["<SOMETHING_NEW>"])
    assert vocabulary_hash(prepared.tokenizer) != prepared.vocabulary_hash


def test_an_image_pattern_of_another_model_is_refused(internvl_folder, smolvlm_folder):
    with pytest.raises(ValueError, match="no '<IMG_CONTEXT>' token"):
        prepare_tokenizer(str(smolvlm_folder), "factorized", INTERNVL)
    with pytest.raises(ValueError, match="no '<image>' token"):
        prepare_tokenizer(str(internvl_folder), "factorized", SMOLVLM)


def test_named_configs_keep_the_hub_names_and_fail_loudly_offline():
    assert {name: c["tokenizer"] for name, c in MODEL_CONFIGS.items()} == {
        "internvl3": "OpenGVLab/InternVL3-1B-hf",
        "internvl3_5": "OpenGVLab/InternVL3_5-1B-HF",
        "smolvlm2": "HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
    }
    settings = FslSettings.for_model("internvl3")
    settings.validate()
    with pytest.raises(OSError):  # HF_HUB_OFFLINE=1 and nothing cached: no silent fallback
        prepare_tokenizer(settings.tokenizer, settings.encoder, settings.resolved_image_pattern())


def test_the_image_pattern_is_never_guessed(internvl_folder):
    with pytest.raises(ValueError, match="never guessed"):
        FslSettings(tokenizer=str(internvl_folder)).validate()
    with pytest.raises(ValueError, match="unknown"):
        FslSettings(tokenizer=str(internvl_folder), image_pattern="qwen").validate()
    with pytest.raises(ValueError, match="length"):
        FslSettings(tokenizer="x", image_pattern={"prefix": "<a>", "token": "<b>", "length": 0, "suffix": "<c>"}).validate()
    custom = FslSettings(tokenizer="x", image_pattern={"prefix": "<a>", "token": "<b>", "length": 4, "suffix": "<c>"})
    custom.validate()
    assert custom.resolved_image_pattern() == ImagePattern("<a>", "<b>", 4, "<c>")
    with pytest.raises(ValueError, match="tokenizer"):
        FslSettings(image_pattern="internvl").validate()
    with pytest.raises(ValueError, match="named configs"):
        FslSettings.for_model("llava")


@pytest.mark.parametrize("field, value, message", [
    ("encoder", "binned", "encoder"),
    ("max_length", 0, "max_length"),
    ("max_images_per_row", 0, "max_images_per_row"),
    ("action_shift_ns", 0.5, "action_shift_ns"),
    ("on_bad_files", "ignore", "on_bad_files"),
    ("events_overrides", {"fps": 3}, "events_overrides"),
])
def test_settings_name_the_field_at_fault(field, value, message):
    settings = FslSettings.for_model("internvl3", **{field: value})
    with pytest.raises(ValueError, match=message):
        settings.validate()
