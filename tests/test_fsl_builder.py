"""The owa_fsl builder through datasets: named configs offline, rows and their invariants, golden vectors,
inputs (recordings, saved and parquet event datasets), caching, num_proc, packing options, accounting."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import orjson
import pytest
from fsl_helpers import (
    MS,
    T0,
    event_row,
    row_events,
    screen_message,
    tokenizer_ids,
    unexpanded,
    write_event_parquet,
)
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

import owa_builders
from owa_builders.accounting import Accounting
from owa_builders.config_files import named_config
from owa_builders.events.event_input import load_event_splits
from owa_builders.fsl.encoders import get_encoder
from owa_builders.fsl.settings import FslSettings
from owa_builders.fsl.stage import iter_fsl_tables
from owa_builders.fsl.tokenizer import (
    IMAGE_PATTERNS,
    STAND_IN_NOTE,
    check_vocabulary,
    load_fsl_tokenizer,
    prepare_tokenizer,
    vocabulary_hash,
)
from owa_builders.fsl.tokens import TIME_UNIT_NS

SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "spec"
TEST_EPISODE = {"test_size": 1}  # 3 episodes: train 2, test 1
SPLITS = {"events_overrides": TEST_EPISODE}


def load(data_dir, name: str | None = "internvl3", cache_dir=None, **kwargs):
    return datasets.load_dataset("owa_fsl", name, data_dir=str(data_dir),
                                 cache_dir=str(cache_dir) if cache_dir else None, **kwargs)


def table_rows(dataset) -> list[tuple]:
    return [tuple(row.values()) for row in dataset.to_list()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache for the module: stage 1 is converted once and reused by every build that can."""
    return tmp_path_factory.mktemp("fsl_cache")


@pytest.fixture(scope="module")
def events(fsl_recordings, cache) -> datasets.DatasetDict:
    return datasets.load_dataset("owa_events", "desktop", data_dir=str(fsl_recordings), cache_dir=str(cache),
                                 **TEST_EPISODE)


def by_episode(split: datasets.Dataset) -> dict[str, list[dict]]:
    episodes: dict[str, list[dict]] = {}
    for row in split.to_list():
        episodes.setdefault(row["episode_path"], []).append(row)
    return episodes


# ---- named configs, offline -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["internvl3", "internvl3_5", "smolvlm2"])
def test_each_named_config_builds_offline_with_a_labelled_stand_in(name, fsl_recordings, cache, internvl_folder,
                                                                   smolvlm_folder):
    family = named_config("owa_fsl", name).image_pattern
    folder = internvl_folder if family == "internvl" else smolvlm_folder
    ds = load(fsl_recordings, name, cache, tokenizer=str(folder), **SPLITS)
    assert set(ds) == {"train", "test"}
    features = ds["train"].features
    assert features["input_ids"] == datasets.List(datasets.Value("int32"), length=4096)
    assert features["attention_mask"] == datasets.List(datasets.Value("int8"), length=4096)
    metadata = owa_builders.read_dataset_metadata(ds)
    assert metadata.config == name and metadata.settings["tokenizer"] == str(folder)
    assert metadata.tokenizer["stand_in"] == (folder / STAND_IN_NOTE).read_text()
    assert metadata.tokenizer["image_pattern"]["token"] == IMAGE_PATTERNS[family].token
    saved = load_fsl_tokenizer(ds)
    assert vocabulary_hash(saved) == metadata.tokenizer["vocabulary_hash"]
    check_vocabulary(saved, ds)
    with pytest.raises(ValueError, match="differs"):
        check_vocabulary(AutoTokenizer.from_pretrained(str(folder)), ds)
    accounting = metadata.accounting["total"]
    assert accounting["totals"]["read"] == metadata.events["accounting"]["total"]["totals"]["kept"]
    assert accounting["totals"]["kept"] == sum(ds["train"]["num_events"]) + sum(ds["test"]["num_events"])


def test_the_model_is_never_assumed(fsl_recordings, cache, smolvlm_folder):
    with pytest.raises(ValueError, match="no '<IMG_CONTEXT>' token"):  # a named config, another model's tokenizer
        load(fsl_recordings, "internvl3", cache, tokenizer=str(smolvlm_folder))
    with pytest.raises(ValueError, match="never guessed"):  # no config name: a custom config must say
        load(fsl_recordings, None, cache, tokenizer=str(smolvlm_folder))
    with pytest.raises(ValueError, match="or use a named config: internvl3, internvl3_5, smolvlm2"):
        load(fsl_recordings, None, cache)
    custom = load(fsl_recordings, None, cache, tokenizer=str(smolvlm_folder), image_pattern="smolvlm")
    assert owa_builders.read_dataset_metadata(custom).tokenizer["image_pattern"]["token"] == "<image>"


# ---- rows -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ["factorized", "json"])
def test_rows_hold_every_event_once_in_order_as_the_tokenizer_writes_it(encoder, fsl_recordings, cache, events,
                                                                        internvl_folder):
    ds = load(fsl_recordings, "internvl3", cache, tokenizer=str(internvl_folder), encoder=encoder, **SPLITS)
    prepared = prepare_tokenizer(str(internvl_folder), encoder, IMAGE_PATTERNS["internvl"])
    prepared.tokenizer = load_fsl_tokenizer(ds)  # ids as the saved tokenizer itself writes them
    metadata = owa_builders.read_dataset_metadata(ds)
    assert metadata.accounting["total"]["totals"]["dropped"] == {}
    length, pad = 4096, metadata.tokenizer["pad_token_id"]
    for split in ("train", "test"):
        inputs, rows = by_episode(events[split]), by_episode(ds[split])
        assert list(rows) == list(inputs)  # rows never mix episodes, and keep the episodes' order
        for episode, episode_rows in rows.items():
            encoded = [get_encoder(encoder).encode(e["topic"], e["message_type"], e["timestamp_ns"], e["mcap_message"])
                       for e in inputs[episode]]
            assert [ids for row in episode_rows for ids in row_events(row)] == [
                tokenizer_ids(prepared, e) for e in encoded]
            assert "".join(row["texts"] for row in episode_rows) == "".join(map(prepared.event_text, encoded))
            screens = [e["mcap_message"].decode() for e in inputs[episode] if e["topic"] == "screen"]
            assert [image for row in episode_rows for image in row["images"]] == screens
            for row, following in zip(episode_rows, episode_rows[1:] + [None]):
                n = row["num_tokens"]
                assert row["attention_mask"] == [1] * n + [0] * (length - n)
                assert row["input_ids"][n:] == [pad] * (length - n)
                assert row["num_events"] == len(row["event_offsets"]) and row["num_images"] == len(row["images"])
                if following is not None:  # full: the next row's first event did not fit
                    assert n + len(row_events(following)[0]) > length
                    assert row["last_timestamp_ns"] <= following["first_timestamp_ns"]
            times = [e["timestamp_ns"] for e in inputs[episode]]
            assert episode_rows[0]["first_timestamp_ns"] == times[0]
            assert episode_rows[-1]["last_timestamp_ns"] == times[-1]
    tokens = sum(sum(ds[s]["num_tokens"]) for s in ds)
    assert metadata.fill["total"] == {"rows": sum(ds.num_rows.values()), "tokens": tokens,
                                         "fill": tokens / (sum(ds.num_rows.values()) * length)}


def test_rows_decode_back_to_the_events(fsl_recordings, cache, events, internvl_folder):
    """Round trip: recordings → event rows → fsl rows → (decoder) events with the same content."""
    ds = load(fsl_recordings, "internvl3", cache, tokenizer=str(internvl_folder), **SPLITS)
    prepared = prepare_tokenizer(str(internvl_folder), "factorized", IMAGE_PATTERNS["internvl"])
    encoder = get_encoder("factorized")
    for episode, rows in by_episode(ds["train"]).items():
        inputs = by_episode(events["train"])[episode]
        text = unexpanded("".join(row["texts"] for row in rows), prepared)
        decoded = encoder.decode(text, inputs[0]["timestamp_ns"] // TIME_UNIT_NS * TIME_UNIT_NS)
        assert [(e.topic, e.timestamp_ns) for e in decoded] == [
            (e["topic"], e["timestamp_ns"] // TIME_UNIT_NS * TIME_UNIT_NS) for e in inputs]
        for event, source in zip(decoded, inputs):
            if event.topic == "keyboard":
                assert orjson.loads(event.message) == {k: v for k, v in orjson.loads(source["mcap_message"]).items()
                                                       if k in ("event_type", "vk")}


def test_golden_sequences_through_the_builder(tmp_path):
    """The spec's episodes, as an event dataset, with the spec's toy tokenizer: the spec's token ids."""
    path = SPEC / "golden-sequences.json"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    golden = json.loads(path.read_text())
    base = golden["tokenizer"]["base_vocab"]
    toy = PreTrainedTokenizerFast(tokenizer_object=_word_level(base), unk_token="<unk>", pad_token="<|endoftext|>")
    toy.add_special_tokens({"extra_special_tokens": ["<|im_start|>", "<img>", "</img>", "<IMG_CONTEXT>"]})
    toy.save_pretrained(str(tmp_path / "toy"))
    rows = [event_row(f"{e['name']}.mcap", ev["topic"], ev["timestamp_ns"], ev["message"].encode(), ev["message_type"])
            for e in golden["episodes"] for ev in e["events"]]
    data = write_event_parquet(tmp_path / "golden", rows)
    for max_length in (4096, 1000):
        ds = load(data, "internvl3", tmp_path / "cache", tokenizer=str(tmp_path / "toy"), max_length=max_length)["train"]
        built = by_episode(ds)
        for episode in golden["episodes"]:
            expected = [event["token_ids"] for event in episode["events"]]
            got = built[f"{episode['name']}.mcap"]
            assert [ids for row in got for ids in row_events(row)] == expected
            assert "".join(row["texts"] for row in got) == "".join(event["text"] for event in episode["events"])
            assert [row["num_tokens"] for row in got] == _greedy([len(ids) for ids in expected], max_length)
    assert owa_builders.read_dataset_metadata(ds).tokenizer["first_added_id"] == golden["tokenizer"]["len_before_expansion"]


def _word_level(vocab: dict[str, int]) -> Tokenizer:
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def _greedy(lengths: list[int], max_length: int) -> list[int]:
    rows = [0]
    for n in lengths:
        if rows[-1] + n > max_length:
            rows.append(0)
        rows[-1] += n
    return rows


# ---- inputs, caching, num_proc ----------------------------------------------------------------------------


def test_event_datasets_give_the_same_rows_as_recordings(fsl_recordings, cache, events, internvl_folder, tmp_path):
    reference = load(fsl_recordings, "internvl3", cache, tokenizer=str(internvl_folder), **SPLITS)
    saved = tmp_path / "saved"
    owa_builders.save_to_disk(events, saved)  # rows with their owa_dataset.json (the recordings' root)
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    for split in events:
        events[split].to_parquet(str(parquet / f"{split}.parquet"))
    for data_dir, root in ((saved, str(fsl_recordings)), (parquet, None)):
        built = load(data_dir, "internvl3", tmp_path / "cache", tokenizer=str(internvl_folder))
        assert set(built) == {"train", "test"}
        for split in built:
            assert table_rows(built[split]) == table_rows(reference[split])
        metadata = owa_builders.read_dataset_metadata(built)
        assert metadata.recordings_root == root  # media uris resolve against it: known only from a sidecar
        assert metadata.tokenizer["vocabulary_hash"] == owa_builders.read_dataset_metadata(reference).tokenizer[
            "vocabulary_hash"]


def test_cache_is_reused_and_stage_one_is_shared(fsl_recordings, internvl_folder, tmp_path):
    cache = tmp_path / "cache"
    first = load(fsl_recordings, "internvl3", cache, tokenizer=str(internvl_folder))
    stage_one = datasets.load_dataset("owa_events", "desktop", data_dir=str(fsl_recordings), cache_dir=str(cache))
    stamps = {f["filename"]: Path(f["filename"]).stat().st_mtime_ns
              for d in (first, stage_one) for f in d["train"].cache_files}
    again = load(fsl_recordings, "internvl3", cache, tokenizer=str(internvl_folder))
    assert again["train"].cache_files == first["train"].cache_files
    other = load(fsl_recordings, "internvl3", cache, tokenizer=str(internvl_folder), max_length=2048)
    assert other["train"].cache_files != first["train"].cache_files
    assert {name: Path(name).stat().st_mtime_ns for name in stamps} == stamps  # nothing rebuilt, stage 1 reused
    assert len(list(cache.glob("owa_events/desktop*/*/*/*.arrow"))) == 1


def test_a_changed_local_tokenizer_folder_misses_the_cache(fsl_recordings, internvl_folder, tmp_path):
    tokenizer = tmp_path / "tokenizer"
    shutil.copytree(internvl_folder, tokenizer)
    first = load(fsl_recordings, "internvl3", tmp_path / "cache", tokenizer=str(tokenizer))
    config = json.loads((tokenizer / "tokenizer_config.json").read_text())
    config["model_max_length"] = 1234  # an edit in place: same path, new content
    (tokenizer / "tokenizer_config.json").write_text(json.dumps(config))
    again = load(fsl_recordings, "internvl3", tmp_path / "cache", tokenizer=str(tokenizer))
    assert again["train"].cache_files != first["train"].cache_files


def test_num_proc_gives_identical_rows(fsl_recordings, cache, internvl_folder):
    one = load(fsl_recordings, "internvl3", cache, tokenizer=str(internvl_folder), max_length=1024)
    rows, metadata = table_rows(one["train"]), owa_builders.read_dataset_metadata(one)
    # the same config rebuilt by two workers (stage 1 stays cached)
    two = load(fsl_recordings, "internvl3", cache, tokenizer=str(internvl_folder), max_length=1024, num_proc=2,
               download_mode="force_redownload")
    assert len(two["train"].cache_files) == 2  # one file per worker
    assert table_rows(two["train"]) == rows
    again = owa_builders.read_dataset_metadata(two)
    assert again.accounting == metadata.accounting and again.fill == metadata.fill


def test_chunks_never_cut_rows(fsl_recordings, cache, internvl_folder):
    """However the stage reads an episode (here 7 events at a time), the rows are the same."""
    rows = load_event_splits(fsl_recordings, "desktop", cache_dir=str(cache)).splits["train"][0]
    prepared = prepare_tokenizer(str(internvl_folder), "factorized", IMAGE_PATTERNS["internvl"])
    for shift in (0, 70 * MS):
        settings = FslSettings.for_model("internvl3", tokenizer=str(internvl_folder), max_length=1024,
                                         action_shift_ns=shift)
        whole = list(iter_fsl_tables(rows, settings, prepared, Accounting()))
        chunked = list(iter_fsl_tables(rows, settings, prepared, Accounting(), events_per_chunk=7, rows_per_table=3))
        assert sum(t.num_rows for t in whole) > 3
        assert _concat(chunked).equals(_concat(whole))


def _concat(tables):
    import pyarrow as pa

    return pa.concat_tables(tables).combine_chunks()


# ---- packing options and accounting -------------------------------------------------------------------------


def test_action_shift_reorders_and_reencodes_the_actions(fsl_recordings, cache, events, internvl_folder):
    shift = 120 * MS
    ds = load(fsl_recordings, "internvl3", cache, tokenizer=str(internvl_folder), action_shift_ns=shift, **SPLITS)
    prepared = prepare_tokenizer(str(internvl_folder), "factorized", IMAGE_PATTERNS["internvl"])
    for episode, rows in by_episode(ds["train"]).items():
        inputs = by_episode(events["train"])[episode]
        shifted = sorted(((e["timestamp_ns"] + (shift if e["topic"] in ("keyboard", "mouse/raw") else 0), i, e["topic"])
                          for i, e in enumerate(inputs)))
        text = unexpanded("".join(row["texts"] for row in rows), prepared)
        decoded = get_encoder("factorized").decode(text, shifted[0][0] // TIME_UNIT_NS * TIME_UNIT_NS)
        # the tokens carry the new times, so decoding gives them back in the new order
        assert [(e.topic, e.timestamp_ns) for e in decoded] == [
            (topic, time // TIME_UNIT_NS * TIME_UNIT_NS) for time, _, topic in shifted]
        assert rows[0]["first_timestamp_ns"] == shifted[0][0] and rows[-1]["last_timestamp_ns"] == shifted[-1][0]


@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> Path:
    """typing.mcap: keys only; screens.mcap: a screen every 100 ms with a key press and a mouse move between,
    one key out of the token range and one mouse delta out of range."""
    rows = [event_row("typing.mcap", "keyboard", T0 + i * 50 * MS, {"event_type": "press", "vk": 65})
            for i in range(40)]
    for i in range(30):
        time = T0 + i * 100 * MS
        rows.append(event_row("screens.mcap", "screen", time, screen_message(i * 100 * MS)))
        rows.append(event_row("screens.mcap", "keyboard", time + 10 * MS, {"event_type": "press", "vk": 300 if i == 3 else 66}))
        rows.append(event_row("screens.mcap", "mouse/raw", time + 20 * MS,
                              {"last_x": 5000 if i == 5 else 3, "last_y": -2, "us_flags": 0, "button_flags": 0, "button_data": 0}))
    return write_event_parquet(tmp_path_factory.mktemp("handmade"), rows)


def topic_counts(ds) -> dict:
    return owa_builders.read_accounting(ds)["total"]["topics"]


def test_rows_without_images_are_dropped_and_counted_unless_kept(handmade, internvl_folder, tmp_path):
    dropped = load(handmade, "internvl3", tmp_path, tokenizer=str(internvl_folder), max_length=1024)
    assert dropped["train"].unique("episode_path") == ["screens.mcap"]
    counts = topic_counts(dropped)
    assert counts["keyboard"]["dropped"] == {"row_without_images": 40, "vk_out_of_range": 1}
    assert counts["mouse/raw"]["clamped"] == {"mouse_delta": 1} and counts["mouse/raw"]["kept"] == 30
    kept = load(handmade, "internvl3", tmp_path, tokenizer=str(internvl_folder), max_length=1024,
                include_rows_without_images=True)
    typing = by_episode(kept["train"])["typing.mcap"]
    assert sum(row["num_events"] for row in typing) == 40 and all(row["num_images"] == 0 for row in typing)
    assert topic_counts(kept)["keyboard"]["dropped"] == {"vk_out_of_range": 1}


def test_events_longer_than_max_length_are_dropped_and_counted(handmade, internvl_folder, tmp_path):
    ds = load(handmade, "internvl3", tmp_path, tokenizer=str(internvl_folder), max_length=200,
              include_rows_without_images=True)
    counts = topic_counts(ds)
    assert counts["screen"] == {"read": 30, "kept": 0, "synthesized": 0, "dropped": {"event_longer_than_max_length": 30}}
    assert sum(ds["train"]["num_images"]) == 0 and max(ds["train"]["num_tokens"]) <= 200


def test_max_images_per_row(handmade, internvl_folder, tmp_path):
    ds = load(handmade, "internvl3", tmp_path, tokenizer=str(internvl_folder), max_images_per_row=2)["train"]
    assert ds["num_images"] == [2] * 15
    assert Counter(image for row in ds["images"] for image in row) == Counter(
        screen_message(i * 100 * MS).decode() for i in range(30))


def test_texts_can_be_left_out(handmade, internvl_folder, tmp_path):
    with_texts = load(handmade, "internvl3", tmp_path, tokenizer=str(internvl_folder))["train"]
    without = load(handmade, "internvl3", tmp_path, tokenizer=str(internvl_folder), store_texts=False)["train"]
    assert "texts" not in without.column_names
    assert table_rows(without) == table_rows(with_texts.remove_columns("texts"))
    assert np.array_equal(without.with_format("numpy")["input_ids"], with_texts.with_format("numpy")["input_ids"])
