"""A tiny validated crop-type dataset of time series of different lengths, padded to the longest.

Sample ``k`` has ``LENGTHS[k % 2]`` real dates (3 or 5) stored in ``T_MAX = 5`` positions; real
date ``j`` has day of year ``DOY_STEP * (j + 1)`` and DN ``DN_STEP * (j + 1)`` in every band and
pixel, so a selected frame names its date by its value. Padded positions: day of year 0, DN
offset 0, image 0, mask 255 (the dataset contract of padded series).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from s2ssl.classes import ClassSet
from s2ssl.data.stats import NormStats
from s2ssl.data.store import ArraySpec, DatasetWriter, open_dataset
from s2ssl.data.validated import write_validated

T_MAX = 5
LENGTHS = (3, 5)
BANDS = ("B02", "B03", "B04", "B08")
SIZE = 8
DOY_STEP = 10
DN_STEP = 100
CLASSES = ("background", "wheat", "maize")
SPLITS = ("train",) * 6 + ("val",) * 2 + ("test",) * 2


def padded_croptype(root: Path, *, with_lengths: bool = True) -> Path:
    """Write ``root/raw/croptype`` and ``root/validated/croptype``; returns ``root/validated``.

    ``with_lengths=False`` leaves out the ``n_dates`` column (every sample then counts as
    ``T_MAX`` dates long, its padding included).
    """
    n = len(SPLITS)
    lengths = np.array([LENGTHS[k % 2] for k in range(n)], np.int64)
    image = np.zeros((n, T_MAX, len(BANDS), SIZE, SIZE), np.uint16)
    mask = np.full((n, T_MAX, SIZE, SIZE), 255, np.uint8)
    doy = np.zeros((n, T_MAX), np.int64)
    label = np.zeros((n, SIZE, SIZE), np.uint8)
    for k, length in enumerate(lengths):
        for j in range(length):
            image[k, j] = DN_STEP * (j + 1)
            mask[k, j] = 0
            doy[k, j] = DOY_STEP * (j + 1)
        label[k, :, : SIZE // 2] = 1 + k % 2
        label[k, :4, SIZE // 2 :] = 2 - k % 2
    index = pd.DataFrame(
        {
            "sample_id": [f"s{k:02d}" for k in range(n)],
            "split": list(SPLITS),
            "region": ["north_west"] * n,
            "doy": [row.tolist() for row in doy],
            "dn_offset": [[0] * T_MAX for _ in range(n)],
            "cloud_fraction": [[0.0] * T_MAX for _ in range(n)],
        }
    )
    if with_lengths:
        index["n_dates"] = lengths
    specs = [
        ArraySpec("image", "uint16", (T_MAX, len(BANDS), SIZE, SIZE)),
        ArraySpec("mask", "uint8", (T_MAX, SIZE, SIZE)),
        ArraySpec("croptype", "uint8", (SIZE, SIZE)),
    ]
    attrs = {
        "bands": list(BANDS),
        "classes": {"croptype": ClassSet.from_names(CLASSES).to_json()},
    }
    raw = root / "raw" / "croptype"
    with DatasetWriter(raw, specs, name="croptype", attrs=attrs) as writer:
        writer.append({"image": image, "mask": mask, "croptype": label}, index)
    store = open_dataset(raw)
    stats = NormStats(
        bands=BANDS,
        mean=(0.02,) * len(BANDS),
        std=(0.01,) * len(BANDS),
        quantiles=(0.02, 0.98),
        low=(0.0,) * len(BANDS),
        high=(0.05,) * len(BANDS),
        n_pixels=int(image.size // len(BANDS)),
    )
    empty = pd.DataFrame({"position": [], "sample_id": [], "split": [], "reasons": []})
    write_validated(
        root / "validated" / "croptype",
        store,
        np.arange(n),
        empty,
        pd.DataFrame({"position": np.arange(n)}),
        stats,
        {},
    )
    return root / "validated"
