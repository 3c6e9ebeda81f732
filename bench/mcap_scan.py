"""McapScanner throughput on the 10-minute reference recording, in the layouts a recording may come in.

    .venv/bin/python bench/mcap_scan.py [--repeats 5]

Scans (every chunk decompressed, checked and split into message columns; no payload parsed) a 10-minute
reference-profile recording like bench/events_stage.py's (zstd, 1 MiB chunks) and copies of it re-chunked
with lz4 and with no compression, from a path and from an open file object, best of `repeats`; with the
`mcap` library's reader doing nothing per message for reference. All are written once into
bench/out/mcap_scan/.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

from events_stage import OUT, best_of
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer

from owa_builders.recordings.mcap_scan import McapScanner

FOLDER = OUT / "mcap_scan"


def recording() -> Path:
    from owa_builders.synth import SynthProfile, synthesize_episode

    path = FOLDER / "reference_10min_zstd.mcap"
    if not path.exists():
        FOLDER.mkdir(parents=True, exist_ok=True)
        synthesize_episode(path, SynthProfile(duration_s=600, video=False, seed=0))
    return path


def rewritten(source: Path, compression: CompressionType) -> Path:
    """The source's messages written again with `compression` (1 MiB chunks, the mcap writer's defaults)."""
    path = FOLDER / f"reference_10min_{compression.name.lower()}.mcap"
    if path.exists():
        return path
    with open(source, "rb") as f, open(path, "wb") as out:
        writer = Writer(out, compression=compression)
        writer.start(profile="owa", library="bench")
        channels: dict[int, int] = {}
        for schema, channel, message in make_reader(f).iter_messages(log_time_order=False):
            if channel.id not in channels:
                schema_id = writer.register_schema(schema.name, schema.encoding, schema.data)
                channels[channel.id] = writer.register_channel(channel.topic, channel.message_encoding, schema_id)
            writer.add_message(channels[channel.id], message.log_time, message.data, message.publish_time)
        writer.finish()
    return path


def scan(source) -> int:
    with McapScanner(source) as scanner:
        return sum(len(batch) for batch in scanner.iter_batches())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    zstd = recording()
    files = {"zstd": zstd, "lz4": rewritten(zstd, CompressionType.LZ4), "none": rewritten(zstd, CompressionType.NONE)}
    messages = scan(zstd)
    results = {"messages": messages}
    for name, path in files.items():
        assert scan(path) == messages
        path_s = best_of(args.repeats, lambda path=path: scan(path))
        data = path.read_bytes()
        object_s = best_of(args.repeats, lambda data=data: scan(io.BytesIO(data)))
        results[name] = {"MB": round(len(data) / 1e6, 1), "path_s": round(path_s, 3),
                         "file_object_s": round(object_s, 3), "Mmsg_per_s": round(messages / path_s / 1e6, 2)}  # fmt: skip

    def bare_reader():
        with open(zstd, "rb") as f:
            for _ in make_reader(f).iter_messages(log_time_order=False):
                pass

    results["bare_mcap_reader_zstd_s"] = round(best_of(1, bare_reader), 3)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
