"""Tokenizer preparation for the fsl stage, and the checks training code runs against a built dataset.

Preparation (spec §4, §5) fixes the token ids:

1. load the tokenizer (``AutoTokenizer.from_pretrained``: a Hub name or a local folder); it must already
   have its model's image token (``<IMG_CONTEXT>``, ``<image>``), else the image pattern names another model;
2. add the encoder's reference vocabulary together with the image pattern's strings, those not yet in the
   vocabulary, in the reference's order (Python code-point sort) as normal tokens: ids match the
   reference's. (The reference passes the existing image tokens too, which re-flags them non-special; we
   leave existing tokens alone. SmolVLM's joined prefix becomes a new, never-emitted token, as there.)
3. then the encoder's own extra tokens, in their order: their ids come after all of the reference's.

Event pieces become ids by dictionary lookup, never by running the tokenizer per event; at preparation
the lookup is checked against the tokenizer on the same text (all event tokens in a row, and the image
pattern), so the ids are what the tokenizer itself produces. Free-text pieces (the json encoder) go
through the tokenizer, in batches. A sha256 of the vocabulary (token -> id) is stored with the dataset:
`check_vocabulary` tells training code whether its tokenizer has the same ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import numpy as np
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..hf import dataset_folder, read_dataset_metadata
from .encoders import get_encoder
from .tokens import IMAGE_PLACEHOLDER, EncodedEvent, expansion_order

TOKENIZER_FOLDER = "tokenizer"  # the expanded tokenizer, in the dataset's folder
STAND_IN_NOTE = "STAND_IN.md"  # a tokenizer folder holding this file is a stand-in; the note says for what
IMAGE_ID = -1  # stands for one image's ids in `FslTokenizer.event_ids` until `expand_images`


@dataclass(frozen=True)
class ImagePattern:
    """One screen image in tokens: ``prefix + token × length + suffix`` (spec §4)."""

    prefix: str
    token: str
    length: int
    suffix: str

    @property
    def text(self) -> str:
        return self.prefix + self.token * self.length + self.suffix

    def check(self) -> None:
        if not all(isinstance(s, str) and s for s in (self.prefix, self.token, self.suffix)):
            raise ValueError(f"image pattern prefix, token and suffix must be non-empty strings: {self}")
        if not (type(self.length) is int and self.length > 0):
            raise ValueError(f"image pattern length must be a positive int, not {self.length!r}")


IMAGE_PATTERNS: dict[str, ImagePattern] = {
    "internvl": ImagePattern("<img>", "<IMG_CONTEXT>", 256, "</img>"),
    "smolvlm": ImagePattern("<fake_token_around_image><global-img>", "<image>", 64, "<fake_token_around_image>"),
}


@dataclass
class FslTokenizer:
    """An expanded tokenizer with what the stage needs to turn encoded events into ids and text."""

    tokenizer: PreTrainedTokenizerBase
    source: str  # the name or folder it was loaded from
    image_pattern: ImagePattern
    token_ids: dict[str, int]  # every vocabulary token of the encoder; the image placeholder -> IMAGE_ID
    image_ids: np.ndarray  # one image's ids, as the tokenizer writes the image pattern
    pad_token_id: int
    added_tokens: tuple[str, ...]  # in id order
    vocabulary_hash: str
    stand_in: str | None  # the stand-in note of the source folder, if it has one

    def event_ids(self, events: Sequence[EncodedEvent]) -> list[list[int]]:
        """The token ids of each event, an image as one IMAGE_ID (see `expand_images`): vocabulary tokens
        by lookup, free text by the tokenizer (all text pieces of `events` in one batch)."""
        lookup = self.token_ids
        texts = [piece for event in events if True in event.is_text
                 for piece, is_text in zip(event.pieces, event.is_text) if is_text]
        text_ids = iter(self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else ())
        result = []
        for event in events:
            if True in event.is_text:
                ids: list[int] = []
                for piece, is_text in zip(event.pieces, event.is_text):
                    if is_text:
                        ids.extend(next(text_ids))
                    else:
                        ids.append(lookup[piece])
            else:
                ids = [lookup[piece] for piece in event.pieces]
            result.append(ids)
        return result

    def expand_images(self, ids: np.ndarray) -> np.ndarray:
        """`ids` with each IMAGE_ID replaced by the image's ids."""
        images = ids == IMAGE_ID
        if not images.any():
            return ids
        width = len(self.image_ids)
        counts = np.where(images, width, 1)
        expanded = np.repeat(ids, counts)
        starts = (np.cumsum(counts) - counts)[images]
        expanded[starts[:, None] + np.arange(width)] = self.image_ids
        return expanded

    def event_text(self, event: EncodedEvent) -> str:
        """The event's text as tokenized: its image placeholder spelled out (a placeholder string inside
        free text is text, not an image)."""
        if True not in event.is_text:
            return "".join(event.pieces).replace(IMAGE_PLACEHOLDER, self.image_pattern.text)
        return "".join(self.image_pattern.text if piece == IMAGE_PLACEHOLDER and not is_text else piece
                       for piece, is_text in zip(event.pieces, event.is_text))

    def save(self, folder: str | Path) -> None:
        """Write the expanded tokenizer (and the stand-in note, if any) to `folder`."""
        self.tokenizer.save_pretrained(str(folder))
        if self.stand_in is not None:
            Path(folder, STAND_IN_NOTE).write_text(self.stand_in)

    def metadata(self) -> dict:
        return {
            "source": self.source,
            "stand_in": self.stand_in,
            "folder": TOKENIZER_FOLDER,
            "vocabulary_hash": self.vocabulary_hash,
            "vocabulary_size": len(self.tokenizer),
            "added_tokens": len(self.added_tokens),
            "first_added_id": self.tokenizer.convert_tokens_to_ids(self.added_tokens[0]) if self.added_tokens else None,
            "pad_token_id": self.pad_token_id,
            "image_pattern": asdict(self.image_pattern),
            "image_token_ids": self.image_ids.tolist(),
        }


def prepare_tokenizer(
    source: str, encoder_name: str, image_pattern: ImagePattern, pad_token: str | None = None
) -> FslTokenizer:
    """Load the tokenizer from `source` and expand it for the encoder and image pattern."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    vocab = tokenizer.get_vocab()
    if image_pattern.token not in vocab:
        raise ValueError(
            f"tokenizer {source!r} has no {image_pattern.token!r} token: it is not the tokenizer of a model "
            f"whose images are spelled {image_pattern.prefix}{image_pattern.token}…{image_pattern.suffix}"
        )
    encoder = get_encoder(encoder_name)
    reference = expansion_order(
        set(encoder.reference_vocab) | {image_pattern.prefix, image_pattern.token, image_pattern.suffix}
    )
    added = [token for token in reference if token not in vocab]
    added += [token for token in encoder.extra_tokens if token not in vocab and token not in added]
    tokenizer.add_tokens(added)
    vocab = tokenizer.get_vocab()
    pad = pad_token or tokenizer.pad_token or tokenizer.eos_token
    if pad is None or pad not in vocab:
        raise ValueError(f"tokenizer {source!r} has no pad or eos token; set pad_token to one of its tokens")
    tokenizer.pad_token = pad

    event_tokens = encoder.reference_vocab + encoder.extra_tokens
    _check_lookup(tokenizer, source, event_tokens, vocab)
    return FslTokenizer(
        tokenizer=tokenizer,
        source=source,
        image_pattern=image_pattern,
        token_ids={token: vocab[token] for token in event_tokens} | {IMAGE_PLACEHOLDER: IMAGE_ID},
        image_ids=_image_ids(tokenizer, image_pattern),
        pad_token_id=vocab[pad],
        added_tokens=tuple(added),
        vocabulary_hash=_hash(vocab),
        stand_in=_stand_in_note(source),
    )


def vocabulary_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of the tokenizer's token -> id mapping (added tokens included)."""
    return _hash(tokenizer.get_vocab())


def _hash(vocab: dict[str, int]) -> str:
    pairs = sorted(vocab.items(), key=lambda pair: pair[1])
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()


def load_fsl_tokenizer(dataset: datasets.Dataset | datasets.DatasetDict) -> PreTrainedTokenizerBase:
    """The expanded tokenizer an owa_fsl dataset was built with (saved beside its rows)."""
    folder = dataset_folder(dataset) / TOKENIZER_FOLDER
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no tokenizer saved there (was this dataset built by owa_fsl?)")
    return AutoTokenizer.from_pretrained(str(folder))


def check_vocabulary(tokenizer: PreTrainedTokenizerBase, dataset: datasets.Dataset | datasets.DatasetDict) -> None:
    """Raise ValueError unless `tokenizer` maps every token to the id the dataset's rows were built with."""
    expected = read_dataset_metadata(dataset)["tokenizer"]["vocabulary_hash"]
    actual = vocabulary_hash(tokenizer)
    if actual != expected:
        raise ValueError(
            f"this tokenizer's vocabulary (hash {actual[:12]}…) differs from the one the dataset was built "
            f"with ({expected[:12]}…): its ids would not match the rows; use load_fsl_tokenizer(dataset)"
        )


def _image_ids(tokenizer: PreTrainedTokenizerBase, pattern: ImagePattern) -> np.ndarray:
    """The pattern's ids as the tokenizer writes them (SmolVLM's prefix is two tokens, not the joined one)."""
    prefix, token, suffix = (tokenizer.encode(s, add_special_tokens=False) for s in
                             (pattern.prefix, pattern.token, pattern.suffix))
    ids = prefix + token * pattern.length + suffix
    if tokenizer.encode(pattern.text, add_special_tokens=False) != ids:
        raise ValueError(f"the tokenizer does not split the image pattern into its parts: {pattern}")
    return np.array(ids, dtype=np.int32)


def _check_lookup(tokenizer: PreTrainedTokenizerBase, source: str, tokens: Sequence[str], vocab: dict) -> None:
    """The lookup must give what the tokenizer gives on the same text, tokens side by side."""
    produced = tokenizer.encode("".join(tokens), add_special_tokens=False)
    if produced != [vocab[token] for token in tokens]:
        wrong = next((t for t in tokens if tokenizer.encode(t, add_special_tokens=False) != [vocab[t]]), None)
        where = f"the event token {wrong!r}" if wrong else "event tokens side by side"
        raise ValueError(f"tokenizer {source!r} does not keep {where} whole")


def _stand_in_note(source: str) -> str | None:
    note = Path(source, STAND_IN_NOTE)
    return note.read_text() if note.is_file() else None
