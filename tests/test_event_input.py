"""Cutting an event split into episodes (`episode_rows`), whatever its record batches."""

from __future__ import annotations

import itertools

import datasets
import pyarrow as pa
import pytest
from datasets.table import InMemoryTable
from hypothesis import given, settings
from hypothesis import strategies as st

from owa_builders.events.event_input import episode_rows
from owa_builders.events.stage import EVENT_SCHEMA


def split(paths: list[str | None], batch_rows: int) -> datasets.Dataset:
    table = pa.Table.from_pylist([{"episode_path": path, "topic": "t", "timestamp_ns": i, "message_type": "m",
                                   "mcap_message": b"{}"} for i, path in enumerate(paths)], schema=EVENT_SCHEMA)
    return datasets.Dataset(InMemoryTable(pa.Table.from_batches(table.to_batches(max_chunksize=batch_rows), EVENT_SCHEMA)))


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["a.mcap", "b.mcap", "c.mcap"]), st.integers(1, 4)), max_size=8),
       st.integers(1, 5))
def test_episode_rows_cut_a_split_into_its_episodes_across_record_batches(runs, batch_rows):
    paths = [path for path, count in runs for _ in range(count)]
    expected, start = [], 0
    for path, group in itertools.groupby(paths):
        stop = start + len(list(group))
        expected.append((start, stop, path))
        start = stop
    dataset = split(paths, batch_rows)
    if len({path for _, _, path in expected}) < len(expected):
        with pytest.raises(ValueError, match="not contiguous"):
            episode_rows(dataset, "here")
    else:
        assert [(rows.start, rows.stop, rows.episode_path) for rows in episode_rows(dataset, "here")] == expected


def test_episode_rows_refuse_rows_without_an_episode_path():
    with pytest.raises(ValueError, match="here: not an event dataset, some rows have no episode_path"):
        episode_rows(split(["a.mcap", None], 1), "here")


def test_episode_rows_read_from_their_cache_file_are_the_rows_of_the_split(tmp_path):
    parts = []
    for i, paths in enumerate([["a.mcap"] * 3 + ["b.mcap"] * 2, ["b.mcap"] * 2 + ["c.mcap"] * 4]):
        split(paths, 2).save_to_disk(str(tmp_path / str(i)))
        parts.append(datasets.load_from_disk(str(tmp_path / str(i))))
    stored = datasets.concatenate_datasets(parts)  # two Arrow files; b.mcap's rows are in both
    assert len(stored.cache_files) == 2
    episodes = episode_rows(stored, "here")
    assert [(rows.episode_path, rows.start, rows.stop) for rows in episodes] == [
        ("a.mcap", 0, 3), ("b.mcap", 3, 7), ("c.mcap", 7, 11)]
    files = [cache_file["filename"] for cache_file in stored.cache_files]
    assert [rows.cache_file for rows in episodes] == [(files[0], 0), None, (files[1], 5)]
    for rows in episodes:
        assert rows.table().equals(stored.data.table.slice(rows.start, len(rows)))


def test_episode_rows_of_an_in_memory_split_have_no_cache_file():
    (rows,) = episode_rows(split(["a.mcap"] * 3, 2), "here")
    assert rows.cache_file is None and rows.table().num_rows == 3
