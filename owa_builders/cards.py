"""The dataset card of a repository made by `owa_builders.push_dataset`.

The card is the repository's README.md: YAML metadata, then prose. Every fact in it is read from the
configs' ``owa_dataset.json`` (builder, version, config values, accounting, fill, tokenizer, and what
`push_dataset` adds under ``published``: rows, episodes, duration, owa-builders version), never typed
again; datasets' push maintains the YAML ``configs`` and ``dataset_info`` entries. Our prose sits between
two markers and is regenerated on every push, for every config of the repository; what the publisher
wrote outside the markers, and their YAML keys, are kept. License: the publisher's (``license=``), else
the card's, else "unknown".
"""

from __future__ import annotations

import yaml
from huggingface_hub import DatasetCard

from .accounting import Accounting
from .media.roots import HUB_MEDIA_FOLDER
from .metadata import DatasetMetadata
from .stages import STAGE_OF_BUILDER

CARD_TAGS = ("owa", "owamcap", "desktop-agent", "mcap", "owa-builders")
DEFAULT_LICENSE = "unknown"  # the recordings' license is the publisher's to state; "other" would need a name
_START = "<!-- owa-builders: generated from each config's owa_dataset.json, replaced on every push -->"
_END = "<!-- /owa-builders -->"


def render_card(existing: DatasetCard | None, repo_id: str, configs: dict[str, DatasetMetadata], license: str | None) -> str:
    """README.md for `repo_id` whose owa configs are `configs` (name -> its published owa_dataset.json),
    keeping what `existing` (the repository's card, if any) holds outside our part."""
    card = existing or DatasetCard("---\n{}\n---\n")
    card.data.license = license or card.data.license or DEFAULT_LICENSE
    stages = {STAGE_OF_BUILDER[metadata.builder] for metadata in configs.values()}
    tags = set(card.data.get("tags") or ()) | set(CARD_TAGS) | {f"owa-{stage}" for stage in stages}
    card.data.tags = sorted(tags)
    ours = f"{_START}\n{_prose(repo_id, configs)}\n{_END}"
    if _START in card.text and _END in card.text:
        before, rest = card.text.split(_START, 1)
        card.text = before + ours + rest.split(_END, 1)[1]
    else:
        card.text = ours + "\n" + card.text
    return str(card)


def _prose(repo_id: str, configs: dict[str, DatasetMetadata]) -> str:
    names = sorted(configs)
    table = "\n".join(
        f"| `{name}` | {m.builder} | {m.version} | {m.published['episodes']} | "
        f"{m.published['duration_s'] / 3600:.2f} | "
        f"{', '.join(f'{split} {n}' for split, n in m.published['rows'].items())} |"
        for name, m in ((name, configs[name]) for name in names)
    )
    example = next((name for name in names if configs[name].builder == "owa_fsl"), names[0])
    return f"""# {repo_id}

Desktop recordings (OWAMcap: screen video, keyboard, mouse) converted into training datasets with
owa-builders.

| config | builder | version | episodes | hours | rows |
|---|---|---|---|---|---|
{table}

Each config is a folder: its rows as parquet in `data/`, `owa_dataset.json` (builder, config values,
accounting), for `owa_fsl` the expanded `tokenizer/` the ids come from, and in `{HUB_MEDIA_FOLDER}/` every
video the rows reference, laid out as the recordings were: a screen message's frame is at its
`media_ref.pts_ns` in `<config>/{HUB_MEDIA_FOLDER}/<folder of the row's episode_path>/<media_ref.uri>`.
{_usage(repo_id, example, configs[example])}
## Configs
{"".join(_config_section(name, configs[name]) for name in names)}"""


def _usage(repo_id: str, config: str, metadata: DatasetMetadata) -> str:
    """How to load the rows (with datasets alone) and train on them (with owa-builders), for `config`."""
    stage = STAGE_OF_BUILDER[metadata.builder]
    split = next(iter(metadata.published["rows"]))
    fsl = """
import torch
from owa_builders.fsl.tokenizer import load_fsl_tokenizer

tokenizer = load_fsl_tokenizer(dataset)  # the ids of the rows (check your own with check_vocabulary)
collate = owa_builders.FslCollator.from_dataset(dataset)
loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, collate_fn=collate)
""" if stage == "fsl" else ""
    return f"""
## Load

```python
import datasets

rows = datasets.load_dataset("{repo_id}", "{config}", split="{split}")  # plain parquet: no owa-builders needed
```

Screen messages are JSON (`desktop/ScreenCaptured`); without owa-builders, fetch a video with
`huggingface_hub.hf_hub_download("{repo_id}", path, repo_type="dataset")` and decode the frame at `pts_ns`
with any decoder (e.g. PyAV).

## Train with owa-builders

```python
import owa_builders

dataset = owa_builders.load_from_hub("{repo_id}", "{config}", split="{split}")  # + owa_dataset.json{", tokenizer" if fsl else ""}
dataset.auto_set_transform(load_images=True)  # frames fetched from this repository, cached
{fsl}```

The rows loaded with `datasets.load_dataset` above take the same transform given their stage and media:

```python
rows.set_transform(owa_builders.make_transform(rows, stage="{stage}", media_root=owa_builders.HubMediaRoot("{repo_id}", "{config}")))
```
"""


def _config_section(name: str, metadata: DatasetMetadata) -> str:
    published = metadata.published
    lines = [
        f"\n### `{name}`\n",
        (f"{metadata.builder} {metadata.version} (builder config `{metadata.config}`, pushed with "
         f"owa-builders {published['owa_builders']}): "
         f"{sum(published['rows'].values())} rows from {published['episodes']} episodes, "
         f"{published['duration_s'] / 3600:.2f} hours ({published['duration_s']:.0f} s, first to last timestamp "
         "of each episode's rows).\n"),
        "Config values:\n",
        _block(yaml.safe_dump(metadata.settings, sort_keys=False, default_flow_style=None), "yaml"),
        "Accounting (messages read, kept, dropped by reason):\n",
        _block(Accounting.from_dict(metadata.accounting["total"]).summary()),
    ]
    if metadata.events is not None:
        events = metadata.events
        lines += [f"From events config `{events['config']}` of {events['builder']}, whose accounting is:\n",
                  _block(Accounting.from_dict(events["accounting"]["total"]).summary())]
    if metadata.fill is not None:
        fill = metadata.fill["total"]
        lines.append(f"Fill: {fill['fill']:.2%} of the ids are not padding ({fill['tokens']} tokens in "
                     f"{fill['rows']} rows).\n")
    if metadata.tokenizer is not None:
        tokenizer = metadata.tokenizer
        lines.append(f"Tokenizer: `{tokenizer['source']}` expanded to {tokenizer['vocabulary_size']} tokens, "
                     f"in `{name}/{tokenizer['folder']}/`; vocabulary sha256 `{tokenizer['vocabulary_hash']}`.\n")
        if tokenizer.get("stand_in"):
            lines.append(f"It is a stand-in: {tokenizer['stand_in'].strip()}\n")
    return "\n".join(lines)


def _block(text: str, language: str = "") -> str:
    return f"```{language}\n{text.rstrip()}\n```\n"
