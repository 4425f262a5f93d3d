"""Normalisation statistics: exact histogram results against numpy on the same pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2ssl.data.stats import NormStats, band_histograms, stats_from_histograms
from s2ssl.data.store import open_dataset


def test_histogram_stats_equal_numpy_on_valid_cloud_free_pixels(tiny_raw: Path) -> None:
    store = open_dataset(tiny_raw / "croptype")
    keep = np.arange(0, len(store), 2)
    view = store.subset(keep)
    hist = band_histograms(view, chunk_size=3)
    stats = stats_from_histograms(hist, store.bands, (0.02, 0.98))
    image = store.read_many("image", keep).astype(np.int64)
    offsets = np.stack([np.asarray(store.index.at[i, "dn_offset"]) for i in keep])
    refl = (image + offsets[:, :, None, None, None]) / 10_000
    mask = store.read_many("mask", keep)
    clear = (mask == 0) | (mask == 3)
    for b in (0, 3, 7, len(store.bands) - 1):
        values = refl[:, :, b][clear]
        assert stats.mean[b] == pytest.approx(values.mean(), abs=1e-9)
        assert stats.std[b] == pytest.approx(values.std(), abs=1e-9)
        assert stats.low[b] == pytest.approx(np.quantile(values, 0.02, method="inverted_cdf"))
        assert stats.high[b] == pytest.approx(np.quantile(values, 0.98, method="inverted_cdf"))
    assert stats.n_pixels == int(clear.sum())


def test_norm_stats_json_round_trip_and_select(tmp_path: Path) -> None:
    s = NormStats(
        ("B02", "B03", "B04"),
        (0.1, 0.2, 0.3),
        (0.01, 0.02, 0.03),
        (0.02, 0.98),
        (0.0, 0.1, 0.2),
        (0.2, 0.3, 0.4),
        99,
    )
    assert NormStats.load(s.save(tmp_path / "s.json")) == s
    rgb = s.select(["B04", "B03", "B02"])
    assert rgb.mean == (0.3, 0.2, 0.1) and rgb.high == (0.4, 0.3, 0.2)
    with pytest.raises(ValueError, match=r"bands \['B08'\] have no statistics"):
        s.select(["B08"])
    with pytest.raises(ValueError, match="run `s2ssl validate`"):
        NormStats.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        NormStats(("B02",), (0.1,), (0.0,), (0.02, 0.98), (0.0,), (0.2,), 1)


def test_no_clear_pixel_is_an_error() -> None:
    hist = np.zeros((2, 66536), np.int64)
    hist[0, 1500] = 3
    with pytest.raises(ValueError, match=r"no valid cloud-free pixel for band\(s\) \['B02'\]"):
        stats_from_histograms(hist, ["B01", "B02"], (0.02, 0.98))
