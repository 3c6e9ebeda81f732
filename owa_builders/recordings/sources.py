"""Recordings that live elsewhere: a root named by an fsspec URL instead of a local folder.

``hf://datasets/OWNER/REPO[@REVISION][/SUBFOLDER]`` (huggingface_hub's HfFileSystem: ``HF_ENDPOINT`` and
the user's token apply), ``memory://``, ``s3://``, ``gs://``… any protocol fsspec has installed. A local
folder (``file://`` included) stays a local path: the os functions are the fast path.

A `RemoteRoot` is one listing of the root, made once per build: every file under it with its content
identity (Hub: the LFS sha256 or git blob id, the revision pinned to its commit in the URL; others: what
``fs.info()`` offers — ETag, md5, size, mtime…). The build's cache key is made of these identities; the
media checks of conversion look the videos up in the listing (no request per video, none downloaded).
Only ``*.mcap`` files are ever opened. Nothing read from a root is executed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from .errors import RecordingsFolderError

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Reads of an .mcap go through fsspec's read-ahead cache in blocks of this size: the scanner reads records
# one after the other, so one request serves thousands of records (and a whole episode of a few MB).
READ_BLOCK_BYTES = 16 << 20
# fs.info() fields that change with a file's content, as far as each filesystem offers them.
_IDENTITY_FIELDS = ("ETag", "etag", "md5", "md5Hash", "crc32c", "checksum", "generation", "VersionId",
                    "size", "mtime", "LastModified", "last_modified", "updated", "created")


def is_url(path: str | os.PathLike) -> bool:
    """True for ``protocol://…`` (``data:`` uris and local paths are not)."""
    return bool(URL.match(os.fspath(path)))


def recordings_root(data_dir: str | os.PathLike) -> str:
    """The root as a build names it: an absolute local path (``file://`` URLs included), or the URL, a Hub
    revision pinned to its commit so that every file of the build comes from one snapshot."""
    data_dir = os.fspath(data_dir)
    if data_dir.startswith("file://"):
        data_dir = unquote(urlsplit(data_dir).path)
    if not is_url(data_dir):
        return os.path.abspath(os.path.expanduser(data_dir))
    fs, path = _filesystem(data_dir)
    if _is_hub(fs):
        return _pinned_hub_url(fs, path, data_dir)
    return f"{_protocol(data_dir)}://{path.strip('/')}"


@dataclass(frozen=True, eq=False)
class RemoteRoot:
    """One listing of an fsspec root: ``files`` maps every file's posix path relative to the root to its
    content identity. Pickles with its filesystem (for num_proc workers and other engines)."""

    url: str  # as `recordings_root` names it
    fs: object  # fsspec.AbstractFileSystem
    path: str  # the root in the filesystem's terms
    files: Mapping[str, tuple[str, ...]]
    folders: frozenset[str]  # relative paths of the folders under the root

    @classmethod
    def list(cls, url: str) -> RemoteRoot:
        """List the root; RecordingsFolderError naming the URL when the repository, revision, bucket or
        folder does not exist, or cannot be listed."""
        fs, path = _filesystem(url)
        try:
            if not fs.isdir(path):
                mistake = "is a file, not a folder" if fs.exists(path) else "does not exist"
                raise RecordingsFolderError(url, f"recordings folder {mistake}")
            entries = fs.find(path, withdirs=True, detail=True)
        except (OSError, ValueError) as error:  # FileNotFoundError: no such repository / revision / bucket
            if isinstance(error, RecordingsFolderError):
                raise
            raise RecordingsFolderError(url, f"recordings folder cannot be listed: {error}") from error
        prefix = path.strip("/") + "/"
        files, folders = {}, set()
        for name, info in entries.items():
            relative = name.strip("/")[len(prefix):]
            if not name.strip("/").startswith(prefix) or not relative:
                continue
            if info.get("type") == "directory":
                folders.add(relative)
            else:
                files[relative] = _content_identity(info)
        return cls(url, fs, path, files, frozenset(folders))

    def url_of(self, relative: str) -> str:
        return f"{self.url}/{relative}"

    def relative(self, url: str) -> str | None:
        """`url`'s path relative to the root, or None when it is not under it."""
        prefix = self.url + "/"
        return url[len(prefix):] if url.startswith(prefix) else None

    def open(self, relative: str) -> BinaryIO:
        """A file under the root, read ahead in large blocks (seekable, as McapScanner needs)."""
        return self.fs.open(posixpath.join(self.path, relative), "rb", block_size=READ_BLOCK_BYTES,
                            cache_type="readahead")


    def mirror(self, names: list[str], cache_folder: str | os.PathLike) -> Path:
        """A local copy of files `names` of the root, in their layout, under `cache_folder` in a folder named
        by the root and their content identities: unchanged files are not fetched again."""
        key = json.dumps([self.url, *[(name, self.files[name]) for name in sorted(names)]])
        folder = Path(cache_folder, "owa_remote_inputs", hashlib.sha256(key.encode()).hexdigest()[:32])
        for name in names:
            fetch_once(self.fs, posixpath.join(self.path, name), folder / name)
        return folder


def fetch_once(fs, path: str, local: Path) -> Path:
    """Copy `path` of filesystem `fs` to `local` unless it is there; atomic, so that concurrent readers
    (DataLoader workers) see the whole file or none."""
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(f".{local.name}.{os.getpid()}.partial")
        fs.get_file(path, os.fspath(partial))
        os.replace(partial, local)
    return local


def fetch_to_cache(url: str, cache_folder: str | os.PathLike) -> Path:
    """A local copy of the file at `url`, fetched on first use into `cache_folder`, named by the URL and
    the file's content identity (one ``info`` request, then none once fetched)."""
    fs, path = _filesystem(url)
    identity = _content_identity(fs.info(path))
    key = hashlib.sha256(json.dumps([url, identity]).encode()).hexdigest()[:32]
    return fetch_once(fs, path, Path(cache_folder, "owa_remote_media", key, posixpath.basename(path)))


def join_url(root: str, relative: str) -> str:
    """``root/relative`` with ``.`` and ``..`` resolved lexically (remote roots have no symlinks)."""
    protocol, rest = root.split("://", 1)
    return f"{protocol}://{posixpath.normpath(posixpath.join(rest, relative))}"


def _filesystem(url: str):
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:  # "Protocol not known", "Install s3fs to access S3"
        raise RecordingsFolderError(url, f"no filesystem for this URL: {error}") from error


def _protocol(url: str) -> str:
    return url.split("://", 1)[0]


def _is_hub(fs) -> bool:
    from huggingface_hub import HfFileSystem

    return isinstance(fs, HfFileSystem)


def _pinned_hub_url(fs, path: str, url: str) -> str:
    """hf://… with the revision replaced by its commit; RecordingsFolderError for a missing repo or revision."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        resolved = fs.resolve_path(path)
        commit = HfApi(endpoint=fs.endpoint, token=fs.token).repo_info(
            resolved.repo_id, repo_type=resolved.repo_type, revision=resolved.revision).sha
    except (OSError, ValueError, HfHubHTTPError) as error:  # FileNotFoundError: repository / revision not found
        raise RecordingsFolderError(url, f"recordings cannot be reached: {error}") from error
    pinned = dataclasses.replace(resolved, revision=commit, _raw_revision=None)
    return f"hf://{pinned.unresolve()}"


def _content_identity(info: dict) -> tuple[str, ...]:
    """What identifies a file's content in its filesystem's listing entry."""
    lfs = info.get("lfs")
    if lfs is not None:  # the Hub: an LFS file's sha256, else its git blob id
        return ("sha256", lfs["sha256"] if isinstance(lfs, dict) else lfs.sha256, str(info.get("size")))
    if info.get("blob_id"):
        return ("git-blob", info["blob_id"], str(info.get("size")))
    return tuple(f"{field}={info[field]}" for field in _IDENTITY_FIELDS if info.get(field) is not None)
