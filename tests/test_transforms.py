"""auto_set_transform on datasets of each stage: what rows become, stage inference, pickling into DataLoader workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import datasets
import numpy as np
import orjson
import pytest
import torch
from media_fixtures import frame_indices, load_fsl
from PIL import Image
from torch.utils.data import DataLoader
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

import owa_builders
from owa_builders.media import FslCollator, MalformedRowError, MissingFrameError, make_transform
from owa_builders.media.transforms import BinnedTransform
from owa_builders.synth import frame_index_from_image


@pytest.fixture(scope="module")
def fsl_path(recordings, internvl_folder, tmp_path_factory) -> Path:
    """An owa_fsl dataset of both episodes (in train/ and test/ folders), saved to disk."""
    path = tmp_path_factory.mktemp("fsl") / "dataset"
    owa_builders.save_to_disk(load_fsl(recordings, tmp_path_factory.mktemp("cache"), internvl_folder), path)
    return path


@pytest.fixture(scope="module")
def binned(recordings, tmp_path_factory) -> datasets.Dataset:
    """owa_binned 10fps test rows, the screen limited to 5 Hz: some bins carry the last frame."""
    slow_screen = {"rate_limits": {"screen": {"hz": 5, "policy": "drop"}}}
    return datasets.load_dataset("owa_binned", "10fps", data_dir=str(recordings),
                                 cache_dir=str(tmp_path_factory.mktemp("binned")),
                                 events_overrides=slow_screen)["test"]


def test_fsl_method_form_gives_tensors_and_images_in_row_order(fsl_path, recordings):
    dataset = owa_builders.load_from_disk(fsl_path)
    for split in ("train", "test"):
        stored = dataset[split][:]
        dataset[split].auto_set_transform(stage="fsl", load_images=True)
        for index in range(len(dataset[split])):
            row = dataset[split][index]
            assert isinstance(row["input_ids"], torch.Tensor) and row["input_ids"].dtype == torch.int64
            assert row["input_ids"].tolist() == stored["input_ids"][index]
            assert row["attention_mask"].tolist() == stored["attention_mask"][index]
            expected = frame_indices(recordings, row["episode_path"], stored["images"][index])
            assert [frame_index_from_image(np.asarray(image)) for image in row["images"]] == expected
            assert len(expected) == row["num_images"] > 0
        assert len(dataset[split]) > 5 and {path.split("/")[0] for path in stored["episode_path"]} == {split}


def test_stage_is_inferred_from_the_dataset(fsl_path, events):
    fsl = owa_builders.load_from_disk(fsl_path)
    fsl.auto_set_transform(load_images=False)  # the DatasetDict form: every split
    assert isinstance(fsl["test"][0]["input_ids"], torch.Tensor) and isinstance(fsl["test"][0]["images"][0], str)
    assert isinstance(events["train"].with_transform(make_transform(events["train"]))[0]["mcap_message"], dict)
    with pytest.raises(ValueError, match="built by owa_events"):
        make_transform(events["train"], stage="fsl")
    with pytest.raises(ValueError, match="pass stage="):
        make_transform(datasets.Dataset.from_dict({"input_ids": [[1]]}))


def test_image_processor_gives_pixel_values_and_numpy_without_torch_tensors(fsl_path):
    dataset = owa_builders.load_from_disk(fsl_path)["train"]
    processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    row = dataset.with_transform(make_transform(dataset, image_processor=processor))[1]
    assert "images" not in row and row["pixel_values"].shape == (dataset[1]["num_images"], 3, 32, 32)
    images = dataset.with_transform(make_transform(dataset))[1]["images"]
    assert torch.equal(row["pixel_values"], processor(images=images, return_tensors="pt")["pixel_values"])
    as_numpy = dataset.with_transform(make_transform(dataset, image_processor=processor, return_tensors="np"))[1]
    assert isinstance(as_numpy["input_ids"], np.ndarray) and as_numpy["input_ids"].dtype == np.int64
    assert np.allclose(as_numpy["pixel_values"], row["pixel_values"].numpy())


def test_binned_rows_get_state_frames_and_decoded_actions(recordings, binned):
    stored = binned[:]
    rows = binned.with_transform(make_transform(binned))[:]
    assert any(rows["state_carried"]) and sum(map(len, rows["images"])) > 10
    for index, (state, images) in enumerate(zip(stored["state"], rows["images"])):
        assert [frame_index_from_image(np.asarray(image)) for image in images] == frame_indices(
            recordings, rows["episode_path"][index], state)
        assert rows["state"][index] == [orjson.loads(screen) for screen in state]
        assert rows["actions"][index] == [orjson.loads(action) for action in stored["actions"][index]]


def delivered(dataset: datasets.Dataset, column: str, **options) -> list:
    """Every frame in `column` of the transformed rows, flattened (None for an event without one)."""
    values = dataset.with_transform(make_transform(dataset, **options))[:][column]
    return [frame for value in values for frame in (value if isinstance(value, list) else [value])]


def test_images_as_array_gives_the_pil_images_pixels_read_only_without_pil(fsl_path, events, binned, monkeypatch):
    def no_pil(*args):
        raise AssertionError("PIL used for images_as='array'")

    fsl = owa_builders.load_from_disk(fsl_path)["train"]
    for dataset, column in ((fsl, "images"), (events["train"], "image"), (binned, "images")):
        images = delivered(dataset, column)
        with monkeypatch.context() as patched:
            patched.setattr(Image, "fromarray", no_pil)
            arrays = delivered(dataset, column, images_as="array")
            uncached = delivered(dataset, column, images_as="array", frame_cache_bytes=0)
        assert len(arrays) == len(images) == len(uncached) and sum(image is not None for image in images) > 10
        for image, array, uncached_array in zip(images, arrays, uncached):
            if image is None:
                assert array is None and uncached_array is None
                continue
            assert type(array) is np.ndarray and array.dtype == np.uint8 and array.shape == (image.height, image.width, 3)
            assert np.array_equal(array, np.asarray(image)) and np.array_equal(uncached_array, array)
            assert not array.flags.writeable and not uncached_array.flags.writeable  # cached or not


def test_images_as_is_checked(events):
    for options in ({}, {"load_images": False}):
        with pytest.raises(ValueError, match=r"^images_as must be 'pil' or 'array', not 'numpy'$"):
            make_transform(events["train"], images_as="numpy", **options)


@pytest.mark.parametrize("images_as", ["pil", "array"])
def test_transforms_pickle_into_dataloader_workers(fsl_path, images_as):
    dataset = owa_builders.load_from_disk(fsl_path)["train"]
    transform = make_transform(dataset, images_as=images_as)
    copied = pickle.loads(pickle.dumps(transform))
    assert copied == transform and copied.images_as == images_as
    dataset.auto_set_transform(images_as=images_as)
    collator = FslCollator.from_dataset(dataset)
    in_process = list(DataLoader(dataset, batch_size=2, collate_fn=collator))
    # spawn: each worker unpickles the dataset with its transform, as on platforms without fork
    in_workers = list(DataLoader(dataset, batch_size=2, collate_fn=collator, num_workers=2,
                                 multiprocessing_context="spawn"))
    assert len(in_workers) == len(in_process) > 2
    for ours, theirs in zip(in_process, in_workers):
        assert torch.equal(ours["input_ids"], theirs["input_ids"]) and torch.equal(ours["labels"], theirs["labels"])
        assert [[np.asarray(image).tolist() for image in row] for row in ours["images"]] == [
            [np.asarray(image).tolist() for image in row] for row in theirs["images"]]
        if images_as == "array":  # read-only in the worker; unpickled in the main process, writable copies
            assert all(not frame.flags.writeable for row in ours["images"] for frame in row)
            assert all(type(frame) is np.ndarray and frame.flags.writeable for row in theirs["images"] for frame in row)


def test_malformed_stored_json_names_the_episode_the_row_and_the_column(fsl_path, events):
    bad_event = {"episode_path": ["a.mcap"], "topic": ["keyboard"], "timestamp_ns": [17], "message_type": [
        "desktop/KeyboardEvent"], "mcap_message": [b'{"event_type": "press", "vk": 6']}
    with pytest.raises(MalformedRowError, match=r"^episode a\.mcap, row with timestamp_ns=17: mcap_message is not valid JSON"):
        make_transform(events, stage="events", load_images=False)(bad_event)
    fsl = owa_builders.load_from_disk(fsl_path)["train"]
    row = fsl[:1]
    row["images"] = [["{not json"]]
    with pytest.raises(MalformedRowError, match=rf"^episode {row['episode_path'][0]}, row with "
                                                rf"first_timestamp_ns={row['first_timestamp_ns'][0]}: images is not"):
        make_transform(fsl)(row)
    binned_row = {"episode_path": ["b.mcap"], "bin_idx": [3], "timestamp_ns": [5], "state": [[]], "actions": [[b"]"]]}
    with pytest.raises(MalformedRowError, match=r"^episode b\.mcap, row with bin_idx=3, timestamp_ns=5: actions is"):
        BinnedTransform(None)(binned_row)


def test_a_malformed_image_reference_names_its_row_or_becomes_a_counted_placeholder(fsl_path):
    fsl = owa_builders.load_from_disk(fsl_path)["train"]
    row = fsl[:1]
    good = row["images"][0]
    row["images"] = [good[:1] + ['{"media_ref": {"pts_ns": 5}, "shape": [8, 6]}'] + good[2:]]
    with pytest.raises(MissingFrameError, match=rf"^malformed image reference .*, referenced in episode "
                                                rf"{row['episode_path'][0]}, row with first_timestamp_ns="):
        make_transform(fsl)(row)
    for images_as in ("pil", "array"):
        loaded = make_transform(fsl, missing_media="placeholder", images_as=images_as)(row)
        placeholder = np.asarray(loaded["images"][0][1])
        assert loaded["missing_frames"] == [1] and placeholder.shape == (6, 8, 3) and not placeholder.any()
        assert isinstance(loaded["images"][0][1], np.ndarray) == (images_as == "array")
