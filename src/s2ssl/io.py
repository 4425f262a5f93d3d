"""Atomic output: files and directories are written to a hidden temporary sibling, flushed, then
renamed into place, so a crash or an error leaves the previous version intact. Also the one
inter-process file lock (:func:`file_lock`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock


@contextmanager
def file_lock(
    path: str | Path, *, wait: bool = True, timeout: float | None = None
) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created with its directory) for the block.

    An OS lock (``flock`` on POSIX, ``msvcrt`` locking on Windows, through :mod:`filelock`): the
    OS releases it when the process dies, so a killed holder never leaves it stuck. Two threads of
    one process are serialised as well. It waits for the lock as long as it takes, at most
    ``timeout`` seconds when given; with ``wait=False`` it does not wait at all.

    Raises:
        BlockingIOError: the lock is held by someone else and ``wait=False``, or ``timeout``
            seconds passed without getting it; the message names the lock file.
    """
    if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
        raise ValueError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}")
    lock = Path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    limit = 0.0 if not wait else (-1.0 if timeout is None else float(timeout))
    held = filelock.FileLock(lock, timeout=limit)
    try:
        held.acquire()
    except filelock.Timeout:
        waited = "at once" if limit == 0 else f"within {limit:g} s"
        raise BlockingIOError(
            f"the lock {lock} is held by another process or thread and was not free {waited}; "
            "wait for that work to finish (or stop it) and try again"
        ) from None
    try:
        yield lock
    finally:
        held.release()


def current_umask() -> int:
    """The process's file-creation mask (read from ``/proc`` on Linux: setting it to read it
    back, the only portable way, would race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The file gets the permissions of an ordinary new file (``0o666`` less the umask; the
    temporary file alone would be private to its owner). On an exception the temporary file is
    removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~current_umask())
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Atomically write ``data`` as pretty, key-sorted JSON (stable for ``dvc metrics diff``)."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------ atomic directories
# A directory output is built in a hidden sibling ``.<name>.tmp-<uuid>`` and swapped in with two
# renames (the previous version goes to ``.<name>.old-<uuid>`` in between, then is deleted);
# :func:`recover_dir` repairs a crash between the two renames.

_UUID_RE = "[0-9a-f]{32}"


def fsync_dir(path: Path) -> None:
    """Flush a directory entry to disk (POSIX; a no-op where directories cannot be opened)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove a file, symlink or directory tree; missing paths are fine."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def hidden_siblings(path: Path, kind: str) -> list[Path]:
    """Hidden ``.<name>.<kind>-<uuid>`` siblings of ``path`` (``kind`` is ``tmp`` or ``old``)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.{kind}-{_UUID_RE}$")
    try:
        return [p for p in path.parent.iterdir() if pattern.match(p.name)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def new_sibling(path: Path, kind: str) -> Path:
    """A fresh hidden sibling name ``.<name>.<kind>-<uuid>`` (not created)."""
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex}"


def recover_dir(path: str | Path) -> None:
    """Repair a directory swap interrupted between its two renames.

    If ``path`` is missing but a ``.<name>.old-<uuid>`` sibling exists, the previous version is
    renamed back to ``path``. Never deletes anything, so it is safe while a writer runs.
    """
    path = Path(path).absolute()
    if path.exists() or path.is_symlink():
        return
    olds = [p for p in hidden_siblings(path, "old") if p.is_dir()]
    if not olds:
        return
    newest = max(olds, key=lambda p: p.stat().st_mtime)
    try:
        os.rename(newest, path)
    except OSError:
        if not path.exists():  # not a concurrent restore / commit: a real failure
            raise
        return
    fsync_dir(path.parent)


def replace_dir(tmp: Path, path: Path) -> None:
    """Swap the finished directory ``tmp`` in at ``path``: path -> ``.old-``, tmp -> path, then
    delete ``.old-`` (the previous version is put back if the second rename fails)."""
    olds: list[Path] = []
    for attempt in range(3):
        if path.exists() or path.is_symlink():
            old = new_sibling(path, "old")
            os.rename(path, old)
            olds.append(old)
        try:
            os.rename(tmp, path)
            break
        except OSError:
            # A concurrent recover_dir() may have restored the old version in between: move it
            # aside again and retry; otherwise put the previous version back.
            if attempt < 2 and path.exists():
                continue
            if olds and not path.exists():
                os.rename(olds[-1], path)
            raise
    fsync_dir(path.parent)
    for old in olds:
        remove_tree(old)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty hidden sibling directory; on success it replaces ``path`` atomically.

    On an exception the temporary directory is removed and ``path`` is left untouched.
    """
    target = Path(path).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(target)
    for stale in hidden_siblings(target, "tmp"):
        remove_tree(stale)
    tmp = new_sibling(target, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        fsync_dir(tmp)
        replace_dir(tmp, target)
    except BaseException:
        remove_tree(tmp)
        raise
