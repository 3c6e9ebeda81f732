"""The `owa-builders` command: the seed's scripts as subcommands.

    owa-builders synth recordings/ --episodes 3              # realistic recordings to try things on
    owa-builders build --config configs/events_desktop.yaml --data-dir recordings/ --output-dir events/
    owa-builders build owa_fsl --name internvl3 --data-dir events/ --output-dir fsl/ --set max_length=2048
    owa-builders demo                                         # the whole pipeline on synthesized recordings

Exit codes: 0 done, 1 the input could not be converted (the message names the file and the problem),
2 wrong usage.
"""

from __future__ import annotations

import argparse
import sys

import yaml

EXIT_BAD_INPUT = 1
EXIT_USAGE = 2


def _parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set takes key=value (a YAML value), not {text!r}")
    return key, yaml.safe_load(value)


def _build(args: argparse.Namespace) -> int:
    import datasets

    import owa_builders
    from owa_builders.config_files import read_config_file

    if args.config:
        kwargs = read_config_file(args.config).load_dataset_kwargs()
    elif args.builder and args.name:
        kwargs = {"path": args.builder, "name": args.name}
    else:
        print("build: give --config FILE, or a builder and --name", file=sys.stderr)
        return EXIT_USAGE
    kwargs.update(dict(args.set or []))
    dataset = datasets.load_dataset(**kwargs, data_dir=args.data_dir, num_proc=args.num_proc, cache_dir=args.cache_dir)
    if args.output_dir:
        owa_builders.save_to_disk(dataset, args.output_dir)  # with owa_dataset.json (and the fsl tokenizer)
    for split, rows in dataset.items():
        print(f"{split}: {rows.num_rows} rows")
    if args.output_dir:
        print(f"saved to {args.output_dir}")
    print(owa_builders.Accounting.from_dict(owa_builders.read_accounting(dataset)["total"]).summary())
    return 0


def _synth(args: argparse.Namespace) -> int:
    from owa_builders import synth

    return synth.main(args.rest)


def _demo(args: argparse.Namespace) -> int:
    from owa_builders import demo

    return demo.main(args.rest)


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="owa-builders", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main_parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build a stage's dataset from recordings or a previous stage's dataset",
                                description="Build owa_events / owa_fsl / owa_binned with HF caching, then save it.")
    build.add_argument("builder", nargs="?", choices=["owa_events", "owa_fsl", "owa_binned"], help="the stage (or use --config)")
    build.add_argument("--config", help="a YAML file under configs/ naming the builder, config and field values")
    build.add_argument("--name", help="the builder's named config (e.g. desktop, internvl3, 10fps)")
    build.add_argument("--data-dir", required=True, help="recordings (*.mcap), or a dataset saved by a previous stage")
    build.add_argument("--output-dir", help="save the built dataset here (save_to_disk, with owa_dataset.json)")
    build.add_argument("--num-proc", type=int, help="convert episodes in this many processes")
    build.add_argument("--cache-dir", help="HF datasets cache (default: the usual HF cache)")
    build.add_argument("--set", action="append", type=_parse_override, metavar="KEY=VALUE",
                       help="override a config field, value in YAML (e.g. --set test_size=0.1 --set topics=[screen])")
    build.set_defaults(run=_build)

    for name, run, text in (("synth", _synth, "write synthesized OWAMcap recordings (see `owa-builders synth -- --help`)"),
                            ("demo", _demo, "run the pipeline on synthesized recordings")):
        sub = commands.add_parser(name, help=text, add_help=False)
        sub.add_argument("rest", nargs=argparse.REMAINDER)
        sub.set_defaults(run=run)
    return main_parser


def main(argv: list[str] | None = None) -> int:
    from owa_builders.recordings.errors import BadRecordingError

    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (BadRecordingError, FileNotFoundError, ValueError) as error:
        print(f"owa-builders: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:  # datasets wraps conversion errors; show the cause that names the file
        import datasets

        if isinstance(error, datasets.exceptions.DatasetGenerationError) and error.__cause__ is not None:
            print(f"owa-builders: {error.__cause__}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":
    raise SystemExit(main())
