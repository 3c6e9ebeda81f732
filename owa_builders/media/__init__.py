"""The training-time side: frames decoded lazily from the videos rows reference, transforms, collators."""

from .collate import FslCollator
from .frames import FrameLoader, FrameRequest, MissingFrameError
from .roots import HubMediaRoot, LocalMediaRoot, MediaRoot, RemoteMediaRoot
from .transforms import MalformedRowError, auto_set_transform, make_transform

__all__ = [
    "FrameLoader", "FrameRequest", "FslCollator", "HubMediaRoot", "LocalMediaRoot", "MalformedRowError", "MediaRoot",
    "MissingFrameError", "RemoteMediaRoot", "auto_set_transform", "make_transform",
]
