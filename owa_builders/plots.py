"""Pictures of what the builders do, as PNG (matplotlib's Agg canvas; no display, no global pyplot state).

- `plot_episode_timeline`: an episode's messages per topic over time, those the events stage keeps and
  those it drops, with the intervals it keeps shaded.
- `plot_fsl_row`: one packed owa_fsl row, wrapped into lines: event tokens (alternating shades, one per
  event), image tokens, padding, and where each event starts.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

import datasets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from tqdm.auto import tqdm

from ._registry import builder_class
from .config_files import load_config
from .events.settings import EventsSettings
from .events.stage import convert_episode, survey_episode
from .fsl.tokenizer import FslTokenizer
from .metadata import DatasetMetadata, read_dataset_metadata
from .recordings.episodes import Episode
from .summary import EpisodeScan, RecordingsSummary, summarize_dataset
from .units import NS_PER_S

logger = logging.getLogger("owa_builders")

KEPT, DROPPED, INTERVAL = "#1f77b4", "#d62728", "#dff0d8"
PADDING, EVENT_A, EVENT_B, IMAGE, EPISODE_START = "#e8e8e8", "#ffb74d", "#e65100", "#42a5f5", "#2e7d32"
DPI = 100
WIDTH_PX = 1300


def _figure(height_px: int) -> Figure:
    """A figure that saves as WIDTH_PX × height_px pixels (sized half a pixel more: the canvas rounds down)."""
    return Figure(figsize=((WIDTH_PX + 0.5) / DPI, (height_px + 0.5) / DPI))


def _save(figure: Figure, out_png: str | os.PathLike) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(out, dpi=DPI)
    return out


# -- episode timeline -------------------------------------------------------------------------------------


def plot_episode_timeline(
    episode_path: str | os.PathLike,
    settings_or_config: EventsSettings | str | os.PathLike,
    out_png: str | os.PathLike,
    root: str | os.PathLike | None = None,
) -> Path:
    """Draw one episode as the events stage sees it with `settings_or_config` (settings, an owa_events named
    config's name or a YAML file of one). `root`: the recordings folder (default: the episode's folder),
    against which media references are checked. Raises BadRecordingError for a recording it cannot convert."""
    settings = settings_or_config if isinstance(settings_or_config, EventsSettings) else (
        load_config("owa_events", settings_or_config))
    path = Path(episode_path).resolve()
    episode = Episode(str(path), str(Path(root).resolve() if root else path.parent))
    scan = EpisodeScan()
    scan.read(episode)
    read = scan.topic_times()
    survey = survey_episode(episode, settings)
    rows, accounting = convert_episode(episode, settings)
    topics = np.asarray(rows.column("topic").to_numpy(zero_copy_only=False), dtype=object)
    kept_times = rows.column("timestamp_ns").to_numpy()
    start, end = survey.start_ns, survey.end_ns
    if start is None:
        raise ValueError(f"{path}: the episode has no messages, nothing to draw")
    span_s = max((end - start) / NS_PER_S, 1e-9)

    lanes = sorted(read, key=lambda topic: (topic not in survey.topics.kept, topic), reverse=True)  # kept on top
    height = 190 + 62 * len(lanes)  # pixels: title and legend 90, x axis 60, a lane 62
    figure = _figure(height)
    axes = figure.add_axes((0.13, 60 / height, 0.58, 1 - 150 / height))
    kept_intervals = [(start, end)] if survey.intervals is None else [
        (max(a, start), min(b, end)) for a, b in survey.intervals.pairs() if b >= start and a <= end]
    for a, b in kept_intervals:
        axes.axvspan((a - start) / NS_PER_S, (b - start) / NS_PER_S, color=INTERVAL, zorder=0)
    bins = round(axes.get_position().width * WIDTH_PX)  # one per pixel: each at least a pixel wide
    labels = []
    for lane, topic in enumerate(lanes):
        kept = kept_times[topics == topic]
        dropped = read[topic][~np.isin(read[topic], kept)]
        for times, y, color in ((kept, lane + 0.02, KEPT), (dropped, lane - 0.42, DROPPED)):
            runs = _runs(times, start, span_s, bins)
            axes.broken_barh(runs, (y, 0.4), color=color, linewidth=0, antialiased=False)
        counts = accounting.topic(topic)
        made = f" (+{counts.synthesized:,} made)" if counts.synthesized else ""
        labels.append(f"{topic}\n{counts.kept:,} kept of {counts.read:,}{made}")
        reasons = "\n".join(f"{reason} {n:,}" for reason, n in sorted(counts.dropped.items()) if n)
        axes.text(1.01, lane, f"dropped: {reasons}" if reasons else "nothing dropped", fontsize=8, color="#555555",
                  transform=axes.get_yaxis_transform(), va="center")
    axes.set_yticks(range(len(lanes)), labels, fontsize=9)
    axes.set_ylim(-0.6, len(lanes) - 0.4)
    axes.set_xlim(-0.01 * span_s, 1.01 * span_s)  # events at either end stay clear of the frame
    axes.set_xlabel("seconds since the episode's first message")
    axes.grid(axis="x", color="#bbbbbb", linewidth=0.5)
    axes.set_axisbelow(True)
    total = accounting.totals()
    name = getattr(settings, "name", None)
    kept_s = sum(b - a for a, b in kept_intervals) / NS_PER_S
    config = f"owa_events/{name}" if name else "custom settings"
    figure.suptitle(f"{episode.relative_path} through the events stage ({config})\n"
                    f"kept {total.kept:,} of {total.read:,} messages"
                    + (f" (+{total.synthesized:,} rows made by rate policies)" if total.synthesized else "") + "; "
                    f"the intervals keep {kept_s:.1f} of {span_s:.1f} s", fontsize=11)
    axes.legend(handles=[Patch(color=KEPT, label="kept or made (upper half of a lane)"),
                         Patch(color=DROPPED, label="dropped (lower half)"),
                         Patch(color=INTERVAL, label="kept intervals")],
                loc="upper left", bbox_to_anchor=(1.0, 1.0 + 90 / height), fontsize=8, frameon=False)
    return _save(figure, out_png)


def _runs(times: np.ndarray, start: int, span_s: float, bins: int) -> list[tuple[float, float]]:
    """(x, width) in seconds of the runs of `bins` time bins across the episode holding any of `times`: drawn so,
    any number of events takes as long as a few thousand rectangles, and each shows."""
    if not len(times):
        return []
    width_s = span_s / bins
    occupied = np.unique(np.minimum(((times - start) / NS_PER_S / width_s).astype(np.int64), bins - 1))
    breaks = np.flatnonzero(np.diff(occupied) > 1) + 1
    return [(int(run[0]) * width_s, len(run) * width_s) for run in np.split(occupied, breaks)]


def plot_timelines(
    summary: RecordingsSummary, settings_or_config: EventsSettings | str | os.PathLike, out_dir: str | os.PathLike,
    progress: bool = False,
) -> list[Path]:
    """The timeline of each episode of a recordings summary without a problem: OUT_DIR/timeline_<episode>.png."""
    good = [episode for episode in summary.episodes if episode.problem is None]
    return [plot_episode_timeline(Path(summary.root, episode.path), settings_or_config,
                                  Path(out_dir, f"timeline_{_file_stem(episode.path)}.png"), root=summary.root)
            for episode in tqdm(good, desc="plotting timelines", unit="episode", disable=not progress)]


def _file_stem(episode_path: str) -> str:
    return episode_path.removesuffix(".mcap").replace("/", "__")


# -- fsl row ----------------------------------------------------------------------------------------------


def plot_fsl_row(
    dataset_row: Mapping,
    tokenizer_or_metadata: FslTokenizer | DatasetMetadata | Mapping,
    out_png: str | os.PathLike,
    episode_start: bool = False,
) -> Path:
    """Draw one owa_fsl row (a dict of its columns). `tokenizer_or_metadata`: the `FslTokenizer` it was built with,
    or the dataset's metadata (`read_dataset_metadata`), or its tokenizer entry, for the image token ids.
    `episode_start`: the row is its episode's first, so the episode starts at its first token."""
    source = tokenizer_or_metadata
    if isinstance(source, FslTokenizer):
        image_ids = source.image_ids
    elif isinstance(source, DatasetMetadata):
        image_ids = source.tokenizer["image_token_ids"]
    else:
        image_ids = source["image_token_ids"]
    ids = np.asarray(dataset_row["input_ids"])
    used = np.asarray(dataset_row["attention_mask"]).astype(bool)
    offsets = np.asarray(dataset_row["event_offsets"], dtype=np.int64)
    length = len(ids)

    kind = np.zeros(length, dtype=np.int8)  # 0 padding, 1 and 2 event tokens (alternating per event), 3 image
    event_of_token = np.searchsorted(offsets, np.arange(length), side="right") - 1
    kind[used] = 1 + event_of_token[used] % 2
    kind[used & np.isin(ids, image_ids)] = 3
    columns = 2 ** math.ceil(math.log2(math.sqrt(4 * length)))  # about four times wider than high
    lines = math.ceil(length / columns)
    grid = np.zeros(lines * columns, dtype=np.int8)
    grid[:length] = kind

    grid_height = round(lines * 0.885 * WIDTH_PX / columns)  # square cells
    height = 145 + grid_height  # pixels: title and legend 90, x axis 55
    figure = _figure(height)
    axes = figure.add_axes((0.07, 55 / height, 0.885, grid_height / height))
    axes.imshow(grid.reshape(lines, columns), cmap=ListedColormap([PADDING, EVENT_A, EVENT_B, IMAGE]), vmin=-0.5,
                vmax=3.5, interpolation="nearest", aspect="auto", extent=(0, columns, lines, 0))
    axes.vlines(offsets % columns, offsets // columns, offsets // columns + 1, color="black", linewidth=1.3)
    step = max(1, lines // 8)
    axes.set_yticks(np.arange(0, lines, step) + 0.5, [f"{line * columns:,}" for line in range(0, lines, step)],
                    fontsize=8)
    axes.set_xticks(range(0, columns + 1, columns // 8), [f"+{x}" for x in range(0, columns + 1, columns // 8)],
                    fontsize=8)
    axes.set_ylabel("token offset of the line")
    axes.set_xlabel(f"token within the line ({columns} per line)")
    handles = [Patch(color=EVENT_A, label="event tokens"),
               Patch(color=EVENT_B, label="the next event's (shades alternate)"),
               Patch(color=IMAGE, label="image tokens"), Patch(color=PADDING, label="padding"),
               Line2D([], [], color="black", linewidth=1.3, label="an event starts")]
    if episode_start:
        axes.plot([0.5], [0.5], marker="*", markersize=16, color=EPISODE_START, markeredgecolor="white",
                  linestyle="none")
        handles.append(Line2D([], [], marker="*", markersize=12, color=EPISODE_START, linestyle="none",
                              label="the episode starts"))
    axes.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(handles), fontsize=8,
                frameon=False)
    tokens = int(used.sum())
    seconds = (dataset_row["last_timestamp_ns"] - dataset_row["first_timestamp_ns"]) / NS_PER_S
    figure.suptitle(f"owa_fsl row of {dataset_row['episode_path']}: {tokens:,} of {length:,} tokens used "
                    f"({tokens / length:.1%}), {len(offsets)} events over {seconds:.2f} s, "
                    f"{dataset_row['num_images']} images", fontsize=11)
    return _save(figure, out_png)


# -- a built dataset --------------------------------------------------------------------------------------


def plot_dataset(
    dataset: datasets.Dataset | datasets.DatasetDict,
    out_dir: str | os.PathLike,
    split: str | None = None,
    row: int = 0,
) -> list[Path]:
    """The pictures of a dataset built by our builders: for owa_fsl its row `row` of `split` (default: the first
    split); for every stage the timeline of that row's episode through the events settings the rows went through,
    when the dataset says which and its recordings are still where it was built from."""
    summary = summarize_dataset(dataset)
    splits = dataset if isinstance(dataset, datasets.DatasetDict) else {next(iter(summary.rows)): dataset}
    split = split or next(iter(splits))
    if split not in splits:
        raise ValueError(f"split {split!r} is not in the dataset; it has {list(splits)}")
    rows = splits[split]
    if not 0 <= row < rows.num_rows:
        raise ValueError(f"row {row} is out of range: split {split!r} has {rows.num_rows} rows")
    picked = rows[row]
    written = []
    if summary.builder == "owa_fsl":
        episode_start = row == 0 or rows[row - 1]["episode_path"] != picked["episode_path"]
        out_png = Path(out_dir, f"fsl_row_{split}_{row}.png")
        written.append(plot_fsl_row(picked, read_dataset_metadata(dataset), out_png, episode_start=episode_start))
    settings = summary.settings if summary.builder == "owa_events" else (summary.events or {}).get("settings")
    recording = Path(summary.recordings_root or "", picked["episode_path"])
    if settings is None or summary.recordings_root is None or not recording.is_file():
        logger.warning("no timeline: the dataset does not say which recordings and events settings it came from, "
                       "or %s is gone", recording)
        return written
    events_config = summary.config if summary.builder == "owa_events" else summary.events["config"]
    config = builder_class("owa_events").BUILDER_CONFIG_CLASS(name=events_config, **settings)
    written.append(plot_episode_timeline(recording, config,
                                         Path(out_dir, f"timeline_{_file_stem(picked['episode_path'])}.png"),
                                         root=summary.recordings_root))
    return written
