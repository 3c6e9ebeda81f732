"""The pipeline on recordings it makes itself: `make demo` (or `owa-builders demo [--out DIR]`).

1. synthesizes a few reference-profile episodes (OWAMcap + real video) into DIR/recordings;
2. builds owa_events ("default" and "desktop") through `datasets.load_dataset`, with HF caching in DIR/cache;
3. prints what a user checks: episodes, rows per topic, and where every message went.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import Counter
from pathlib import Path

DEFAULT_OUT = Path(".demo")


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 72 - len(title)))


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
    from owa_builders.synth import SynthProfile, synthesize_recordings

    datasets.disable_progress_bars()
    logging.getLogger("owa_builders").setLevel(logging.WARNING)  # the demo prints the accounting itself
    recordings, cache = args.out / "recordings", str(args.out / "cache")
    _section(f"1. synthesizing {args.episodes} episodes of {args.duration:g} s into {recordings}")
    for manifest in synthesize_recordings(recordings, episodes=args.episodes,
                                          profile=SynthProfile(duration_s=args.duration, seed=2026)):
        counts = ", ".join(f"{topic} {n}" for topic, n in sorted(manifest.message_counts.items()))
        print(f"  {manifest.mcap_path.name} + {manifest.video_uri}: {counts}")

    for config in ("default", "desktop"):
        _section(f"2. owa_events / {config}")
        events = datasets.load_dataset("owa_events", config, data_dir=str(recordings), cache_dir=cache)
        for split, rows in events.items():
            per_topic = Counter(rows["topic"])
            print(f"  {split}: {rows.num_rows} rows from {len(rows.unique('episode_path'))} episodes; "
                  + ", ".join(f"{topic} {n}" for topic, n in sorted(per_topic.items())))
        total = owa_builders.Accounting.from_dict(owa_builders.read_accounting(events)["total"])
        print("  accounting:\n" + "\n".join("  " + line for line in total.summary().splitlines()))
        first = events["train"][0]
        print(f"  first row: {first['episode_path']} {first['topic']} t={first['timestamp_ns']} "
              f"{first['mcap_message'][:80]!r}")
    print("\ndone: the datasets are cached in", cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
