"""Helpers of the fsl tests: hand-made event datasets, cutting built rows into events, reference ids."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from owa_builders.events.stage import EVENT_SCHEMA
from owa_builders.fsl.tokenizer import FslTokenizer
from owa_builders.fsl.tokens import IMAGE_PLACEHOLDER

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def screen_message(pts_ns: int, uri: str = "video.mkv") -> bytes:
    return orjson.dumps({"utc_ns": T0 + pts_ns, "source_shape": [64, 48], "shape": [64, 48],
                         "media_ref": {"uri": uri, "pts_ns": pts_ns}})


MESSAGE_TYPES = {"screen": "desktop/ScreenCaptured", "keyboard": "desktop/KeyboardEvent",
                 "mouse/raw": "desktop/RawMouseEvent"}


def event_row(episode: str, topic: str, time_ns: int, message: dict | bytes, message_type: str | None = None) -> dict:
    return {"episode_path": episode, "topic": topic, "timestamp_ns": time_ns,
            "message_type": message_type or MESSAGE_TYPES[topic],
            "mcap_message": message if isinstance(message, bytes) else orjson.dumps(message)}


def write_event_parquet(folder: Path, rows: list[dict]) -> Path:
    """An event dataset as parquet (stage 1's schema), rows as given."""
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), folder / "events.parquet")
    return folder


def row_events(row: dict) -> list[list[int]]:
    """The token ids of each event of a built row, cut at its event offsets."""
    ids = row["input_ids"][: row["num_tokens"]]
    return [ids[a:b] for a, b in pairwise(row["event_offsets"] + [row["num_tokens"]])]


def tokenizer_ids(tokenizer: FslTokenizer, encoded) -> list[int]:
    """What the (expanded) tokenizer itself gives for an encoded event's text."""
    return tokenizer.tokenizer(tokenizer.event_text(encoded), add_special_tokens=False)["input_ids"]


def lookup_ids(tokenizer: FslTokenizer, encoded) -> list[int]:
    """The stage's ids for an encoded event: lookup, images expanded."""
    return tokenizer.expand_images(np.array(tokenizer.event_ids([encoded])[0], dtype=np.int32)).tolist()


def unexpanded(text: str, tokenizer: FslTokenizer) -> str:
    """A row's text with each image pattern back to the placeholder (what the encoders decode)."""
    return text.replace(tokenizer.image_pattern.text, IMAGE_PLACEHOLDER)
