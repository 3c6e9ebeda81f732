"""Train/test splits by episode: an episode is never divided between splits.

With ``split_by="auto"`` recordings laid out in ``train/``, ``test/`` (or ``validation/``) folders keep
their folders' splits; otherwise ``test_size`` episodes (a fraction, or a count) go to ``test``, chosen
by a seeded hash of each episode's path, so the choice does not depend on listing order or ``num_proc``.
"""

from __future__ import annotations

import hashlib

from ..recordings.episodes import Episode
from .settings import EventsSettings

SPLIT_FOLDERS = ("train", "validation", "test")


def _split_folder(episode: Episode) -> str | None:
    head, _, rest = episode.relative_path.partition("/")
    return head if rest and head in SPLIT_FOLDERS else None


def split_episodes(episodes: list[Episode], settings: EventsSettings) -> dict[str, list[Episode]]:
    """Map split name -> its episodes (sorted by path); splits without episodes are left out."""
    use_folders = settings.split_by == "folders" or (
        settings.split_by == "auto" and any(_split_folder(episode) for episode in episodes)
    )
    if use_folders:
        outside = [episode.relative_path for episode in episodes if _split_folder(episode) is None]
        if outside:
            raise ValueError(
                f"recordings are split by folders ({', '.join(SPLIT_FOLDERS)}) but {len(outside)} are in none of them: "
                f"{outside[:5]}; move them into a split folder or set split_by='test_size'"
            )
        splits = {name: [e for e in episodes if _split_folder(e) == name] for name in SPLIT_FOLDERS}
        return {name: members for name, members in splits.items() if members}

    test_count = _test_count(len(episodes), settings.test_size)
    ranked = sorted(episodes, key=lambda e: hashlib.sha256(f"{settings.split_seed}:{e.relative_path}".encode()).digest())
    test = {e.relative_path for e in ranked[:test_count]}
    splits = {
        "train": [e for e in episodes if e.relative_path not in test],
        "test": [e for e in episodes if e.relative_path in test],
    }
    return {name: members for name, members in splits.items() if members}


def _test_count(episodes: int, test_size: float) -> int:
    if test_size <= 0:
        return 0
    count = int(test_size) if test_size >= 1 else max(1, round(test_size * episodes))
    if count >= episodes:
        raise ValueError(f"test_size={test_size} leaves no training episode out of {episodes}")
    return count
