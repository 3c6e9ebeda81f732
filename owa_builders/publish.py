"""Sharing a converted dataset on the Hub, self-contained, and getting it back.

    report = owa_builders.push_dataset(load_from_disk("fsl-dataset/"), "user/desktop")  # config "internvl3"
    dataset = owa_builders.load_from_hub("user/desktop", "internvl3")    # rows + what goes with them
    dataset["train"].auto_set_transform(load_images=True)                # frames fetched from the repository

A repository holds any number of configs, of any of our builders, each in its own folder:

    README.md                                    card: YAML (configs, features, license, tags) and prose
    <config>/data/<split>-NNNNN-of-NNNNN.parquet     the rows, written by datasets' own push_to_hub
    <config>/owa_dataset.json                    builder, settings, accounting; recordings_root names media/
    <config>/tokenizer/                          fsl: the expanded tokenizer the ids were made with
    <config>/media/<path under the recordings' root>    every video the rows reference, once

The rows are pushed unchanged: an ``episode_path`` and a relative media uri resolve under
``<config>/media/`` exactly as they did under the recordings' root, so anyone can load the rows with plain
``datasets.load_dataset("user/desktop", "internvl3")``. The rows live in ``<config>/data/``, not directly in
``<config>/``, because datasets' push deletes whatever else is in the folder it writes.

A push is two commits: first the media, metadata, tokenizer and card (so the rows never reference a video
the repository lacks), then datasets' push of the rows, which adds the config's ``configs`` and
``dataset_info`` entries to the card's YAML and keeps the rest. A file the repository already has at that
path with the same content (the listing's LFS sha256, or git blob id for small text files) is left out of
the commit, so a re-push sends no unchanged video; files of the config that the push no longer has (videos
no longer referenced, tokenizer files) are deleted. datasets leaves out unchanged parquet shards itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    DatasetCard,
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.hf_api import RepoFile

from .cards import render_card
from .datasets_io import OwaDataset, OwaDatasetDict, as_owa_dataset, load_from_disk, parquet_shards
from .media.roots import HUB_MEDIA_FOLDER, HubMediaRoot, LocalMediaRoot, media_root_for
from .metadata import METADATA_FILE, DatasetMetadata, dataset_folder, read_dataset_metadata
from .payloads import SCREEN_CAPTURED, screen_media_uri
from .stages import STAGE_OF_BUILDER, Stage
from .units import NS_PER_S

DATA_FOLDER = "data"  # a config's parquet shards: <config>/data/
LARGE_FOLDER_BYTES = 5 * 10**9  # a parquet folder above this goes up with the resumable folder upload
CARD_FILE = "README.md"
_CONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# Where each stage's rows carry screen messages (JSON payloads) and the times they span
_SCREEN_COLUMN: dict[Stage, str] = {"events": "mcap_message", "fsl": "images", "binned": "state"}
_TIME_COLUMNS: dict[Stage, tuple[str, str]] = {
    "events": ("timestamp_ns", "timestamp_ns"),
    "fsl": ("first_timestamp_ns", "last_timestamp_ns"),
    "binned": ("timestamp_ns", "timestamp_ns"),
}


@dataclass(frozen=True)
class PushReport:
    """What a push did. Paths are in the repository; the rows' parquet shards are datasets' part."""

    repo_id: str
    config_name: str
    commit: str  # the repository's commit after the push
    uploaded: tuple[str, ...]  # media, metadata, tokenizer and card files committed
    unchanged: tuple[str, ...]  # files the repository already had, same content at the same path: skipped
    deleted: tuple[str, ...]  # files of the config the push no longer has
    uploaded_bytes: int  # size of the committed files whose content the repository held at no path


@dataclass
class _RowsSummary:
    media: dict[tuple[str, str], None] = field(default_factory=dict)  # distinct (episode_path, uri), in row order
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # episode -> first, last timestamp (ns)
    rows: dict[str, int] = field(default_factory=dict)  # split -> rows


def push_dataset(
    dataset: datasets.Dataset | datasets.DatasetDict,
    repo_id: str,
    *,
    config_name: str | None = None,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    license: str | None = None,
    media_root: str | os.PathLike | None = None,
) -> PushReport:
    """Push a dataset built by our builders (or loaded with our `load_from_disk`) to dataset repository
    `repo_id`, with the videos its rows reference, its metadata, its tokenizer (fsl) and a card.

    config_name: the repository config (default: the builder config's name); several live in one
    repository. revision: a branch (created if missing). license: the card's license id (default: the
    card's, else "unknown": only the publisher knows the recordings' license). media_root: the recordings
    folder, when the dataset does not carry it or it moved. Nothing that already is in the repository with
    the same content is sent again.
    """
    api = HfApi(token=token)
    push = _prepare_push(api, dataset, repo_id, config_name, private, revision, license, media_root)
    additions, unchanged, new_bytes = _additions(push.files, push.remote)
    stale = [path for path in push.remote if path.startswith(f"{push.config}/") and path not in push.files
             and not path.startswith(f"{push.config}/{DATA_FOLDER}/")]  # the rows' folder is datasets' to update
    message = commit_message or push.message
    if additions or stale:
        api.create_commit(push.repo_id, additions + [CommitOperationDelete(path) for path in stale],
                          repo_type="dataset", revision=revision, commit_message=message, parent_commit=push.head)
    commit = dataset.push_to_hub(push.repo_id, config_name=push.config, data_dir=f"{push.config}/{DATA_FOLDER}",
                                 token=token, revision=revision, commit_message=message)
    return PushReport(push.repo_id, push.config, commit.oid, tuple(a.path_in_repo for a in additions),
                      tuple(unchanged), tuple(stale), new_bytes)


@dataclass(frozen=True)
class _Push:
    """What a push of one config sends, and the repository it goes to as it is before the push."""

    repo_id: str
    config: str
    head: str  # the repository's commit before the push
    remote: dict[str, RepoFile]
    files: dict[str, bytes | Path]  # repository path -> content: media, metadata, tokenizer, card (not the rows)
    message: str


def _prepare_push(api: HfApi, dataset, repo_id: str, config_name: str | None, private: bool, revision: str | None,
                  license: str | None, media_root) -> _Push:
    """Check what is pushed, create the repository (and branch) if need be, and gather the files beside the rows."""
    metadata = read_dataset_metadata(dataset)
    stage = STAGE_OF_BUILDER.get(metadata.builder)
    if stage is None:
        raise ValueError(f"not built by one of our builders ({metadata.builder!r}): nothing to publish")
    config = config_name or metadata.config
    if not _CONFIG_NAME.fullmatch(config) or config == DATA_FOLDER:
        raise ValueError(f"config name {config!r}: use letters, digits, '_', '-', '.' (and not {DATA_FOLDER!r})")
    recordings = media_root_for(metadata, media_root, allow_external_media=False)
    if not isinstance(recordings, LocalMediaRoot):
        raise TypeError("publishing reads the videos from a local recordings folder: pass media_root=<folder>")
    splits = dataset if isinstance(dataset, datasets.DatasetDict) else {dataset.split or "train": dataset}
    rows = _summarize_rows(splits, stage)

    repo_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
    if revision is not None:
        api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
    head = api.repo_info(repo_id, repo_type="dataset", revision=revision).sha
    remote = {entry.path: entry for entry in api.list_repo_tree(repo_id, repo_type="dataset", revision=head,
                                                                recursive=True) if isinstance(entry, RepoFile)}

    published = _published_metadata(metadata, repo_id, config, rows)
    files = {**_media_files(rows, recordings, config), **_tokenizer_files(dataset, metadata, config),
             f"{config}/{METADATA_FILE}": published.to_json().encode()}
    files[CARD_FILE] = _card(api, repo_id, head, remote, {config: published}, license)
    message = f"Upload {config} ({metadata.builder} {metadata.version}) with owa-builders"
    return _Push(repo_id, config, head, remote, files, message)


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    config_name: str | None = None,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    license: str | None = None,
    media_root: str | os.PathLike | None = None,
    large_folder_bytes: int = LARGE_FOLDER_BYTES,
) -> PushReport:
    """Push a dataset folder (`save_to_disk`'s, or `build_dataset`'s parquet layout) as `push_dataset` does.

    A parquet folder whose shards hold more than `large_folder_bytes` goes up as it is, with huggingface_hub's
    folder upload (with hf_xet: streamed, committed in parts, resumable: run again after an interruption, what was
    committed is skipped and what was uploaded is not sent again). Its shards keep their names under
    ``<config>/data/``, the card's ``configs`` entry points at them and stale files of the config are deleted.
    Its report tells files apart by path and size (no file is hashed twice).
    """
    dataset = load_from_disk(folder)
    shards = parquet_shards(folder)
    if sum(path.stat().st_size for path in shards) <= large_folder_bytes:
        return push_dataset(dataset, repo_id, config_name=config_name, token=token, private=private,
                            revision=revision, commit_message=commit_message, license=license, media_root=media_root)
    api = HfApi(token=token)
    push = _prepare_push(api, dataset, repo_id, config_name, private, revision, license, media_root)
    rows = {f"{push.config}/{DATA_FOLDER}/{path.name}": path for path in shards}
    files = {**push.files, **rows, CARD_FILE: _card_with_data_files(push.files[CARD_FILE], push.config, rows)}
    staging = Path(folder, ".owa_push")  # the repository's layout, as links to the files
    shutil.rmtree(staging, ignore_errors=True)
    for path_in_repo, content in files.items():
        target = staging / path_in_repo
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            os.symlink(Path(content).resolve(), target)
    stale = [path for path in push.remote if path.startswith(f"{push.config}/") and path not in files]
    commit = api.upload_folder(repo_id=push.repo_id, folder_path=staging, repo_type="dataset", revision=revision,
                               commit_message=commit_message or push.message, delete_patterns=stale or None)
    shutil.rmtree(staging)
    sizes = {path: len(content) if isinstance(content, bytes) else content.stat().st_size
             for path, content in files.items()}
    unchanged = [path for path, size in sizes.items() if path in push.remote and push.remote[path].size == size]
    uploaded = [path for path in files if path not in unchanged]
    return PushReport(push.repo_id, push.config, commit.oid, tuple(uploaded), tuple(unchanged), tuple(stale),
                      sum(sizes[path] for path in uploaded))


def _card_with_data_files(card: bytes, config: str, rows: dict[str, Path]) -> bytes:
    """The card with this config's ``configs`` entry naming its shards (what datasets' push writes)."""
    parsed = DatasetCard(card.decode())
    splits = sorted({path.rsplit("/", 1)[1].rsplit("-", 3)[0] for path in rows})  # <split>-<i>-of-<n>.parquet
    entry = {"config_name": config,
             "data_files": [{"split": split, "path": f"{config}/{DATA_FOLDER}/{split}-*"} for split in splits]}
    configs = [c for c in parsed.data.get("configs") or [] if c.get("config_name") != config]
    parsed.data["configs"] = [*configs, entry]
    return str(parsed).encode()


def load_from_hub(
    repo_id: str, config: str, *, revision: str | None = None, split: str | None = None, **load_kwargs
) -> OwaDataset | OwaDatasetDict:
    """`datasets.load_dataset(repo_id, config)` of a repository made by `push_dataset`, with the config's
    metadata (and fsl tokenizer) beside the rows, as our builders leave them: `read_dataset_metadata`,
    `load_fsl_tokenizer`, `FslCollator.from_dataset` and `auto_set_transform` work as on a local build, and
    frames come from the repository (`HubMediaRoot`). Everything is read at one commit of `revision`."""
    commit = HfApi().repo_info(repo_id, repo_type="dataset", revision=revision).sha
    loaded = datasets.load_dataset(repo_id, config, revision=commit, split=split, **load_kwargs)
    metadata_path = hf_hub_download(repo_id, f"{config}/{METADATA_FILE}", repo_type="dataset", revision=commit)
    metadata = DatasetMetadata.read(metadata_path).replace(recordings_root=HubMediaRoot(repo_id, config, commit).uri)
    folder = dataset_folder(loaded)
    if metadata.tokenizer is not None:
        tokenizer = metadata.tokenizer["folder"]
        snapshot = snapshot_download(repo_id, repo_type="dataset", revision=commit,
                                     allow_patterns=f"{config}/{tokenizer}/*")
        shutil.copytree(Path(snapshot, config, tokenizer), folder / tokenizer, dirs_exist_ok=True)
    metadata.write(folder)
    return as_owa_dataset(loaded)


def _summarize_rows(splits: dict[str, datasets.Dataset], stage: Stage) -> _RowsSummary:
    """One pass over the rows: the media they reference and each episode's first and last timestamps."""
    summary = _RowsSummary()
    screen_column, (first_column, last_column) = _SCREEN_COLUMN[stage], _TIME_COLUMNS[stage]
    columns = sorted({"episode_path", screen_column, first_column, last_column}
                     | ({"message_type"} if stage == "events" else set()))
    for name, split in splits.items():
        summary.rows[name] = len(split)
        for batch in split.select_columns(columns).with_format("arrow").iter(batch_size=10_000):
            spans = batch.group_by("episode_path").aggregate([(first_column, "min"), (last_column, "max")])
            names = ("episode_path", f"{first_column}_min", f"{last_column}_max")
            for episode, first, last in zip(*(spans.column(name).to_pylist() for name in names)):
                known = summary.spans.get(episode, (first, last))
                summary.spans[episode] = (min(known[0], first), max(known[1], last))
            for episode, payload in _screen_payloads(batch, stage, screen_column):
                summary.media[(episode, screen_media_uri(payload))] = None
    return summary


def _screen_payloads(batch: pa.Table, stage: Stage, column: str):
    """(episode_path, screen message JSON) of every screen message in `batch`."""
    if stage == "events":
        screens = batch.filter(pc.equal(batch.column("message_type"), SCREEN_CAPTURED))
        return zip(screens.column("episode_path").to_pylist(), screens.column(column).to_pylist())
    lists = batch.column(column).combine_chunks()
    episodes = batch.column("episode_path").take(pc.list_parent_indices(lists))
    return zip(episodes.to_pylist(), pc.list_flatten(lists).to_pylist())


def _media_files(rows: _RowsSummary, recordings: LocalMediaRoot, config: str) -> dict[str, Path]:
    """Repository path -> local file of every video the rows reference (the recordings' layout)."""
    files = {}
    for episode_path, uri in rows.media:
        local = recordings.locate(episode_path, uri)  # refuses uris leaving the recordings
        if local.startswith("data:"):
            continue  # embedded in the message: nothing to upload
        if not os.path.isfile(local):
            raise FileNotFoundError(f"{local}: video referenced by episode {episode_path} is missing")
        files[f"{config}/{HUB_MEDIA_FOLDER}/{Path(os.path.relpath(local, recordings.path)).as_posix()}"] = Path(local)
    return files


def _published_metadata(metadata: DatasetMetadata, repo_id: str, config: str, rows: _RowsSummary) -> DatasetMetadata:
    """The dataset's metadata as the repository keeps it: its media in the repository, and what the rows hold."""
    duration_s = sum(last - first for first, last in rows.spans.values()) / NS_PER_S
    return metadata.replace(recordings_root=f"hf://datasets/{repo_id}/{config}/{HUB_MEDIA_FOLDER}",
                            published={"rows": rows.rows, "episodes": len(rows.spans), "duration_s": duration_s,
                                       "owa_builders": version("owa-builders")})


def _card(api: HfApi, repo_id: str, head: str, remote: dict[str, RepoFile], pushed: dict[str, DatasetMetadata],
          license: str | None) -> bytes:
    """The repository's card rendered for all its configs of ours: those it has and the one being pushed."""
    def download(path: str) -> Path:
        return Path(api.hf_hub_download(repo_id, path, repo_type="dataset", revision=head))

    configs = {path.split("/")[0]: DatasetMetadata.read(download(path))
               for path in remote if path.count("/") == 1 and path.endswith(f"/{METADATA_FILE}")}
    card = DatasetCard.load(download(CARD_FILE)) if CARD_FILE in remote else None
    return render_card(card, repo_id, configs | pushed, license).encode()


def _tokenizer_files(dataset, metadata: DatasetMetadata, config: str) -> dict[str, Path]:
    """Repository path -> local file of the expanded tokenizer saved beside fsl rows (none for other stages)."""
    if metadata.tokenizer is None:
        return {}
    name = metadata.tokenizer["folder"]
    folder = dataset_folder(dataset) / name
    return {f"{config}/{name}/{path.relative_to(folder).as_posix()}": path
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _additions(files: dict[str, bytes | Path], remote: dict[str, RepoFile]) -> tuple[list, list[str], int]:
    """The additions of the files whose content differs from the repository's at their path, the paths of the
    others, and how many bytes of content new to the repository (at any path) the additions hold."""
    stored = {entry.lfs.sha256 if entry.lfs else entry.blob_id for entry in remote.values()}
    additions, unchanged, new_bytes = [], [], 0
    for path_in_repo, content in files.items():
        sha256, git_oid, size = _digests(content)
        if _same_content(remote.get(path_in_repo), sha256, git_oid):
            unchanged.append(path_in_repo)
            continue
        addition = CommitOperationAdd(path_in_repo, content if isinstance(content, bytes) else os.fspath(content))
        addition.upload_info.sha256 = bytes.fromhex(sha256)  # hashed once here: not again for the upload
        additions.append(addition)
        if not stored & {sha256, git_oid}:  # the Hub keeps content once: a copy at another path is not sent
            new_bytes += size
    return additions, unchanged, new_bytes


def _digests(content: bytes | Path) -> tuple[str, str, int]:
    """sha256 (the LFS id), git blob id and size of a file's content, read once."""
    size = len(content) if isinstance(content, bytes) else content.stat().st_size
    sha256, git = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    if isinstance(content, bytes):
        sha256.update(content)
        git.update(content)
    else:
        with open(content, "rb") as file:
            while chunk := file.read(1 << 20):
                sha256.update(chunk)
                git.update(chunk)
    return sha256.hexdigest(), git.hexdigest(), size


def _same_content(remote: RepoFile | None, sha256: str, git_oid: str) -> bool:
    if remote is None:
        return False
    return remote.lfs.sha256 == sha256 if remote.lfs else remote.blob_id == git_oid
