"""Binned stage speed and memory on reference-profile recordings.

    .venv/bin/python bench/binned_stage.py [--minutes 10] [--memory-minutes 10 25]

The recording (synthesized once into bench/out/ by events_stage.recording, an empty placeholder standing
in for the never-opened video) is converted to event rows first, with the owa_events `desktop` config
(screen and raw mouse at 20 Hz) and with `default` (every message at its recorded rate: 60 Hz screen,
1 kHz raw mouse). Reports, per input and for 10 fps with and without filter_empty_actions, the realtime
factor (recording seconds per wall second) of the binned stage alone in one process, and of a whole
`load_dataset("owa_binned", "10fps")` build from the event rows already built; then the peak of Arrow's
memory pool while binning recordings of different lengths (each in a fresh process), which must not grow
with the recording.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from events_stage import best_of, recording

CACHE = Path(__file__).resolve().parent / "out" / "hf_cache"  # event rows, built once per recording


def event_rows(minutes: int, events_config: str):
    """The recording's event rows (one episode) with an owa_events named config, built once and cached."""
    import owa_builders  # noqa: F401  (registers the builders)
    from owa_builders.events.event_input import load_event_splits

    (episode,) = load_event_splits(recording(minutes).parent, events_config, cache_dir=str(CACHE)).splits["train"]
    return episode


def bin_once(episode, filter_empty_actions: bool) -> int:
    from owa_builders.accounting import Accounting
    from owa_builders.binned.settings import BinnedSettings
    from owa_builders.binned.stage import iter_binned_tables

    settings = BinnedSettings(fps=10, filter_empty_actions=filter_empty_actions)
    return sum(table.num_rows for table in iter_binned_tables(episode, settings, Accounting()))


def speed(minutes: int, repeats: int, events_config: str) -> dict:
    import datasets

    episode = event_rows(minutes, events_config)
    seconds = minutes * 60

    def build(saved: Path):
        with tempfile.TemporaryDirectory() as cache:
            datasets.load_dataset("owa_binned", "10fps", data_dir=str(saved), cache_dir=cache)

    result = {"recording_minutes": minutes, "events_config": events_config, "event_rows": len(episode)}
    for filtered in (False, True):
        stage = best_of(repeats, lambda filtered=filtered: bin_once(episode, filtered))
        name = "filtered" if filtered else "all_bins"
        result[f"{name}_rows"] = bin_once(episode, filtered)
        result[f"{name}_stage_s"] = round(stage, 3)
        result[f"{name}_stage_realtime_x"] = round(seconds / stage)
    with tempfile.TemporaryDirectory() as folder:
        episode.dataset.save_to_disk(folder)
        whole = best_of(repeats, lambda: build(Path(folder)))
    result["load_dataset_s"] = round(whole, 3)
    result["load_dataset_realtime_x"] = round(seconds / whole)
    return result


def peak_arrow_mb(minutes: int, events_config: str) -> float:
    """Peak Arrow memory of binning one recording's (memory-mapped) event rows, in a fresh process.

    Only what binning allocates: a pool tracking its own peak is installed once the event rows are loaded
    (cutting a split into episodes allocates in proportion to the split, in events/event_input.py)."""
    event_rows(minutes, events_config)  # build the event rows here, not in the measured process
    code = (
        f"import sys, pyarrow; sys.path.insert(0, {str(Path(__file__).parent)!r}); import binned_stage; "
        f"episode = binned_stage.event_rows({minutes}, {events_config!r}); "
        "pool = pyarrow.proxy_memory_pool(pyarrow.default_memory_pool()); pyarrow.set_memory_pool(pool); "
        "binned_stage.bin_once(episode, False); print(pool.max_memory())"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return round(int(result.stdout.split()[-1]) / 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-minutes", type=int, nargs="*", default=[10, 25])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for events_config in ("desktop", "default"):
        print(json.dumps(speed(args.minutes, args.repeats, events_config), indent=1))
    for minutes in args.memory_minutes:
        print(json.dumps({"recording_minutes": minutes, "events_config": "default",
                          "binning_peak_arrow_mb": peak_arrow_mb(minutes, "default")}))


if __name__ == "__main__":
    main()
