"""The whole pipeline on recordings it makes itself: `make demo` (or `owa-builders demo [--out DIR]`).

1. synthesizes reference-profile episodes (OWAMcap + real video) into DIR/recordings;
2. stage 1, owa_events ("default" and "desktop"), through `datasets.load_dataset` with HF caching;
3. stage 2, owa_fsl ("internvl3", offline with a labelled stand-in tokenizer), saved to DIR/fsl-dataset;
4. stage 3, owa_binned ("10fps");
5. training time: loads the saved fsl dataset, decodes its frames lazily through the transform (and checks
   each is the frame its reference names), and collates a padded and a padding-free batch;
6. draws an episode's timeline through owa_events "desktop" and the first fsl row into DIR/plots (what
   `owa-builders summary recordings|dataset --plot` draws);
7. trains a toy model for one epoch with the single-process example loader (when torch is installed).

Builds are cached in DIR/cache: a second run reuses them.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from .units import NS_PER_S

DEFAULT_OUT = Path(".demo")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 72 - len(title)))


def _print_accounting(dataset) -> None:
    import owa_builders

    total = owa_builders.Accounting.from_dict(owa_builders.read_accounting(dataset)["total"])
    print("  where every input went:\n" + "\n".join("  " + line for line in total.summary().splitlines()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="owa-builders demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="working folder (default .demo/)")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per episode")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import datasets

    import owa_builders
    from owa_builders.fsl.stand_in import internvl_stand_in
    from owa_builders.plots import plot_episode_timeline, plot_fsl_row
    from owa_builders.synth import SynthProfile, frame_index_from_image, synthesize_recordings

    datasets.disable_progress_bars()
    logging.getLogger("owa_builders").setLevel(logging.WARNING)  # the demo prints the accounting itself
    recordings, cache = args.out / "recordings", str(args.out / "cache")

    _section(f"1. synthesizing {args.episodes} episodes of {args.duration:g} s into {recordings}")
    for manifest in synthesize_recordings(recordings, episodes=args.episodes,
                                          profile=SynthProfile(duration_s=args.duration, seed=2026)):
        counts = ", ".join(f"{topic} {n}" for topic, n in sorted(manifest.message_counts.items()))
        print(f"  {manifest.mcap_path.name} + {manifest.video_uri}: {counts}")

    for config in ("default", "desktop"):
        _section(f"2. stage 1: owa_events / {config}")
        events = datasets.load_dataset("owa_events", config, data_dir=str(recordings), cache_dir=cache, test_size=1)
        for split, rows in events.items():
            per_topic = Counter(rows["topic"])
            print(f"  {split}: {rows.num_rows} rows from {len(rows.unique('episode_path'))} episode(s); "
                  + ", ".join(f"{topic} {n}" for topic, n in sorted(per_topic.items())))
        _print_accounting(events)

    _section("3. stage 2: owa_fsl / internvl3 (stand-in tokenizer: the Hub is not used)")
    tokenizer = internvl_stand_in(args.out / "tokenizers" / "internvl3-stand-in")
    fsl = datasets.load_dataset("owa_fsl", "internvl3", data_dir=str(recordings), cache_dir=cache,
                                tokenizer=str(tokenizer), events_overrides={"test_size": 1})
    metadata = owa_builders.read_dataset_metadata(fsl)
    for split, rows in fsl.items():
        print(f"  {split}: {rows.num_rows} rows of {metadata.settings['max_length']} tokens, "
              f"fill {100 * metadata.fill['splits'][split]['fill']:.2f}%, "
              f"{sum(rows['num_events'])} events, {sum(rows['num_images'])} image references")
    print(f"  tokenizer: vocabulary hash {metadata.tokenizer['vocabulary_hash'][:16]}…, saved with the rows")
    _print_accounting(fsl)
    saved = args.out / "fsl-dataset"
    owa_builders.save_to_disk(fsl, saved)
    print(f"  saved to {saved}")

    _section("4. stage 3: owa_binned / 10fps")
    binned = datasets.load_dataset("owa_binned", "10fps", data_dir=str(recordings), cache_dir=cache,
                                   events_overrides={"test_size": 1})
    train = binned["train"]
    carried = sum(train["state_carried"])
    actions = sum(len(a) for a in train["actions"])
    print(f"  train: {train.num_rows} bins of 100 ms, {carried} with the previous frame carried forward, "
          f"{actions} actions")
    motion = (sum(train["mouse_dx"]), sum(train["mouse_dy"]))
    presses = sum(len(keys) for keys in train["keys_pressed"])
    print(f"  as numbers: mouse motion {motion}, {presses} key presses, "
          f"an `action` vector of {len(train[0]['action'])} floats per bin (layout in owa_dataset.json)")

    _section("5. training time: lazy frames, transform, collator")
    dataset = owa_builders.load_from_disk(saved)["train"]
    dataset.auto_set_transform(stage="fsl", load_images=True)
    row, raw = dataset[0], dataset.with_format(None)[0]
    import orjson

    expected = [round(orjson.loads(image)["media_ref"]["pts_ns"] * 60 / NS_PER_S) for image in raw["images"]]
    decoded = [frame_index_from_image(image.convert("RGB")) for image in row["images"]]
    print(f"  row 0: {len(row['images'])} frames decoded from the videos, {type(row['input_ids']).__name__} ids")
    print(f"  each frame is the one its reference names: {decoded == expected}")
    for padding_free in (False, True):
        collator = owa_builders.FslCollator.from_dataset(dataset, padding_free=padding_free)
        batch = collator([dataset[i] for i in range(min(2, len(dataset)))])
        shapes = ", ".join(f"{key} {tuple(value.shape)}" for key, value in batch.items() if hasattr(value, "shape"))
        print(f"  {'padding-free' if padding_free else 'padded'} batch: {shapes}")

    _section(f"6. pictures, in {args.out / 'plots'}")
    timeline = plot_episode_timeline(recordings / "episode_000.mcap", "desktop",
                                     args.out / "plots" / "timeline_episode_000.png", root=recordings)
    print(f"  {timeline}: episode_000 through owa_events/desktop, messages kept and dropped per topic over time")
    picture = plot_fsl_row(raw, metadata, args.out / "plots" / "fsl_row_0.png", episode_start=True)
    print(f"  {picture}: fsl row 0, its event tokens, image tokens and padding, where each event starts")

    if importlib.util.find_spec("torch") is not None:
        _section("7. training a toy model for one epoch (examples/single_gpu.py)")
        result = subprocess.run([sys.executable, str(EXAMPLES / "single_gpu.py"), str(saved), "--batch-size", "4",
                                 "--num-workers", "1"], capture_output=True, text=True)
        print("\n".join("  " + line for line in (result.stdout or result.stderr).strip().splitlines()))
        if result.returncode:
            return result.returncode
    _section("8. recordings where they live, into the Hub's parquet layout, resumable")
    import fsspec

    remote = "memory://owa-demo/recordings"  # any fsspec URL: hf://datasets/org/repo, s3://bucket/path, …
    fsspec.filesystem("memory").put(str(recordings), remote, recursive=True)
    parquet = args.out / "event-parquet"
    for run in ("build", "the same command again"):
        report = owa_builders.build_dataset("owa_events", "desktop", remote, parquet, progress=False,
                                            cache_dir=cache, test_size=1)
        rows = ", ".join(f"{split} {n}" for split, n in report.rows.items())
        print(f"  {run}: rows {rows} from {remote} into {parquet}/data/; "
              f"{report.converted} episode(s) converted, {report.reused} reused")
    print(f"  datasets.load_dataset({str(parquet)!r}) loads it without owa-builders; "
          "owa_builders.load_from_disk adds its metadata")
    print(f"\ndone: builds are cached in {cache}; the fsl dataset is saved in {saved}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
