"""Fixtures of the fsl tests (a pytest plugin, registered in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from owa_builders.fsl.stand_in import internvl_stand_in, smolvlm_stand_in
from owa_builders.synth import SynthProfile, synthesize_recordings


@pytest.fixture(scope="session")
def internvl_folder(tmp_path_factory) -> Path:
    return internvl_stand_in(tmp_path_factory.mktemp("internvl_stand_in"))


@pytest.fixture(scope="session")
def smolvlm_folder(tmp_path_factory) -> Path:
    return smolvlm_stand_in(tmp_path_factory.mktemp("smolvlm_stand_in"))


@pytest.fixture(scope="session")
def fsl_recordings(tmp_path_factory) -> Path:
    """Three 8-second reference-profile episodes (the videos are referenced, never opened)."""
    root = tmp_path_factory.mktemp("fsl_recordings")
    for manifest in synthesize_recordings(root, episodes=3, profile=SynthProfile(duration_s=8.0, seed=5, video=False)):
        (Path(manifest.mcap_path).parent / manifest.video_uri).write_bytes(b"")
    return root
