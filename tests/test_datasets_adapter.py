"""The datasets coupling: parquet output for every builder, the builder contract, the import, logging, and
no private datasets name used outside the adapter."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import owa_builders
from owa_builders.metadata import METADATA_FILE

PROJECT = Path(__file__).resolve().parents[1]

PARQUET_BUILDS = [("owa_events", "desktop", {}), ("owa_binned", "10fps", {}), ("owa_fsl", "internvl3", {})]


@pytest.mark.parametrize(("builder", "config", "_"), PARQUET_BUILDS)
def test_download_and_prepare_writes_parquet(fsl_recordings, internvl_folder, tmp_path, builder, config, _):
    overrides = {"tokenizer": str(internvl_folder)} if builder == "owa_fsl" else {}
    stage = owa_builders.builder_class(builder)(config_name=config, data_dir=str(fsl_recordings),
                                                cache_dir=str(tmp_path / "cache"), **overrides)
    out = tmp_path / "out"
    stage.download_and_prepare(str(out), file_format="parquet")
    (shard,) = out.glob(f"{builder}-train*.parquet")
    rows = pq.read_table(shard)
    assert rows.num_rows == stage.info.splits["train"].num_examples > 0
    assert not list(out.glob("*.arrow"))
    metadata = json.loads((out / METADATA_FILE).read_text())
    assert metadata["builder"] == builder and metadata["config"] == config
    if builder == "owa_fsl":  # the fill is read back from the parquet rows
        assert metadata["fill"]["total"]["rows"] == rows.num_rows
        assert metadata["fill"]["total"]["tokens"] == sum(rows.column("num_tokens").to_pylist())


def test_each_episode_is_an_original_shard(fsl_recordings, tmp_path):
    stage = owa_builders.builder_class("owa_events")(config_name="default", data_dir=str(fsl_recordings),
                                                     cache_dir=str(tmp_path))
    episodes = list(enumerate(stage._recordings()))
    assert list(stage._generate_shards(episodes=episodes, split="train", accounting_dir=None)) == [
        "episode_000.mcap", "episode_001.mcap", "episode_002.mcap"]


def test_import_is_cheap_and_configures_no_logging():
    script = (
        "import logging, sys, owa_builders\n"
        "log = logging.getLogger('owa_builders')\n"
        "print(log.handlers, log.level, log.propagate)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'av', 'PIL', 'owa_builders.media', 'owa_builders.publish')"
        " if m in sys.modules))\n"
        "owa_builders.FslCollator\n"
        "print('owa_builders.media' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["[] 0 True", "[]", "True"]


# What reaches into datasets beyond its public API (see owa_builders/datasets_adapter.py).
PRIVATE_USE = re.compile(
    r"datasets\.[a-z_.]*\._|_PACKAGED_DATASETS_MODULES|_download_and_prepare|_output_dir|_cache_dir_root"
    r"|_make_split_generators_kwargs|_prepare_split_single|\._indices\b|\._file_format|datasets\.naming"
    r"|camelcase_to_snakecase|DataFilesList|DataFilesDict|StreamingDownloadManager|datasets\.load\b"
    r"|from datasets\.(data_files|download|naming|packaged_modules|load|utils)")


def test_only_the_adapter_uses_datasets_internals():
    sources = sorted((PROJECT / "owa_builders").rglob("*.py")) + sorted((PROJECT / "builders").rglob("*.py"))
    users = {str(path.relative_to(PROJECT)) for path in sources if PRIVATE_USE.search(path.read_text())}
    assert users == {"owa_builders/datasets_adapter.py"}
