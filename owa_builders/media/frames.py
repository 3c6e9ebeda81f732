"""Frame loading: the frames screen messages reference, decoded lazily with mediaref's batch decoding.

Every frame asked for in one call (a row's, or a batch of rows') is decoded together: mediaref groups
them per video and decodes each video's frames in pts order in one pass, with decoders it keeps open
between calls (per process; its default TensorCodec backend is bit-exact with PyAV's rgb24 and
notices a video that ends early). Loaders hold no open files themselves, so they pickle into
DataLoader workers.

A frame that cannot be had (video missing, unreadable, or shorter than the frame's pts) is an error
naming the video and pts, unless ``missing_media="placeholder"``: then it is a black frame of the
message's shape, logged, and reported in `LoadedFrames.placeholders`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from mediaref import MediaRef, batch_decode

from .roots import MediaRoot

logger = logging.getLogger("owa_builders")

MissingMedia = Literal["error", "placeholder"]


class MissingFrameError(LookupError):
    """A referenced frame that cannot be decoded: its video is missing or unreadable, or ends before its pts."""

    def __init__(self, message: str, *, media: str | None = None, pts_ns: int | None = None):
        super().__init__(message)
        self.media = media
        self.pts_ns = pts_ns


class FrameRequest(NamedTuple):
    """One screen message whose frame is wanted, with the episode it was recorded in."""

    episode_path: str  # relative to the recordings' root
    screen: Mapping  # the decoded desktop/ScreenCaptured message


class LoadedFrames(NamedTuple):
    frames: list[np.ndarray]  # RGB (height, width, 3) uint8, in request order
    placeholders: list[int]  # positions of the requests that got a black placeholder


@dataclass(frozen=True)
class FrameLoader:
    """Decodes the frames of screen messages, resolving their media against `root`."""

    root: MediaRoot
    missing_media: MissingMedia = "error"
    decoder: str = "tensorcodec"  # mediaref's backend: "tensorcodec" | "pyav" | "torchcodec"

    def __post_init__(self):
        if self.missing_media not in ("error", "placeholder"):
            raise ValueError(f"missing_media must be 'error' or 'placeholder', not {self.missing_media!r}")

    def load(self, requests: Sequence[FrameRequest]) -> LoadedFrames:
        located: dict[tuple[str, str], str] = {}  # (episode, uri) -> media: a row's frames share a video
        refs = [self._media_ref(request, located) for request in requests]
        frames: list[np.ndarray | None] = [None] * len(refs)
        problems = {i: "video file not found" for i, ref in enumerate(refs) if _is_missing_file(ref)}
        readable = [i for i in range(len(refs)) if i not in problems]
        try:
            for i, frame in zip(readable, self._decode([refs[i] for i in readable])):
                frames[i] = frame
        except ValueError:  # some video is unreadable or too short: decode one frame at a time to find which
            for i in readable:
                try:
                    frames[i] = self._decode([refs[i]])[0]
                except ValueError as error:
                    problems[i] = str(error.__cause__ or error)
        if problems:
            first = min(problems)
            uri, pts_ns = refs[first].uri, refs[first].pts_ns
            if self.missing_media == "error":
                others = f" (and {len(problems) - 1} more frames of this batch)" if len(problems) > 1 else ""
                raise MissingFrameError(
                    f"{uri}: no frame at pts_ns={pts_ns} ({problems[first]}), referenced in episode "
                    f"{requests[first].episode_path}{others}; pass missing_media='placeholder' for black frames",
                    media=uri,
                    pts_ns=pts_ns,
                )
            logger.warning("%d frame(s) replaced by black placeholders, the first: %s at pts_ns=%s (%s)",
                           len(problems), uri, pts_ns, problems[first])
            for i in problems:
                frames[i] = _placeholder(requests[i].screen)
        return LoadedFrames(frames, sorted(problems))

    def _media_ref(self, request: FrameRequest, located: dict[tuple[str, str], str]) -> MediaRef:
        media = request.screen["media_ref"]
        key = (request.episode_path, media["uri"])
        if key not in located:
            located[key] = self.root.locate(*key)
        return MediaRef(uri=located[key], pts_ns=media.get("pts_ns"))

    def _decode(self, refs: list[MediaRef]) -> list[np.ndarray]:
        return batch_decode(refs, decoder=self.decoder, allow_multi_video=True, allow_images=True)


def _is_missing_file(ref: MediaRef) -> bool:
    """A local video that is not there (URLs and embedded images are left to the decoder)."""
    return os.path.isabs(ref.uri) and not os.path.isfile(ref.uri)


def _placeholder(screen: Mapping) -> np.ndarray:
    width, height = screen.get("shape") or screen.get("source_shape") or (1, 1)
    return np.zeros((height, width, 3), np.uint8)
