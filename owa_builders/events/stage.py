"""The events stage: one episode in, event rows (and their accounting) out.

Two streaming passes over the MCAP, neither of which decodes JSON it does not need:

1. survey: checks the whole file before any row leaves (format, CRCs, profile, message types of kept
   topics, time order, screen media references) and lets the interval extractors watch the messages;
2. rows: topic filter → intervals → rate-limit policies, in time order, emitted as Arrow tables.

The file is read once when its decompressed messages fit in `KEPT_MESSAGES_BYTES` (the survey keeps them
for the rows pass: about 70 MB for ten minutes of the busiest reference profile), else twice; memory is
bounded either way.

A file that fails the survey therefore yields no rows at all, so skipping bad files never leaves half
an episode behind. Rows are ordered by timestamp, ties by position in the file.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa

from ..accounting import Accounting
from ..payloads import SCREEN_CAPTURED, Drop, screen_media_uri
from ..recordings.episodes import Episode, check_channel, check_media_uri, open_episode
from ..recordings.errors import BadRecordingError, MediaReferenceError, TimeOrderError
from ..recordings.mcap_scan import ChannelInfo, MessageBatch
from .intervals import IntervalSet, WholeEpisode, end_batch, parse_intervals
from .payload_columns import Payloads
from .rate_limits import make_policy
from .settings import EventsSettings, TopicChoice

EVENT_SCHEMA = pa.schema([
    ("episode_path", pa.string()),
    ("topic", pa.string()),
    ("timestamp_ns", pa.int64()),
    ("message_type", pa.string()),
    ("mcap_message", pa.binary()),
])
ROWS_PER_TABLE = 16_384
KEPT_MESSAGES_BYTES = 128 << 20


@dataclass(frozen=True)
class Survey:
    """What the first pass learned about an episode."""

    message_count: int
    start_ns: int | None
    end_ns: int | None
    intervals: IntervalSet | None  # None: keep the whole episode
    topics: TopicChoice  # the topics kept in this episode
    channels: dict[int, ChannelInfo]
    batches: deque[MessageBatch] | None  # the file's messages, if kept (see `survey_episode`)


def survey_episode(episode: Episode, settings: EventsSettings, keep_bytes: int = 0) -> Survey:
    """Check the whole file and compute its intervals; raises BadRecordingError naming the problem.

    The messages are kept in the survey when they take at most `keep_bytes` decompressed."""
    extractor = parse_intervals(settings.intervals)
    needs_intervals = not isinstance(extractor, WholeEpisode)
    checked: set[int] = set()
    fallback_channels: dict[int, ChannelInfo] = {}  # checked once the episode's topics are known
    media_uris: set[str] = set()
    present: set[str] = set()
    count, start, last = 0, None, None
    messages: deque[MessageBatch] | None = deque()  # kept for the rows pass while they fit in keep_bytes
    message_bytes = 0
    with open_episode(episode) as scanner:
        for batch in scanner.iter_batches():
            message_bytes += len(batch.buffer)
            if messages is not None and message_bytes <= keep_bytes:
                messages.append(batch)
            else:
                messages = None  # too big to keep: the rows pass reads the file again
            times = batch.log_times
            backwards = np.nonzero(np.diff(times) < 0)[0]
            if last is not None and times[0] < last:
                _time_goes_backwards(episode, scanner.channels, batch, count, -1, last)
            if len(backwards):
                _time_goes_backwards(episode, scanner.channels, batch, count, int(backwards[0]), None)
            start = int(times[0]) if start is None else start
            last = int(times[-1])
            for channel_id in np.unique(batch.channel_ids).tolist():
                channel = scanner.channels[channel_id]
                present.add(channel.topic)
                kept = settings.keeps_topic(channel.topic)
                if kept and channel_id not in checked:
                    check_channel(episode, channel)
                    checked.add(channel_id)
                elif not kept and settings.may_keep_topic(channel.topic):
                    fallback_channels[channel_id] = channel
                screen = settings.may_keep_topic(channel.topic) and channel.schema_name == SCREEN_CAPTURED
                if not (needs_intervals or screen):
                    continue
                indices = np.nonzero(batch.channel_ids == channel_id)[0]
                if screen:
                    _check_screen_media(episode, batch, indices, media_uris, settings.allow_external_media)
                extractor.observe(channel, times[indices], batch, indices)
            end_batch(extractor)
            count += len(batch)
    topics = settings.episode_topics(present)
    for channel_id in sorted(fallback_channels):
        if fallback_channels[channel_id].topic in topics.kept:
            check_channel(episode, fallback_channels[channel_id])
    intervals = extractor.finish(start, last) if needs_intervals and start is not None else None
    return Survey(count, start, last, intervals, topics, dict(scanner.channels), messages)


def _time_goes_backwards(episode, channels, batch: MessageBatch, before: int, position: int, previous) -> None:
    later = position + 1
    previous = int(batch.log_times[position]) if previous is None else previous
    topic = channels[int(batch.channel_ids[later])].topic
    raise TimeOrderError(
        episode.path,
        f"log time goes backwards at message #{before + later} (topic {topic!r}): "
        f"{int(batch.log_times[later])} < {previous} ns; OWAMcap recordings are written in time order",
    )


def _check_screen_media(episode, batch: MessageBatch, indices, seen: set[str], allow_external: bool) -> None:
    try:
        uris = dict.fromkeys(map(screen_media_uri, batch.payloads(indices)))  # in file order
    except Drop as drop:
        raise MediaReferenceError(episode.path, f"screen message without a readable media_ref.uri ({drop.reason})")
    for uri in uris:
        if uri not in seen:
            check_media_uri(episode, uri, allow_external)
            seen.add(uri)


@dataclass
class _Rows:
    """Event rows as columns (channel ids stand for topic and message type)."""

    times: np.ndarray
    orders: np.ndarray  # file positions: ties of time keep the file's order
    channels: np.ndarray
    payloads: list[bytes]

    @classmethod
    def joined(cls, parts: list[_Rows]) -> _Rows:
        if len(parts) == 1:
            return parts[0]
        times, orders, channels = (np.concatenate(column) for column in zip(*((p.times, p.orders, p.channels) for p in parts)))
        return cls(times, orders, channels, [payload for part in parts for payload in part.payloads])

    def take(self, positions: np.ndarray) -> _Rows:
        payloads = self.payloads
        return _Rows(self.times[positions], self.orders[positions], self.channels[positions],
                     [payloads[i] for i in positions.tolist()])

    def __len__(self) -> int:
        return len(self.times)


class _PendingRows:
    """Rows waiting to be emitted, released in (timestamp, file position) order below a watermark.

    Rows come per batch; each batch's rows are sorted together with the rows held back, which the
    policies' holdbacks bound to about one rate-limit slot."""

    def __init__(self):
        self._parts: list[_Rows] = []

    def add(self, times: np.ndarray, orders: np.ndarray, channels: np.ndarray, payloads: list[bytes]) -> None:
        if len(times):
            self._parts.append(_Rows(times, orders, channels, payloads))

    def release(self, watermark: int | None) -> _Rows | None:
        """The rows before `watermark` (all when None), in order; the others stay."""
        if not self._parts:
            return None
        rows = _Rows.joined(self._parts)
        order = np.lexsort((rows.orders, rows.times))
        cut = len(order) if watermark is None else int(np.searchsorted(rows.times[order], watermark))
        self._parts = [rows.take(order[cut:])] if cut < len(order) else []
        return rows.take(order[:cut]) if cut else None


class _TopicPolicy:
    """A topic's rate-limit policy, the channel its made rows are written as, and the interval it is in."""

    def __init__(self, limit: dict, channel_id: int):
        self.policy = make_policy(limit)
        self.channel_id = channel_id
        self.interval: int | None = None


def iter_event_tables(
    episode: Episode, settings: EventsSettings, accounting: Accounting, rows_per_table: int = ROWS_PER_TABLE
) -> Iterator[pa.Table]:
    """Convert one episode to event rows (tables of `EVENT_SCHEMA`), adding its counts to `accounting`."""
    survey = survey_episode(episode, settings, KEPT_MESSAGES_BYTES)
    counts = Accounting(episodes=1)
    for fallback, preferred in sorted(survey.topics.fallbacks.items()):
        counts.fall_back(episode.relative_path, fallback, preferred)
    policies: dict[str, _TopicPolicy] = {}
    pending = _PendingRows()
    seen = 0
    with _message_batches(episode, survey) as batches:
        tables = _TableMaker(episode, survey.channels, rows_per_table)
        for batch in batches:
            _route_batch(batch, seen, survey.channels, survey, settings, policies, counts, pending)
            seen += len(batch)
            holdbacks = [h for h in (state.policy.holdback() for state in policies.values()) if h is not None]
            yield from tables.add(pending.release(min(holdbacks, default=None)))
        for topic, state in policies.items():
            _add_policy_output(state.policy.flush(), state.channel_id, counts.topic(topic), pending)
        yield from tables.add(pending.release(None), last=True)
    if seen != survey.message_count:
        raise BadRecordingError(episode.path, f"file changed during conversion ({survey.message_count} → {seen} messages)")
    counts.check()
    accounting.add(counts)


@contextmanager
def _message_batches(episode: Episode, survey: Survey) -> Iterator[Iterator[MessageBatch]]:
    """The episode's messages for the rows pass: those the survey kept (each let go once routed), or read again."""
    if survey.batches is not None:
        yield _drain(survey.batches)
        return
    with open_episode(episode) as scanner:
        yield scanner.iter_batches()


def _drain(batches: deque[MessageBatch]) -> Iterator[MessageBatch]:
    while batches:
        yield batches.popleft()


def _route_batch(batch, first_order, channels, survey: Survey, settings, policies, counts, pending) -> None:
    intervals = survey.intervals
    times = batch.log_times
    orders = np.arange(first_order, first_order + len(batch), dtype=np.int64)
    inside = intervals.contains(times) if intervals is not None else None
    by_channel = np.argsort(batch.channel_ids, kind="stable")  # each channel's messages together, in file order
    channel_ids, firsts = np.unique(batch.channel_ids[by_channel], return_index=True)
    by_topic: dict[str, list[tuple[int, np.ndarray]]] = {}
    for channel_id, run in zip(channel_ids.tolist(), np.split(by_channel, firsts[1:])):
        by_topic.setdefault(channels[channel_id].topic, []).append((channel_id, run))
    for topic, runs in by_topic.items():
        indices = runs[0][1] if len(runs) == 1 else np.sort(np.concatenate([run for _, run in runs]))
        channel_ids = [channel_id for channel_id, _ in runs]
        topic_counts = counts.topic(topic)
        topic_counts.read += len(indices)
        if topic not in survey.topics.kept:
            topic_counts.dropped[survey.topics.drop_reason(topic)] += len(indices)
            continue
        if inside is not None:
            inside_indices = indices[inside[indices]]
            topic_counts.dropped["outside_intervals"] += len(indices) - len(inside_indices)
            indices = inside_indices
        if topic in settings.rate_limits:
            state = policies.get(topic)
            if state is None:
                state = policies[topic] = _TopicPolicy(settings.rate_limits[topic], channel_ids[0])
            indices = _apply_policy(state, batch, indices, orders, intervals, topic_counts, pending)
        topic_counts.kept += len(indices)
        pending.add(times[indices], orders[indices], batch.channel_ids[indices], batch.payloads(indices))


def _apply_policy(state: _TopicPolicy, batch, indices, orders, intervals, topic_counts, pending) -> np.ndarray:
    """Run a topic's policy interval by interval (flushed at each interval's end); the indices it keeps as they are."""
    times = batch.log_times
    if intervals is None or not len(indices):
        runs, run_intervals = [indices], [None]
    else:
        located = intervals.locate(times[indices])
        cuts = np.nonzero(np.diff(located))[0] + 1
        runs, run_intervals = np.split(indices, cuts), located[np.r_[0, cuts]].tolist()
    kept = []
    for run, interval in zip(runs, run_intervals):
        if state.interval is not None and interval != state.interval:  # motion and held keys end with their interval
            flushed = state.policy.flush(until=int(intervals.ends[state.interval]) + 1)
            _add_policy_output(flushed, state.channel_id, topic_counts, pending)
        state.interval = interval
        payloads = Payloads(batch.buffer, batch.data_starts[run], batch.data_ends[run]) if state.policy.reads_payloads else None
        output = state.policy.apply(times[run], orders[run], payloads)
        _add_policy_output(output, state.channel_id, topic_counts, pending)
        kept.append(run[output.keep])
    return np.concatenate(kept)


def _add_policy_output(output, channel_id: int, topic_counts, pending: _PendingRows) -> None:
    topic_counts.kept += len(output.made) - output.synthesized
    topic_counts.synthesized += output.synthesized
    topic_counts.dropped.update(output.dropped)
    if output.made:
        times, orders, payloads = zip(*output.made)
        pending.add(np.array(times, np.int64), np.array(orders, np.int64),
                    np.full(len(times), channel_id, np.uint16), list(payloads))


class _TableMaker:
    """Cuts released rows into tables of `EVENT_SCHEMA` of `rows_per_table` rows (the episode's last may be short)."""

    def __init__(self, episode: Episode, channels: dict[int, ChannelInfo], rows_per_table: int):
        self.episode = episode
        self.channels = channels
        self.rows_per_table = rows_per_table
        self._waiting: list[_Rows] = []
        self._count = 0

    def add(self, rows: _Rows | None, last: bool = False) -> Iterator[pa.Table]:
        if rows is not None:
            self._waiting.append(rows)
            self._count += len(rows)
        while self._count >= self.rows_per_table or (last and self._count):
            waiting = _Rows.joined(self._waiting)
            size = min(self.rows_per_table, self._count)
            yield self._table(waiting.take(np.arange(size)))
            self._count -= size
            self._waiting = [waiting.take(np.arange(size, len(waiting)))] if self._count else []

    def _table(self, rows: _Rows) -> pa.Table:
        ids = sorted(self.channels)
        position = np.searchsorted(ids, rows.channels)
        topics = pa.array([self.channels[i].topic for i in ids], pa.string())
        message_types = pa.array([self.channels[i].schema_name for i in ids], pa.string())
        return pa.Table.from_arrays(
            [
                pa.array([self.episode.relative_path] * len(rows), pa.string()),
                topics.take(position),
                pa.array(rows.times, pa.int64()),
                message_types.take(position),
                pa.array(rows.payloads, pa.binary()),
            ],
            schema=EVENT_SCHEMA,
        )


def convert_episode(episode: Episode, settings: EventsSettings) -> tuple[pa.Table, Accounting]:
    """One episode's rows as a single table, with its accounting (for tools and distributed engines)."""
    accounting = Accounting()
    tables = list(iter_event_tables(episode, settings, accounting))
    return (pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()), accounting
