"""Fixtures of the dataset store tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from storekit import SPECS, make_arrays, make_index

from s2ssl.data.store import (
    DatasetWriter,
)


@pytest.fixture
def seven(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray], pd.DataFrame]:
    """7 samples written with shard_size=3 in uneven appends (shards of 3, 3, 1)."""
    arrays, index = make_arrays(7), make_index(7)
    path = tmp_path / "sub" / "ds"  # parent does not exist yet
    with DatasetWriter(path, SPECS, shard_size=3, attrs={"source": "test", "k": np.int64(3)}) as w:
        for lo, hi in [(0, 2), (2, 6), (6, 7)]:
            w.append({k: v[lo:hi] for k, v in arrays.items()}, index.iloc[lo:hi])
    return path, arrays, index
