"""Stage 1 on the Ray engine vs the local engine, on 60 minutes of reference-profile recordings (6 × 10 min).

    .venv/bin/python bench/ray_stage.py [--episodes 6] [--repeats 1]

Each run is the whole command, `owa-builders build owa_events --name desktop --format parquet -q` into a fresh
output folder, timed from outside (process start, imports, Ray start-up, conversion, shards, metadata):
the local engine with 1 and 2 processes, the Ray engine (a local instance) with 1 and 2 workers. Then the same
builds in one process with Ray already started (what a cluster that is up costs per build: no process start,
no imports, no Ray start-up). Prints JSON: wall seconds, realtime factor (recorded seconds per wall second),
speed-ups from 1 to 2 workers, the Ray overhead at 1 worker, and the per-episode cost and MCAP bytes per
recorded hour the projection in BENCHMARKS.md starts from. The recordings are synthesized once into bench/out/ (reference_10min is copied
when present; the episodes are then identical, which does not change what a conversion costs).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
EPISODE_MINUTES = 10


def recordings(episodes: int) -> Path:
    from events_stage import recording  # bench/events_stage.py: the 10-minute reference recording, made once

    folder = OUT / f"ray_{episodes}x{EPISODE_MINUTES}min"
    source = recording(EPISODE_MINUTES)
    for index in range(episodes):
        target = folder / f"episode_{index:03d}.mcap"
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    for media in source.parent.iterdir():  # the (empty) video the screen messages reference
        if media.suffix != ".mcap" and not (folder / media.name).exists():
            shutil.copy(media, folder / media.name)
    return folder


def timed_build(data_dir: Path, engine: str, num_proc: int) -> float:
    with tempfile.TemporaryDirectory(prefix="ray_bench_") as scratch:
        command = [sys.executable, "-m", "owa_builders.cli", "build", "owa_events", "--name", "desktop",
                   "--data-dir", str(data_dir), "--output-dir", str(Path(scratch, "out")), "--format", "parquet",
                   "--engine", engine, "--num-proc", str(num_proc), "-q"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_TMPDIR": scratch}
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def timed_builds_in_process(data_dir: Path, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """build_dataset with Ray started once beforehand (2 CPUs), fastest of `repeats`, per setting: the whole
    call, and its conversion phase (first episode sent to last one committed)."""
    import ray

    import owa_builders

    times, conversions = {}, {}
    with tempfile.TemporaryDirectory(prefix="ray_bench_") as scratch:
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=scratch, logging_level="ERROR")
        try:
            for name, engine, num_proc in [("local_1", "local", 1), ("local_2", "local", 2), ("ray_1", "ray", 1),
                                           ("ray_2", "ray", 2)]:
                reports = [owa_builders.build_dataset("owa_events", "desktop", data_dir, Path(scratch, f"{name}_{i}"),
                                                      engine=engine, num_proc=num_proc, progress=False)
                           for i in range(repeats)]
                times[name] = min(report.seconds for report in reports)
                conversions[name] = min(report.conversion_seconds for report in reports)
        finally:
            ray.shutdown()
    return times, conversions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each setting; the fastest is reported")
    args = parser.parse_args()
    # Ray's token auth with a token of this run's own (nothing written to ~/.ray), no usage stats
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
    data_dir = recordings(args.episodes)
    recorded_s = args.episodes * EPISODE_MINUTES * 60
    mcap_bytes = sum(path.stat().st_size for path in data_dir.glob("*.mcap"))
    runs = {}
    for name, engine, num_proc in [("local_1", "local", 1), ("ray_1", "ray", 1), ("ray_2", "ray", 2),
                                   ("local_2", "local", 2)]:
        runs[name] = min(timed_build(data_dir, engine, num_proc) for _ in range(args.repeats))
    started, conversion = timed_builds_in_process(data_dir, args.repeats)
    print(json.dumps({
        "episodes": args.episodes, "recorded_minutes": recorded_s / 60, "cpus": os.cpu_count(),
        "mcap_bytes_per_recorded_hour": round(mcap_bytes / (recorded_s / 3600)),
        "wall_s": {name: round(seconds, 2) for name, seconds in runs.items()},
        "realtime_factor": {name: round(recorded_s / seconds, 1) for name, seconds in runs.items()},
        "ray_speedup_1_to_2_workers": round(runs["ray_1"] / runs["ray_2"], 2),
        "local_speedup_1_to_2_processes": round(runs["local_1"] / runs["local_2"], 2),
        "ray_overhead_at_1_worker_s": round(runs["ray_1"] - runs["local_1"], 2),
        "local_1_seconds_per_episode": round(runs["local_1"] / args.episodes, 2),
        "ray_already_started": {
            "wall_s": {name: round(seconds, 2) for name, seconds in started.items()},
            "ray_speedup_1_to_2_workers": round(started["ray_1"] / started["ray_2"], 2),
            "local_speedup_1_to_2_processes": round(started["local_1"] / started["local_2"], 2),
            "ray_overhead_at_1_worker_s": round(started["ray_1"] - started["local_1"], 2),
            "seconds_per_episode_ray_1": round(started["ray_1"] / args.episodes, 2),
            "conversion_s": {name: round(seconds, 2) for name, seconds in conversion.items()},
            "conversion_ray_speedup_1_to_2_workers": round(conversion["ray_1"] / conversion["ray_2"], 2),
            "conversion_local_speedup_1_to_2_processes": round(conversion["local_1"] / conversion["local_2"], 2),
        },
    }, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
