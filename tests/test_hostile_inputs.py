"""Hostile input: absurd lengths and sizes in a file, random damage, control characters in names and uris,
odd things under a recording's name, folder mistakes. Each is our error naming the file and the problem."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import datasets
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcap.opcode import Opcode
from mcap.writer import CompressionType, IndexType
from mcap_damage import (
    CHUNK_FIELDS,
    broken,
    library_messages,
    lz4_claiming_content_size,
    rewrite_chunks,
    scanned_messages,
    summary,
    write_owa,
    write_plain,
    zstd_without_content_size,
)
from recording_fixtures import T0, copy_episode, screen, write_recording

import owa_builders
from owa_builders.events.settings import EventsSettings
from owa_builders.events.stage import convert_episode
from owa_builders.recordings.episodes import Episode, find_episodes, locate_media, open_episode
from owa_builders.recordings.errors import (
    BadRecordingError,
    DanglingSymlinkError,
    IsADirectoryRecordingError,
    McapFormatError,
    MediaReferenceError,
    MissingRecordingError,
    PermissionDeniedError,
    RecordingsFolderError,
    SpecialFileError,
    SymlinkLoopError,
    TruncatedMcapError,
    UnsafeFileNameError,
)
from owa_builders.recordings.files import file_stamp
from owa_builders.recordings.mcap_scan import MAX_CHUNK_BYTES, MAX_COMPRESSION_RATIO, McapScanner
from owa_builders.synth import SynthProfile, synthesize_episode

U32_MAX, U64_MAX, TIB = 2**32 - 1, 2**64 - 1, 2**40
COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "": CompressionType.NONE}


def exactly(error_type: type[BadRecordingError], path, read) -> BadRecordingError:
    """The error `read()` raises: exactly `error_type`, naming `path`, on one line."""
    with pytest.raises(BadRecordingError) as caught:
        read()
    error = caught.value
    assert type(error) is error_type, error
    assert error.path == str(path) and str(error).endswith(f": {error.problem}") and "\n" not in str(error)
    return error


def peak_memory(read) -> int:
    """Bytes Python allocated at the peak of `read()`."""
    tracemalloc.start()
    try:
        read()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def scan_all(source, name: str | None = None) -> None:
    with McapScanner(source, name) as scanner:
        for _ in scanner.iter_batches():
            pass


def chunk_field(path: Path, field: str, chunk: int = 0) -> int:
    """File offset of one field of a chunk record."""
    index = summary(path).chunk_indexes[chunk]
    body = index.chunk_start_offset + 9
    name_end = body + CHUNK_FIELDS + 4 + len(index.compression)
    return {"uncompressed_size": body + 16, "name_length": body + CHUNK_FIELDS,
            "records_length": name_end}[field]  # fmt: skip


# -- hostile sizes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("claim", [TIB, U64_MAX, "just over the ratio"])
def test_chunk_claiming_an_absurd_uncompressed_size(tmp_path, compression, claim):
    path = write_owa(tmp_path / "ep.mcap", COMPRESSIONS[compression])
    at = chunk_field(path, "uncompressed_size")
    (records_length,) = struct.unpack_from("<Q", path.read_bytes(), chunk_field(path, "records_length"))
    if claim == "just over the ratio":
        claim = MAX_COMPRESSION_RATIO[compression] * records_length + 1
    damaged = broken(path, at, struct.pack("<Q", claim))
    error = exactly(McapFormatError, damaged, lambda: scan_all(damaged))
    assert f"Chunk at offset {at - 25}: claims {claim} uncompressed bytes from {records_length} " in error.problem
    assert peak_memory(lambda: pytest.raises(McapFormatError, scan_all, damaged)) < 4 * 2**20


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_chunk_claiming_the_most_its_compression_allows_is_checked_against_its_records(tmp_path, compression):
    path = write_owa(tmp_path / "ep.mcap", COMPRESSIONS[compression])
    (records_length,) = struct.unpack_from("<Q", path.read_bytes(), chunk_field(path, "records_length"))
    claim = min(MAX_COMPRESSION_RATIO[compression] * records_length, MAX_CHUNK_BYTES)
    damaged = broken(path, chunk_field(path, "uncompressed_size"), struct.pack("<Q", claim))
    error = exactly(McapFormatError, damaged, lambda: scan_all(damaged))
    assert f"chunk says {claim}" in error.problem


def test_zstd_frames_without_content_size(tmp_path):
    original = write_owa(tmp_path / "ep.mcap")
    path = rewrite_chunks(original, tmp_path / "unsized.mcap", zstd_without_content_size)
    assert scanned_messages(path) == library_messages(original)

    buf = path.read_bytes()
    chunk_at = 8 + 9 + struct.unpack_from("<Q", buf, 9)[0]  # the first chunk follows the Header
    assert buf[chunk_at] == Opcode.CHUNK
    size_at = chunk_at + 9 + 16
    (size,) = struct.unpack_from("<Q", buf, size_at)
    for claim, wording in [(TIB, f"claims {TIB} uncompressed bytes"), (size + 1000, f"chunk says {size + 1000}")]:
        damaged = broken(path, size_at, struct.pack("<Q", claim))
        assert wording in exactly(McapFormatError, damaged, lambda file=damaged: scan_all(file)).problem
        assert peak_memory(lambda file=damaged: pytest.raises(McapFormatError, scan_all, file)) < 4 * 2**20


def test_lz4_frame_claiming_a_huge_content_size(tmp_path):
    original = write_owa(tmp_path / "ep.mcap", CompressionType.LZ4)
    path = rewrite_chunks(original, tmp_path / "liar.mcap", lz4_claiming_content_size(TIB))
    error = exactly(McapFormatError, path, lambda: scan_all(path))
    assert "lz4" in error.problem and "Chunk at offset" in error.problem
    assert peak_memory(lambda: pytest.raises(McapFormatError, scan_all, path)) < 4 * 2**20


def test_record_claiming_more_bytes_than_the_file(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    chunk_at = summary(path).chunk_indexes[1].chunk_start_offset
    damaged = broken(path, chunk_at + 1, struct.pack("<Q", U64_MAX))
    error = exactly(TruncatedMcapError, damaged, lambda: scan_all(damaged))
    assert f"Chunk record at offset {chunk_at} has {U64_MAX} bytes but the file ends" in error.problem


@pytest.mark.parametrize(("field", "value", "wording"), [
    ("name_length", U32_MAX, "compression name overruns the record"),
    ("records_length", U64_MAX, "compressed records overrun the record"),
])  # fmt: skip
def test_chunk_lengths_overrunning_the_chunk(tmp_path, field, value, wording):
    path = write_owa(tmp_path / "ep.mcap")
    size = 4 if field == "name_length" else 8
    damaged = broken(path, chunk_field(path, field), value.to_bytes(size, "little"))
    assert wording in exactly(McapFormatError, damaged, lambda: scan_all(damaged)).problem


def test_message_index_with_an_absurd_length(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    index_at = min(summary(path).chunk_indexes[0].message_index_offsets.values())
    (channel_id,) = struct.unpack_from("<H", path.read_bytes(), index_at + 9)
    damaged = broken(path, index_at + 9 + 2, struct.pack("<I", U32_MAX))
    error = exactly(McapFormatError, damaged, lambda: scan_all(damaged))
    assert f"malformed MessageIndex record for channel {channel_id}" in error.problem
    damaged = broken(path, index_at + 1, struct.pack("<Q", U64_MAX))
    assert f"MessageIndex record at offset {index_at} has {U64_MAX} bytes" in exactly(
        TruncatedMcapError, damaged, lambda: scan_all(damaged)).problem  # fmt: skip


UNCOMPRESSED = {"compression": CompressionType.NONE, "enable_crcs": False}


@pytest.mark.parametrize(("record", "ids", "field"), [
    ("Schema", 2, b"\x01\x00\x00\x00s"),  # schema id, then its name "s"
    ("Channel", 4, b"\x01\x00\x00\x00a"),  # channel id and schema id, then its topic "a"
])  # fmt: skip
def test_string_lengths_overrunning_their_record(tmp_path, record, ids, field):
    """In a chunk or in the summary (which opening then ignores), the file is refused naming the record."""
    path = write_plain(tmp_path / "plain.mcap", **UNCOMPRESSED)
    data = path.read_bytes()
    in_chunk = broken(path, data.index(field), struct.pack("<I", U32_MAX))
    problem = exactly(McapFormatError, in_chunk, lambda: scan_all(in_chunk)).problem
    assert f"malformed {record} record: field overruns the record" in problem and problem.startswith("Chunk at")

    in_summary = broken(path, data.rindex(field), struct.pack("<I", U32_MAX))
    with McapScanner(in_summary) as scanner:
        assert scanner.summary_channels() is None
    record_at = data.rindex(field) - ids - 9  # after the record's opcode and length
    problem = exactly(McapFormatError, in_summary, lambda: scan_all(in_summary)).problem
    assert problem == f"record at offset {record_at}: malformed {record} record: field overruns the record"


def test_names_that_are_not_utf8(tmp_path):
    path = write_plain(tmp_path / "plain.mcap", **UNCOMPRESSED)
    damaged = broken(path, 8 + 9 + 4, b"\xff\xfe")  # the Header's profile, "owa"
    assert "malformed Header record" in exactly(McapFormatError, damaged, lambda: scan_all(damaged)).problem
    damaged = broken(path, path.read_bytes().index(b"\x01\x00\x00\x00s") + 4, b"\xff")  # schema name "s"
    assert "malformed Schema record" in exactly(McapFormatError, damaged, lambda: scan_all(damaged)).problem


@pytest.mark.parametrize("summary_start", [U64_MAX, 3, 1 << 40])
def test_footer_with_an_absurd_summary_offset_is_ignored(tmp_path, summary_start):
    path = write_owa(tmp_path / "ep.mcap")
    size = path.stat().st_size
    damaged = broken(path, size - 8 - 20, struct.pack("<QQI", summary_start, 0, 0))
    with McapScanner(damaged) as scanner:
        assert scanner.summary_channels() is None
    assert scanned_messages(damaged) == library_messages(path)


# -- random damage ----------------------------------------------------------------------------------------------

LAYOUTS = {
    "zstd": {"compression": CompressionType.ZSTD, "chunk_size": 1024},
    "lz4": {"compression": CompressionType.LZ4, "chunk_size": 1024},
    "uncompressed": {"compression": CompressionType.NONE, "chunk_size": 1024},
    "unindexed": {"compression": CompressionType.NONE, "chunk_size": 1024, "index_types": IndexType.NONE},
    "unchunked": {"use_chunking": False},
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("pristine")
    messages = [(1 + i % 2, T0 + i * 1000, b'{"i":%d}' % i) for i in range(60)]
    return {name: write_plain(folder / f"{name}.mcap", messages, **layout).read_bytes() for name, layout in LAYOUTS.items()}


EXTREMES = [b"\x00" * 8, b"\xff" * 8, struct.pack("<Q", 2**63), struct.pack("<Q", TIB), struct.pack("<I", U32_MAX)]


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_damaged_files_raise_our_error_or_read(pristine, data):
    """Flipped bytes, extreme values written anywhere, cuts: a BadRecordingError naming the file, or a read."""
    buf = bytearray(pristine[data.draw(st.sampled_from(sorted(pristine)), label="layout")])
    for _ in range(data.draw(st.integers(1, 3), label="damages")):
        at = data.draw(st.integers(0, len(buf) - 1), label="at")
        damage = data.draw(st.sampled_from(["flip", "extreme", "cut"]), label="damage")
        if damage == "flip":
            buf[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif damage == "extreme":
            value = data.draw(st.sampled_from(EXTREMES), label="value")
            buf[at : at + len(value)] = value
        else:
            del buf[at:]
            break
    try:
        scan_all(io.BytesIO(bytes(buf)), "damaged.mcap")
    except BadRecordingError as error:
        assert error.path == "damaged.mcap" and str(error) == f"damaged.mcap: {error.problem}"


# -- open file objects ------------------------------------------------------------------------------------------


def test_open_file_objects_read_like_paths(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    expected = library_messages(path)
    with open(path, "rb") as f:
        with McapScanner(f) as scanner:
            assert scanner.path == str(path)
            count = sum(len(batch) for batch in scanner.iter_batches())
        assert not f.closed  # the caller's to close
    assert count == len(expected)
    with McapScanner(io.BytesIO(path.read_bytes()), "remote://bucket/ep.mcap") as scanner:
        assert sum(len(batch) for batch in scanner.iter_batches()) == len(expected)
        assert scanner.summary_channels() == scanner.channels

    cut_short = io.BytesIO(path.read_bytes()[: path.stat().st_size // 2])
    error = exactly(TruncatedMcapError, "remote://bucket/ep.mcap", lambda: scan_all(cut_short, "remote://bucket/ep.mcap"))
    assert error.problem.startswith("truncated")


def test_file_objects_that_cannot_be_scanned(tmp_path):
    path = write_owa(tmp_path / "ep.mcap")
    with open(path, encoding="latin-1") as text, pytest.raises(ValueError, match="needs a seekable binary file"):
        McapScanner(text)
    read_end, write_end = os.pipe()
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe, pytest.raises(ValueError, match="needs a seekable binary file"):
        McapScanner(pipe)


# -- hostile strings --------------------------------------------------------------------------------------------

CONTROL_URIS = ["video\x00.mkv", "video\n.mkv", "video.mkv\r", "\x1b[31mvideo.mkv", "video\x7f.mkv", "vi\x85deo.mkv"]


@pytest.mark.parametrize("uri", CONTROL_URIS)
@pytest.mark.parametrize("allow_external_media", [False, True])
def test_media_uri_with_control_characters_is_refused(tmp_path, uri, allow_external_media):
    path = write_recording(tmp_path / "episode.mcap", [("screen", screen(0, uri=uri), T0)])
    settings = EventsSettings(allow_external_media=allow_external_media)
    error = exactly(MediaReferenceError, path, lambda: convert_episode(Episode(str(path), str(tmp_path)), settings))
    assert f"screen media uri {uri!r} is not a file name" in error.problem


@pytest.mark.parametrize("uri", [None, 42, ["video.mkv"], "\ud800.mkv"])
def test_media_uri_that_is_not_a_file_name_is_refused(tmp_path, uri):
    episode = Episode(str(tmp_path / "episode.mcap"), str(tmp_path))
    error = exactly(MediaReferenceError, episode.path, lambda: locate_media(episode, uri, allow_external=True))
    assert f"screen media uri {uri!r} is not a file name" in error.problem


UNSAFE_NAMES = [b"ep\nisode.mcap", b"ep\tisode.mcap", b"\x1b[2Jepisode.mcap", b"ep\xffisode.mcap"]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_file_name_with_control_characters_is_listed_then_refused(tmp_path, name):
    good = write_recording(tmp_path / "good.mcap", [("screen", screen(0), T0)])
    path = os.fsdecode(os.path.join(os.fsencode(tmp_path), name))
    os.link(good, path)  # a real recording under the hostile name
    episodes = find_episodes(tmp_path)
    assert sorted(episode.path for episode in episodes) == sorted([path, str(good)])
    hostile = next(episode for episode in episodes if episode.path == path)
    assert file_stamp(path) == file_stamp(good)
    error = exactly(UnsafeFileNameError, path, lambda: open_episode(hostile))
    assert error.reason == "unsafe_file_name" and str(error) == f"{path!r}: {error.problem}"
    assert "control characters or undecodable bytes" in error.problem


# -- odd things under a recording's name ------------------------------------------------------------------------


def symlink_loop(path: Path) -> None:
    os.symlink(path.name, path)


def dangling_symlink(path: Path) -> None:
    os.symlink("nowhere.mcap", path)


def directory(path: Path) -> None:
    path.mkdir()
    write_recording(path / "inside.mcap", [("screen", screen(0), T0)])  # not listed: the folder is not entered


def fifo(path: Path) -> None:
    os.mkfifo(path)


def unix_socket(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))  # the name stays after the socket is closed
    server.close()


def device(path: Path) -> None:
    os.symlink("/dev/zero", path)


ODD_FILES = {
    "symlink loop": (symlink_loop, SymlinkLoopError, "is a symlink loop"),
    "dangling symlink": (dangling_symlink, DanglingSymlinkError, "is a symlink to 'nowhere.mcap', which does not exist"),
    "directory": (directory, IsADirectoryRecordingError, "is a directory, not a recording file"),
    "FIFO": (fifo, SpecialFileError, "is a FIFO, not a recording file"),
    "socket": (unix_socket, SpecialFileError, "is a socket, not a recording file"),
    "device": (device, SpecialFileError, "is a character device, not a recording file"),
}


@pytest.fixture
def no_blocking():
    """Fails the test, instead of hanging it, if it blocks for a minute (opening a FIFO would)."""

    def blocked(*_):
        raise TimeoutError("blocked for a minute")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.setitimer(signal.ITIMER_REAL, 60)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ODD_FILES)
def test_odd_file_is_listed_and_refused_when_read(tmp_path, kind, no_blocking):
    make, error_type, wording = ODD_FILES[kind]
    make(tmp_path / "odd.mcap")
    (episode,) = find_episodes(tmp_path)
    assert episode.relative_path == "odd.mcap"
    error = exactly(error_type, episode.path, lambda: open_episode(episode))
    assert error.problem == wording if kind != "symlink loop" else error.problem.startswith(wording)
    assert file_stamp(episode.path) == (error_type.reason, "")
    assert type(pickle.loads(pickle.dumps(error))) is error_type  # survives num_proc workers


def test_bad_names_and_odd_files_are_counted_when_skipped(tmp_path, no_blocking):
    good = synthesize_episode(tmp_path / "made" / "episode.mcap", SynthProfile(duration_s=1.0, seed=2)).mcap_path
    root = copy_episode(good, tmp_path / "recordings").parent
    for kind, (make, _, _) in ODD_FILES.items():
        make(root / f"{kind.replace(' ', '_')}.mcap")
    os.link(good, root / "bad\nname.mcap")
    events = datasets.load_dataset("owa_events", data_dir=str(root), cache_dir=str(tmp_path / "cache"), on_bad_files="skip")
    assert events["train"].unique("episode_path") == ["episode.mcap"]
    skipped = owa_builders.read_accounting(events)["total"]["skipped_files"]
    assert sorted((s["path"], s["reason"]) for s in skipped) == sorted(
        [("bad\nname.mcap", "unsafe_file_name")]
        + [(f"{kind.replace(' ', '_')}.mcap", error_type.reason) for kind, (_, error_type, _) in ODD_FILES.items()]
    )


def test_file_removed_after_listing(tmp_path):
    path = write_recording(tmp_path / "episode.mcap", [("screen", screen(0), T0)])
    (episode,) = find_episodes(tmp_path)
    size = str(path.stat().st_size)
    assert file_stamp(path)[0] == size
    path.unlink()
    error = exactly(MissingRecordingError, path, lambda: open_episode(episode))
    assert error.reason == "file_missing" and "does not exist" in error.problem
    assert file_stamp(path) == ("file_missing", "")


def run_unprivileged(script: str, *args: str) -> object:
    """What `script` prints as JSON, run without the capabilities that let root read anything."""
    command = [sys.executable, "-c", script, *args]
    if os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def test_unreadable_file(tmp_path):
    path = write_recording(tmp_path / "episode.mcap", [("screen", screen(0), T0)])
    path.chmod(0)
    read = ("import json, sys\nfrom owa_builders.recordings.mcap_scan import McapScanner\n"
            "try:\n    McapScanner(sys.argv[1])\nexcept Exception as e:\n"
            "    print(json.dumps([type(e).__name__, e.reason, str(e)]))\n")  # fmt: skip
    assert run_unprivileged(read, str(path)) == [
        PermissionDeniedError.__name__, "permission_denied", f"{path}: cannot be read: permission denied"
    ]
    assert file_stamp(path)[0] == str(path.stat().st_size)  # stat needs no read permission


# -- folder mistakes --------------------------------------------------------------------------------------------


def test_recordings_folder_that_does_not_exist_or_is_a_file(tmp_path):
    for root, mistake in [(tmp_path / "missing", "does not exist"), (tmp_path / "a_file", "is a file, not a folder")]:
        if mistake.startswith("is a file"):
            root.write_bytes(b"x")
        with pytest.raises(RecordingsFolderError) as caught:
            find_episodes(root)
        assert str(caught.value) == f"{root}: recordings folder {mistake}"
        assert isinstance(caught.value, FileNotFoundError)
        copy = pickle.loads(pickle.dumps(caught.value))
        assert (type(copy), str(copy)) == (RecordingsFolderError, str(caught.value))


def test_subfolder_that_cannot_be_listed(tmp_path):
    write_recording(tmp_path / "a" / "episode.mcap", [("screen", screen(0), T0)])
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0)
    listing = ("import json, sys\nfrom owa_builders.recordings.episodes import find_episodes\n"
               "try:\n    find_episodes(sys.argv[1])\nexcept FileNotFoundError as e:\n"
               "    print(json.dumps([type(e).__name__, str(e)]))\n")  # fmt: skip
    expected = f"{tmp_path / 'locked'}: cannot list this folder of recordings: Permission denied"
    assert run_unprivileged(listing, str(tmp_path)) == [RecordingsFolderError.__name__, expected]


def test_listing_skips_hidden_names_and_keeps_odd_ones_in_order(tmp_path):
    for name in ["b.mcap", ".hidden.mcap", "a/c.mcap", ".cache/d.mcap", "notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "folder.mcap").mkdir()
    (tmp_path / "folder.mcap" / "inside.mcap").write_bytes(b"")
    os.symlink("loop.mcap", tmp_path / "loop.mcap")
    assert [e.relative_path for e in find_episodes(tmp_path)] == ["a/c.mcap", "b.mcap", "folder.mcap", "loop.mcap"]
