"""Band presets, resolution of band lists and selection by name."""

from __future__ import annotations

import numpy as np
import pytest

from s2ssl.bands import (
    BAND_NAMES,
    BAND_PRESETS,
    L2A_BAND_NAMES,
    band_positions,
    missing_bands,
    ndvi,
    resolve_bands,
    select_bands,
)


def test_presets_are_ordered_subsets_of_the_msi_bands() -> None:
    assert len(BAND_PRESETS["l1c"]) == 13
    assert BAND_PRESETS["l2a"] == L2A_BAND_NAMES and "B10" not in BAND_PRESETS["l2a"]
    assert len(BAND_PRESETS["l2a"]) == 12
    assert BAND_PRESETS["rgb"] == ("B02", "B03", "B04")
    assert len(BAND_PRESETS["pastis"]) == 10
    assert not {"B01", "B09", "B10"} & set(BAND_PRESETS["pastis"])
    for bands in BAND_PRESETS.values():
        assert list(bands) == [b for b in BAND_NAMES if b in bands]


def test_resolve_bands_sorts_lists_into_sentinel2_order() -> None:
    assert resolve_bands(["B08", "B02", "B8A"]) == ("B02", "B08", "B8A")
    assert resolve_bands("pastis") == BAND_PRESETS["pastis"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("l3", "unknown band preset 'l3'"),
        (["B02", "B13"], "unknown Sentinel-2 band(s) B13"),
        (["B02", "B02"], "B02 listed more than once"),
        ([], "at least one band"),
    ],
)
def test_resolve_bands_rejects_bad_lists(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_bands(spec)  # type: ignore[arg-type]


def test_select_bands_takes_a_superset_by_name() -> None:
    data = np.arange(13, dtype=np.float32).reshape(13, 1, 1) * np.ones((13, 2, 2), np.float32)
    out = select_bands(data, BAND_NAMES, ("B04", "B8A"))
    assert out[:, 0, 0].tolist() == [3.0, 8.0]
    l2a = select_bands(data, BAND_NAMES, L2A_BAND_NAMES)
    assert l2a[:, 0, 0].tolist() == [float(i) for i in range(13) if i != 10]


def test_missing_band_is_an_error_naming_it() -> None:
    data = np.zeros((12, 2, 2), np.float32)
    assert missing_bands(L2A_BAND_NAMES, BAND_NAMES) == ("B10",)
    with pytest.raises(ValueError, match=r"x\.tif lacks band\(s\) B10 \(it holds B01"):
        select_bands(data, L2A_BAND_NAMES, BAND_NAMES, what="x.tif")
    with pytest.raises(ValueError, match="band axis has 12 entries but 13"):
        select_bands(data, BAND_NAMES, L2A_BAND_NAMES)
    assert band_positions(L2A_BAND_NAMES, ("B11",)) == [10]


def test_ndvi_finds_its_bands_by_name() -> None:
    refl = np.zeros((3, 1, 1), np.float32)
    refl[1, 0, 0], refl[2, 0, 0] = 0.1, 0.5  # B04, B08 of ("B02", "B04", "B08")
    assert ndvi(refl, bands=("B02", "B04", "B08"))[0, 0] == pytest.approx(0.4 / 0.6)
