"""Every kind of bad input gets an error naming the file and the problem, before any row is produced."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from mcap.writer import Writer
from recording_fixtures import MS, T0, key, screen, write_recording

from owa_builders.events.settings import EventsSettings
from owa_builders.events.stage import convert_episode
from owa_builders.recordings.episodes import Episode
from owa_builders.recordings.errors import (
    BadRecordingError,
    LegacySchemaError,
    MediaReferenceError,
    TimeOrderError,
    UnknownMessageTypeError,
    WrongProfileError,
)
from owa_builders.synth import SynthProfile, synthesize_episode


def convert(path: Path, **settings):
    return convert_episode(Episode(str(path), str(path.parent)), EventsSettings(**settings))


def expect_bad(path: Path, error_type, wording: str, **settings) -> BadRecordingError:
    with pytest.raises(error_type) as caught:
        convert(path, **settings)
    assert str(path) in str(caught.value) and wording in str(caught.value)
    return caught.value


def write_plain_mcap(path: Path, profile: str, schema_name: str, topic: str, payloads: list[bytes]) -> Path:
    """An MCAP written with the plain mcap writer, for what the OWAMcap writer refuses to produce."""
    with open(path, "wb") as f:
        writer = Writer(f)
        writer.start(profile=profile, library="test")
        schema = writer.register_schema(name=schema_name, encoding="jsonschema", data=b"{}")
        channel = writer.register_channel(topic=topic, message_encoding="json", schema_id=schema)
        for i, payload in enumerate(payloads):
            writer.add_message(channel, log_time=T0 + i * MS, data=payload, publish_time=T0 + i * MS)
        writer.finish()
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("good")
    return synthesize_episode(root / "episode.mcap", SynthProfile(duration_s=2.0, seed=3)).mcap_path


def test_truncated_file(good):
    data = good.read_bytes()
    for cut in (len(data) // 3, len(data) - 40):
        path = good.parent / f"cut_{cut}.mcap"  # beside the video it references
        path.write_bytes(data[:cut])
        error = expect_bad(path, BadRecordingError, "truncated")
        assert error.reason == "truncated"


def test_chunk_failing_its_checksum(good):
    data = bytearray(good.read_bytes())
    data[len(data) // 4] ^= 0xFF
    path = good.parent / "corrupt.mcap"
    path.write_bytes(bytes(data))
    expect_bad(path, BadRecordingError, "")


def test_empty_and_unreadable_files(tmp_path):
    empty = tmp_path / "empty.mcap"
    empty.write_bytes(b"")
    expect_bad(empty, BadRecordingError, "empty")
    dangling = tmp_path / "dangling.mcap"
    os.symlink(tmp_path / "nowhere.mcap", dangling)
    expect_bad(dangling, BadRecordingError, "")


def test_mcap_that_is_not_owamcap(tmp_path):
    path = write_plain_mcap(tmp_path / "ros.mcap", "ros2", "std_msgs/String", "chatter", [b'{"data":"x"}'])
    expect_bad(path, WrongProfileError, "profile is 'ros2'")


def test_legacy_schema_names(tmp_path):
    payload = orjson.dumps({"event_type": "press", "vk": 65})
    path = write_plain_mcap(tmp_path / "old.mcap", "owa", "owa.env.desktop.msg.KeyboardEvent", "keyboard", [payload])
    expect_bad(path, LegacySchemaError, "legacy schema name 'owa.env.desktop.msg.KeyboardEvent'")


def test_unknown_message_type_unless_its_topic_is_dropped(tmp_path):
    path = write_plain_mcap(tmp_path / "custom.mcap", "owa", "custom/Thing", "thing", [b"{}", b"{}"])
    expect_bad(path, UnknownMessageTypeError, "'custom/Thing'")
    table, accounting = convert(path, drop_topics=["thing"])
    assert table.num_rows == 0 and accounting.topics["thing"].dropped["topic_filter"] == 2


def test_time_going_backwards(tmp_path):
    messages = [("keyboard", key(65), T0 + 10 * MS), ("keyboard", key(66), T0 + 20 * MS), ("keyboard", key(67), T0 + 15 * MS)]
    path = write_recording(tmp_path / "backwards.mcap", messages)
    expect_bad(path, TimeOrderError, "goes backwards at message #2 (topic 'keyboard')")


def test_missing_video(tmp_path):
    path = write_recording(tmp_path / "novideo.mcap", [("screen", screen(0), T0)], video=None)
    expect_bad(path, MediaReferenceError, "'video.mkv' is missing")


@pytest.mark.parametrize("uri", ["../outside.mkv", "/etc/passwd", "https://example.com/v.mkv", "C:\\videos\\v.mkv"])
def test_media_outside_the_recordings_is_refused_unless_allowed(tmp_path, uri):
    root = tmp_path / "root"
    (tmp_path / "outside.mkv").write_bytes(b"x")
    path = write_recording(root / "episode.mcap", [("screen", screen(0, uri=uri), T0)], video=None)
    expect_bad(path, MediaReferenceError, "allow_external_media")
    if uri in ("../outside.mkv", "https://example.com/v.mkv"):
        table, _ = convert(path, allow_external_media=True)
        assert table.num_rows == 1


def test_bad_file_yields_no_rows_at_all(good):
    """The survey pass reads the whole file first, so a skip never leaves half an episode."""
    from owa_builders.accounting import Accounting
    from owa_builders.events.stage import iter_event_tables

    path = good.parent / "late_damage.mcap"
    path.write_bytes(good.read_bytes()[:-30])
    tables = iter_event_tables(Episode(str(path), str(path.parent)), EventsSettings(), Accounting(), rows_per_table=10)
    with pytest.raises(BadRecordingError):
        next(tables)
