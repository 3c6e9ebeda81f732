"""Events stage speed and memory on reference-profile recordings.

    .venv/bin/python bench/events_stage.py [--minutes 10] [--memory-minutes 10 60]

Reports, for one process and the `desktop` config: the realtime factor (recording seconds per wall
second) of the stage alone and of a whole `load_dataset` build, the ratio to a bare iteration of the same
file with the `mcap` library's reader, and peak RSS of the stage for recordings of different lengths
(each measured in a fresh process): with the `desktop` config, and with a key stuck down for the whole
recording under the `uniform` keyboard policy (desktop + ``keyboard: {hz: 20, policy: uniform}``). Recordings are synthesized once into bench/out/ (no video pixels:
conversion never opens the video, so an empty placeholder stands in for it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def recording(minutes: int, stuck_key: bool = False) -> Path:
    from owa_builders.synth import SynthProfile, synthesize_episode

    folder = OUT / f"reference_{minutes}min{'_stuck_key' if stuck_key else ''}"
    path = folder / "episode.mcap"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        profile = SynthProfile(duration_s=minutes * 60, video=False, seed=0, stuck_key=stuck_key)
        manifest = synthesize_episode(path, profile)
        (folder / manifest.video_uri).write_bytes(b"")  # referenced, never opened
    return path


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def desktop_settings(uniform_keyboard: bool = False):
    """The owa_events builder's `desktop` named config (an EventsSettings), optionally with uniform key repeats."""
    import dataclasses

    from owa_builders.config_files import named_config

    desktop = named_config("owa_events", "desktop")
    if not uniform_keyboard:
        return desktop
    return dataclasses.replace(desktop, rate_limits={**desktop.rate_limits, "keyboard": {"hz": 20, "policy": "uniform"}})


def convert_once(path: Path, uniform_keyboard: bool = False) -> int:
    from owa_builders.accounting import Accounting
    from owa_builders.events.stage import iter_event_tables
    from owa_builders.recordings.episodes import Episode

    settings = desktop_settings(uniform_keyboard)
    return sum(t.num_rows for t in iter_event_tables(Episode(str(path), str(path.parent)), settings, Accounting()))


def speed(minutes: int, repeats: int) -> dict:
    import datasets
    from mcap.reader import make_reader

    import owa_builders  # noqa: F401  (registers the builders)

    path = recording(minutes)
    seconds = minutes * 60

    def bare_reader():
        with open(path, "rb") as f:
            for _ in make_reader(f).iter_messages():
                pass

    stage = best_of(repeats, lambda: convert_once(path))
    reader = best_of(repeats, bare_reader)

    def build():
        with tempfile.TemporaryDirectory() as cache:
            datasets.load_dataset("owa_events", "desktop", data_dir=str(path.parent), cache_dir=cache)

    whole = best_of(repeats, build)
    return {
        "recording_minutes": minutes,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "rows": convert_once(path),
        "stage_s": round(stage, 3),
        "stage_realtime_x": round(seconds / stage),
        "load_dataset_s": round(whole, 3),
        "load_dataset_realtime_x": round(seconds / whole),
        "mcap_reader_s": round(reader, 3),
        "reader_over_stage": round(reader / stage, 1),
    }


def peak_rss_mb(minutes: int, stuck_key: bool = False) -> float:
    """Peak RSS of converting one recording, in a fresh process (the child reports its own peak)."""
    path = recording(minutes, stuck_key)
    code = (f"import resource, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import events_stage; "
            f"events_stage.convert_once(__import__('pathlib').Path({str(path)!r}), uniform_keyboard={stuck_key}); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    child = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return round(int(child.stdout.split()[-1]) / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-minutes", type=int, nargs="*", default=[10, 60])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(speed(args.minutes, args.repeats), indent=1))
    for stuck_key in (False, True):
        for minutes in args.memory_minutes:
            peak = peak_rss_mb(minutes, stuck_key)
            print(json.dumps({"recording_minutes": minutes, "stuck_key_uniform_keyboard": stuck_key, "stage_peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
