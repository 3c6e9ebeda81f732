import os
import tempfile

# Hermetic: the Hub is unreachable here and tests never touch the user's HF cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="owa-builders-hf-cache-")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


def _datasets_version_problem() -> str | None:
    """Why the installed datasets is not one owa-builders supports (checked before any test imports it)."""
    try:
        from owa_builders.datasets_adapter import supported_datasets_problem
    except ImportError as error:  # the adapter could not even import what it relies on
        return str(error)
    return supported_datasets_problem()


DATASETS_PROBLEM = _datasets_version_problem()


def pytest_configure(config):
    if DATASETS_PROBLEM:  # one line, before collection (which would fail deep inside datasets)
        pytest.exit(f"owa-builders tests cannot run: {DATASETS_PROBLEM}", returncode=pytest.ExitCode.USAGE_ERROR)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_samples() -> Path:
    samples = SHARED / "samples"
    if not (samples / "0.5.1.mcap").exists():
        pytest.skip("../shared/samples is not here")
    return samples

# Shared fixtures: stand-in tokenizers and fsl recordings; recordings with real videos and their events.
pytest_plugins = [] if DATASETS_PROBLEM else ["fsl_fixtures", "media_fixtures"]
