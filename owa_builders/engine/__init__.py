"""Building a stage into a parquet folder (the Hub's layout), on this machine or on a Ray cluster, resumably.

    report = owa_builders.build_dataset("owa_events", "desktop", "recordings/", "event-dataset/", engine="ray")
    print(report.reused, report.converted)
    dataset = owa_builders.load_from_disk("event-dataset/")

The builder decides everything about the rows: it lists the episodes and splits (`episode_splits`) and
converts an episode (`episode_tables`, on_bad_files included), exactly as under `datasets.load_dataset`; an
engine only decides where that runs. The output is described in `parquet_output`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from .._registry import builder_class
from ..events.event_input import EventRowsBuilder, input_kind
from .local_engine import LocalEngine
from .parquet_output import WORK_FOLDER, ParquetOutput, convert_episode, episode_jobs, write_shard
from .ray_engine import RayEngine

logger = logging.getLogger("owa_builders")
Engine = Literal["local", "ray"]


@dataclass(frozen=True)
class BuildReport:
    output_dir: str
    rows: dict[str, int]  # per split
    converted: int  # episodes converted by this run
    reused: int  # episodes committed by an earlier run with the same inputs, config and code
    messages_read: int  # by the episodes this run converted
    seconds: float  # the whole build
    conversion_seconds: float  # from the first episode sent to the last one committed


def build_dataset(
    builder: str,
    config_name: str | None,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    engine: Engine = "local",
    num_proc: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    cache_dir: str | None = None,
    **overrides,
) -> BuildReport:
    """Build `builder`'s config `config_name` (fields overridden by keyword) from `data_dir` into `output_dir`:
    the rows of `datasets.load_dataset(builder, config_name, data_dir=...)`, same splits and order, as parquet
    shards with owa_dataset.json (and the fsl tokenizer). Episodes committed by an interrupted run with the same
    arguments are reused.

    engine: "local" (num_proc processes) or "ray" (a task per episode; at most num_proc at once, default the
    cluster's CPUs; ray_address joins a running cluster, else a local instance of num_proc CPUs is started).
    A later stage given recordings converts its events first: through the HF cache (cache_dir) on the local
    engine, as `load_dataset` does; on Ray, as a build of its own on the cluster, into OUT/.owa_build/events/.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"engine {engine!r}: use 'local' or 'ray'")
    started = time.perf_counter()
    instance = builder_class(builder)(config_name=config_name, data_dir=os.fspath(data_dir), cache_dir=cache_dir,
                                      **overrides)
    runner = RayEngine(num_proc, ray_address) if engine == "ray" else LocalEngine(num_proc)
    with runner:  # Ray started (or joined) once, for stage 1 too
        if engine == "ray" and isinstance(instance, EventRowsBuilder) and input_kind(data_dir) == "recordings":
            # stage 1 on the cluster too, into the output's work folder (resumable like the rest); then this stage
            # reads it as an event dataset, as a local build reads the events it built
            events = Path(output_dir, WORK_FOLDER, "events")
            build_dataset("owa_events", instance.config.events_config, data_dir, events, engine=engine,
                          num_proc=num_proc, progress=progress, cache_dir=cache_dir, **instance.config.events_kwargs())
            instance = builder_class(builder)(config_name=config_name, data_dir=os.fspath(events),
                                              cache_dir=cache_dir, **overrides)
        jobs = episode_jobs(instance, instance.episode_splits(num_proc=num_proc))
        output = ParquetOutput(output_dir)
        markers = {job.name: marker for job in jobs if (marker := output.committed(job)) is not None}
        todo = [job for job in jobs if job.name not in markers]
        read = 0
        with tqdm(total=len(jobs), initial=len(markers), unit="episode", disable=not progress,
                  desc=f"{builder}/{instance.config.name} ({engine})") as bar:
            converting = time.perf_counter()
            for marker in runner.map(_convert_episode, (instance, os.fspath(output.work)), todo):
                markers[marker["episode"]] = marker
                read += marker["accounting"]["totals"]["read"]
                bar.update()
                bar.set_postfix_str(f"{read / (time.perf_counter() - converting):,.0f} messages/s")
            converted = time.perf_counter() - converting
        rows = output.write_dataset(instance, jobs, markers,
                                    lambda plan, schema: list(runner.map(_write_shard, schema, plan)))
    report = BuildReport(os.fspath(output_dir), rows, len(todo), len(jobs) - len(todo), read,
                         time.perf_counter() - started, converted)
    logger.info("%s: %d episode(s) converted, %d reused from an earlier run; rows %s", output_dir, report.converted,
                report.reused, rows)
    return report


def _convert_episode(builder_and_work, job) -> dict:
    return convert_episode(*builder_and_work, job)


def _write_shard(schema, shard) -> None:
    path, parts = shard
    write_shard(path, parts, schema)
