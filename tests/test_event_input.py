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


def stored(tmp_path, name: str, paths: list[str], batch_rows: int) -> datasets.Dataset:
    """A split read from an Arrow stream file (datasets' cache format) of `batch_rows`-row record batches."""
    table = split(paths, batch_rows).data.table
    with pa.ipc.new_stream(str(tmp_path / f"{name}.arrow"), table.schema) as writer:
        writer.write_table(table)
    return datasets.Dataset.from_file(str(tmp_path / f"{name}.arrow"))


def test_episode_rows_read_from_their_record_batches_are_the_rows_of_the_split(tmp_path):
    parts = [stored(tmp_path, "0", ["a.mcap"] * 3 + ["b.mcap"] * 2, 2), stored(tmp_path, "1", ["b.mcap"] * 2 + ["c.mcap"] * 4, 2)]
    joined = datasets.concatenate_datasets(parts)  # two Arrow files; b.mcap's rows are in both
    episodes = episode_rows(joined, "here")
    assert [(rows.episode_path, rows.start, rows.stop) for rows in episodes] == [
        ("a.mcap", 0, 3), ("b.mcap", 3, 7), ("c.mcap", 7, 11)]
    files = [str(tmp_path / "0.arrow"), str(tmp_path / "1.arrow")]
    assert [(rows.stored_from.path, rows.stored_from.first_row) if rows.stored_from else None for rows in episodes] == [
        (files[0], 0), None, (files[1], 7)]  # c.mcap starts in the second 2-row batch of the second file
    for rows in episodes:
        assert rows.table().equals(joined.data.table.slice(rows.start, len(rows)))


@pytest.mark.parametrize("make", [
    lambda disk: datasets.concatenate_datasets([disk.select(range(5, 10)), split(["b.mcap"] * 5, 2)]),
    lambda disk: disk.select(range(3, 10)),
    lambda disk: split(["a.mcap"] * 3, 2),
], ids=["slice of a file and rows in memory", "slice of a file", "in memory"])
def test_episode_rows_not_simply_stored_are_read_through_the_dataset(tmp_path, make):
    dataset = make(stored(tmp_path, "disk", ["a.mcap"] * 5 + ["c.mcap"] * 5, 2))
    episodes = episode_rows(dataset, "here")
    flat = dataset.flatten_indices() if dataset._indices is not None else dataset
    for rows in episodes:
        assert rows.table().to_pylist() == flat.data.table.slice(rows.start, len(rows)).to_pylist()
    assert [rows.episode_path for rows in episodes] == list(dict.fromkeys(flat["episode_path"]))
