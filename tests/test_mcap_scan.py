"""McapScanner against the mcap library on files from the real writers, and on broken copies of them."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
from mcap.writer import CompressionType, IndexType
from mcap.writer import Writer as McapWriter
from mcap_damage import (
    CHUNK_FIELDS,
    broken,
    chunk_records_offset,
    cut,
    flipped,
    library_messages,
    message_index_entries,
    scan_error,
    scanned_messages,
    summary,
    write_owa,
    write_plain,
)
from recording_fixtures import T0

from owa_builders.recordings.errors import ChecksumMismatchError, TruncatedMcapError
from owa_builders.recordings.mcap_scan import McapScanner

# -- agreement with the mcap library ------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [CompressionType.ZSTD, CompressionType.LZ4, CompressionType.NONE])
def test_multi_chunk_owa_file_matches_mcap_library(tmp_path, compression):
    path = write_owa(tmp_path / "ep.mcap", compression)
    chunks = len(summary(path).chunk_indexes)
    assert chunks > 5
    expected = library_messages(path)
    assert scanned_messages(path) == expected

    with McapScanner(path) as scanner:
        assert scanner.profile == "owa" and scanner.library.startswith("mcap-owa-support")
        batches = list(scanner.iter_batches())
        assert scanner.summary_channels() == scanner.channels
    assert len(batches) == chunks
    assert {c.topic: c.schema_name for c in scanner.channels.values()} == {
        "mouse/raw": "desktop/RawMouseEvent",
        "screen": "desktop/ScreenCaptured",
        "keyboard": "desktop/KeyboardEvent",
    }
    encodings = {(c.message_encoding, c.schema_encoding) for c in scanner.channels.values()}
    assert encodings == {("json", "jsonschema")}
    batch = batches[0]
    columns = (batch.channel_ids, batch.log_times, batch.data_starts, batch.data_ends)
    assert [column.dtype for column in columns] == [np.uint16, np.int64, np.int64, np.int64]
    assert [batch.payload(i) for i in range(len(batch))] == [data for _, _, data in expected[: len(batch)]]


@pytest.mark.parametrize("index_types", [IndexType.NONE, IndexType.CHUNK])
def test_chunks_without_message_index_are_walked(tmp_path, index_types):
    path = write_plain(tmp_path / "plain.mcap", chunk_size=2048, index_types=index_types)
    assert len(library_messages(path)) == 200
    assert scanned_messages(path) == library_messages(path)


def test_unchunked_file(tmp_path):
    path = write_plain(tmp_path / "plain.mcap", use_chunking=False)
    assert scanned_messages(path) == library_messages(path)
    with McapScanner(path) as scanner:
        assert sum(len(batch) for batch in scanner.iter_batches()) == 200
        assert scanner.channels[1].schema_name == "s" and scanner.channels[2].schema_name == ""


def test_file_without_summary_reads_channels_from_the_data_section(tmp_path):
    path = write_plain(
        tmp_path / "plain.mcap",
        index_types=IndexType.NONE,
        repeat_channels=False,
        repeat_schemas=False,
        use_statistics=False,
        use_summary_offsets=False,
    )
    with McapScanner(path) as scanner:
        assert scanner.summary_channels() is None and scanner.channels == {}
        assert sum(len(batch) for batch in scanner.iter_batches()) == 200
        assert sorted(channel.topic for channel in scanner.channels.values()) == ["a", "b"]


def test_upstream_sample_matches_mcap_library(shared_samples):
    path = shared_samples / "0.5.1.mcap"
    expected = library_messages(path)
    assert len(expected) == 267
    assert scanned_messages(path) == expected


# -- broken files -------------------------------------------------------------------------------------------


def test_empty_file(tmp_path):
    (tmp_path / "empty.mcap").write_bytes(b"")
    assert scan_error(tmp_path / "empty.mcap").problem == "empty file"


def test_wrong_magic(tmp_path):
    path = broken(write_owa(tmp_path / "ep.mcap"), 0, b"\x89MCAP1\r\n")
    assert "bad leading magic" in scan_error(path).problem
    (tmp_path / "text.mcap").write_text("hello")
    assert "bad leading magic" in scan_error(tmp_path / "text.mcap").problem


def test_bad_trailing_magic(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    path = broken(path, path.stat().st_size - 8, b"\x89MCAP1\r\n")
    with McapScanner(path) as scanner:
        assert scanner.summary_channels() is None
    assert "bad trailing magic" in scan_error(path).problem


def test_truncated_files(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    first, second = summary(path).chunk_indexes[:2]
    size = path.stat().st_size
    (summary_start,) = struct.unpack_from("<Q", path.read_bytes(), size - 8 - 20)
    after_second = second.chunk_start_offset + second.chunk_length
    cuts = {
        "inside the magic": 5,
        "after the header": first.chunk_start_offset,
        "mid-chunk": second.chunk_start_offset + second.chunk_length // 2,
        "right after a chunk": after_second,
        "after a chunk's message indexes": after_second + second.message_index_length,
        "inside the summary": summary_start + 40,
        "inside the footer": size - 8 - 10,
        "inside the trailing magic": size - 3,
    }
    for where, length in cuts.items():
        assert scan_error(cut(path, length), TruncatedMcapError).problem.startswith("truncated"), where

    # A recorder killed mid-write leaves no summary: the scanner opens, yields complete chunks, then raises.
    with McapScanner(cut(path, cuts["mid-chunk"])) as scanner:
        assert scanner.summary_channels() is None
        batches = scanner.iter_batches()
        assert len(next(batches)) > 0
        with pytest.raises(TruncatedMcapError, match="truncated: Chunk record at offset"):
            next(batches)


def test_flipped_byte_in_compressed_chunk(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    problem = scan_error(flipped(path, chunk_records_offset(path, 1) + 300)).problem
    assert "Chunk at offset" in problem and ("CRC mismatch" in problem or "decompression failed" in problem)


def test_flipped_byte_in_uncompressed_chunk(tmp_path):
    path = write_owa(tmp_path / "ep.mcap", CompressionType.NONE)
    error = scan_error(flipped(path, chunk_records_offset(path, 1) + 100), ChecksumMismatchError)
    assert "CRC mismatch" in error.problem


def test_data_section_crc(tmp_path):
    path = write_plain(tmp_path / "plain.mcap", enable_data_crcs=True)
    assert scanned_messages(path) == library_messages(path)
    # Only the data section CRC covers the Header's library string.
    error = scan_error(broken(path, path.read_bytes().index(b"test"), b"tEst"), ChecksumMismatchError)
    assert "data section CRC mismatch" in error.problem


def test_uncompressed_size_mismatch(tmp_path):
    path = write_owa(tmp_path / "ep.mcap", CompressionType.NONE)
    size_at = summary(path).chunk_indexes[0].chunk_start_offset + 9 + 16
    (size,) = struct.unpack_from("<Q", path.read_bytes(), size_at)
    problem = scan_error(broken(path, size_at, struct.pack("<Q", size - 1))).problem
    assert "uncompressed size mismatch" in problem


def test_unknown_compression(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    name_at = summary(path).chunk_indexes[0].chunk_start_offset + 9 + CHUNK_FIELDS + 4
    assert "unsupported compression 'zstx'" in scan_error(broken(path, name_at, b"zstx")).problem


def test_message_index_pointing_at_a_wrong_offset(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    at, _, offset = message_index_entries(path)[1]
    problem = scan_error(broken(path, at + 8, struct.pack("<Q", offset + 1))).problem
    assert "does not point at a matching Message record" in problem
    problem = scan_error(broken(path, at + 8, struct.pack("<Q", 1 << 40))).problem
    assert "points past the end of the chunk" in problem


def test_message_index_with_a_wrong_log_time(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    at, log_time, _ = message_index_entries(path)[1]
    problem = scan_error(broken(path, at, struct.pack("<Q", log_time + 1))).problem
    assert "does not point at a matching Message record" in problem


def test_message_index_listing_a_message_twice(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    (_, *first), (at, *_) = message_index_entries(path)[:2]
    assert "overlap" in scan_error(broken(path, at, struct.pack("<QQ", *first))).problem


def test_message_index_missing_a_message(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    entries = message_index_entries(path)
    length_at = entries[0][0] - 4
    problem = scan_error(broken(path, length_at, struct.pack("<I", 16 * (len(entries) - 1)))).problem
    assert "Message record missing from the chunk's message index" in problem


LAYOUTS = [{}, {"index_types": IndexType.NONE}, {"use_chunking": False}]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_message_on_undefined_channel(tmp_path, layout):
    path = write_plain(tmp_path / "plain.mcap", [(1, T0, b"{}"), (7, T0 + 1, b"{}")], **layout)
    assert "message on undefined channel 7" in scan_error(path).problem


@pytest.mark.parametrize("layout", LAYOUTS)
def test_log_time_beyond_int64(tmp_path, layout):
    path = write_plain(tmp_path / "plain.mcap", [(1, 2**63, b"{}")], **layout)
    assert "exceeds int64" in scan_error(path).problem


@pytest.mark.parametrize("index_types", [IndexType.ALL, IndexType.NONE])
def test_message_record_overrunning_its_chunk(tmp_path, index_types):
    options = dict(compression=CompressionType.NONE, enable_crcs=False, index_types=index_types)
    path = write_plain(tmp_path / "plain.mcap", [(1, T0, b"{}")], **options)
    message_at = path.read_bytes().index(struct.pack("<BQHIQ", 5, 22 + 2, 1, 0, T0))
    problem = scan_error(broken(path, message_at + 1, struct.pack("<Q", 22 + 3))).problem
    assert "Message record overruns the chunk" in problem


def test_channel_with_undefined_schema(tmp_path):
    path = tmp_path / "plain.mcap"
    with open(path, "wb") as f:
        writer = McapWriter(f)
        writer.start(profile="owa", library="test")
        channel_id = writer.register_channel("a", "json", schema_id=5)
        writer.add_message(channel_id, log_time=T0, data=b"{}", publish_time=T0)
        writer.finish()
    assert "channel 1 refers to schema 5, which is not defined" in scan_error(path).problem


def test_error_pickles_with_path_and_problem(tmp_path):
    error = pickle.loads(pickle.dumps(TruncatedMcapError(tmp_path / "x.mcap", "truncated: somewhere")))
    assert type(error) is TruncatedMcapError
    assert (error.path, error.problem) == (str(tmp_path / "x.mcap"), "truncated: somewhere")
    assert str(error) == f"{tmp_path / 'x.mcap'}: truncated: somewhere"
