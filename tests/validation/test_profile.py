"""The profile table: vectorised values against a per-sample hand computation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s2ssl.bands import BAND_NAMES, L2A_BAND_NAMES
from s2ssl.data.store import open_dataset, write_dataset
from s2ssl.validation.profile import bands_ok, profile_dataset

START, END = dt.date(2019, 1, 1), dt.date(2023, 12, 31)


def test_profile_matches_a_per_sample_reference(tiny_raw: Path) -> None:
    store = open_dataset(tiny_raw / "croptype")
    prof = profile_dataset(store, START, END, chunk_size=2)  # chunks cross shard borders
    assert len(prof) == len(store)
    assert prof["position"].tolist() == list(range(len(store)))
    for i in (0, 5, len(store) - 1):
        image = store.read("image", i).astype(np.int64)
        mask = store.read("mask", i)
        offsets = np.asarray(store.index.at[i, "dn_offset"])[:, None, None, None]
        dn = image + offsets
        valid = mask != 255
        b04 = dn[:, 3][valid]
        row = prof.iloc[i]
        assert row["B04_min"] == b04.min()
        assert row["B04_max"] == b04.max()
        assert row["B04_mean"] == pytest.approx(b04.mean())
        assert row["dn_max"] == max(dn[:, b][valid].max() for b in range(len(store.bands)))
        assert row["cloud_fraction"] == pytest.approx(np.isin(mask[valid], (1, 2)).mean())
        crop = store.read("croptype", i)
        assert row["croptype_coverage"] == pytest.approx((crop != 255).mean())
        assert row["croptype_unknown"] == 0
        assert row["n_dates"] == 16 and row["dates_ordered"] and row["dates_in_range"]
    assert prof["band_names"].iloc[0] == ",".join(store.bands) == ",".join(L2A_BAND_NAMES)
    assert "B10_min" not in prof.columns and "B11_min" in prof.columns
    assert prof["nan_fraction"].eq(0).all() and prof["nodata_fraction"].eq(0).all()


def test_nodata_pixels_are_excluded(tmp_path: Path) -> None:
    image = np.full((2, 1, 13, 4, 4), 1500, np.uint16)
    image[0, 0, :, 0, 0] = 0  # a pixel that is 0 DN in every band: nodata
    image[0, 0, 3, 1, 1] = 9000
    mask = np.zeros((2, 1, 4, 4), np.uint8)
    mask[1, 0, :2] = 255  # half of sample 1 flagged nodata
    mask[1, 0, 3, 0] = 1
    index = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "split": "train",
            "crs": "EPSG:32631",
            "transform": [[10.0, 0, 0, 0, -10.0, 0]] * 2,
            "dates": [["2022-06-01"]] * 2,
            "dn_offset": [[-1000]] * 2,
        }
    )
    write_dataset(
        tmp_path / "d", {"image": image, "mask": mask}, index, attrs={"bands": list(BAND_NAMES)}
    )
    prof = profile_dataset(open_dataset(tmp_path / "d"), START, END)
    assert prof["nodata_fraction"].tolist() == [1 / 16, 0.5]
    assert prof["dn_min"].tolist() == [500, 500]  # 0-DN nodata pixel not counted
    assert prof.at[0, "dn_max"] == 8000 and prof.at[0, "dn_max_band"] == "B04"
    assert prof.at[1, "cloud_fraction"] == pytest.approx(1 / 8)  # of the valid pixels


def test_bands_ok() -> None:
    all13 = ",".join(BAND_NAMES)
    assert bands_ok(all13, BAND_NAMES)
    no_b10 = ",".join(b for b in BAND_NAMES if b != "B10")
    assert not bands_ok(no_b10, BAND_NAMES)
    assert bands_ok(no_b10, ["B02", "B03", "B04"])
    assert not bands_ok("B03,B02,B04", ["B02"])  # wrong order
    assert not bands_ok("", ["B02"])
