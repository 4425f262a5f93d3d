"""Types shared by every imagery source: the dataset names and the chunk a source yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd

DatasetName = Literal["unlabelled", "landcover", "croptype", "scene"]
DATASET_NAMES: Final[tuple[str, ...]] = ("unlabelled", "landcover", "croptype", "scene")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A batch of generated samples, ready for :class:`s2ssl.data.store.DatasetWriter`."""

    arrays: dict[str, np.ndarray]
    rows: pd.DataFrame
