"""owa-builders: OWAMcap recordings to HuggingFace datasets, from the shell.

  owa-builders synth recordings/ --episodes 3 --duration 60       # recordings to try things on
  owa-builders summary recordings recordings/ --plot plots/        # what is in them, and what is wrong
  owa-builders build --config configs/events_desktop.yaml --data-dir recordings/ --output-dir event-dataset/
  owa-builders build --config configs/fsl_internvl3.yaml --data-dir event-dataset/ --output-dir fsl-dataset/
  owa-builders build --config configs/binned_10fps.yaml --data-dir event-dataset/ --output-dir binned-dataset/
  owa-builders summary dataset fsl-dataset/ --plot plots/          # rows, fill, where every message went
  owa-builders push fsl-dataset/ my-org/my-dataset                 # to the Hub, with its videos and card
  owa-builders demo                                                # all of it on synthesized recordings

`owa-builders COMMAND --help` explains a command, with examples.

exit codes: 0 done; 1 bad input (one line naming the file and the problem; --debug shows the traceback);
2 wrong usage.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import sys
from collections.abc import Iterator

import yaml

from .stages import STAGE_OF_BUILDER

EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
_FORMAT = argparse.RawDescriptionHelpFormatter


def _parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set takes key=value (a YAML value), not {text!r}")
    return key, yaml.safe_load(value)


@contextlib.contextmanager
def _logging_for(args: argparse.Namespace) -> Iterator[None]:
    """Our logs on stderr as bare messages while a command runs; --quiet: no progress bars and no info logs
    (results and errors still show). The library itself configures no logging (datasets' convention)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    owa_logger = logging.getLogger("owa_builders")
    level, propagate = owa_logger.level, owa_logger.propagate
    owa_logger.addHandler(handler)
    owa_logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    owa_logger.propagate = False  # printed once, by our handler
    if args.quiet:
        import datasets
        import huggingface_hub

        datasets.disable_progress_bars()
        huggingface_hub.utils.disable_progress_bars()
    try:
        yield
    finally:
        owa_logger.removeHandler(handler)
        owa_logger.setLevel(level)
        owa_logger.propagate = propagate


def _build(args: argparse.Namespace) -> int:
    import datasets

    import owa_builders
    from owa_builders.config_files import read_config_file
    from owa_builders.summary import summarize_dataset

    if args.config:
        kwargs = read_config_file(args.config).load_dataset_kwargs()
    elif args.builder and args.name:
        kwargs = {"path": args.builder, "name": args.name}
    else:
        print("owa-builders build: give --config FILE, or a builder and --name", file=sys.stderr)
        return EXIT_USAGE
    kwargs.update(dict(args.set or []))
    if args.format == "parquet" or args.engine == "ray":
        if not args.output_dir:
            print("owa-builders build: --engine ray and --format parquet write to --output-dir: give it", file=sys.stderr)
            return EXIT_USAGE
        report = owa_builders.build_dataset(kwargs.pop("path"), kwargs.pop("name"), args.data_dir, args.output_dir,
                                            engine=args.engine, num_proc=args.num_proc, ray_address=args.ray_address,
                                            progress=not args.quiet, cache_dir=args.cache_dir, **kwargs)
        print(summarize_dataset(args.output_dir).render())
        print(f"\nwrote {args.output_dir} ({report.converted} episode(s) converted, {report.reused} reused "
              f"from an earlier run, {report.seconds:.1f} s)")
        return 0
    if args.ray_address:
        print("owa-builders build: --ray-address goes with --engine ray", file=sys.stderr)
        return EXIT_USAGE
    logging.getLogger("owa_builders").setLevel(logging.WARNING)  # the summary below says what the build logs
    dataset = datasets.load_dataset(**kwargs, data_dir=args.data_dir, num_proc=args.num_proc,
                                    cache_dir=args.cache_dir)
    if args.output_dir:
        owa_builders.save_to_disk(dataset, args.output_dir)  # with owa_dataset.json (and the fsl tokenizer)
        print(summarize_dataset(args.output_dir).render())
        print(f"\nsaved to {args.output_dir}")
    else:
        print(summarize_dataset(dataset).render())
    return 0


def _say(args: argparse.Namespace, text: str) -> None:
    """Notes beside the result: on stderr when stdout is JSON."""
    print(text, file=sys.stderr if args.json else sys.stdout)


def _summary_recordings(args: argparse.Namespace) -> int:
    from owa_builders.config_files import load_config
    from owa_builders.summary import summarize_recordings

    settings = load_config("owa_events", args.events_config)
    summary = summarize_recordings(args.folder, settings, progress=not args.quiet)
    print(json.dumps(summary.to_dict(), indent=1) if args.json else summary.render())
    if args.plot:
        from owa_builders.plots import plot_timelines

        for path in plot_timelines(summary, settings, args.plot, progress=not args.quiet):
            _say(args, f"wrote {path}")
    if summary.bad_episodes:
        print(f"owa-builders: {len(summary.bad_episodes)} recording(s) with a problem (listed above)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _summary_dataset(args: argparse.Namespace) -> int:
    import owa_builders
    from owa_builders.summary import summarize_dataset

    summary = summarize_dataset(args.path)
    print(json.dumps(summary.to_dict(), indent=1) if args.json else summary.render())
    if args.plot:
        from owa_builders.plots import plot_dataset

        for path in plot_dataset(owa_builders.load_from_disk(args.path), args.plot, args.split, args.row):
            _say(args, f"wrote {path}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from owa_builders.publish import push_folder  # imported only here: pushing needs what nothing else does

    report = push_folder(args.dataset_dir, args.repo_id, config_name=args.config_name, token=args.token,
                         private=args.private, revision=args.revision, commit_message=args.commit_message)
    print(f"pushed {args.dataset_dir} to {report.repo_id} as config {report.config_name!r} "
          f"(commit {report.commit[:12]})")
    print(f"  media, metadata, tokenizer and card: {len(report.uploaded)} file(s) sent "
          f"({report.uploaded_bytes:,} bytes), {len(report.unchanged)} already there, {len(report.deleted)} deleted")
    return 0


BUILD_EXAMPLES = """\
examples:
  # stage 1, recordings → event dataset (upstream owa-data: 01_raw_events_to_event_dataset.py)
  owa-builders build --config configs/events_desktop.yaml --data-dir recordings/ --output-dir event-dataset/
  # stage 2, event dataset → fsl dataset (02_event_to_fsl.py); offline, point tokenizer at a local copy
  owa-builders build --config configs/fsl_internvl3.yaml --data-dir event-dataset/ --output-dir fsl-dataset/ \\
      --set tokenizer=path/to/InternVL3-1B-hf/
  # binned steps (event_to_binned.py --fps 10 --filter-empty-actions)
  owa-builders build --config configs/binned_10fps.yaml --data-dir event-dataset/ --output-dir binned-dataset/ \\
      --set filter_empty_actions=true
  # a named config without a file, a field overridden, 4 processes
  owa-builders build owa_events --name desktop --data-dir recordings/ --set test_size=0.1 --num-proc 4
  # on a Ray cluster, into the Hub's parquet layout; run again after an interruption to resume
  owa-builders build owa_events --name desktop --data-dir recordings/ --output-dir event-dataset/ \\
      --engine ray --ray-address 10.0.0.1:6379

Builds go through datasets.load_dataset, so they are cached (HF cache, or --cache-dir): building again with
the same config and recordings costs nothing; with --format parquet or --engine ray, --output-dir keeps each
converted episode (OUT/.owa_build/), so a rerun with the same arguments reuses them. Later stages accept recordings as --data-dir too (converted
with the events config their events_config field names). The summary printed at the end is `summary dataset`'s.
"""

SUMMARY_RECORDINGS_EXAMPLES = """\
examples:
  owa-builders summary recordings recordings/
  owa-builders summary recordings recordings/ --events-config desktop --plot plots/
  owa-builders summary recordings recordings/ --json > recordings.json

Per episode: duration, messages and rate per topic, message types, the videos the screen messages reference
and whether they are there, and the first problem a conversion would meet (the same checks, run without
converting; no video is opened). Exits 1 when any recording has a problem, after summarizing all of them.
--plot draws each good episode as the events stage sees it with --events-config: messages per topic over time,
kept and dropped, the kept intervals shaded (OUT_DIR/timeline_<episode>.png).
"""

SUMMARY_DATASET_EXAMPLES = """\
examples:
  owa-builders summary dataset event-dataset/
  owa-builders summary dataset fsl-dataset/ --plot plots/ --row 5
  owa-builders summary dataset fsl-dataset/ --json

Rows per split, builder, config and version, the fsl fill and tokenizer, and the accounting: per topic the
messages read, kept and dropped by reason, and files skipped as bad (also of the events the rows came from).
--plot draws, for an owa_fsl dataset, row --row of --split (fsl_row_<split>_<row>.png: event tokens, image
tokens, padding, event starts), and for any stage the timeline of that row's episode through the dataset's
events settings, when its recordings are still where it was built from.
"""

PUSH_EXAMPLES = """\
examples:
  owa-builders push fsl-dataset/ my-org/owa-fsl-internvl3
  owa-builders push event-dataset/ my-org/owa-events --config-name desktop --private

DATASET_DIR is a folder written by `owa-builders build --output-dir` (or owa_builders.save_to_disk). A parquet
folder (--format parquet, --engine ray) over 5 GB goes up as it is with huggingface_hub's resumable folder upload:
after an interruption, push again. The token defaults to huggingface_hub's (HF_TOKEN, or `hf auth login`).
"""


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    common.add_argument("--debug", action="store_true", help="on an error, show its traceback too")

    main_parser = argparse.ArgumentParser(prog="owa-builders", description=__doc__, formatter_class=_FORMAT)
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser("build", parents=[common], formatter_class=_FORMAT, epilog=BUILD_EXAMPLES,
                                help="build a stage's dataset from recordings or a previous stage's dataset",
                                description="Build owa_events / owa_fsl / owa_binned (HF-cached), print its summary, "
                                            "and save it with --output-dir.")
    build.add_argument("builder", nargs="?", choices=list(STAGE_OF_BUILDER),
                       help="the stage (or use --config)")
    build.add_argument("--config", help="a YAML file under configs/ naming the builder, config and field values")
    build.add_argument("--name", help="the builder's named config (e.g. desktop, internvl3, 10fps)")
    build.add_argument("--data-dir", required=True,
                       help="recordings (*.mcap), or a dataset saved by a previous stage")
    build.add_argument("--output-dir", help="save the built dataset here, with owa_dataset.json (see --format)")
    build.add_argument("--num-proc", type=int,
                       help="convert at most this many episodes at once (processes, or Ray tasks)")
    build.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: this machine (default); ray: a Ray task per episode, writes --output-dir as "
                            "parquet")
    build.add_argument("--ray-address", metavar="ADDR",
                       help="with --engine ray: join this running cluster (e.g. 10.0.0.1:6379) instead of starting "
                            "a local Ray instance")
    build.add_argument("--format", choices=["arrow", "parquet"], default="arrow",
                       help="--output-dir as datasets' save_to_disk folder (arrow, default) or as the Hub's parquet "
                            "layout (data/<split>-*.parquet), resumable; --engine ray always writes parquet")
    build.add_argument("--cache-dir", help="HF datasets cache (default: the usual HF cache)")
    build.add_argument("--set", action="append", type=_parse_override, metavar="KEY=VALUE",
                       help="override a config field, value in YAML "
                            "(e.g. --set test_size=0.1 --set topics=[screen])")
    build.set_defaults(run=_build)

    summary = commands.add_parser(
        "summary", help="what a recordings folder or a built dataset holds (--plot: PNGs)",
        description="Summarize recordings or a built dataset; --plot draws pictures of them.")
    kinds = summary.add_subparsers(dest="kind", required=True, metavar="KIND")
    recordings = kinds.add_parser("recordings", parents=[common], formatter_class=_FORMAT,
                                  epilog=SUMMARY_RECORDINGS_EXAMPLES, help="a folder of *.mcap recordings",
                                  description="Summarize every *.mcap under FOLDER; name what is wrong with each.")
    recordings.add_argument("folder", metavar="FOLDER")
    recordings.add_argument("--events-config", default="default", metavar="NAME|YAML",
                            help="owa_events config the checks and plots apply: a named config or a YAML file "
                                 "(default: 'default', every topic kept and checked)")
    dataset = kinds.add_parser("dataset", parents=[common], formatter_class=_FORMAT,
                               epilog=SUMMARY_DATASET_EXAMPLES,
                               help="a dataset saved by `build --output-dir`",
                               description="Summarize a dataset built by owa_builders and saved to PATH.")
    dataset.add_argument("path", metavar="PATH")
    dataset.add_argument("--split", help="with --plot: the split to draw a row of (default: the first)")
    dataset.add_argument("--row", type=int, default=0, help="with --plot: the row to draw (default 0)")
    for sub, run in ((recordings, _summary_recordings), (dataset, _summary_dataset)):
        sub.add_argument("--plot", metavar="OUT_DIR", help="write PNG pictures into OUT_DIR")
        sub.add_argument("--json", action="store_true", help="print the summary as JSON")
        sub.set_defaults(run=run)

    push = commands.add_parser("push", parents=[common], formatter_class=_FORMAT, epilog=PUSH_EXAMPLES,
                               help="push a saved dataset to the Hub",
                               description="Push a saved dataset to a Hub dataset repository, with what goes with "
                                           "its rows.")
    push.add_argument("dataset_dir", metavar="DATASET_DIR")
    push.add_argument("repo_id", metavar="REPO_ID", help="the Hub dataset repository, e.g. my-org/my-dataset")
    push.add_argument("--config-name", help="the dataset config (subset) name on the Hub")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument("--token", help="a Hub token (default: huggingface_hub's)")
    push.add_argument("--revision", help="the branch to push to")
    push.add_argument("--commit-message")
    push.set_defaults(run=_push)

    # Listed for --help; `main` hands their arguments to their own parsers.
    commands.add_parser("synth", help="write synthesized OWAMcap recordings (`owa-builders synth --help`)")
    commands.add_parser("demo", help="run the pipeline on synthesized recordings (`owa-builders demo --help`)")
    return main_parser


def _own_parser_command(argv: list[str]) -> int | None:
    """Run synth or demo, whose options their modules parse; None for the other commands."""
    if argv[:1] == ["synth"]:
        from owa_builders import synth

        return synth.main(argv[1:])
    if argv[:1] == ["demo"]:
        from owa_builders import demo

        return demo.main(argv[1:])
    return None


def _bad_input_errors() -> tuple[type[Exception], ...]:
    """What a user's input can be wrong with; each names the file (or value) and the problem."""
    from owa_builders.recordings.errors import BadRecordingError

    return BadRecordingError, FileNotFoundError, NotADirectoryError, ValueError


def _freeze_imported_objects() -> None:
    """Move what the imports made (datasets, pandas, pyarrow: ~100k long-lived objects) out of the garbage
    collector's sight, once per process: full collections during a command, and in its forked workers, no
    longer scan them (BENCHMARKS.md, "End to end")."""
    if not gc.get_freeze_count():
        gc.freeze()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if (code := _own_parser_command(argv)) is not None:
        return code
    args = parser().parse_args(argv)
    _freeze_imported_objects()
    try:
        with _logging_for(args):
            return args.run(args)
    except _bad_input_errors() as error:
        if args.debug:
            raise
        print(f"owa-builders: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
