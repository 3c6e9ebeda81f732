"""What a recordings folder or a built dataset holds, at a glance (`owa-builders summary ...`).

`summarize_recordings` reads every episode with the fast scanner (never a video) and runs the checks the
events stage runs before converting one (`survey_episode`); a bad file is reported with its problem, not
raised. `summarize_dataset` reads what our builders store beside a dataset's rows (``owa_dataset.json``).
Both results render as text (`render()`) and as plain dicts (`to_dict()`, for ``--json``).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass

import datasets
import numpy as np
from tqdm.auto import tqdm

from .accounting import Accounting
from .events.settings import EventsSettings
from .events.stage import Survey, survey_episode
from .metadata import dataset_folder, read_dataset_metadata
from .payloads import KEYBOARD_EVENT, MOUSE_EVENT, RAW_MOUSE_EVENT, SCREEN_CAPTURED, Drop, screen_media_uri
from .recordings.episodes import Episode, find_episodes, locate_media, open_episode
from .recordings.errors import BadRecordingError, MediaReferenceError
from .recordings.files import file_stamp
from .units import NS_PER_S

INPUT_KIND_OF_MESSAGE_TYPE = {KEYBOARD_EVENT: "keyboard", RAW_MOUSE_EVENT: "mouse", MOUSE_EVENT: "mouse", SCREEN_CAPTURED: "screen"}


# -- recordings -------------------------------------------------------------------------------------------


class EpisodeScan:
    """Every message's topic and log time, the topics' message types and the screen media uris of an episode.

    `read` fills it as it goes, so what was read before a bad record stays available.
    """

    def __init__(self) -> None:
        self.library: str | None = None
        self.message_types: dict[str, set[str]] = {}
        self.media_uris: Counter[str] = Counter()  # uri -> screen messages referencing it
        self._times: dict[str, list[np.ndarray]] = {}

    def read(self, episode: Episode) -> None:
        """Scan the episode; raises BadRecordingError (not OWAMcap, corrupt, truncated)."""
        with open_episode(episode) as scanner:
            self.library = scanner.library
            for batch in scanner.iter_batches():
                for channel_id in np.unique(batch.channel_ids).tolist():
                    channel = scanner.channels[channel_id]
                    indices = np.flatnonzero(batch.channel_ids == channel_id)
                    self._times.setdefault(channel.topic, []).append(batch.log_times[indices])
                    self.message_types.setdefault(channel.topic, set()).add(channel.schema_name)
                    if channel.schema_name == SCREEN_CAPTURED:
                        uris = map(_media_uri, batch.payloads(indices))
                        self.media_uris.update(uri for uri in uris if uri is not None)  # the survey names bad ones

    def topic_times(self) -> dict[str, np.ndarray]:
        """Log times (ns) of each topic's messages, in file order."""
        return {topic: np.concatenate(parts) for topic, parts in self._times.items()}


def _media_uri(payload: bytes) -> str | None:
    try:
        uri = screen_media_uri(payload)
    except Drop:
        return None  # the survey names it
    return "data:" if uri.startswith("data:") else uri  # embedded frames are counted together


@dataclass
class TopicStats:
    message_types: list[str]
    messages: int
    rate_hz: float | None  # mean rate between its first and last message; None with fewer than two


@dataclass
class MediaFile:
    uri: str  # as the screen messages write it ("data:" for frames embedded in the messages)
    path: str | None  # where it resolves (relative uris: against the episode's folder)
    present: bool | None  # None: a URL or embedded, not checked
    frames: int  # screen messages referencing it


@dataclass
class Problem:
    reason: str  # the slug a build that skips bad files counts (BadRecordingError.reason)
    problem: str


@dataclass
class EpisodeSummary:
    path: str  # relative to the recordings folder
    size_bytes: int | None  # None for a remote recording (its listing gives content identity, not always size)
    library: str | None  # the MCAP writer
    start_ns: int | None
    end_ns: int | None
    duration_s: float
    messages: int
    topics: dict[str, TopicStats]
    media: list[MediaFile]
    problem: Problem | None  # the first problem a conversion would meet (it stops there)
    warnings: list[str]  # input the events config would lose entirely (e.g. every mouse event)


def summarize_episode(episode: Episode, settings: EventsSettings | None = None) -> EpisodeSummary:
    """Scan one episode and check it as the events stage with `settings` would (default: every topic kept)."""
    scan, problem, warnings = EpisodeScan(), None, []
    try:
        scan.read(episode)
        warnings = _lost_input(scan, survey_episode(episode, settings or EventsSettings()))
    except BadRecordingError as error:
        problem = Problem(error.reason, error.problem)
    times = scan.topic_times()
    start = min((int(t.min()) for t in times.values()), default=None)
    end = max((int(t.max()) for t in times.values()), default=None)
    return EpisodeSummary(
        path=episode.relative_path,
        size_bytes=None if episode.remote is not None else _size(episode.path),
        library=scan.library,
        start_ns=start,
        end_ns=end,
        duration_s=0.0 if start is None else (end - start) / NS_PER_S,
        messages=sum(map(len, times.values())),
        topics={topic: _topic_stats(scan.message_types[topic], times[topic]) for topic in sorted(times)},
        media=[_media_file(episode, uri, frames) for uri, frames in sorted(scan.media_uris.items())],
        problem=problem,
        warnings=warnings,
    )


def _lost_input(scan: EpisodeScan, survey: Survey) -> list[str]:
    """What kinds of input (keyboard, mouse, screen) an episode has and the events stage would drop whole."""
    if survey.intervals is not None and not len(survey.intervals.starts):
        return ["its intervals are empty: every event would be dropped"]
    topics_of_kind: dict[str, list[str]] = {}
    for topic, message_types in sorted(scan.message_types.items()):
        for kind in {INPUT_KIND_OF_MESSAGE_TYPE.get(message_type) for message_type in message_types} - {None}:
            topics_of_kind.setdefault(kind, []).append(topic)
    return [f"every {kind} event would be dropped (its topics {', '.join(topics)}: "
            + ", ".join(sorted({survey.topics.drop_reason(topic) for topic in topics})) + ")"
            for kind, topics in sorted(topics_of_kind.items()) if not set(topics) & survey.topics.kept]


def _topic_stats(message_types: set[str], times: np.ndarray) -> TopicStats:
    span = int(times.max() - times.min()) if len(times) else 0
    rate = (len(times) - 1) * NS_PER_S / span if span else None
    return TopicStats(sorted(message_types), len(times), rate)


def _size(path: str) -> int:
    size, _ = file_stamp(path)  # not a number for what is no regular file (its problem says what it is)
    return int(size) if size.isdigit() else 0


def _media_file(episode: Episode, uri: str, frames: int) -> MediaFile:
    try:
        target = locate_media(episode, uri, allow_external=True)
    except MediaReferenceError:  # a uri no file can have (control characters): the episode's problem names it
        return MediaFile(uri, None, None, frames)
    if episode.remote is not None:  # present if the root's listing has it; outside the root: not checked
        relative = episode.remote.relative(target)
        return MediaFile(uri, target, None if relative is None else relative in episode.remote.files, frames)
    local = os.path.isabs(target)  # URLs and embedded frames are not files to look for
    return MediaFile(uri, target if local else None, os.path.isfile(target) if local else None, frames)


@dataclass
class RecordingsSummary:
    root: str
    episodes: list[EpisodeSummary]

    @property
    def bad_episodes(self) -> list[EpisodeSummary]:
        return [episode for episode in self.episodes if episode.problem is not None]

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        episodes = self.episodes
        duration = sum(episode.duration_s for episode in episodes)
        lines = [f"{self.root}: {len(episodes)} episode(s), {duration:.1f} s, "
                 f"{sum(e.messages for e in episodes):,} messages, {len(self.bad_episodes)} with a problem", ""]
        lines += _table(["topic", "message type", "messages", "episodes", "rate (Hz)"], self._topic_rows())
        lines += [""] + _table(["episode", "duration", "messages", "media"], [
            [e.path, f"{e.duration_s:.1f} s", f"{e.messages:,}", _media_text(e.media)] for e in episodes
        ])
        warned = [e for e in episodes if e.warnings]
        if warned:
            lines += ["", "warnings (input these events settings would lose):"]
            lines += [f"  {e.path}: {warning}" for e in warned for warning in e.warnings]
        if self.bad_episodes:
            lines += ["", "problems (a build with on_bad_files='error' stops at the first):"]
            lines += [f"  {e.path} [{e.problem.reason}]: {e.problem.problem}" for e in self.bad_episodes]
        return "\n".join(lines)

    def _topic_rows(self) -> list[list[str]]:
        by_topic: dict[str, list[TopicStats]] = {}
        for episode in self.episodes:
            for topic, stats in episode.topics.items():
                by_topic.setdefault(topic, []).append(stats)
        rows = []
        for topic, stats in sorted(by_topic.items()):
            rates = sorted(s.rate_hz for s in stats if s.rate_hz is not None)
            low, high = (f"{rates[0]:.1f}", f"{rates[-1]:.1f}") if rates else ("-", "-")
            rows.append([topic, ", ".join(sorted({t for s in stats for t in s.message_types})),
                         f"{sum(s.messages for s in stats):,}", f"{len(stats)}/{len(self.episodes)}",
                         low if low == high else f"{low}–{high}"])
        return rows


def _media_text(media: list[MediaFile]) -> str:
    if not media:
        return "-"
    state = {True: "", False: " MISSING", None: " (not checked)"}
    shown = [f"{'embedded' if m.uri == 'data:' else m.uri} ({m.frames} frames){state[m.present]}" for m in media[:2]]
    missing = sum(m.present is False for m in media[2:])
    more = f" + {len(media) - 2} more" + (f", {missing} MISSING" if missing else "") if len(media) > 2 else ""
    return ", ".join(shown) + more


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned text columns, numbers right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    numeric = [bool(rows) and all(row[i][:1].isdigit() or row[i] == "-" for row in rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()
    return [line(header)] + [line(row) for row in rows]


def summarize_recordings(
    folder: str | os.PathLike, settings: EventsSettings | None = None, progress: bool = False
) -> RecordingsSummary:
    """Summarize every ``*.mcap`` under `folder` (see `summarize_episode`); FileNotFoundError without any."""
    episodes = find_episodes(folder)
    if not episodes:
        raise FileNotFoundError(f"{folder}: no *.mcap recordings found")
    summaries = [summarize_episode(episode, settings)
                 for episode in tqdm(episodes, desc="summarizing recordings", unit="episode", disable=not progress)]
    return RecordingsSummary(os.fspath(folder), summaries)


# -- datasets ---------------------------------------------------------------------------------------------


@dataclass
class DatasetSummary:
    path: str  # the folder read (a save_to_disk folder, or the cache folder of a load_dataset result)
    builder: str
    config: str
    version: str
    rows: dict[str, int]  # per split
    settings: dict
    recordings_root: str | None  # where the rows' media uris resolve
    accounting: dict  # {"splits": ..., "total": ...} as stored (Accounting.to_dict)
    fill: dict | None = None  # owa_fsl: rows, tokens and fill per split and in total
    tokenizer: dict | None = None  # owa_fsl: the tokenizer the ids come from
    events: dict | None = None  # later stages: the event dataset's builder, config, accounting

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        lines = [f"{self.builder}/{self.config}, version {self.version}: {self.path}",
                 "rows: " + ", ".join(f"{split} {rows:,}" for split, rows in self.rows.items())
                 + f" ({sum(self.rows.values()):,} in all)"]
        if self.fill is not None:
            per_split = ", ".join(f"{split} {entry['fill']:.1%}" for split, entry in self.fill["splits"].items())
            lines.append(f"fill: {per_split}, all {self.fill['total']['fill']:.1%} "
                         f"(tokens that are not padding, of {self.settings['max_length']} per row)")
        if self.tokenizer is not None:
            stand_in = " (a STAND-IN, for offline tests and demos)" if self.tokenizer.get("stand_in") else ""
            lines.append(f"tokenizer: {self.tokenizer['source']}{stand_in}, "
                         f"{self.tokenizer['vocabulary_size']:,} tokens, saved in {self.tokenizer['folder']}/")
        lines.append(f"recordings: {self.recordings_root or 'unknown'}")
        lines += ["", f"accounting of {self.builder} (where every input event went):", _indent(self.accounting)]
        if self.events and self.events.get("accounting"):
            events = f"{self.events['builder']}/{self.events['config']}"
            lines += ["", f"accounting of the events it was built from ({events}):", _indent(self.events["accounting"])]
        return "\n".join(lines)


def _indent(accounting: dict) -> str:
    return "\n".join("  " + line for line in Accounting.from_dict(accounting["total"]).summary().splitlines())


def summarize_dataset(
    dataset_or_folder: datasets.Dataset | datasets.DatasetDict | str | os.PathLike,
) -> DatasetSummary:
    """Summarize a dataset built by one of our builders: loaded, or a folder (`owa_builders.save_to_disk`'s, or
    the parquet layout of `build_dataset`)."""
    if isinstance(dataset_or_folder, (str, os.PathLike)):
        from .datasets_io import load_from_disk

        dataset = load_from_disk(dataset_or_folder)
        path = os.fspath(dataset_or_folder)
    else:
        dataset, path = dataset_or_folder, str(dataset_folder(dataset_or_folder))
    metadata = read_dataset_metadata(dataset)
    splits = dataset if isinstance(dataset, datasets.DatasetDict) else {str(dataset.split or "all"): dataset}
    return DatasetSummary(
        path=path,
        builder=metadata.builder,
        config=metadata.config,
        version=metadata.version,
        rows={name: split.num_rows for name, split in splits.items()},
        settings=metadata.settings,
        recordings_root=metadata.recordings_root,
        accounting=metadata.accounting,
        fill=metadata.fill,
        tokenizer=metadata.tokenizer,
        events=metadata.events,
    )

