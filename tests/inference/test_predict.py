"""End to end: GeoTIFFs in; COG class maps, probabilities, areas out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from s2ssl.bands import MASK_CLOUD
from s2ssl.classes import ClassSet
from s2ssl.inference.maps import NODATA_CLASS, read_class_names
from s2ssl.inference.predict import predict_raster, predict_rasters
from s2ssl.inference.segmenter import TorchSegmenter
from s2ssl.models.unet import ResNetUNet

FOUR = ("B02", "B03", "B04", "B08")
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "eolearn_slovenia_testpatch.npz"


def read(path: Path) -> tuple[np.ndarray, rasterio.profiles.Profile, dict]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.tags(ns="IMAGE_STRUCTURE")


def test_large_raster_georeference_kept_and_tiled_equals_whole(
    tmp_path: Path, tiny, geotiff, dn_raster
) -> None:
    dn = dn_raster((4, 217, 300))
    src = geotiff(
        tmp_path / "scene.tif", dn, descriptions=FOUR, tags={"PROCESSING_BASELINE": "04.00"}
    )
    res = predict_raster(
        tiny,
        src,
        tmp_path / "out",
        overlap=16,
        batch_size=4,
        probabilities=True,
        block_width=64,  # five column blocks: the raster is wider than the memory block
        device="cpu",
    )
    classes, profile, structure = read(res.classes_path)
    with rasterio.open(src) as ds:
        assert profile["crs"] == ds.crs and profile["transform"] == ds.transform
        assert (profile["height"], profile["width"]) == (ds.height, ds.width) == (217, 300)
    assert structure["LAYOUT"] == "COG" and profile["dtype"] == "uint8"
    assert (res.height, res.width, res.crs) == (217, 300, "EPSG:32633")

    whole = tiny.whole((dn.astype(np.float32) - 1000) / 10_000)  # offset of baseline 04.00
    proba, pprofile, _ = read(res.probabilities_path)
    np.testing.assert_allclose(proba / 254.0, whole, atol=0.5 / 254 + 1e-5)  # no seams
    top2 = np.sort(whole, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-4  # not a near-tie
    np.testing.assert_array_equal(classes[0][clear], np.argmax(whole, axis=0)[clear])
    assert pprofile["count"] == 3

    areas = json.loads(res.areas_path.read_text())
    assert areas == res.areas
    counts = np.bincount(classes.ravel(), minlength=3)
    assert areas["class_pixels"] == {n: int(counts[i]) for i, n in enumerate(tiny.class_names)}
    assert areas["class_area_ha"]["forest"] == pytest.approx(counts[1] * 100 / 1e4)
    assert areas["total_area_ha"] == pytest.approx(217 * 300 * 0.01)
    assert areas["pixel_area_m2"] == 100.0 and areas["nodata_pixels"] == 0
    assert "04.00" in areas["radiometry"] and areas["model"]["overlap"] == 16
    assert res.area_km2 == pytest.approx(6.51)
    assert res.quicklook_path is not None and res.quicklook_path.stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "areas.json",
        "classes.tif",
        "probabilities.tif",
        "quicklook.png",
    ]


def test_nodata_and_cloud_masked_pixels_are_nodata(
    tmp_path: Path, tiny, geotiff, dn_raster
) -> None:
    dn = dn_raster((4, 70, 80))
    dn[:, :10, :10] = 0  # no data (all-zero DN)
    dn[1, 60:, 70:] = 65535  # the nodata value in one band
    src = geotiff(tmp_path / "a.tif", dn, descriptions=FOUR, nodata=65535)
    mask = np.zeros((1, 70, 80), np.uint8)
    mask[0, 30:40, 30:50] = MASK_CLOUD
    mask_path = geotiff(tmp_path / "mask.tif", mask)
    res = predict_raster(
        tiny,
        src,
        tmp_path / "out",
        cloud_mask=mask_path,
        dn_offset=0,
        probabilities=True,
        quicklook=False,
    )
    classes = read(res.classes_path)[0][0]
    proba = read(res.probabilities_path)[0]
    expected = np.zeros((70, 80), bool)
    expected[:10, :10] = expected[60:, 70:] = expected[30:40, 30:50] = True
    np.testing.assert_array_equal(classes == NODATA_CLASS, expected)
    assert (proba[:, expected] == 255).all() and (proba[:, ~expected] < 255).all()
    assert res.areas["nodata_pixels"] == int(expected.sum())
    assert res.areas["nodata_area_ha"] == pytest.approx(expected.sum() * 0.01)
    assert res.quicklook_path is None


def test_band_mismatch_names_the_missing_bands(tmp_path: Path, make_tiny, geotiff, dn_raster):
    src = geotiff(tmp_path / "rgb.tif", dn_raster((3, 20, 20)), descriptions=["B04", "B03", "B02"])
    seg = make_tiny(bands=("B02", "B03", "B04", "B08", "B11"))
    with pytest.raises(ValueError, match=r"rgb\.tif lacks bands B08, B11 that the model"):
        predict_raster(seg, src, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.tif"))


def test_non_georeferenced_input_is_refused(tmp_path: Path, tiny, geotiff, dn_raster) -> None:
    src = geotiff(tmp_path / "a.tif", dn_raster((4, 20, 20)), crs=None, descriptions=FOUR)
    with pytest.raises(ValueError, match="not georeferenced"):
        predict_raster(tiny, src, tmp_path / "out")


def test_geographic_input_gets_ellipsoidal_areas(tmp_path: Path, tiny, geotiff, dn_raster):
    t = Affine(0.0001, 0.0, 14.0, 0.0, -0.0001, 46.0)
    src = geotiff(
        tmp_path / "g.tif", dn_raster((4, 30, 40)), crs="EPSG:4326", transform=t, descriptions=FOUR
    )
    res = predict_raster(tiny, src, tmp_path / "out", dn_offset=0, quicklook=False)
    assert res.areas["pixel_area_m2"] is None  # varies by row
    # 0.0001° × 0.0001° at 46° N: about 7.73 m × 11.11 m
    assert res.areas["total_area_ha"] == pytest.approx(1200 * 7.73 * 11.11 / 1e4, rel=0.01)


def test_time_series_segmenter_is_refused_for_a_geotiff(tmp_path, tiny, geotiff, dn_raster):
    tiny.n_dates = 4
    src = geotiff(tmp_path / "a.tif", dn_raster((4, 20, 20)), descriptions=FOUR)
    with pytest.raises(ValueError, match="time-series model"):
        predict_raster(tiny, src, tmp_path / "out")


def test_folder_of_geotiffs_gives_one_folder_per_raster(tmp_path, tiny, geotiff, dn_raster):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, name in enumerate(("a.tif", "b.tif")):
        geotiff(folder / name, dn_raster((4, 30 + i, 40), seed=i), descriptions=FOUR)
    results = predict_rasters(tiny, folder, tmp_path / "out", dn_offset=0, quicklook=False)
    assert [r.classes_path for r in results] == [
        tmp_path / "out" / "a" / "classes.tif",
        tmp_path / "out" / "b" / "classes.tif",
    ]
    assert [r.height for r in results] == [30, 31]
    single = predict_rasters(tiny, folder / "a.tif", tmp_path / "one", dn_offset=0)
    assert single[0].classes_path == tmp_path / "one" / "classes.tif"


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data is absent (a user's fresh clone)")
def test_real_eolearn_patch_gives_a_valid_cog(tmp_path: Path, geotiff) -> None:
    """The eo-learn Slovenia patch (Level-1C, 13 bands) through a ResNet-18 U-Net."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = np.load(REAL)
    bands = [str(b) for b in data["l1c_bands"]]
    clm = data["clm"][data["ref_scene_timestamp_idx"]].reshape(5, 101, 100)
    k = int(np.argmin(clm.mean(axis=(1, 2))))  # the clearest scene
    dn = np.rint(data["ref_scenes_l1c"][k] * 10_000).astype(np.uint16).transpose(2, 0, 1)
    minx, miny, maxx, maxy = (float(v) for v in data["bbox_utm33n"])
    transform = Affine((maxx - minx) / 100, 0.0, minx, 0.0, -(maxy - miny) / 101, maxy)
    src = geotiff(
        tmp_path / "slovenia.tif",
        dn,
        crs="EPSG:32633",
        transform=transform,
        descriptions=bands,
        tags={"PROCESSING_BASELINE": "02.04"},
    )
    mask = geotiff(
        tmp_path / "clm.tif", clm[k][None].astype(np.uint8), crs="EPSG:32633", transform=transform
    )
    classes = ("water", "forest", "grassland", "cropland", "artificial", "bare", "wetland")
    unet = ResNetUNet(depth=18, in_channels=13, out_channels=len(classes))
    colours = ("#1f78b4", "#1b5e20", "#9ccc65", "#f0c419", "#d32f2f", "#bcaaa4", "#4db6ac")
    class_set = ClassSet.from_names(classes, colours)
    seg = TorchSegmenter(unet, bands, classes, tile_size=64, class_set=class_set)
    res = predict_raster(seg, src, tmp_path / "out", cloud_mask=mask, probabilities=True)
    with rasterio.open(res.classes_path) as ds:
        assert ds.driver == "GTiff" and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.crs.to_epsg() == 32633 and ds.transform.almost_equals(transform)
        assert (ds.height, ds.width) == (101, 100)
        out = ds.read(1)
        assert ds.colormap(1)[1][:3] == (0x1B, 0x5E, 0x20)  # the declared forest colour
    assert read_class_names(res.classes_path) == classes
    assert set(np.unique(out)) <= set(range(len(classes))) | {NODATA_CLASS}
    assert res.areas["nodata_pixels"] == int((clm[k] == 1).sum())
    pixel_ha = abs(transform.determinant) / 1e4
    assert res.areas["total_area_ha"] == pytest.approx(101 * 100 * pixel_ha)
    assert res.quicklook_path is not None and res.quicklook_path.exists()
