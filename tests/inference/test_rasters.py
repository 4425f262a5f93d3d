"""GeoTIFF input: band names and mapping, georeference checks, radiometry, validity."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from s2ssl.bands import BAND_NAMES, L2A_BAND_NAMES, MASK_CLOUD, MASK_SHADOW, MASK_SNOW
from s2ssl.inference.rasters import RasterInput, find_rasters, parse_band_name

FOUR = ("B02", "B03", "B04", "B08")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("B02", "B02"),
        ("B2", "B02"),
        ("b8a", "B8A"),
        ("B8A", "B8A"),
        ("Band 4", "B04"),
        ("B04 (red)", "B04"),
        ("S2A_B11", "B11"),
        ("B10", "B10"),
        ("B13", None),
        ("B021", None),
        ("mask", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_band_name(text: str | None, name: str | None) -> None:
    assert parse_band_name(text) == name


def test_bands_are_mapped_by_description_in_any_order(tmp_path: Path, geotiff, dn_raster) -> None:
    dn = dn_raster((5, 20, 30))
    descs = ["B08", "B4", "CLM", "B03", "B02"]
    path = geotiff(tmp_path / "a.tif", dn, descriptions=descs)
    with RasterInput(path, FOUR, dn_offset=0) as r:
        assert r.indexes == [5, 4, 2, 1]
        x, valid = r.read(Window(0, 0, 30, 20))
    np.testing.assert_allclose(x, dn[[4, 3, 1, 0]] / 10_000, rtol=1e-6)
    assert valid.all()


@pytest.mark.parametrize("order", [BAND_NAMES, L2A_BAND_NAMES])
def test_unnamed_12_and_13_band_rasters_use_the_default_order(
    tmp_path: Path, geotiff, dn_raster, order: tuple[str, ...]
) -> None:
    dn = dn_raster((len(order), 8, 9))
    path = geotiff(tmp_path / "a.tif", dn)
    with RasterInput(path, ("B12", "B8A", "B01"), dn_offset=0) as r:
        assert r.indexes == [order.index(b) + 1 for b in ("B12", "B8A", "B01")]


def test_missing_bands_are_named(tmp_path: Path, geotiff, dn_raster) -> None:
    path = geotiff(tmp_path / "l2a.tif", dn_raster((12, 8, 9)))  # L2A: no B10
    with pytest.raises(
        ValueError, match=r"l2a\.tif lacks band B10 that the model \(trained on l1c\)"
    ):
        RasterInput(path, BAND_NAMES)
    rgb = geotiff(tmp_path / "rgb.tif", dn_raster((3, 8, 9)), descriptions=["B04", "B03", "B02"])
    with pytest.raises(
        ValueError, match=r"lacks bands B08, B11 that .* the input holds B04, B03, B02 \(rgb\)"
    ):
        RasterInput(rgb, ("B02", "B08", "B11"))


def test_unnamed_bands_of_another_count_are_refused(tmp_path: Path, geotiff, dn_raster) -> None:
    path = geotiff(tmp_path / "a.tif", dn_raster((4, 8, 9)))
    with pytest.raises(ValueError, match=r"carry no Sentinel-2 band names.*give --bands"):
        RasterInput(path, FOUR)


def test_duplicate_band_names_are_refused(tmp_path: Path, geotiff, dn_raster) -> None:
    path = geotiff(tmp_path / "a.tif", dn_raster((2, 8, 9)), descriptions=["B2", "B02"])
    with pytest.raises(ValueError, match=r"\['B02'\] appear on more than one band"):
        RasterInput(path, ("B02",))


def test_non_georeferenced_inputs_are_refused(tmp_path: Path, geotiff, dn_raster) -> None:
    dn = dn_raster((4, 8, 9))
    no_crs = geotiff(tmp_path / "nocrs.tif", dn, crs=None, descriptions=FOUR)
    with pytest.raises(ValueError, match="not georeferenced: it has no CRS"):
        RasterInput(no_crs, FOUR)
    with pytest.warns(NotGeoreferencedWarning):
        identity = geotiff(tmp_path / "id.tif", dn, transform=None, descriptions=FOUR)
    with pytest.raises(ValueError, match="not georeferenced: its geotransform"):
        RasterInput(identity, FOUR)


def test_unreadable_and_missing_inputs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match=r"cannot read .*bad\.tif as a raster"):
        RasterInput(bad, FOUR)
    with pytest.raises(ValueError, match="does not exist"):
        find_rasters(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no raster"):
        find_rasters(tmp_path / "empty")


def test_find_rasters_lists_a_folder(tmp_path: Path, geotiff, dn_raster) -> None:
    for name in ("b.tif", "a.TIFF", "c.txt"):
        geotiff(tmp_path / name, dn_raster((1, 2, 2)))
    assert [p.name for p in find_rasters(tmp_path)] == ["a.TIFF", "b.tif"]
    assert find_rasters(tmp_path / "b.tif") == [tmp_path / "b.tif"]


def test_dn_offset_from_baseline_tag_argument_and_default(
    tmp_path: Path, geotiff, dn_raster, caplog
) -> None:
    dn = dn_raster((4, 6, 7))
    w = Window(0, 0, 7, 6)
    new = geotiff(
        tmp_path / "new.tif", dn, descriptions=FOUR, tags={"PROCESSING_BASELINE": "05.09"}
    )
    with RasterInput(new, FOUR) as r:
        np.testing.assert_allclose(r.read(w)[0], (dn - 1000.0) / 10_000, atol=1e-6)
        assert r.radiometry.dn_offset == -1000 and "05.09" in r.radiometry.source
    tagged = geotiff(tmp_path / "t.tif", dn, descriptions=FOUR, tags={"BOA_ADD_OFFSET": "-1000"})
    with RasterInput(tagged, FOUR) as r:
        assert r.radiometry.dn_offset == -1000
    old = geotiff(tmp_path / "old.tif", dn, descriptions=FOUR)
    with RasterInput(old, FOUR, dn_offset=-1000) as r:
        np.testing.assert_allclose(r.read(w)[0], (dn - 1000.0) / 10_000, atol=1e-6)
    with caplog.at_level(logging.WARNING), RasterInput(old, FOUR) as r:
        np.testing.assert_allclose(r.read(w)[0], dn / 10_000, atol=1e-6)
    assert "without offset information" in caplog.text


def test_float_rasters_are_reflectance(tmp_path: Path, geotiff) -> None:
    refl = np.random.default_rng(0).uniform(0, 0.4, (4, 5, 6)).astype(np.float32)
    path = geotiff(tmp_path / "f.tif", refl, descriptions=FOUR)
    with RasterInput(path, FOUR) as r:
        np.testing.assert_allclose(r.read(Window(0, 0, 6, 5))[0], refl)


def test_nodata_zero_nan_and_cloud_masks_make_pixels_invalid(
    tmp_path: Path, geotiff, dn_raster
) -> None:
    dn = dn_raster((5, 10, 12))
    dn[2, 0, 0] = 65535  # nodata value in one band
    dn[:4, 1, 1] = 0  # all model bands zero
    dn[4] = 0  # band 5 is the mask band
    dn[4, 2, 2] = MASK_CLOUD
    dn[4, 3, 3] = MASK_SNOW  # not masked by default
    descs = [*FOUR, "mask"]
    path = geotiff(tmp_path / "a.tif", dn, descriptions=descs, nodata=65535)
    mask = np.zeros((1, 10, 12), np.uint8)
    mask[0, 4, 4] = MASK_SHADOW
    mask_path = geotiff(tmp_path / "m.tif", mask)
    with RasterInput(path, FOUR, dn_offset=0, cloud_mask=mask_path) as r:
        x, valid = r.read(Window(0, 0, 12, 10))
    invalid = {tuple(p) for p in np.argwhere(~valid).tolist()}
    assert invalid == {(0, 0), (1, 1), (2, 2), (4, 4)}
    assert (x[:, ~valid] == 0).all()

    refl = np.full((4, 3, 3), 0.1, np.float32)
    refl[1, 1, 1] = np.nan
    with RasterInput(geotiff(tmp_path / "f.tif", refl, descriptions=FOUR), FOUR) as r:
        x, valid = r.read(Window(0, 0, 3, 3))
    assert not valid[1, 1] and valid.sum() == 8 and np.isfinite(x).all()


def test_cloud_mask_on_another_grid_is_refused(tmp_path: Path, geotiff, dn_raster) -> None:
    path = geotiff(tmp_path / "a.tif", dn_raster((4, 10, 12)), descriptions=FOUR)
    shifted = Affine(10.0, 0.0, 465_190.0, 0.0, -10.0, 5_080_250.0)
    mask = geotiff(tmp_path / "m.tif", np.zeros((1, 10, 12), np.uint8), transform=shifted)
    with pytest.raises(ValueError, match="not on the grid"):
        RasterInput(path, FOUR, cloud_mask=mask)
    small = geotiff(tmp_path / "s.tif", np.zeros((1, 9, 12), np.uint8))
    with pytest.raises(ValueError, match="size 9x12 vs 10x12"):
        RasterInput(path, FOUR, cloud_mask=small)


def test_rgb_preview(tmp_path: Path, geotiff, dn_raster) -> None:
    dn = dn_raster((4, 300, 200))
    path = geotiff(tmp_path / "a.tif", dn, descriptions=FOUR)
    with RasterInput(path, ("B08",), dn_offset=0) as r:
        rgb = r.rgb_preview(max_size=100)
    assert rgb is not None and rgb.shape == (3, 100, 67)
    assert np.isclose(dn[2, :3, :3] / 10_000, rgb[0, 0, 0], rtol=1e-6).any()  # nearest
    only = geotiff(tmp_path / "b.tif", dn[:1], descriptions=["B08"])
    with RasterInput(only, ("B08",), dn_offset=0) as r:
        assert r.rgb_preview() is None
