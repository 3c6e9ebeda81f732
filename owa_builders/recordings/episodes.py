"""Episodes: finding recordings under a root folder and checking what a conversion relies on.

An episode is one ``.mcap`` file. Its screen messages reference media (usually a video beside it) by a
uri relative to the file's folder; conversion never opens that media, but it does check that every
reference resolves to a file inside the recordings' root unless the user allowed external media.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from .errors import (
    LegacySchemaError,
    MediaReferenceError,
    RecordingsFolderError,
    UnknownMessageTypeError,
    UnsafeFileNameError,
    WrongProfileError,
    has_unsafe_characters,
)
from .mcap_scan import ChannelInfo, McapScanner

OWA_PROFILE = "owa"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]")


@dataclass(frozen=True, slots=True)
class Episode:
    """One recording: ``path`` is the .mcap file, ``root`` the folder the dataset was built from."""

    path: str
    root: str

    @property
    def relative_path(self) -> str:
        """The episode's name in datasets: its posix path relative to the root."""
        return Path(os.path.relpath(self.path, self.root)).as_posix()


def find_episodes(root: str | os.PathLike) -> list[Episode]:
    """Every name ``*.mcap`` under ``root`` (recursive), sorted by relative path; hidden ones are skipped.

    Whatever is under such a name is listed without being opened: a directory (not descended into), a
    FIFO, a symlink loop or a name with control characters is refused when the episode is read (see
    `open_episode`). A `root` that is missing or not a folder raises `RecordingsFolderError`, and so does a
    subfolder that cannot be listed (its recordings would be lost silently).
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        mistake = "does not exist" if not os.path.exists(root) else "is a file, not a folder"
        raise RecordingsFolderError(root, f"recordings folder {mistake}")

    def unlistable(error: OSError) -> None:
        raise RecordingsFolderError(error.filename, f"cannot list this folder of recordings: {error.strerror}")

    found = []
    for folder, subfolders, files in os.walk(root, onerror=unlistable):
        found.extend(os.path.join(folder, name) for name in files + subfolders if _is_recording_name(name))
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and not name.endswith(".mcap")]
    return sorted((Episode(path, root) for path in found), key=lambda episode: episode.relative_path)


def _is_recording_name(name: str) -> bool:
    return name.endswith(".mcap") and not name.startswith(".")


def open_episode(episode: Episode) -> McapScanner:
    """Open an episode's MCAP, refusing names that cannot be an episode_path and files that are not OWAMcap."""
    if has_unsafe_characters(episode.relative_path):
        raise UnsafeFileNameError(
            episode.path, "the file name holds control characters or undecodable bytes; rename the file"
        )
    scanner = McapScanner(episode.path)
    if scanner.profile != OWA_PROFILE:
        scanner.close()
        raise WrongProfileError(
            episode.path, f"MCAP profile is {scanner.profile!r}, not {OWA_PROFILE!r}: not an OWAMcap recording"
        )
    return scanner


@cache
def _known_message_types() -> frozenset[str]:
    from owa.core import MESSAGES

    return frozenset(MESSAGES.keys())


def check_channel(episode: Episode, channel: ChannelInfo) -> None:
    """Refuse channels whose message type a consumer of the dataset could not decode."""
    name = channel.schema_name
    if "/" not in name and "." in name:
        raise LegacySchemaError(
            episode.path,
            f"topic {channel.topic!r} uses the legacy schema name {name!r} (OWAMcap before 0.5); "
            "migrate the recording with the OWA tools (`owl mcap migrate`) first",
        )
    if name not in _known_message_types():
        raise UnknownMessageTypeError(
            episode.path,
            f"topic {channel.topic!r} has message type {name!r}, which owa-msgs does not define "
            f"(known: {', '.join(sorted(_known_message_types()))}); drop the topic or install the package defining it",
        )


def locate_media(episode: Episode, uri: str, allow_external: bool) -> str:
    """Where a screen message's media uri points: a local path, or the uri itself if it is a URL or embedded.

    Relative uris resolve against the episode's folder. Uris that leave the recordings' root (URLs,
    absolute paths, ``../`` or a symlink out) are refused unless `allow_external`. A uri that is not a
    string, or holds control characters (NUL, newlines, …), is refused even then: no file is named so by
    a recorder. Nothing is opened.
    """
    if not isinstance(uri, str) or has_unsafe_characters(uri):
        raise MediaReferenceError(
            episode.path, f"screen media uri {uri!r} is not a file name (control characters, or not a string)"
        )
    if uri.startswith("data:"):
        return uri  # embedded in the message itself
    if _URL.match(uri) or os.path.isabs(uri) or _WINDOWS_ABSOLUTE.match(uri):
        if not allow_external:
            raise MediaReferenceError(
                episode.path,
                f"screen media uri {uri!r} points outside the recordings (URL or absolute path); "
                "pass allow_external_media=True to accept it",
            )
        return uri
    target = os.path.normpath(
        os.path.join(os.path.dirname(episode.path), *PurePosixPath(uri.replace("\\", "/")).parts)
    )
    root = os.path.realpath(episode.root)
    inside = os.path.commonpath([root, os.path.realpath(target)]) == root
    if not inside and not allow_external:
        raise MediaReferenceError(
            episode.path,
            f"screen media uri {uri!r} leaves the recordings folder {episode.root}; "
            "pass allow_external_media=True to accept it",
        )
    return target


def check_media_uri(episode: Episode, uri: str, allow_external: bool) -> None:
    """Check one media uri of a screen message: inside the root and present, or external and allowed."""
    target = locate_media(episode, uri, allow_external)
    if target.startswith("data:") or _URL.match(target):
        return  # embedded, or a URL not worth a request at conversion time
    if not os.path.isfile(target):
        raise MediaReferenceError(episode.path, f"screen media {uri!r} is missing (looked for {target})")
