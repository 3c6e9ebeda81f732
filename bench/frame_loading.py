"""Frame loading speed: frames per second the fsl transform delivers over a shuffled pass.

    .venv/bin/python bench/frame_loading.py [--minutes 10] [--video-size 64x48] [--max-length 4096] [--repeats 3]

The reference recording (reference profile, synthesized once into bench/out/ with its H.264 video: 60 Hz,
a keyframe a second) is built into an owa_fsl dataset (`internvl3` config with its offline stand-in
tokenizer, rows of --max-length tokens; screen at 20 Hz as in the owa_events `desktop` config). One
process reads every row, in a shuffled order, through the fsl transform (`make_transform`: stage and
recordings' root from the dataset), which returns PIL images.

The baseline delivers the same frames (those of the first --baseline-rows rows of the same order) by
opening the video with PyAV and seeking for each frame separately, then decoding up to it. Both include
the conversion to PIL images; the first baseline frames are checked equal to the transform's. Each pass
runs --repeats times and the fastest counts (the machine is shared): the transform's later passes find
the decoder mediaref keeps open, as every epoch after the first of a training run does.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from fractions import Fraction
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def recording(minutes: int, video_size: tuple[int, int]) -> Path:
    """A reference-profile episode with its video, synthesized once."""
    from owa_builders.synth import SynthProfile, synthesize_episode

    width, height = video_size
    path = OUT / f"reference_{minutes}min_video_{width}x{height}" / "episode.mcap"
    if not path.exists():
        synthesize_episode(path, SynthProfile(duration_s=minutes * 60, video_size=video_size, seed=0))
    return path


def fsl_rows(path: Path, max_length: int):
    """The recording as owa_fsl rows (InternVL3 image pattern, offline stand-in tokenizer), built once."""
    import datasets

    import owa_builders  # noqa: F401  (registers the builders)
    from owa_builders.fsl.stand_in import internvl_stand_in

    tokenizer = OUT / "internvl_stand_in"
    if not tokenizer.exists():
        internvl_stand_in(tokenizer)
    return datasets.load_dataset("owa_fsl", "internvl3", data_dir=str(path.parent), tokenizer=str(tokenizer),
                                 max_length=max_length, cache_dir=str(OUT / "hf_cache"))["train"]


def transform_pass(rows, order: list[int]) -> tuple[float, int, list]:
    """Seconds to read every row in `order` through the fsl transform; frames delivered; the first row's images."""
    from owa_builders.media import make_transform
    from owa_builders.media.tensors import default_tensor_type

    if default_tensor_type() == "pt":
        import torch  # noqa: F401  (imported on the first row otherwise; a training script has it already)

    dataset = rows.with_transform(make_transform(rows))
    start, frames, first = time.perf_counter(), 0, None
    for index in order:
        images = dataset[index]["images"]
        frames += len(images)
        first = images if first is None else first
    return time.perf_counter() - start, frames, first


def decode_alone(video: str, pts_ns: int):
    """The baseline: open the video, seek to the keyframe before the frame, decode up to it."""
    import av
    from PIL import Image

    with av.open(video) as container:
        stream = container.streams.video[0]
        target = int(Fraction(pts_ns, 10**9) / stream.time_base)
        container.seek(target, stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.pts >= target:
                return Image.fromarray(frame.to_ndarray(format="rgb24"))
    raise ValueError(f"{video}: no frame at pts_ns={pts_ns}")


def baseline_pass(rows, video: Path, order: list[int]) -> tuple[float, int, list]:
    import orjson

    start, frames, first = time.perf_counter(), 0, None
    for index in order:
        images = [decode_alone(str(video), orjson.loads(screen)["media_ref"]["pts_ns"]) for screen in rows[index]["images"]]
        frames += len(images)
        first = images if first is None else first
    return time.perf_counter() - start, frames, first


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--video-size", default="64x48", help="WxH of the recording's video")
    parser.add_argument("--max-length", type=int, default=4096, help="tokens per fsl row")
    parser.add_argument("--baseline-rows", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    width, height = map(int, args.video_size.split("x"))

    path = recording(args.minutes, (width, height))
    rows = fsl_rows(path, args.max_length)
    order = random.Random(args.seed).sample(range(len(rows)), len(rows))
    def fastest(run):
        return min((run() for _ in range(args.repeats)), key=lambda result: result[0])

    ours_s, ours_frames, ours_first = fastest(lambda: transform_pass(rows, order))
    base_s, base_frames, base_first = fastest(
        lambda: baseline_pass(rows, path.with_suffix(".mkv"), order[: args.baseline_rows]))
    if not all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ours_first, base_first, strict=True)):
        raise AssertionError("the baseline decoded other frames than the transform")
    ours_fps, base_fps = ours_frames / ours_s, base_frames / base_s
    print(json.dumps({
        "recording_minutes": args.minutes,
        "video_size": args.video_size,
        "rows": len(rows),
        "max_length": args.max_length,
        "transform_frames": ours_frames,
        "transform_s": round(ours_s, 2),
        "transform_fps": round(ours_fps),
        "baseline_frames": base_frames,
        "baseline_s": round(base_s, 2),
        "baseline_fps": round(base_fps),
        "speedup_x": round(ours_fps / base_fps, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
