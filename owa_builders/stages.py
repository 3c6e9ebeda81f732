"""The three stages and the names of their builders (defined once: registry, command line, transforms, cards)."""

from __future__ import annotations

from typing import Literal

Stage = Literal["events", "fsl", "binned"]
STAGE_OF_BUILDER: dict[str, Stage] = {"owa_events": "events", "owa_fsl": "fsl", "owa_binned": "binned"}
