"""What the benchmark readers share: the inventory of a (possibly partial) download and the
checks that turn a file's pixels into ``uint16`` DN."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

__all__ = ["Incomplete", "Inventory", "as_dn", "require_file"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Incomplete:
    """A sample (or part of the layout) that the download lacks: its id and what is missing."""

    sample_id: str
    missing: tuple[str, ...]
    """Paths (relative to the dataset root) or short descriptions of what is absent or empty."""
    absent: bool = False
    """Nothing of the sample is on disk (not downloaded at all, as opposed to a partial one)."""


@dataclass(frozen=True)
class Inventory(Generic[T]):
    """What an enumerator found: the complete samples, in a stable order, and the rest."""

    samples: tuple[T, ...]
    incomplete: tuple[Incomplete, ...]

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def complete(self) -> bool:
        """True when nothing the layout promises is missing."""
        return not self.incomplete


def is_present(path: Path) -> bool:
    """A file that exists and is not empty (an interrupted download leaves empty files)."""
    return path.is_file() and path.stat().st_size > 0


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when under it (messages and inventories), else as is."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def require_file(path: Path, what: str) -> Path:
    """``path`` when it is a non-empty file; else ``ValueError`` naming it and ``what`` it is."""
    if not path.is_file():
        raise ValueError(f"{path}: not found; expected {what}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty (an interrupted download?); expected {what}")
    return path


def as_dn(array: np.ndarray, path: Path) -> np.ndarray:
    """Integer pixels as ``uint16`` DN; a float array or a value outside 0..65535 raises
    ``ValueError`` naming ``path``."""
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{path}: pixels are {array.dtype}; expected integer DN (reflectance x 10000)"
        )
    if array.dtype == np.uint16:
        return array
    if array.size and (int(array.min()) < 0 or int(array.max()) > np.iinfo(np.uint16).max):
        raise ValueError(
            f"{path}: DN range {int(array.min())}..{int(array.max())} does not fit uint16 "
            "(expected 0..65535)"
        )
    return array.astype(np.uint16)


def check_shape(array: np.ndarray, expected: Sequence[int | None], path: Path, what: str) -> None:
    """``ValueError`` naming ``path`` unless ``array`` has ``expected`` shape (None: any size)."""
    ok = array.ndim == len(expected) and all(
        e is None or s == e for s, e in zip(array.shape, expected, strict=True)
    )
    if not ok:
        shown = " x ".join("*" if e is None else str(e) for e in expected)
        raise ValueError(f"{path}: array of shape {tuple(array.shape)}; expected {what} ({shown})")
