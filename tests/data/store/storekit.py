"""Helpers of the dataset store tests: arrays, index rows and specs of a small dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from s2ssl.data.store import (
    ArraySpec,
)

T, C, H, W = 2, 3, 4, 5


def make_arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 10_000, size=(n, T, C, H, W), dtype=np.uint16),
        "label": rng.integers(0, 10, size=(n,), dtype=np.uint8),
    }


def make_index(n: int, start: int = 0) -> pd.DataFrame:
    ids = range(start, start + n)
    return pd.DataFrame(
        {
            "id": [f"s{i:03d}" for i in ids],
            "region": ["north" if i % 2 else "south" for i in ids],
            "lon": [float(i) / 3 for i in ids],
            "dates": [[f"2021-0{1 + i % 9}-01", f"2022-0{1 + i % 9}-15"] for i in ids],
            "dn_offset": [[0, -1000] for _ in ids],
            "cloud_fraction": [[0.01 * i, 0.5] for i in ids],
            "transform": [[10.0, 0.0, 500000.0 + i, 0.0, -10.0, 4e6] for i in ids],
        }
    )


SPECS = [ArraySpec("image", "uint16", (T, C, H, W)), ArraySpec("label", "uint8", ())]


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def hidden_siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))
