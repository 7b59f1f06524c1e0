"""Atomic file writing: a file is either the old one or the complete new one, never a
half-written one, even when the process is killed mid-write."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temporary file lives in the same directory (same file system), is fsynced and
    then renamed with ``os.replace``; on an exception it is removed.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                   dir=directory)
    os.close(handle)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf8") as out:
        out.write(text)


class OutputPathError(ValueError):
    """An output location that cannot be written; raised before the work that would fill it."""


def check_output_path(path: str | os.PathLike[str], what: str = "output") -> str:
    """Make sure ``path`` can be written as a file before long work starts: not a directory,
    its folder creatable and writable, an existing file replaceable. Creates the folder;
    returns the path. Raises OutputPathError naming the path and the problem."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputPathError(f"{path}: the {what} path is a directory; give a file name")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"{path}: cannot create the {what} folder {directory} ({exc.strerror})") from exc
    try:
        handle, probe = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".probe", dir=directory)
    except OSError as exc:
        raise OutputPathError(f"{path}: cannot write the {what} in {directory} ({exc.strerror})") from exc
    os.close(handle)
    os.remove(probe)
    if os.path.exists(path) and (not os.access(path, os.W_OK) or not os.stat(path).st_mode & 0o222):
        raise OutputPathError(f"{path}: the {what} file exists and is read-only; remove it or choose another name")
    return path
