"""McapScanner against the mcap library on files from the real writers, and on broken copies of them."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.writer import CompressionType, IndexType
from mcap.writer import Writer as McapWriter
from mcap_owa.highlevel import OWAMcapWriter
from owa.msgs.desktop.keyboard import KeyboardEvent
from owa.msgs.desktop.mouse import RawMouseEvent
from owa.msgs.desktop.screen import ScreenCaptured

from owa_builders.recordings.errors import ChecksumMismatchError, McapFormatError, TruncatedMcapError
from owa_builders.recordings.mcap_scan import McapScanner, iter_messages

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
CHUNK_FIELDS = 8 + 8 + 8 + 4  # message start/end time, uncompressed size, uncompressed crc


def owa_messages(n: int = 300) -> list[tuple[str, object, int]]:
    """(topic, message, log_time) in time order: mouse/raw each ms, screen each 16 ms, keyboard each 50 ms."""
    out: list[tuple[str, object, int]] = []
    for i in range(n):
        t = T0 + i * MS
        mouse = RawMouseEvent(last_x=i % 7 - 3, last_y=i % 5, button_flags=0, button_data=0)
        out.append(("mouse/raw", mouse, t))
        if i % 16 == 0:
            media = {"uri": "ep.mkv", "pts_ns": i * MS}
            screen = ScreenCaptured(utc_ns=t, source_shape=(64, 48), shape=(64, 48), media_ref=media)
            out.append(("screen", screen, t))
        if i % 50 == 0:
            out.append(("keyboard", KeyboardEvent(event_type="press", vk=65 + i % 26), t))
    return out


def write_owa(path: Path, compression: CompressionType = CompressionType.ZSTD) -> Path:
    """A recording from the OWAMcap writer, in small chunks."""
    with OWAMcapWriter(path, chunk_size=4096, compression=compression) as writer:
        for topic, message, t in owa_messages():
            writer.write_message(message, topic=topic, timestamp=t)
    return path


def write_plain(path: Path, messages: list[tuple[int, int, bytes]] | None = None, **options) -> Path:
    """A file from the plain mcap writer with channels 1 'a' (schema 's') and 2 'b' (no schema).

    ``messages`` are (channel id, log time, data); by default 200 messages alternating between the channels.
    """
    if messages is None:
        messages = [(1 + i % 2, T0 + i * MS, b'{"i":%d}' % i) for i in range(200)]
    with open(path, "wb") as f:
        writer = McapWriter(f, **options)
        writer.start(profile="owa", library="test")
        schema = writer.register_schema("s", "jsonschema", b"{}")
        writer.register_channel("a", "json", schema)
        writer.register_channel("b", "json", 0)
        for channel_id, t, data in messages:
            writer.add_message(channel_id, log_time=t, data=data, publish_time=t)
        writer.finish()
    return path


def library_messages(path: Path) -> list[tuple[str, int, bytes]]:
    with open(path, "rb") as f:
        messages = make_reader(f).iter_messages(log_time_order=False)
        return [(channel.topic, message.log_time, message.data) for _, channel, message in messages]


def scanned_messages(path: Path) -> list[tuple[str, int, bytes]]:
    return [(channel.topic, t, data) for channel, t, data in iter_messages(path)]


def summary(path: Path):
    with open(path, "rb") as f:
        return make_reader(f).get_summary()


def broken(path: Path, at: int, data: bytes) -> Path:
    """A copy of path with data written over the bytes at offset ``at``."""
    buf = bytearray(path.read_bytes())
    buf[at : at + len(data)] = data
    out = path.with_name("broken-" + path.name)
    out.write_bytes(bytes(buf))
    return out


def flipped(path: Path, at: int) -> Path:
    return broken(path, at, bytes([path.read_bytes()[at] ^ 0xFF]))


def cut(path: Path, size: int) -> Path:
    out = path.with_name("cut-" + path.name)
    out.write_bytes(path.read_bytes()[:size])
    return out


def scan_error(path: Path, kind: type[McapFormatError] = McapFormatError) -> McapFormatError:
    """The error from opening path and reading all its batches; checks that it names the file."""
    with pytest.raises(kind) as info:
        with McapScanner(path) as scanner:
            for _ in scanner.iter_batches():
                pass
    assert info.value.path == str(path)
    assert str(info.value) == f"{path}: {info.value.problem}"
    return info.value


def chunk_records_offset(path: Path, chunk: int) -> int:
    """File offset of a chunk's (compressed) records."""
    index = summary(path).chunk_indexes[chunk]
    return index.chunk_start_offset + 9 + CHUNK_FIELDS + 4 + len(index.compression) + 8


def message_index_entries(path: Path, chunk: int = 2) -> list[tuple[int, int, int]]:
    """(file offset, log_time, offset) of each entry of the chunk's longest MessageIndex."""
    buf = path.read_bytes()
    indexes = []
    for start in summary(path).chunk_indexes[chunk].message_index_offsets.values():
        _, length = struct.unpack_from("<HI", buf, start + 9)
        at = start + 9 + 6
        entries = range(at, at + length, 16)
        indexes.append([(entry, *struct.unpack_from("<QQ", buf, entry)) for entry in entries])
    return max(indexes, key=len)


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
