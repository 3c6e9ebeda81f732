"""A whole `owa-builders build owa_fsl --name internvl3` as a user runs it: recordings → fsl, fresh cache.

    .venv/bin/python bench/end_to_end.py [--cases small long long_np2 6h 6h_np2] [--repeats 1] [--warm-tokenizer-cache]
                                         [--profile CASE]

Each case runs the CLI command in a fresh process with a fresh, empty ``HF_DATASETS_CACHE`` (so stage 1
and stage 2 both convert and the tokenizer is expanded) and reports its wall time, realtime factor
(recording seconds / wall seconds), CPU seconds (user + system, all of its processes) and peak RSS (the
largest of its processes, workers included). ``--warm-tokenizer-cache``: ``HF_DATASETS_CACHE`` is kept
(bench/out/e2e_hf_cache), so the expanded tokenizer is cached there after the first run, and each run
builds into a fresh ``--cache-dir`` (a user's second build of other recordings).

- ``small``: one 10-second recording (the fixed cost of every build);
- ``long``: 60 minutes, 6 ten-minute episodes, ``--num-proc 1``; ``long_np2``: the same, ``--num-proc 2``;
- ``6h`` / ``6h_np2``: 6 hours, the 60 minutes six times over (hard links in six subfolders: 36 episodes),
  to see how ``--num-proc 2`` scales once the command's fixed cost is small beside the work.

Recordings are the reference profile (`owa_builders.synth`, as bench/events_stage.py: 60 Hz screen, 1 kHz
``mouse/raw``, 100 Hz ``mouse``, typing; no video pixels, an empty placeholder is referenced), synthesized
once into bench/out/. Tokenizer: the labelled InternVL stand-in (`owa_builders.fsl.stand_in`), written once
into bench/out/ and passed with ``--set tokenizer=<folder>`` (the Hub is unreachable here).
``--profile CASE`` runs that case once under cProfile and prints the functions with the most cumulative time.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
PYTHON = sys.executable
CLI = Path(PYTHON).with_name("owa-builders")


def recordings(name: str, episodes: int, seconds: float) -> Path:
    """A folder of `episodes` reference-profile recordings of `seconds` each (written once)."""
    from owa_builders.synth import SynthProfile, synthesize_recordings

    folder = OUT / f"e2e_{name}"
    done = folder / "DONE"
    if not done.exists():
        profile = SynthProfile(duration_s=seconds, video=False, seed=0)
        for manifest in synthesize_recordings(folder, episodes=episodes, profile=profile):
            (Path(manifest.mcap_path).parent / manifest.video_uri).write_bytes(b"")  # referenced, never opened
        done.write_text("")
    return folder


def tokenizer_folder() -> Path:
    from owa_builders.fsl.stand_in import internvl_stand_in

    folder = OUT / "tokenizers" / "internvl3-stand-in"
    if not (folder / "tokenizer.json").exists():
        internvl_stand_in(folder)
    return folder


def replicated(folder: Path, copies: int) -> Path:
    """`folder`'s recordings `copies` times over, as hard links in subfolders copy_0, copy_1, ... (made once)."""
    target = folder.with_name(f"{folder.name}_x{copies}")
    for copy in range(copies):
        subfolder = target / f"copy_{copy}"
        subfolder.mkdir(parents=True, exist_ok=True)
        for file in folder.glob("episode_*"):
            if not (subfolder / file.name).exists():
                os.link(file, subfolder / file.name)
    return target


CASES = {  # name: (recordings folder name, episodes, seconds each, copies, num_proc)
    "small": ("10s", 1, 10.0, 1, 1),
    "long": ("60min", 6, 600.0, 1, 1),
    "long_np2": ("60min", 6, 600.0, 1, 2),
    "6h": ("60min", 6, 600.0, 6, 1),
    "6h_np2": ("60min", 6, 600.0, 6, 2),
}
DEFAULT_CASES = ["small", "long", "long_np2"]


def command(case: str) -> tuple[list[str], float]:
    """The CLI arguments of a case and the seconds of recordings it converts."""
    name, episodes, seconds, copies, num_proc = CASES[case]
    data = recordings(name, episodes, seconds)
    if copies > 1:
        data = replicated(data, copies)
    args = ["build", "owa_fsl", "--name", "internvl3", "--data-dir", str(data), "--num-proc", str(num_proc),
            "--set", f"tokenizer={tokenizer_folder()}", "-q"]
    return args, episodes * seconds * copies


# Runs the command as a child and prints its wall seconds and the peak RSS (kB) of its process tree: the
# largest ru_maxrss of the waited-for descendants (datasets' worker pool processes are waited for).
_TIMER = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)\n"
)


def run(case: str, warm_tokenizer_cache: bool) -> dict:
    args, seconds = command(case)
    with tempfile.TemporaryDirectory() as cache:
        if warm_tokenizer_cache:
            env = {"HF_DATASETS_CACHE": str(OUT / "e2e_hf_cache")}
            args += ["--cache-dir", cache]
        else:
            env = {"HF_DATASETS_CACHE": cache}
        output = subprocess.run([PYTHON, "-c", _TIMER, str(CLI), *args], env=os.environ | env | {"HF_HUB_OFFLINE": "1"},
                                check=True, capture_output=True, text=True).stdout
    wall, cpu, rss_kb = map(float, output.split())
    return {"case": case, "warm_tokenizer_cache": warm_tokenizer_cache, "recording_s": seconds,
            "wall_s": round(wall, 2), "realtime_x": round(seconds / wall), "cpu_s": round(cpu, 2),
            "peak_rss_mb": round(rss_kb / 1024)}


def profile(case: str, top: int = 40) -> None:
    args, _ = command(case)
    with tempfile.TemporaryDirectory() as cache:
        stats = Path(cache, "profile.out")
        env = os.environ | {"HF_DATASETS_CACHE": cache, "HF_HUB_OFFLINE": "1"}
        subprocess.run([PYTHON, "-m", "cProfile", "-o", str(stats), "-m", "owa_builders.cli", *args], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        pstats.Stats(str(stats)).sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", choices=CASES, default=DEFAULT_CASES)
    parser.add_argument("--repeats", type=int, default=1, help="runs per case; the best is reported")
    parser.add_argument("--warm-tokenizer-cache", action="store_true", help="keep HF_DATASETS_CACHE between runs")
    parser.add_argument("--profile", choices=CASES, help="profile one run of this case instead")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.profile:
        profile(args.profile)
        return
    print(json.dumps({"load_average_1min": round(os.getloadavg()[0], 2), "time": time.strftime("%F %T")}))
    for case in args.cases:
        runs = [run(case, args.warm_tokenizer_cache) for _ in range(args.repeats)]
        print(json.dumps(min(runs, key=lambda result: result["wall_s"])))


if __name__ == "__main__":
    main()
