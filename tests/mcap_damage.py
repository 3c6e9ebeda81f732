"""Real MCAP files (from the OWAMcap and plain mcap writers) and broken copies of them, for the reader's tests."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import lz4.frame
import pytest
import xxhash
import zstandard
from mcap.opcode import Opcode
from mcap.reader import make_reader
from mcap.writer import MCAP0_MAGIC as MAGIC
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from mcap_owa.highlevel import OWAMcapWriter
from owa.msgs.desktop.keyboard import KeyboardEvent
from owa.msgs.desktop.mouse import RawMouseEvent
from owa.msgs.desktop.screen import ScreenCaptured
from recording_fixtures import MS, T0

from owa_builders.recordings.errors import McapFormatError
from owa_builders.recordings.mcap_scan import McapScanner, iter_messages

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
    with pytest.raises(kind) as info, McapScanner(path) as scanner:
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


def rewrite_chunks(path: Path, out: Path, compress: Callable[[bytes], bytes]) -> Path:
    """A copy of path with each chunk's records compressed by `compress` (the chunk keeps its compression
    name and uncompressed size and CRC). The summary is left out, its offsets being stale: the footer says
    there is none, and DataEnd carries no CRC."""
    buf, pos = path.read_bytes(), len(MAGIC)
    parts = [buf[:pos]]
    while (opcode := buf[pos]) != Opcode.DATA_END:
        (length,) = struct.unpack_from("<Q", buf, pos + 1)
        body = buf[pos + 9 : pos + 9 + length]
        if opcode == Opcode.CHUNK:
            _, _, size, _, name_length = struct.unpack_from("<QQQII", body)
            head_length = CHUNK_FIELDS + 4 + name_length
            records = decompress(body[head_length:], size, body[CHUNK_FIELDS + 4 : head_length].decode())
            data = compress(records)
            body = body[:head_length] + struct.pack("<Q", len(data)) + data
        parts.append(struct.pack("<BQ", opcode, len(body)) + body)
        pos += 9 + length
    parts.append(struct.pack("<BQI", Opcode.DATA_END, 4, 0))
    parts.append(struct.pack("<BQQQI", Opcode.FOOTER, 20, 0, 0, 0) + MAGIC)
    out.write_bytes(b"".join(parts))
    return out


def decompress(prefixed_data: bytes, size: int, compression: str) -> bytes:
    data = prefixed_data[8:]  # after the u64 length
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    return lz4.frame.decompress(data) if compression == "lz4" else data


def zstd_without_content_size(records: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=False).compress(records)


def lz4_claiming_content_size(content_size: int) -> Callable[[bytes], bytes]:
    """An lz4 compressor whose frame header states `content_size` (with a valid header checksum)."""

    def compress(records: bytes) -> bytes:
        frame = bytearray(lz4.frame.compress(records, store_size=True))
        frame[6:14] = struct.pack("<Q", content_size)  # after the magic, FLG and BD bytes
        frame[14] = (xxhash.xxh32_intdigest(bytes(frame[4:14])) >> 8) & 0xFF
        return bytes(frame)

    return compress
