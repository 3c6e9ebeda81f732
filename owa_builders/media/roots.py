"""Media roots: where the videos referenced by a dataset's rows are found.

Rows name their episode (``episode_path``, relative to the recordings' root) and each screen message's
``media_ref.uri`` is relative to that episode's folder. A `MediaRoot` turns the pair into something
mediaref can open. The dataset carries its root (``recordings_root`` in ``owa_dataset.json``); a
``media_root=`` argument overrides it, e.g. for a dataset whose recordings were moved.

`LocalMediaRoot` is a folder on this machine. Another kind of root only needs a ``locate`` method: a
dataset repository on the Hub, say, would download the file (cached) and return the local path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol, runtime_checkable

from ..recordings.episodes import Episode, locate_media


@runtime_checkable
class MediaRoot(Protocol):
    """Resolves the media uri of a screen message to a local path (or a URL / data uri mediaref opens)."""

    def locate(self, episode_path: str, uri: str) -> str:
        """Where `uri`, written in episode `episode_path`, points; raises MediaReferenceError when refused."""
        ...


@dataclass(frozen=True)
class LocalMediaRoot:
    """Recordings in a local folder, under the same rules as conversion: uris that leave the folder
    (``../``, absolute paths, URLs) are refused unless `allow_external_media`."""

    path: str
    allow_external_media: bool = False

    def __post_init__(self):
        object.__setattr__(self, "path", os.path.abspath(os.path.expanduser(self.path)))

    def locate(self, episode_path: str, uri: str) -> str:
        episode = Episode(os.path.join(self.path, *PurePosixPath(episode_path).parts), self.path)
        return locate_media(episode, uri, self.allow_external_media)


def media_root_for(
    metadata: dict | None, media_root: str | os.PathLike | MediaRoot | None, allow_external_media: bool
) -> MediaRoot:
    """The root to resolve media against: `media_root` if given, else the one the dataset carries."""
    if isinstance(media_root, MediaRoot):
        return media_root
    if media_root is None:
        if not metadata or not metadata.get("recordings_root"):
            raise ValueError("this dataset does not say where its recordings are; pass media_root=<folder>")
        media_root = metadata["recordings_root"]
    if not os.path.isdir(media_root):
        raise FileNotFoundError(
            f"{os.fspath(media_root)}: recordings folder not found (moved?); pass media_root=<folder>"
        )
    return LocalMediaRoot(os.fspath(media_root), allow_external_media)
