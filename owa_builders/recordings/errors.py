"""Errors for recordings that cannot be converted.

Every error names the file and the problem (`str(error)` is ``"<path>: <problem>"``) and carries a short
`reason` slug, which is what a build that skips bad files counts and reports.
"""

from __future__ import annotations

import os


class BadRecordingError(Exception):
    """A recording that cannot be converted."""

    reason = "unreadable"

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep path/problem when the error crosses a process boundary (num_proc)
        return (type(self), (self.path, self.problem))


class WrongProfileError(BadRecordingError):
    reason = "wrong_profile"


class LegacySchemaError(BadRecordingError):
    reason = "legacy_schema"


class UnknownMessageTypeError(BadRecordingError):
    reason = "unknown_message_type"


class TimeOrderError(BadRecordingError):
    reason = "time_goes_backwards"


class MediaReferenceError(BadRecordingError):
    """A screen message whose media is missing, unreadable as a reference, or outside the recordings' root."""

    reason = "bad_media_reference"
