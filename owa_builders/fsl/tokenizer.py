"""Tokenizer preparation for the fsl stage, and the checks training code runs against a built dataset.

Preparation (spec §4, §5) fixes the token ids:

1. load the tokenizer (its ``tokenizer.json``, from a local folder or the Hub's cache, with the `tokenizers`
   library); it must already have its model's image token (``<IMG_CONTEXT>``, ``<image>``), else the image
   pattern names another model;
2. add the encoder's reference vocabulary together with the image pattern's strings, those not yet in the
   vocabulary, in the reference's order (Python code-point sort) as normal tokens: ids match the
   reference's. (The reference passes the existing image tokens too, which re-flags them non-special; we
   leave existing tokens alone. SmolVLM's joined prefix becomes a new, never-emitted token, as there.)
3. then the encoder's own extra tokens, in their order: their ids come after all of the reference's.

This is what transformers' ``AutoTokenizer.from_pretrained`` + ``add_tokens`` do (the same `tokenizers`
calls; the tests compare the two); a tokenizer that transformers would change on loading (a special token
of its config missing from ``tokenizer.json``) is loaded by transformers instead. The expanded tokenizer is
kept in a cache folder keyed by the source files' content, the encoder's tokens, the image pattern and the
pad token; a later build reads only its small ``prepared.json`` (token -> id lookup, image ids, hash), and
the full tokenizer is loaded lazily, only when free text (the json encoder) has to be tokenized. So the
conversion never imports transformers, and `FslTokenizer` pickles small for ``num_proc`` workers.

Event pieces become ids by dictionary lookup, never by running the tokenizer per event; at preparation
the lookup is checked against the tokenizer on the same text (all event tokens in a row, and the image
pattern), so the ids are what the tokenizer itself produces. Free-text pieces (the json encoder) go
through the tokenizer, in batches. A sha256 of the vocabulary (token -> id) is stored with the dataset:
`check_vocabulary` tells training code whether its tokenizer has the same ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import datasets
import numpy as np
from tokenizers import Tokenizer

from ..metadata import dataset_folder, read_dataset_metadata
from .encoders import get_encoder
from .tokens import IMAGE_PLACEHOLDER, EncodedEvent, expansion_order

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TOKENIZER_FOLDER = "tokenizer"  # the expanded tokenizer, in the dataset's folder
STAND_IN_NOTE = "STAND_IN.md"  # a tokenizer folder holding this file is a stand-in; the note says for what
IMAGE_ID = -1  # stands for one image's ids in `FslTokenizer.event_ids` until `expand_images`
PREPARED_FILE = "prepared.json"  # in a cached expanded tokenizer: what the stage needs, as JSON


@dataclass(frozen=True)
class ImagePattern:
    """One screen image in tokens: ``prefix + token × length + suffix`` (spec §4)."""

    prefix: str
    token: str
    length: int
    suffix: str

    @cached_property  # thousands of characters, spelled into every text with an image
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
    """A prepared (expanded) tokenizer: what the stage needs to turn encoded events into ids and text.

    Pickles small (the lookup, not the tokenizer): the `tokenizers` tokenizer for free text and the
    transformers one (`tokenizer`) are loaded from `folder` when first used."""

    source: str  # the name or folder it was loaded from
    folder: Path  # the expanded tokenizer's files (a cache folder), as `save` writes them
    image_pattern: ImagePattern
    token_ids: dict[str, int]  # every vocabulary token of the encoder; the image placeholder -> IMAGE_ID
    image_ids: np.ndarray  # one image's ids, as the tokenizer writes the image pattern
    pad_token_id: int
    added_tokens: tuple[str, ...]  # in id order
    first_added_id: int | None
    vocabulary_size: int  # added tokens included
    vocabulary_hash: str
    stand_in: str | None  # the stand-in note of the source folder, if it has one
    _text_tokenizer: Tokenizer | None = field(default=None, repr=False, compare=False)
    _pretrained: PreTrainedTokenizerBase | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_text_tokenizer": None, "_pretrained": None}

    @property
    def text_tokenizer(self) -> Tokenizer:
        """The expanded tokenizer (`tokenizers` library), for free text."""
        if self._text_tokenizer is None:
            self._text_tokenizer = _read_tokenizer_file(self.folder)
        return self._text_tokenizer

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The expanded tokenizer as transformers loads it (imports transformers; not used to convert)."""
        if self._pretrained is None:
            from transformers import AutoTokenizer

            self._pretrained = AutoTokenizer.from_pretrained(str(self.folder))
        return self._pretrained

    @tokenizer.setter
    def tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._pretrained = tokenizer

    def event_ids(self, events: Sequence[EncodedEvent]) -> list[list[int]]:
        """The token ids of each event, an image as one IMAGE_ID (see `expand_images`): vocabulary tokens
        by lookup, free text by the tokenizer (all text pieces of `events` in one batch)."""
        lookup = self.token_ids
        result: list[list[int] | None] = []
        with_text = []  # positions of the events with free text, filled in below
        for event in events:
            if True in event.is_text:
                with_text.append(len(result))
                result.append(None)
            else:
                result.append([lookup[piece] for piece in event.pieces])
        if with_text:
            texts = [piece for i in with_text for piece, is_text in zip(events[i].pieces, events[i].is_text) if is_text]
            text_ids = iter(self.text_tokenizer.encode_batch(texts, add_special_tokens=False))
            for i in with_text:
                event = events[i]
                result[i] = [token_id for piece, is_text in zip(event.pieces, event.is_text)
                             for token_id in (next(text_ids).ids if is_text else (lookup[piece],))]
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
        """Write the expanded tokenizer (and the stand-in note, if any) to `folder`: loadable by
        transformers' ``AutoTokenizer.from_pretrained``."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        for path in self.folder.iterdir():
            if path.name != PREPARED_FILE:
                shutil.copyfile(path, Path(folder, path.name))

    def metadata(self) -> dict:
        return {
            "source": self.source,
            "stand_in": self.stand_in,
            "folder": TOKENIZER_FOLDER,
            "vocabulary_hash": self.vocabulary_hash,
            "vocabulary_size": self.vocabulary_size,
            "added_tokens": len(self.added_tokens),
            "first_added_id": self.first_added_id,
            "pad_token_id": self.pad_token_id,
            "image_pattern": asdict(self.image_pattern),
            "image_token_ids": self.image_ids.tolist(),
        }


def prepare_tokenizer(
    source: str,
    encoder_name: str,
    image_pattern: ImagePattern,
    pad_token: str | None = None,
    cache_dir: str | Path | None = None,
) -> FslTokenizer:
    """The tokenizer of `source` (a local folder or a Hub name) expanded for the encoder and image pattern.

    The expansion is cached under `cache_dir` (default: `default_cache_dir()`), keyed by the source files'
    content, the encoder's tokens, the image pattern and `pad_token`."""
    encoder = get_encoder(encoder_name)
    event_tokens = encoder.reference_vocab + encoder.extra_tokens
    files = _source_files(source)
    key = _cache_key(files, event_tokens, image_pattern, pad_token)
    folder = Path(cache_dir or default_cache_dir(), key)
    if not (folder / PREPARED_FILE).is_file():
        _expand_into(folder, source, files, encoder.reference_vocab, encoder.extra_tokens, image_pattern, pad_token)
    prepared = json.loads((folder / PREPARED_FILE).read_text())
    note = folder / STAND_IN_NOTE
    return FslTokenizer(
        source=source,
        folder=folder,
        image_pattern=image_pattern,
        token_ids=prepared["token_ids"] | {IMAGE_PLACEHOLDER: IMAGE_ID},
        image_ids=np.array(prepared["image_ids"], dtype=np.int32),
        pad_token_id=prepared["pad_token_id"],
        added_tokens=tuple(prepared["added_tokens"]),
        first_added_id=prepared["first_added_id"],
        vocabulary_size=prepared["vocabulary_size"],
        vocabulary_hash=prepared["vocabulary_hash"],
        stand_in=note.read_text() if note.is_file() else None,
    )


def default_cache_dir() -> Path:
    """Where expanded tokenizers are kept: in datasets' cache (``HF_DATASETS_CACHE``), whatever a build's
    ``cache_dir``, so builds into other cache folders share them."""
    return Path(datasets.config.HF_DATASETS_CACHE, "owa_fsl_tokenizers")


def vocabulary_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of the tokenizer's token -> id mapping (added tokens included)."""
    return _hash(tokenizer.get_vocab())


def _hash(vocab: dict[str, int]) -> str:
    pairs = sorted(vocab.items(), key=lambda pair: pair[1])
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()


def load_fsl_tokenizer(dataset: datasets.Dataset | datasets.DatasetDict) -> PreTrainedTokenizerBase:
    """The expanded tokenizer an owa_fsl dataset was built with (saved beside its rows)."""
    from transformers import AutoTokenizer

    folder = dataset_folder(dataset) / TOKENIZER_FOLDER
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no tokenizer saved there (was this dataset built by owa_fsl?)")
    return AutoTokenizer.from_pretrained(str(folder))


def check_vocabulary(tokenizer: PreTrainedTokenizerBase, dataset: datasets.Dataset | datasets.DatasetDict) -> None:
    """Raise ValueError unless `tokenizer` maps every token to the id the dataset's rows were built with."""
    expected = read_dataset_metadata(dataset).tokenizer["vocabulary_hash"]
    actual = vocabulary_hash(tokenizer)
    if actual != expected:
        raise ValueError(
            f"this tokenizer's vocabulary (hash {actual[:12]}…) differs from the one the dataset was built "
            f"with ({expected[:12]}…): its ids would not match the rows; use load_fsl_tokenizer(dataset)"
        )


# Files of a tokenizer that the expanded tokenizer keeps, and all those that can define it (part of the
# cache key; transformers reads the others when there is no tokenizer.json). Model weights never.
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
KEPT_FILES = (TOKENIZER_FILE, CONFIG_FILE, "special_tokens_map.json", "chat_template.jinja", STAND_IN_NOTE)
SOURCE_FILES = (*KEPT_FILES, "added_tokens.json", "vocab.*", "merges.txt", "*.model", "*.tiktoken")
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
PREPARATION_VERSION = 1  # part of the cache key: bump when preparation writes something else


def _source_files(source: str) -> dict[str, Path]:
    """The tokenizer files (`SOURCE_FILES`) of a local folder, or of a Hub repository (through the Hub's
    cache), by name."""
    if os.path.isdir(source):
        folder = Path(source)
    else:
        from huggingface_hub import snapshot_download  # offline and not cached: an OSError naming the repo

        folder = Path(snapshot_download(source, allow_patterns=list(SOURCE_FILES)))
    return {path.name: path for path in sorted(folder.iterdir())
            if path.is_file() and any(fnmatch(path.name, pattern) for pattern in SOURCE_FILES)}


def _cache_key(files: dict[str, Path], event_tokens: Sequence[str], pattern: ImagePattern, pad_token: str | None) -> str:
    digest = hashlib.sha256(json.dumps([PREPARATION_VERSION, list(event_tokens), asdict(pattern), pad_token]).encode())
    for name, path in sorted(files.items()):
        digest.update(f"\0{name}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def _expand_into(
    folder: Path,
    source: str,
    files: dict[str, Path],
    reference_vocab: Sequence[str],
    extra_tokens: Sequence[str],
    pattern: ImagePattern,
    pad_token: str | None,
) -> None:
    """Expand the tokenizer and write it, with `PREPARED_FILE`, to the cache folder `folder` (atomically)."""
    tokenizer, config = _load_source(source, files)
    if tokenizer.token_to_id(pattern.token) is None:
        raise ValueError(
            f"tokenizer {source!r} has no {pattern.token!r} token: it is not the tokenizer of a model "
            f"whose images are spelled {pattern.prefix}{pattern.token}…{pattern.suffix}"
        )
    reference = expansion_order(set(reference_vocab) | {pattern.prefix, pattern.token, pattern.suffix})
    added = [token for token in dict.fromkeys([*reference, *extra_tokens]) if tokenizer.token_to_id(token) is None]
    tokenizer.add_tokens(added)  # what transformers' add_tokens calls
    vocab = tokenizer.get_vocab(with_added_tokens=True)  # the whole vocabulary (0.6 s for Qwen's): once
    pad = pad_token or _token_name(config, "pad_token") or _token_name(config, "eos_token")
    if pad is None or pad not in vocab:
        raise ValueError(f"tokenizer {source!r} has no pad or eos token; set pad_token to one of its tokens")
    event_tokens = [*reference_vocab, *extra_tokens]
    _check_lookup(tokenizer, source, event_tokens, vocab)
    prepared = {
        "token_ids": {token: vocab[token] for token in event_tokens},
        "image_ids": _image_ids(tokenizer, pattern).tolist(),
        "pad_token_id": vocab[pad],
        "added_tokens": added,
        "first_added_id": vocab[added[0]] if added else None,
        "vocabulary_size": tokenizer.get_vocab_size(with_added_tokens=True),
        "vocabulary_hash": _hash(vocab),
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".staging-"))
    try:
        tokenizer.save(str(staging / TOKENIZER_FILE))
        for name, path in files.items():
            if name in (CONFIG_FILE, "special_tokens_map.json"):  # the pad token as chosen
                Path(staging, name).write_text(json.dumps(json.loads(path.read_text()) | {"pad_token": pad}, indent=2))
            elif name in KEPT_FILES and name != TOKENIZER_FILE:
                shutil.copyfile(path, staging / name)
        if CONFIG_FILE not in files:
            Path(staging, CONFIG_FILE).write_text(json.dumps({"pad_token": pad}, indent=2))
        Path(staging, PREPARED_FILE).write_text(json.dumps(prepared))
        os.replace(staging, folder)
    except OSError:
        if not (folder / PREPARED_FILE).is_file():  # not another process preparing the same tokenizer
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_source(source: str, files: dict[str, Path]) -> tuple[Tokenizer, dict]:
    """The source's tokenizer as transformers would load it, and its config. Read straight from
    ``tokenizer.json`` when that is what transformers would use unchanged: the file is there and every
    special token its config names is one of its special added tokens; else through transformers."""
    config = json.loads(files[CONFIG_FILE].read_text()) if CONFIG_FILE in files else {}
    if TOKENIZER_FILE in files:
        tokenizer = _read_tokenizer_file(files[TOKENIZER_FILE].parent)
        special = {token.content for token in tokenizer.get_added_tokens_decoder().values() if token.special}
        if set(_named_tokens(config)) <= special:
            return tokenizer, config
    from transformers import AutoTokenizer

    pretrained = AutoTokenizer.from_pretrained(source)
    config = config | {"pad_token": pretrained.pad_token, "eos_token": pretrained.eos_token}
    return pretrained.backend_tokenizer, config


def _read_tokenizer_file(folder: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    tokenizer.no_truncation()  # as transformers encodes without truncation or padding unless asked
    tokenizer.no_padding()
    return tokenizer


def _token_name(config: dict, name: str) -> str | None:
    token = config.get(name)
    return token.get("content") if isinstance(token, dict) else token


def _named_tokens(config: dict) -> list[str]:
    """The special tokens a tokenizer config names (transformers adds any missing from the vocabulary)."""
    extra = config.get("extra_special_tokens") or config.get("additional_special_tokens") or []
    if isinstance(extra, dict):  # {name: token}
        extra = list(extra.values())
    named = [_token_name(config, name) for name in SPECIAL_TOKEN_NAMES]
    return [token.get("content") if isinstance(token, dict) else token for token in [*named, *extra] if token]


def _image_ids(tokenizer: Tokenizer, pattern: ImagePattern) -> np.ndarray:
    """The pattern's ids as the tokenizer writes them (SmolVLM's prefix is two tokens, not the joined one)."""
    prefix, token, suffix = (_encode(tokenizer, s) for s in (pattern.prefix, pattern.token, pattern.suffix))
    ids = prefix + token * pattern.length + suffix
    if _encode(tokenizer, pattern.text) != ids:
        raise ValueError(f"the tokenizer does not split the image pattern into its parts: {pattern}")
    return np.array(ids, dtype=np.int32)


def _check_lookup(tokenizer: Tokenizer, source: str, tokens: Sequence[str], vocab: dict) -> None:
    """The lookup must give what the tokenizer gives on the same text, tokens side by side."""
    if _encode(tokenizer, "".join(tokens)) != [vocab[token] for token in tokens]:
        wrong = next((t for t in tokens if _encode(tokenizer, t) != [vocab[t]]), None)
        where = f"the event token {wrong!r}" if wrong else "event tokens side by side"
        raise ValueError(f"tokenizer {source!r} does not keep {where} whole")


def _encode(tokenizer: Tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids
