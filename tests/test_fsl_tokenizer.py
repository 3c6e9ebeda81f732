"""Tokenizer preparation of the fsl stage: spec order of added tokens, image patterns, lookup = tokenizer,
vocabulary hash, and the settings that name a model (never guessed)."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fsl_helpers import lookup_ids, tokenizer_ids
from transformers import AutoTokenizer

import owa_builders
from owa_builders.fsl.encoders import ENCODERS, get_encoder
from owa_builders.fsl.settings import FslSettings
from owa_builders.fsl.tokenizer import (
    IMAGE_PATTERNS,
    PREPARED_FILE,
    STAND_IN_NOTE,
    ImagePattern,
    default_cache_dir,
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
    assert {c.name: c.tokenizer for c in owa_builders.builder_class("owa_fsl").BUILDER_CONFIGS} == {
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


def transformers_expansion(folder, encoder_name: str, pattern: ImagePattern):
    """The expansion as transformers does it (how preparation worked before it read tokenizer.json itself)."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    vocab = tokenizer.get_vocab()
    encoder = get_encoder(encoder_name)
    reference = sorted(set(encoder.reference_vocab) | {pattern.prefix, pattern.token, pattern.suffix})
    added = [token for token in reference if token not in vocab]
    tokenizer.add_tokens(added + [t for t in encoder.extra_tokens if t not in vocab and t not in added])
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return tokenizer


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("family", sorted(IMAGE_PATTERNS))
def test_preparation_without_transformers_gives_the_transformers_ids(encoder, family, internvl_folder,
                                                                     smolvlm_folder, tmp_path):
    """Same vocabulary, pad and image ids as transformers' own expansion; the lookup and the free-text
    tokenizer give what the transformers-expanded tokenizer gives on every golden event; the saved folder
    loads in AutoTokenizer with the same vocabulary and pad token."""
    folder = internvl_folder if family == "internvl" else smolvlm_folder
    pattern = IMAGE_PATTERNS[family]
    expected = transformers_expansion(folder, encoder, pattern)
    prepared = prepare_tokenizer(str(folder), encoder, pattern, cache_dir=tmp_path)
    assert prepared.vocabulary_hash == vocabulary_hash(expected)
    assert (prepared.vocabulary_size, prepared.pad_token_id) == (len(expected), expected.pad_token_id)
    assert prepared.image_ids.tolist() == expected.encode(pattern.text, add_special_tokens=False)
    checked = 0
    for line in golden_events():
        encoded = get_encoder(encoder).encode(line["topic"], line["message_type"], line["timestamp_ns"],
                                              line["message"].encode())
        if encoded is not None:
            text = prepared.event_text(encoded)
            assert lookup_ids(prepared, encoded) == expected(text, add_special_tokens=False)["input_ids"], line
            checked += 1
    assert checked > 100
    prepared.save(tmp_path / "saved")
    saved = AutoTokenizer.from_pretrained(str(tmp_path / "saved"))
    assert vocabulary_hash(saved) == prepared.vocabulary_hash and saved.pad_token == expected.pad_token
    assert saved.added_tokens_decoder == expected.added_tokens_decoder  # same special / normalized flags


def test_a_config_naming_a_special_token_missing_from_tokenizer_json_is_loaded_by_transformers(smolvlm_folder,
                                                                                                tmp_path):
    """transformers adds such a token on loading, so preparation must see the tokenizer as it does."""
    folder = tmp_path / "source"
    shutil.copytree(smolvlm_folder, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["extra_special_tokens"].append("<only_in_the_config>")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    expected = transformers_expansion(folder, "factorized", SMOLVLM)
    assert "<only_in_the_config>" in expected.get_vocab()
    prepared = prepare_tokenizer(str(folder), "factorized", SMOLVLM, cache_dir=tmp_path / "cache")
    assert prepared.vocabulary_hash == vocabulary_hash(expected)
    assert prepared.token_ids["<0>"] == expected.convert_tokens_to_ids("<0>")


def test_the_expansion_is_cached_by_content(internvl_folder, smolvlm_folder, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(smolvlm_folder, source)
    cache = tmp_path / "cache"
    first = prepare_tokenizer(str(source), "factorized", SMOLVLM, cache_dir=cache)
    assert first.folder.parent == cache and (first.folder / PREPARED_FILE).is_file()
    again = prepare_tokenizer(str(source), "factorized", SMOLVLM, cache_dir=cache)
    assert again.folder == first.folder and again.metadata() == first.metadata()
    # a copy elsewhere with the same content: the same entry; another encoder, pattern, pad or content: another
    moved = tmp_path / "moved"
    shutil.copytree(source, moved)
    assert prepare_tokenizer(str(moved), "factorized", SMOLVLM, cache_dir=cache).folder == first.folder
    others = {
        prepare_tokenizer(str(source), "hierarchical", SMOLVLM, cache_dir=cache).folder,
        prepare_tokenizer(str(source), "factorized", ImagePattern("<global-img>", "<image>", 8, "<global-img>"),
                          cache_dir=cache).folder,
        prepare_tokenizer(str(source), "factorized", SMOLVLM, pad_token="<image>", cache_dir=cache).folder,
    }
    config = json.loads((source / "tokenizer_config.json").read_text())
    (source / "tokenizer_config.json").write_text(json.dumps(config | {"model_max_length": 4096}))
    others.add(prepare_tokenizer(str(source), "factorized", SMOLVLM, cache_dir=cache).folder)
    assert len(others) == 4 and first.folder not in others
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in [first.folder, *others])
    # the default cache is in datasets' cache folder (conftest points it at a temporary folder)
    assert prepare_tokenizer(str(internvl_folder), "factorized", INTERNVL).folder.parent == default_cache_dir()


def test_the_prepared_tokenizer_pickles_small_and_tokenizes_free_text_after(internvl_folder, tmp_path):
    prepared = prepare_tokenizer(str(internvl_folder), "json", INTERNVL, cache_dir=tmp_path)
    encoded = [get_encoder("json").encode("keyboard", "desktop/KeyboardEvent", 1_000_000_000 * k,
                                          json.dumps({"event_type": "press", "vk": 65 + k}).encode())
               for k in range(3)]
    expected = prepared.event_ids(encoded)
    shipped = pickle.dumps(prepared)
    assert len(shipped) < 50_000  # the lookup, never the 11 MB tokenizer
    received = pickle.loads(shipped)
    assert received.event_ids(encoded) == expected and all(len(ids) > 5 for ids in expected)
    assert np.array_equal(received.image_ids, prepared.image_ids)


def test_conversion_never_imports_transformers(internvl_folder, fsl_recordings, tmp_path):
    """Preparing (cold and cached) and converting episodes: no transformers, hence no torch."""
    code = f"""
import sys
from owa_builders.accounting import Accounting
from owa_builders.events.event_input import load_event_splits
from owa_builders.fsl.settings import FslSettings
from owa_builders.fsl.stage import iter_fsl_tables
from owa_builders.fsl.tokenizer import prepare_tokenizer
settings = FslSettings.for_model("internvl3", tokenizer={str(internvl_folder)!r}, encoder="json")
for _ in range(2):
    tokenizer = prepare_tokenizer(settings.tokenizer, settings.encoder, settings.resolved_image_pattern(),
                                  cache_dir={str(tmp_path / "cache")!r})
episodes = load_event_splits({str(fsl_recordings)!r}, "desktop", cache_dir={str(tmp_path / "hf")!r}).splits["train"]
rows = sum(t.num_rows for rows in episodes for t in iter_fsl_tables(rows, settings, tokenizer, Accounting()))
tokenizer.save({str(tmp_path / "saved")!r})
print(rows, sorted(m for m in ("transformers", "torch") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rows, modules = result.stdout.split(maxsplit=1)
    assert int(rows) > 0 and modules.strip() == "[]"
