"""Sentinel Hub: exactly the configured bands are requested (none filled, B10 refused on L2A),
and a label raster's ``classes`` mapping defines the dataset's class set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from sh_server import ShImitation
from shkit import BBOX, run, sh_params, sh_raw

from rasterkit import write_geotiff
from s2ssl.bands import BAND_PRESETS
from s2ssl.classes import LABEL_IGNORE
from s2ssl.config import parse_params
from s2ssl.data.sources.sentinelhub.client import (
    check_collection_bands,
    estimate_processing_units,
    evalscript,
)
from s2ssl.data.sources.sentinelhub.source import SentinelHubImagery
from s2ssl.data.store import open_dataset


def test_evalscript_requests_exactly_the_configured_bands() -> None:
    script = evalscript("L2A", ("B02", "B08"))
    assert 'bands: ["B02", "B08", "SCL", "dataMask"]' in script
    assert 'id: "bands", bands: 2' in script and "s.B02, s.B08" in script
    pastis = evalscript("L1C", BAND_PRESETS["pastis"])
    assert 'id: "bands", bands: 10' in pastis and '"CLM"' in pastis and "B01" not in pastis
    assert estimate_processing_units(512, 2) == pytest.approx(1.0)  # 2 bands + SCL


def test_b10_on_level_2a_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"L2A has no band\(s\) B10.*bands: l2a.*L1C"):
        check_collection_bands("L2A", BAND_PRESETS["l1c"])
    check_collection_bands("L1C", BAND_PRESETS["l1c"])
    raw = sh_raw(tmp_path, ["landcover"])
    raw["bands"] = "l1c"
    with pytest.raises(ValueError, match="B10"):
        SentinelHubImagery(parse_params(raw))  # before any credentials or request


def test_rgb_bands_only_are_downloaded_and_stored(sh: ShImitation, tmp_path: Path) -> None:
    raw = sh_raw(tmp_path, ["landcover"], regions=[{"name": "s", "points": [[14.2, 46.0]]}])
    raw["bands"] = "rgb"
    run(parse_params(raw), tmp_path)
    ds = open_dataset(tmp_path / "raw" / "landcover")
    assert ds.bands == ("B02", "B03", "B04") and ds.specs["image"].shape == (1, 3, 16, 16)
    assert "filled_bands" not in ds.attrs


def label_raster(path: Path, values: np.ndarray) -> Path:
    """``values`` [H, W] over the whole test bbox, in WGS84."""
    h, w = values.shape
    west, south, east, north = BBOX
    transform = Affine((east - west) / w, 0, west, 0, -(north - south) / h, north)
    return write_geotiff(path, values[None].astype(np.uint8), crs="EPSG:4326", transform=transform)


def test_label_raster_classes_define_the_class_set(sh: ShImitation, tmp_path: Path) -> None:
    values = np.full((40, 60), 20, np.uint8)
    values[:, :30] = 10
    values[:2] = 0  # "no label" along the northern edge, away from the patch
    path = label_raster(tmp_path / "lc.tif", values)
    labels = {"path": str(path), "classes": {20: "meadow", 10: "forest"}, "ignore_values": [0]}
    params = sh_params(
        tmp_path,
        ["landcover"],
        regions=[{"name": "s", "points": [[14.1, 46.1], [14.5, 46.1]]}],
        landcover={"patch_size": 16, "labels": labels},
    )
    run(params, tmp_path)
    ds = open_dataset(tmp_path / "raw" / "landcover")
    classes = ds.classes("landcover")
    assert classes.names == ("forest", "meadow") and classes.values == (10, 20)
    assert classes.ignored_values == (0,)
    stored = {float(ds.index.iloc[i]["lon"]): ds.read("landcover", i) for i in range(len(ds))}
    west, east = stored[min(stored)], stored[max(stored)]
    assert (west == 0).all() and (east == 1).all()  # forest west, meadow east
    assert LABEL_IGNORE not in west


def test_unmapped_label_values_fail_naming_them(sh: ShImitation, tmp_path: Path) -> None:
    values = np.full((40, 60), 30, np.uint8)
    path = label_raster(tmp_path / "lc.tif", values)
    params = sh_params(
        tmp_path,
        ["landcover"],
        regions=[{"name": "s", "points": [[14.2, 46.0]]}],
        landcover={"patch_size": 16, "labels": {"path": str(path), "classes": {1: "forest"}}},
    )
    with pytest.raises(ValueError, match=r"30 \(256 px\).*fetch\.sentinelhub\.landcover"):
        run(params, tmp_path)
    assert not (tmp_path / "raw" / "landcover").exists()
