import os
import tempfile

# Hermetic: the Hub is unreachable here and tests never touch the user's HF cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="owa-builders-hf-cache-")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_samples() -> Path:
    samples = SHARED / "samples"
    if not (samples / "0.5.1.mcap").exists():
        pytest.skip("../shared/samples is not here")
    return samples

# Shared fixtures: stand-in tokenizers and fsl recordings; recordings with real videos and their events.
pytest_plugins = ["fsl_fixtures", "media_fixtures"]
