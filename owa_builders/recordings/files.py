"""What sits under a recording's name on disk: opened only when it is a regular file, stamped without raising.

A listing finds every ``*.mcap`` name; what the name turns out to be (a symlink loop, a dangling symlink,
a directory, a FIFO, an unreadable or vanished file) is found out here, when the episode is read, so that
the bad-files policy applies to it like to any other bad recording.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from .errors import (
    BadRecordingError,
    DanglingSymlinkError,
    IsADirectoryRecordingError,
    MissingRecordingError,
    PermissionDeniedError,
    SpecialFileError,
    SymlinkLoopError,
)

_SPECIAL_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
                  stat.S_IFBLK: "block device"}  # fmt: skip


def open_regular_file(path: str) -> BinaryIO:
    """Opens `path` for reading if it is a regular file (through symlinks); else the BadRecordingError saying
    what it is. Never blocks: a FIFO is opened non-blocking and refused from its fstat."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as error:  # ValueError: a NUL in the name
        raise _open_error(path, error) from error
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular_error(path, mode)
        os.set_blocking(fd, True)  # no effect on a regular file's reads; restores the usual flags
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_stamp(path: str | os.PathLike) -> tuple[str, str]:
    """(size, mtime_ns) of a regular file, else a stable marker of what is there, e.g. ("symlink-loop", "").

    Never raises: datasets keys its cache on these, and a bad file is reported when it is read.
    """
    try:
        status = os.stat(path)
    except (OSError, ValueError) as error:
        return _open_error(os.fspath(path), error).reason, ""
    if stat.S_ISREG(status.st_mode):
        return str(status.st_size), str(status.st_mtime_ns)
    return _not_regular_error(os.fspath(path), status.st_mode).reason, ""


def remote_open_error(path: str, error: OSError) -> BadRecordingError:
    """The error for a file of a remote root (fsspec) that could not be opened; fsspec's OSErrors often carry
    no errno, so their class says what happened."""
    if isinstance(error, IsADirectoryError):
        return _directory_error(path)
    if isinstance(error, FileNotFoundError):
        return _missing_error(path)
    if isinstance(error, PermissionError):
        return _permission_error(path)
    return BadRecordingError(path, f"cannot be read: {error}")


def _open_error(path: str, error: OSError | ValueError) -> BadRecordingError:
    """The error for a name that could not be opened or stat-ed."""
    code = getattr(error, "errno", None)
    if code == errno.ELOOP:
        return SymlinkLoopError(path, "is a symlink loop (following it leads back to itself)")
    if code == errno.ENOENT:
        if os.path.islink(path):
            return DanglingSymlinkError(path, f"is a symlink to {_link_target(path)}, which does not exist")
        return _missing_error(path)
    if code in (errno.EACCES, errno.EPERM):
        return _permission_error(path)
    if code == errno.ENXIO:  # opening a socket
        return SpecialFileError(path, "is a socket, not a recording file")
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return BadRecordingError(path, f"cannot be read: {reason}")


def _link_target(path: str) -> str:
    try:
        return repr(os.readlink(path))
    except OSError:  # removed in the meantime
        return "a target"


def _missing_error(path: str) -> BadRecordingError:
    return MissingRecordingError(path, "does not exist (removed after the recordings were listed?)")


def _permission_error(path: str) -> BadRecordingError:
    return PermissionDeniedError(path, "cannot be read: permission denied")


def _directory_error(path: str) -> BadRecordingError:
    return IsADirectoryRecordingError(path, "is a directory, not a recording file")


def _not_regular_error(path: str, mode: int) -> BadRecordingError:
    if stat.S_ISDIR(mode):
        return _directory_error(path)
    kind = _SPECIAL_KINDS.get(stat.S_IFMT(mode), "special file")
    return SpecialFileError(path, f"is a {kind}, not a recording file")
