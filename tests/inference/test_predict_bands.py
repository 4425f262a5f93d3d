"""Predicting GeoTIFFs whose bands differ from the model's: selection by name, errors naming the
missing bands, band lists given by the user, and the model's classes and colours in the maps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from s2ssl.bands import BAND_NAMES, L2A_BAND_NAMES
from s2ssl.classes import ClassSet
from s2ssl.inference.maps import read_class_names
from s2ssl.inference.predict import predict_raster

H = W = 64


class EchoSegmenter:
    """Records what it is given and predicts class 1 where its first band is brighter than its
    second, so both the input it sees and its output depend on which bands were selected."""

    def __init__(self, bands: Sequence[str], class_set: ClassSet | None = None) -> None:
        self.bands = tuple(bands)
        self.class_names = ("dark", "bright") if class_set is None else class_set.names
        self.class_set = class_set
        self.tile_size = 64
        self.seen: list[np.ndarray] = []

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.numpy().copy())
        bright = (x[:, 0] > x[:, 1]).float()
        return torch.stack([1 - bright, bright], dim=1)

    def channel_values(self) -> list[set[float]]:
        """The distinct non-zero values of each input channel (zeros are padding)."""
        x = np.concatenate(self.seen)
        return [
            set(np.unique(np.round(x[:, c].astype(np.float64), 5)).tolist()) - {0.0}
            for c in range(x.shape[1])
        ]


def band_dn(band: str) -> int:
    """A DN that identifies ``band``."""
    return 1000 + 100 * BAND_NAMES.index(band)


def constant_bands(bands: Sequence[str]) -> np.ndarray:
    """``(C, H, W)`` uint16 with band ``b`` constant at :func:`band_dn`."""
    return np.stack([np.full((H, W), band_dn(b), np.uint16) for b in bands])


def expected_values(bands: Sequence[str]) -> list[set[float]]:
    return [{round(band_dn(b) / 10_000, 5)} for b in bands]


def test_unnamed_l2a_file_is_mapped_by_an_l2a_model(
    tmp_path: Path, make_tiny, geotiff, dn_raster
) -> None:
    dn = dn_raster((12, H, W))
    src = geotiff(tmp_path / "l2a.tif", dn)  # no band descriptions: 12 bands = l2a
    seg = make_tiny(bands=L2A_BAND_NAMES)
    res = predict_raster(seg, src, tmp_path / "out", dn_offset=0, device="cpu", quicklook=False)
    with rasterio.open(res.classes_path) as ds:
        classes = ds.read(1)
        tags = ds.tags()
    whole = seg.whole(dn.astype(np.float32) / 10_000)
    top2 = np.sort(whole, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-4
    np.testing.assert_array_equal(classes[clear], np.argmax(whole, axis=0)[clear])
    assert tags["S2SSL_MODEL_BANDS"] == tags["S2SSL_INPUT_BANDS"] == ",".join(L2A_BAND_NAMES)
    model = res.areas["model"]
    assert model["bands_preset"] == model["input_bands_preset"] == "l2a"


def test_l1c_model_on_an_l2a_file_names_b10(tmp_path: Path, geotiff) -> None:
    src = geotiff(tmp_path / "x.tif", constant_bands(L2A_BAND_NAMES))
    seg = EchoSegmenter(BAND_NAMES)
    with pytest.raises(ValueError) as e:
        predict_raster(seg, src, tmp_path / "out")
    message = str(e.value)
    assert "x.tif lacks band B10 that the model (trained on l1c) needs" in message
    assert "use a model trained on l2a" in message
    assert seg.seen == [] and not list((tmp_path / "out").glob("*.tif"))


def test_l1c_file_with_an_l2a_model_selects_bands_by_name(tmp_path: Path, geotiff) -> None:
    src = geotiff(tmp_path / "l1c.tif", constant_bands(BAND_NAMES))  # unnamed: 13 bands = l1c
    seg = EchoSegmenter(L2A_BAND_NAMES)
    res = predict_raster(seg, src, tmp_path / "out", dn_offset=0, device="cpu", quicklook=False)
    assert seg.channel_values() == expected_values(L2A_BAND_NAMES)  # B10 skipped
    with rasterio.open(res.classes_path) as ds:
        assert (ds.read(1) == 0).all()  # B01 is darker than B02
    assert res.areas["model"]["input_bands"] == list(BAND_NAMES)
    assert res.areas["model"]["bands"] == list(L2A_BAND_NAMES)


def test_band_descriptions_in_an_unusual_order_are_respected(tmp_path: Path, geotiff) -> None:
    order = ("B12", "B08", "CLM", "B02", "B11", "B04", "B03", "B10")
    data = np.stack(
        [np.zeros((H, W), np.uint16) if b == "CLM" else constant_bands([b])[0] for b in order]
    )  # a clear cloud mask (0) among the bands
    src = geotiff(tmp_path / "odd.tif", data, descriptions=order)
    seg = EchoSegmenter(("B08", "B04", "B03", "B02"))  # B08 > B04: class 1 everywhere
    res = predict_raster(seg, src, tmp_path / "out", dn_offset=0, device="cpu", quicklook=False)
    assert seg.channel_values() == expected_values(seg.bands)
    with rasterio.open(res.classes_path) as ds:
        assert (ds.read(1) == 1).all()
        assert ds.tags()["S2SSL_INPUT_BANDS"] == "B12,B08,B02,B11,B04,B03,B10"


def test_bands_of_an_unnamed_file_can_be_given(tmp_path: Path, geotiff) -> None:
    given = ("B08", "B04", "B03", "B02")
    src = geotiff(tmp_path / "four.tif", constant_bands(given))
    seg = EchoSegmenter(("B02", "B03", "B04", "B08"))
    with pytest.raises(ValueError, match=r"four\.tif: its 4 bands carry no .* give --bands"):
        predict_raster(seg, src, tmp_path / "out")
    predict_raster(
        seg, src, tmp_path / "out", input_bands="B08,B04,B03,B02", dn_offset=0, quicklook=False
    )
    assert seg.channel_values() == expected_values(seg.bands)
    with pytest.raises(ValueError, match=r"has 4 image band.* --bands gives 3"):
        predict_raster(seg, src, tmp_path / "out", input_bands="rgb")
    named = geotiff(tmp_path / "named.tif", constant_bands(given), descriptions=given)
    with pytest.raises(ValueError, match="descriptions name the bands B08, B04, B03, B02 but"):
        predict_raster(seg, named, tmp_path / "out", input_bands="B02,B03,B04,B05")
    predict_raster(seg, named, tmp_path / "out", input_bands="B02,B03,B04,B08", quicklook=False)
    assert seg.channel_values() == expected_values(seg.bands)  # the descriptions' order wins


def test_maps_use_the_models_classes_and_colours(tmp_path: Path, geotiff) -> None:
    classes = ClassSet.from_names(("shade", "sun"), ("#102030", "#a0b0c0"))
    seg = EchoSegmenter(("B08", "B04"), class_set=classes)
    src = geotiff(tmp_path / "s.tif", constant_bands(("B04", "B08")), descriptions=("B4", "B8"))
    res = predict_raster(seg, src, tmp_path / "out", dn_offset=0, device="cpu")
    with rasterio.open(res.classes_path) as ds:
        cmap = ds.colormap(1)
    assert cmap[0][:3] == (0x10, 0x20, 0x30) and cmap[1][:3] == (0xA0, 0xB0, 0xC0)
    assert read_class_names(res.classes_path) == ("shade", "sun")
    areas = json.loads(res.areas_path.read_text())
    assert ClassSet.from_json(areas["model"]["classes"]) == classes
    assert res.quicklook_path is not None and res.quicklook_path.exists()
    seg.class_set = ClassSet.from_names(("sun", "shade"))
    with pytest.raises(ValueError, match="class_set names"):
        predict_raster(seg, src, tmp_path / "out2")
