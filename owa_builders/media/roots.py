"""Media roots: where the videos referenced by a dataset's rows are found.

Rows name their episode (``episode_path``, relative to the recordings' root) and each screen message's
``media_ref.uri`` is relative to that episode's folder. A `MediaRoot` turns the pair into something
mediaref can open. The dataset carries its root (``recordings_root`` in ``owa_dataset.json``); a
``media_root=`` argument overrides it, e.g. for a dataset whose recordings were moved.

`LocalMediaRoot` is a folder on this machine. `HubMediaRoot` is a config of a dataset repository made by
`owa_builders.push_dataset`: its videos are under ``<config>/media/`` in the recordings' layout, fetched on
first use into huggingface_hub's cache. `RemoteMediaRoot` is recordings converted where they live (an
fsspec URL: ``hf://datasets/…``, ``s3://…``): each video is fetched on first use into a local cache.
Another kind of root only needs a ``locate`` method.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from typing import Protocol, runtime_checkable

from huggingface_hub import HfApi, hf_hub_download

from ..metadata import DatasetMetadata
from ..recordings.episodes import Episode, locate_media
from ..recordings.errors import MediaReferenceError
from ..recordings.sources import fetch_to_cache, is_url

HUB_MEDIA_FOLDER = "media"  # in a pushed repository, a config's videos are under "<config>/media/"
_HUB_MEDIA_URI = re.compile(rf"hf://datasets/(?P<repo_id>[^/@]+/[^/@]+)(?:@(?P<revision>[0-9a-f]{{40}}))?"
                            rf"/(?P<config>[^/]+)/{HUB_MEDIA_FOLDER}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


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


@dataclass(frozen=True)
class HubMediaRoot:
    """The videos of config `config` of a dataset repository made by `owa_builders.push_dataset`.

    Each video is downloaded on first use (``hf_hub_download``, cached; the Hub token of your environment
    applies) and its local path returned. `revision` (a branch, tag or commit; default: the main branch) is
    pinned to its commit when the root is made, so every frame comes from one snapshot of the repository.
    The local rules apply: URLs and absolute paths are refused unless `allow_external_media` (then used as
    they are), and a relative uri must stay inside ``<config>/media/``.
    """

    repo_id: str
    config: str
    revision: str | None = None
    allow_external_media: bool = False

    def __post_init__(self):
        if self.revision is None or not _COMMIT.fullmatch(self.revision):
            commit = HfApi().repo_info(self.repo_id, repo_type="dataset", revision=self.revision).sha
            object.__setattr__(self, "revision", commit)

    @property
    def folder(self) -> str:
        """The config's media folder in the repository."""
        return f"{self.config}/{HUB_MEDIA_FOLDER}"

    @property
    def uri(self) -> str:
        """``hf://datasets/<repo_id>@<commit>/<config>/media``: how a dataset's metadata names this root."""
        return f"hf://datasets/{self.repo_id}@{self.revision}/{self.folder}"

    @classmethod
    def from_uri(cls, uri: str, allow_external_media: bool = False) -> HubMediaRoot:
        """The root named by ``hf://datasets/<repo_id>[@<commit>]/<config>/media``."""
        match = _HUB_MEDIA_URI.fullmatch(uri.rstrip("/"))
        if match is None:
            raise ValueError(f"{uri!r} does not name the media of a pushed dataset "
                             f"(hf://datasets/<user>/<repo>[@<commit>]/<config>/{HUB_MEDIA_FOLDER})")
        return cls(match["repo_id"], match["config"], match["revision"], allow_external_media)

    def locate(self, episode_path: str, uri: str) -> str:
        # The local rules, applied to the media folder written as a local path (which is never opened)
        folder = os.path.join(os.path.abspath(os.sep), *self.repo_id.split("/"), *self.folder.split("/"))
        located = LocalMediaRoot(folder, self.allow_external_media).locate(episode_path, uri)
        if located == uri:  # embedded in the message, or an external uri allowed as it is
            return uri
        relative = PurePath(os.path.relpath(located, folder))
        if relative.parts[0] == os.pardir:  # allowed out of a local folder, but the repository has nothing there
            raise MediaReferenceError(episode_path, f"screen media uri {uri!r} leaves {self.folder}/ of {self.repo_id}")
        return hf_hub_download(self.repo_id, f"{self.folder}/{relative.as_posix()}", repo_type="dataset",
                               revision=self.revision)


@dataclass(frozen=True)
class RemoteMediaRoot:
    """Recordings at an fsspec URL (what a dataset built from a remote ``data_dir`` records as its root).

    The local rules apply, lexically: relative uris must stay under the root, URLs and absolute paths are
    refused unless `allow_external_media` (then used as they are). Each video is fetched whole on first use
    into `cache_dir` (default: datasets' cache folder), once per content, and its local path returned.
    """

    url: str
    cache_dir: str | None = None
    allow_external_media: bool = False

    def __post_init__(self):
        if self.cache_dir is None:
            import datasets

            object.__setattr__(self, "cache_dir", str(datasets.config.HF_DATASETS_CACHE))
        object.__setattr__(self, "url", self.url.rstrip("/"))

    def locate(self, episode_path: str, uri: str) -> str:
        target = locate_media(Episode(f"{self.url}/{episode_path}", self.url), uri, self.allow_external_media)
        if target == uri or not is_url(target):  # embedded, or an external uri allowed as it is
            return target
        return _local_copy(target, self.cache_dir)


@functools.cache
def _local_copy(url: str, cache_dir: str) -> str:
    """Per process, a video's URL is looked up (and fetched if need be) once, not once per frame."""
    return str(fetch_to_cache(url, cache_dir))


def media_root_for(
    metadata: DatasetMetadata | None, media_root: str | os.PathLike | MediaRoot | None, allow_external_media: bool
) -> MediaRoot:
    """The root to resolve media against: `media_root` if given, else the one the dataset carries (a
    folder, the ``hf://`` uri of a pushed repository's media: a `HubMediaRoot`, or another URL: a
    `RemoteMediaRoot`)."""
    if isinstance(media_root, MediaRoot):
        return media_root
    if media_root is None:
        if metadata is None or not metadata.recordings_root:
            raise ValueError("this dataset does not say where its recordings are; pass media_root=<folder>")
        media_root = metadata.recordings_root
    if _HUB_MEDIA_URI.fullmatch(os.fspath(media_root).rstrip("/")):
        return HubMediaRoot.from_uri(os.fspath(media_root), allow_external_media)
    if is_url(media_root):
        return RemoteMediaRoot(os.fspath(media_root), allow_external_media=allow_external_media)
    if not os.path.isdir(media_root):
        raise FileNotFoundError(
            f"{os.fspath(media_root)}: recordings folder not found (moved?); pass media_root=<folder>"
        )
    return LocalMediaRoot(os.fspath(media_root), allow_external_media)
