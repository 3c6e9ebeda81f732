"""Episodes: finding recordings under a root folder and checking what a conversion relies on.

An episode is one ``.mcap`` file. Its screen messages reference media (usually a video beside it) by a
uri relative to the file's folder; conversion never opens that media, but it does check that every
reference resolves to a file inside the recordings' root unless the user allowed external media.
The root is a local folder or an fsspec URL (see `sources`): the same rules apply to both.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
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
from .files import file_stamp, remote_open_error
from .mcap_scan import ChannelInfo, McapScanner
from .sources import URL, RemoteRoot, is_url, join_url

OWA_PROFILE = "owa"
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]")


@dataclass(frozen=True, slots=True)
class Episode:
    """One recording: ``path`` is the .mcap file, ``root`` the folder the dataset was built from (local
    paths, or URLs with `remote` the listing of the root)."""

    path: str
    root: str
    remote: RemoteRoot | None = None

    @property
    def relative_path(self) -> str:
        """The episode's name in datasets: its posix path relative to the root."""
        if is_url(self.root):
            return self.path[len(self.root) + 1:]
        return Path(os.path.relpath(self.path, self.root)).as_posix()


def find_episodes(root: str | os.PathLike | RemoteRoot) -> list[Episode]:
    """Every name ``*.mcap`` under ``root`` (recursive), sorted by relative path; hidden ones are skipped.

    Whatever is under such a name is listed without being opened: a directory (not descended into), a
    FIFO, a symlink loop or a name with control characters is refused when the episode is read (see
    `open_episode`). A `root` that is missing or not a folder raises `RecordingsFolderError`, and so does a
    subfolder that cannot be listed (its recordings would be lost silently). A URL root is listed once
    through fsspec (`RemoteRoot`, or the listing given), under the same rules.
    """
    if isinstance(root, RemoteRoot):
        return _find_remote_episodes(root)
    if is_url(root):
        return _find_remote_episodes(RemoteRoot.list(os.fspath(root)))
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


def episode_stamp(episode: Episode) -> tuple[str, ...]:
    """What changes with the episode's content, for the cache key: its listing's content identity (remote),
    or its size and mtime (local)."""
    if episode.remote is not None:
        return episode.remote.files.get(episode.relative_path, ("directory",))
    return file_stamp(episode.path)


def _is_recording_name(name: str) -> bool:
    return name.endswith(".mcap") and not name.startswith(".")


def _find_remote_episodes(remote: RemoteRoot) -> list[Episode]:
    """The local rules on a listing: no hidden folder or *.mcap folder descended into."""

    def listed(relative: str) -> bool:
        *folders, name = relative.split("/")
        return _is_recording_name(name) and not any(f.startswith(".") or f.endswith(".mcap") for f in folders)

    names = [relative for relative in [*remote.files, *remote.folders] if listed(relative)]
    return [Episode(remote.url_of(relative), remote.url, remote) for relative in sorted(names)]


def open_episode(episode: Episode) -> McapScanner:
    """Open an episode's MCAP, refusing names that cannot be an episode_path and files that are not OWAMcap."""
    if has_unsafe_characters(episode.relative_path):
        raise UnsafeFileNameError(
            episode.path, "the file name holds control characters or undecodable bytes; rename the file"
        )
    scanner = McapScanner(episode.path) if episode.remote is None else _open_remote(episode)
    if scanner.profile != OWA_PROFILE:
        scanner.close()
        raise WrongProfileError(
            episode.path, f"MCAP profile is {scanner.profile!r}, not {OWA_PROFILE!r}: not an OWAMcap recording"
        )
    return scanner


def _open_remote(episode: Episode) -> McapScanner:
    relative = episode.relative_path
    if relative not in episode.remote.files:  # a folder under a *.mcap name
        raise remote_open_error(episode.path, IsADirectoryError(relative) if relative in episode.remote.folders
                                else FileNotFoundError(relative))
    try:
        file = episode.remote.open(relative)
    except OSError as error:
        raise remote_open_error(episode.path, error) from error
    return McapScanner(file, name=episode.path, owns_file=True)


@cache
def _known_message_types() -> frozenset[str]:
    """The message types installed packages define: the names of owa.core's ``owa.msgs`` entry points (read
    without importing every message class, as ``owa.core.MESSAGES`` would: that costs 0.3 s per process)."""
    return frozenset(entry_point.name for entry_point in entry_points(group="owa.msgs"))


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
    if URL.match(uri) or os.path.isabs(uri) or _WINDOWS_ABSOLUTE.match(uri):
        if not allow_external:
            raise MediaReferenceError(
                episode.path,
                f"screen media uri {uri!r} points outside the recordings (URL or absolute path); "
                "pass allow_external_media=True to accept it",
            )
        return uri
    if is_url(episode.root):  # a remote root has no symlinks: the uri is resolved lexically
        target = join_url(episode.path, posixpath.join("..", uri.replace("\\", "/")))
        inside = target.startswith(episode.root + "/")
        if not inside and not allow_external:
            raise _leaves_root(episode, uri)
        return target
    target = os.path.normpath(
        os.path.join(os.path.dirname(episode.path), *PurePosixPath(uri.replace("\\", "/")).parts)
    )
    root = os.path.realpath(episode.root)
    inside = os.path.commonpath([root, os.path.realpath(target)]) == root
    if not inside and not allow_external:
        raise _leaves_root(episode, uri)
    return target


def _leaves_root(episode: Episode, uri: str) -> MediaReferenceError:
    return MediaReferenceError(episode.path, f"screen media uri {uri!r} leaves the recordings folder {episode.root}; "
                                             "pass allow_external_media=True to accept it")


def check_media_uri(episode: Episode, uri: str, allow_external: bool) -> None:
    """Check one media uri of a screen message: inside the root and present, or external and allowed."""
    target = locate_media(episode, uri, allow_external)
    if episode.remote is not None:  # looked up in the listing of the root: no request
        relative = episode.remote.relative(target)
        if relative is not None and relative not in episode.remote.files:
            raise MediaReferenceError(episode.path, f"screen media {uri!r} is missing (looked for {target})")
        return  # present, or outside the root and allowed: not worth a request at conversion time
    if target.startswith("data:") or URL.match(target):
        return  # embedded, or a URL not worth a request at conversion time
    if not os.path.isfile(target):
        raise MediaReferenceError(episode.path, f"screen media {uri!r} is missing (looked for {target})")
