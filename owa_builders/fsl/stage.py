"""The fsl stage: one episode's event rows in, packed token rows (and their accounting) out.

Per episode, in order: action events (``action_topics``) moved by ``action_shift_ns`` and all events
re-sorted by time (stably; no shift, no reordering) → each event encoded at its (shifted) time, drops
counted by reason → token ids (`FslTokenizer.event_ids`) → `packing.pack_episode` → rows without an image
dropped unless kept → Arrow tables of `row_schema`. The episode is read in chunks of events; the open row
carries over, so chunks never cut rows.

An event shows at most one image: the screen frame its payload (a ScreenCaptured) references. The row's
``images`` are those payloads, as stored by stage 1 (media uri relative to the episode's folder).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from functools import partial
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..accounting import Accounting
from ..events.event_input import EpisodeRows
from .digit_events import DigitEventEncoder, count_untimed
from .encoders import EventEncoder, get_encoder
from .packing import pack_episode
from .settings import FslSettings
from .tokenizer import FslTokenizer
from .tokens import IMAGE_PLACEHOLDER, EncodedEvent

EVENTS_PER_CHUNK = 256  # event rows read and encoded at a time: few live objects, so (almost) no GC passes
ROWS_PER_TABLE = 64  # packed rows per emitted table

ROW_WITHOUT_IMAGES = "row_without_images"  # drop reason of the events of such a row


def row_schema(settings: FslSettings) -> pa.Schema:
    """The rows' columns. Token ids are int32 and every row has exactly `max_length` of them."""
    length = settings.max_length
    fields = [
        ("input_ids", pa.list_(pa.int32(), length)),
        ("attention_mask", pa.list_(pa.int8(), length)),  # 1 for the row's tokens, 0 for padding
    ]
    if settings.store_texts:
        fields.append(("texts", pa.string()))  # what was tokenized, image patterns spelled out
    fields += [
        ("images", pa.list_(pa.string())),  # ScreenCaptured JSON of each image, in order
        ("episode_path", pa.string()),
        ("first_timestamp_ns", pa.int64()),  # of the row's first and last events (after any action shift)
        ("last_timestamp_ns", pa.int64()),
        ("num_tokens", pa.int32()),  # before padding
        ("num_events", pa.int32()),
        ("num_images", pa.int32()),
        ("event_offsets", pa.list_(pa.int32())),  # token offset where each event starts
    ]
    return pa.schema(fields)


class _Event(NamedTuple):
    """An encoded event, ready to pack."""

    topic: str
    timestamp_ns: int
    ids: list[int] | tuple[int, ...]  # an image as one IMAGE_ID (expanded when the row is assembled)
    length: int  # tokens, images expanded
    images: int
    image: str | None  # the ScreenCaptured JSON, when it shows one
    text: str | None  # None unless texts are stored


def iter_fsl_tables(
    rows: EpisodeRows,
    settings: FslSettings,
    tokenizer: FslTokenizer,
    accounting: Accounting,
    events_per_chunk: int = EVENTS_PER_CHUNK,
    rows_per_table: int = ROWS_PER_TABLE,
) -> Iterator[pa.Table]:
    """Pack one episode's events (tables of `row_schema`), adding its counts to `accounting`."""
    counts = Accounting(episodes=1)

    def drop(event: _Event, reason: str) -> None:
        counts.topic(event.topic).dropped[reason] += 1

    events = _encoded_events(rows, settings, tokenizer, counts, events_per_chunk)
    tables = _RowTables(rows.episode_path, settings, tokenizer)
    for row in pack_episode(events, settings.max_length, settings.max_images_per_row, drop):
        if settings.include_rows_without_images or any(event.images for event in row):
            for event in row:
                counts.topic(event.topic).kept += 1
            tables.add(row)
            if len(tables) == rows_per_table:
                yield tables.take()
        else:
            for event in row:
                drop(event, ROW_WITHOUT_IMAGES)
    if len(tables):
        yield tables.take()
    counts.check()
    accounting.add(counts)


def event_order(table: pa.Table, settings: FslSettings) -> tuple[np.ndarray | None, np.ndarray]:
    """(order, times): the row order to read events in (None: as stored) and their times in that order,
    action events shifted by ``action_shift_ns``; ties keep the stored order."""
    times = table.column("timestamp_ns").to_numpy()
    if settings.action_shift_ns == 0:
        return None, times
    actions = pc.is_in(table.column("topic"), value_set=pa.array(settings.action_topics, pa.string()))
    shifted = times + actions.to_numpy(zero_copy_only=False) * np.int64(settings.action_shift_ns)
    order = np.argsort(shifted, kind="stable")
    return order, shifted[order]


def _encoded_events(
    rows: EpisodeRows, settings: FslSettings, tokenizer: FslTokenizer, counts: Accounting, events_per_chunk: int
) -> Iterator[_Event]:
    """The episode's events in packing order, encoded; drops are counted as they happen."""
    encoder = get_encoder(settings.encoder)
    if isinstance(encoder, DigitEventEncoder):
        encode_chunk = _DigitEvents(encoder, tokenizer, settings.store_texts).encode_chunk
    else:
        encode_chunk = partial(_encode_chunk, encoder, tokenizer, settings.store_texts)
    table = rows.table()
    order, times = event_order(table, settings)
    for start in range(0, table.num_rows, events_per_chunk):
        stop = min(start + events_per_chunk, table.num_rows)
        chunk = table.slice(start, stop - start) if order is None else table.take(order[start:stop])
        yield from encode_chunk(
            chunk.column("topic").to_pylist(),
            chunk.column("message_type").to_pylist(),
            times[start:stop],
            chunk.column("mcap_message").to_pylist(),
            counts,
        )


def _encode_chunk(
    encoder: EventEncoder,
    tokenizer: FslTokenizer,
    store_texts: bool,
    topics: list[str],
    message_types: list[str],
    times: np.ndarray,
    messages: list[bytes],
    counts: Accounting,
) -> list[_Event]:
    """Events encoded one by one (`encoder.encode`), their ids looked up or tokenized all at once."""
    extra_image_tokens = len(tokenizer.image_ids) - 1
    kept = []
    for topic, message_type, timestamp, message in zip(topics, message_types, times.tolist(), messages):
        topic_counts = counts.topic(topic)
        topic_counts.read += 1
        encoded = encoder.encode(topic, message_type, timestamp, message,
                                 dropped=topic_counts.dropped, clamped=topic_counts.clamped)
        if encoded is not None:
            kept.append((topic, timestamp, message, encoded))
    events = []
    for (topic, timestamp, message, encoded), event_ids in zip(kept, tokenizer.event_ids([e for *_, e in kept])):
        shows_image = IMAGE_PLACEHOLDER in encoded.pieces
        events.append(_Event(
            topic,
            timestamp,
            event_ids,
            len(event_ids) + extra_image_tokens * shows_image,
            int(shows_image),
            message.decode() if shows_image else None,
            tokenizer.event_text(encoded) if store_texts else None,
        ))
    return events


class _DigitEvents:
    """Events of a digit encoder, with the work shared by equal events done once. An event's tokens are
    ``before_time + time_tokens(t) + after_time`` (`DigitEventEncoder.encode`); the first and last depend
    only on its topic, type and payload, the time digits only on ``t`` modulo the time period. As those are
    vocabulary tokens only (no free text), their ids and text are those of the three parts laid end to
    end: each distinct part is turned into ids and text once, by the tokenizer, and reused.

    Payloads (screen payloads all differ) are remembered up to `PAYLOADS_REMEMBERED` per topic and type at
    a time. What is remembered is plain tuples of ids and strings, which the garbage collector stops
    scanning: an episode's worth of them does not slow every collection down."""

    PAYLOADS_REMEMBERED = 1 << 16

    def __init__(self, encoder: DigitEventEncoder, tokenizer: FslTokenizer, store_texts: bool) -> None:
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.store_texts = store_texts
        self.extra_image_tokens = len(tokenizer.image_ids) - 1
        # (topic, message type) -> payload -> (drop, clamps, before_time, after_time, images), the UntimedEvent
        # with the parts as (ids, text)
        self.payloads: dict[tuple[str, str], dict[bytes, tuple]] = {}
        self.parts: dict[tuple[str, ...], tuple[tuple[int, ...], str]] = {}  # tokens -> (ids, text)
        self.time_parts: list[tuple[tuple[int, ...], str] | None] = [None] * encoder.format.time.modulus  # by residue

    def encode_chunk(
        self, topics: list[str], message_types: list[str], times: np.ndarray, messages: list[bytes], counts: Accounting
    ) -> list[_Event]:
        for topic, read in Counter(topics).items():  # topics in the order they first appear
            counts.topic(topic).read += read
        events = []
        store_texts, time_parts, extra_image_tokens = self.store_texts, self.time_parts, self.extra_image_tokens
        residues = self.encoder.time_residue(times).tolist()
        for topic, message_type, timestamp, residue, message in zip(
            topics, message_types, times.tolist(), residues, messages
        ):
            payloads = self.payloads.get((topic, message_type)) or self._payloads(topic, message_type)
            drop, clamps, (before_ids, before_text), (after_ids, after_text), images = (
                payloads.get(message) or self._untimed(topic, message_type, message, payloads))
            if drop is not None or clamps:
                topic_counts = counts.topic(topic)
                count_untimed(drop, clamps, topic_counts.dropped, topic_counts.clamped)
                if drop is not None:
                    continue
            time_ids, time_text = time_parts[residue] or self._time_part(residue)
            ids = before_ids + time_ids + after_ids
            events.append(_Event(
                topic,
                timestamp,
                ids,
                len(ids) + extra_image_tokens * images,
                images,
                message.decode() if images else None,
                before_text + time_text + after_text if store_texts else None,
            ))
        return events

    def _payloads(self, topic: str, message_type: str) -> dict[bytes, tuple]:
        payloads = self.payloads[topic, message_type] = {}
        return payloads

    def _untimed(self, topic: str, message_type: str, message: bytes, payloads: dict[bytes, tuple]) -> tuple:
        encoding = self.encoder.encode_untimed(topic, message_type, message)
        before, after = encoding.before_time, encoding.after_time
        if len(payloads) == self.PAYLOADS_REMEMBERED:
            payloads.clear()
        untimed = payloads[message] = (
            encoding.drop,
            encoding.clamps,
            self.parts.get(before) or self._part(before),
            self.parts.get(after) or self._part(after),
            int(IMAGE_PLACEHOLDER in after or IMAGE_PLACEHOLDER in before),
        )
        return untimed

    def _part(self, tokens: tuple[str, ...]) -> tuple[tuple[int, ...], str]:
        encoded = EncodedEvent.of_tokens(tokens)
        (ids,) = self.tokenizer.event_ids([encoded])
        part = self.parts[tokens] = (tuple(ids), self.tokenizer.event_text(encoded) if self.store_texts else "")
        return part

    def _time_part(self, residue: int) -> tuple[tuple[int, ...], str]:
        digits = self.encoder.format.time.encode(residue)
        part = self.time_parts[residue] = self.parts.get(digits) or self._part(digits)
        return part


class _RowTables:
    """Packed rows of one episode, gathered as flat lists and turned into one Arrow table per `take`
    (ids, images expanded, padding, masks and event offsets computed for all the table's rows at once)."""

    def __init__(self, episode_path: str, settings: FslSettings, tokenizer: FslTokenizer) -> None:
        self.episode_path = episode_path
        self.schema = row_schema(settings)
        self.max_length = settings.max_length
        self.store_texts = settings.store_texts
        self.tokenizer = tokenizer
        self._start()

    def _start(self) -> None:
        self.ids: list[int] = []  # of every event of the rows, in order; an image as one IMAGE_ID
        self.lengths: list[int] = []  # tokens of every event, images expanded
        self.events: list[int] = []  # events per row
        self.texts: list[str] = []
        self.images: list[list[str]] = []
        self.times: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self.events)

    def add(self, row: list[_Event]) -> None:
        for event in row:
            self.ids += event.ids
            self.lengths.append(event.length)
        self.events.append(len(row))
        if self.store_texts:
            self.texts.append("".join([event.text for event in row]))
        self.images.append([event.image for event in row if event.images])
        self.times.append((row[0].timestamp_ns, row[-1].timestamp_ns))

    def take(self) -> pa.Table:
        """The rows added since the last take, as one table."""
        count, length = len(self.events), self.max_length
        lengths = np.array(self.lengths, dtype=np.int32)
        events = np.array(self.events, dtype=np.int32)
        event_starts = np.cumsum(lengths, dtype=np.int64) - lengths  # in the rows' tokens laid end to end
        row_first_event = np.cumsum(events) - events
        tokens = np.add.reduceat(lengths, row_first_event).astype(np.int32)  # rows are never empty
        in_row = np.arange(length) < tokens[:, None]  # row-major: the rows' tokens in order
        input_ids = np.full((count, length), self.tokenizer.pad_token_id, dtype=np.int32)
        input_ids[in_row] = self.tokenizer.expand_images(np.array(self.ids, dtype=np.int32))
        offsets = (event_starts - np.repeat(event_starts[row_first_event], events)).astype(np.int32)
        columns = {
            "input_ids": pa.FixedSizeListArray.from_arrays(pa.array(input_ids.ravel()), length),
            "attention_mask": pa.FixedSizeListArray.from_arrays(pa.array(in_row.view(np.int8).ravel()), length),
        }
        if self.store_texts:
            columns["texts"] = pa.array(self.texts, pa.string())
        first, last = zip(*self.times)
        columns |= {
            "images": pa.array(self.images, pa.list_(pa.string())),
            "episode_path": pa.array([self.episode_path] * count, pa.string()),
            "first_timestamp_ns": pa.array(first, pa.int64()),
            "last_timestamp_ns": pa.array(last, pa.int64()),
            "num_tokens": pa.array(tokens),
            "num_events": pa.array(events),
            "num_images": pa.array(np.fromiter(map(len, self.images), dtype=np.int32, count=count)),
            "event_offsets": pa.ListArray.from_arrays(np.append(row_first_event, len(lengths)).astype(np.int32),
                                                      offsets),
        }
        self._start()
        return pa.table(columns, schema=self.schema)
