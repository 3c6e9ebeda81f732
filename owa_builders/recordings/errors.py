"""Errors for recordings that cannot be converted, and for a recordings folder that cannot be used.

Every error names the file and the problem (`str(error)` is ``"<path>: <problem>"``, the path repr-escaped
when it holds control characters, so the message stays one line). A `BadRecordingError` carries a short
`reason` slug, which is what a build that skips bad files counts and reports; each subclass has its own.
"""

from __future__ import annotations

import os
import unicodedata


def has_unsafe_characters(text: str) -> bool:
    """True when `text` holds a control character (NUL, newline, …) or cannot be encoded as a file name."""
    if any(unicodedata.category(char) == "Cc" for char in text):
        return True
    try:
        os.fsencode(text)
        text.encode("utf-8")  # what datasets stores episode_path as; fails on undecodable name bytes
    except UnicodeError:
        return True
    return False


def shown_path(path: str) -> str:
    """A path as messages show it: as is, or repr-escaped when it holds unsafe characters."""
    return repr(path) if has_unsafe_characters(path) else path


class _NamesFileAndProblem:
    """``str()`` is ``"<path>: <problem>"``; ``path`` and ``problem`` survive pickling (num_proc workers)."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{shown_path(self.path)}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


class BadRecordingError(_NamesFileAndProblem, Exception):
    """A recording that cannot be converted."""

    reason = "unreadable"


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


# -- the MCAP format (raised by mcap_scan) ---------------------------------------------------------------


class McapFormatError(BadRecordingError):
    """A file that is not a readable MCAP: bad magic, a malformed record, a length or size it cannot hold."""

    reason = "corrupt_mcap"


class TruncatedMcapError(McapFormatError):
    """The file ends before its footer, as when the writer is killed. The problem starts with 'truncated'."""

    reason = "truncated"


class ChecksumMismatchError(McapFormatError):
    """A chunk's or the data section's CRC-32 does not match its contents."""

    reason = "checksum_mismatch"


# -- what is found under the recordings folder under a *.mcap name (raised when it is read, not listed) ----


class UnsafeFileNameError(BadRecordingError):
    """A file name with control characters or undecodable bytes, which cannot become an episode_path."""

    reason = "unsafe_file_name"


class SymlinkLoopError(BadRecordingError):
    reason = "symlink_loop"


class DanglingSymlinkError(BadRecordingError):
    reason = "dangling_symlink"


class MissingRecordingError(BadRecordingError):
    """Gone: removed after the recordings were listed, or never there."""

    reason = "file_missing"


class PermissionDeniedError(BadRecordingError):
    reason = "permission_denied"


class IsADirectoryRecordingError(BadRecordingError):
    reason = "is_a_directory"


class SpecialFileError(BadRecordingError):
    """A FIFO, socket or device under a recording's name (never opened for reading: it could block)."""

    reason = "not_a_regular_file"


# -- the folder itself --------------------------------------------------------------------------------------


class RecordingsFolderError(_NamesFileAndProblem, FileNotFoundError):
    """The folder given as the recordings cannot be used: it does not exist, or is a file.

    A FileNotFoundError (what callers already catch for a missing input), never counted as a skipped file:
    there is nothing to skip to.
    """


class NoRecordingsError(RecordingsFolderError):
    """The folder holds no ``*.mcap`` file at all."""


class NoMessagesError(RecordingsFolderError):
    """The folder's recordings hold no message (every one empty of messages, or skipped as bad)."""
