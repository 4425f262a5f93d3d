"""Lineage of a stage run: the git commit and state of the repository and content hashes of the
stage's inputs (files, dataset stores, validated datasets, directories)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from s2ssl.tracking.flatten import sanitize_key

STORE_FILES: Final[tuple[str, str]] = ("meta.json", "index.parquet")
"""A directory holding both is a dataset store (``s2ssl.data.store``): they name every shard."""

MANIFEST_FILE: Final[str] = "manifest.json"
"""A directory holding it is a validated dataset (``s2ssl.data.validated``)."""

LINEAGE_KEYS: Final[tuple[str, ...]] = ("s2ssl.stage", "dvc.stage", "git.commit", "git.dirty")
"""Tags set by :func:`lineage_tags` (plus ``input.<name>``); extra tags may not override them."""
_ATOMIC_LEFTOVER: Final[re.Pattern[str]] = re.compile(
    r"^\..+\.(tmp(-[0-9a-f]{32})?|old-[0-9a-f]{32})$"
)
"""Hidden temporary siblings of an atomic write (``s2ssl.io``); never part of an input's hash."""
_GIT_TIMEOUT_S: Final[float] = 30.0


def _git(repo: Path, *args: str) -> str | None:
    """Stripped stdout of ``git <args>`` in ``repo``; ``None`` if git is missing or fails."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def _sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _hash_dir(path: Path) -> str:
    """Content hash of a directory (see :func:`hash_input`)."""
    if all((path / name).is_file() for name in STORE_FILES):
        # Same value as s2ssl.data.validated.fingerprint(), so it can be compared with a
        # validated dataset's manifest["raw_fingerprint"].
        h = hashlib.sha256()
        for name in STORE_FILES:
            h.update((path / name).read_bytes())
        return h.hexdigest()
    only_files = (path / MANIFEST_FILE).is_file()  # a validated dataset: small top-level files
    h = hashlib.sha256()
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if _ATOMIC_LEFTOVER.match(entry.name):
            continue
        if entry.is_file():
            h.update(f"{entry.name}\0{_sha256_file(entry)}\n".encode())
        elif entry.is_dir() and not only_files:
            h.update(f"{entry.name}/\0{_hash_dir(entry)}\n".encode())
    return h.hexdigest()


def hash_input(path: str | Path) -> str:
    """SHA-256 content hash (hex) of a stage input.

    - a file: sha256 of its bytes;
    - a dataset store (a directory with ``meta.json`` and ``index.parquet``): sha256 of those two
      files only, which name every shard (equal to ``s2ssl.data.validated.fingerprint``);
    - a validated dataset (a directory with ``manifest.json``): its top-level files only (all
      small; the manifest holds the raw store's fingerprint);
    - any other directory: sha256 over ``(name, hash)`` of its entries sorted by name, recursing
      into sub-directories (stores inside are hashed as above); hidden leftovers of atomic
      writes (``.<name>.tmp-*`` / ``.<name>.old-*``) are ignored.
    """
    p = Path(path)
    if p.is_file():
        return _sha256_file(p)
    if p.is_dir():
        return _hash_dir(p)
    if not p.exists():
        raise ValueError(f"input {str(p)!r} does not exist; run the stage that produces it first")
    raise ValueError(f"input {str(p)!r} is neither a file nor a directory")


def lineage_tags(
    stage: str,
    inputs: Mapping[str, str | Path] | None = None,
    repo: Path | None = None,
) -> dict[str, str]:
    """Run tags tying a run to its code and data.

    ``s2ssl.stage`` and ``dvc.stage`` (= ``stage``), ``git.commit`` (``git rev-parse HEAD`` in
    ``repo`` or the working directory; ``"unknown"`` outside a git repository or without git),
    ``git.dirty`` (``"true"`` / ``"false"``: tracked files modified, untracked files ignored;
    ``"unknown"`` outside git) and ``input.<name>`` = :func:`hash_input` of each input. Relative
    input paths are taken relative to ``repo`` when given, else to the working directory.
    """
    if not isinstance(stage, str) or not stage.strip():
        raise ValueError(f"stage must be a non-empty str (the DVC stage name), got {stage!r}")
    if repo is not None and not Path(repo).is_dir():
        raise ValueError(f"repo {str(repo)!r} is not a directory; pass the repository root")
    root = Path(repo) if repo is not None else Path.cwd()
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    dirty = "unknown" if status is None else ("true" if status else "false")
    tags = {
        "s2ssl.stage": stage,
        "dvc.stage": stage,
        "git.commit": commit or "unknown",
        "git.dirty": dirty,
    }
    for name, path in (inputs or {}).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"input names must be non-empty str, got {name!r}")
        p = Path(path)
        if not p.is_absolute():
            p = root / p
        if not p.exists():
            raise ValueError(
                f"input {name!r} ({str(path)!r}) does not exist; run the stage that produces it "
                "first (e.g. `dvc repro`)"
            )
        tags[f"input.{sanitize_key(name)}"] = hash_input(p)
    return tags
