"""The training-loader examples, run as a user runs them: one process, and torchrun with 2 ranks on gloo."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from media_fixtures import load_fsl

import owa_builders
from owa_builders.synth import SynthProfile, synthesize_recordings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def fsl_dataset(internvl_folder, tmp_path_factory) -> Path:
    """An owa_fsl dataset saved to disk, cut to an odd number of rows: the two ranks get parts of different sizes."""
    recordings = tmp_path_factory.mktemp("recordings")
    synthesize_recordings(recordings, episodes=2, profile=SynthProfile(duration_s=3))
    train = load_fsl(recordings, tmp_path_factory.mktemp("cache"), internvl_folder)["train"]
    odd = train.select(range(len(train) - 1 + len(train) % 2))
    path = tmp_path_factory.mktemp("fsl") / "dataset"
    owa_builders.save_to_disk(datasets.DatasetDict({"train": odd}), path)
    return path


def run(command: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("options", [[], ["--padding-free", "--sequences", "events"]])
def test_single_gpu_example_trains_on_a_shuffled_loader(fsl_dataset, options):
    output = run([sys.executable, str(EXAMPLES / "single_gpu.py"), str(fsl_dataset), "--batch-size", "4",
                  "--epochs", "2", *options])
    rows = len(datasets.load_from_disk(str(fsl_dataset))["train"])
    assert re.search(rf"^{2 * rows} rows, \d+ frames", output, re.MULTILINE), output
    assert "epoch 1:" in output


def test_multi_gpu_example_ranks_together_read_every_row_once(fsl_dataset):
    output = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                  str(EXAMPLES / "multi_gpu.py"), str(fsl_dataset), "--batch-size", "3",
                  "--num-workers", "0"])  # loader workers are tested elsewhere; fewer threads at gloo teardown
    read = re.findall(r"^rank (\d) read rows (\[.*\])$", output, re.MULTILINE)
    parts = {int(rank): ast.literal_eval(rows) for rank, rows in read}
    rows = len(datasets.load_from_disk(str(fsl_dataset))["train"])
    assert sorted(parts) == [0, 1] and len(parts[0]) == len(parts[1]) + 1  # odd rows: DDP's join() at work
    assert sorted(parts[0] + parts[1]) == list(range(rows))
