"""Map products: pixel areas, areas summary, class-map metadata, COG layout, quicklook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from s2ssl.classes import ClassSet
from s2ssl.inference.maps import (
    NODATA_CLASS,
    MapWriter,
    QuicklookPanel,
    pixel_areas_m2,
    read_class_names,
    render_quicklook,
)

UTM = CRS.from_epsg(32633)
T10 = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_000.0)


def test_projected_pixel_area_from_the_transform() -> None:
    np.testing.assert_array_equal(pixel_areas_m2(T10, UTM, 3), [100.0, 100.0, 100.0])
    rotated = Affine(8.0, 6.0, 0.0, 6.0, -8.0, 0.0)  # 10 m pixels, rotated
    np.testing.assert_allclose(pixel_areas_m2(rotated, UTM, 1), [100.0])
    feet = CRS.from_epsg(2229)  # NAD83 / California zone 5 (US survey feet)
    np.testing.assert_allclose(
        pixel_areas_m2(Affine(10.0, 0, 0, 0, -10.0, 0), feet, 1), [100 * 0.3048006096**2]
    )


def test_geographic_pixel_area_is_ellipsoidal_per_row() -> None:
    t = Affine(0.001, 0.0, 14.0, 0.0, -0.001, 46.0)
    areas = pixel_areas_m2(t, CRS.from_epsg(4326), 3)
    geod = pyproj.Geod(ellps="WGS84")
    for r in range(3):
        lat1, lat2 = 46.0 - 0.001 * r, 46.0 - 0.001 * (r + 1)
        ref, _ = geod.polygon_area_perimeter([14.0, 14.001, 14.001, 14.0], [lat2, lat2, lat1, lat1])
        assert areas[r] == pytest.approx(abs(ref), rel=1e-6)
    assert areas[0] < areas[2]  # cells grow towards the equator
    with pytest.raises(ValueError, match="rotated/sheared geographic grid"):
        pixel_areas_m2(Affine(0.001, 0.0001, 14.0, 0.0, -0.001, 46.0), CRS.from_epsg(4326), 3)
    with pytest.raises(ValueError, match="beyond ±90°"):
        pixel_areas_m2(Affine(1.0, 0.0, 0.0, 0.0, 1.0, 89.5), CRS.from_epsg(4326), 3)


CLASSES = ClassSet.from_names(("water", "forest", "grassland"), ("#1f78b4", "#1b5e20", "#9ccc65"))


def write_map(tmp_path: Path, proba: np.ndarray, valid: np.ndarray, **kw) -> MapWriter:
    names = CLASSES.names
    _, h, w = proba.shape
    work = tmp_path / "work"
    work.mkdir()
    writer = MapWriter(
        work,
        height=h,
        width=w,
        crs=kw.pop("crs", UTM),
        transform=kw.pop("transform", T10),
        class_names=names,
        colours=CLASSES.colours,
        **kw,
    )
    # two blocks, as the tiling engine hands them over
    writer.write(Window(0, 0, w, 5), proba[:, :5], valid[:5])
    writer.write(Window(0, 5, w, h - 5), proba[:, 5:], valid[5:])
    writer.finish(
        tmp_path / "classes.tif",
        tmp_path / "probabilities.tif" if kw.get("probabilities") else None,
    )
    return writer


def test_class_map_embeds_grid_colours_names_and_is_a_cog(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1], size=(12, 20)).transpose(2, 0, 1).astype(np.float32)
    valid = np.ones((12, 20), bool)
    valid[3, :4] = False
    writer = write_map(tmp_path, proba, valid, probabilities=True, tags={"S2SSL_SOURCE": "x"})
    with rasterio.open(tmp_path / "classes.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.crs == UTM and ds.transform == T10 and (ds.height, ds.width) == (12, 20)
        assert ds.dtypes[0] == "uint8" and ds.nodata == NODATA_CLASS
        classes = ds.read(1)
        cmap = ds.colormap(1)
        assert ds.descriptions == ("class",)
        assert ds.tags(1)["CLASS_1"] == "forest"
        assert ds.tags()["S2SSL_SOURCE"] == "x"
    assert read_class_names(tmp_path / "classes.tif") == ("water", "forest", "grassland")
    assert cmap[0][:3] == (0x1F, 0x78, 0xB4)
    assert cmap[NODATA_CLASS][3] == 0  # nodata transparent
    expected = np.argmax(proba, axis=0)
    expected[~valid] = NODATA_CLASS
    np.testing.assert_array_equal(classes, expected)
    with rasterio.open(tmp_path / "probabilities.tif") as ds:
        assert ds.descriptions == ("water", "forest", "grassland")
        assert ds.nodata == 255 and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        stored = ds.read(masked=True).astype(np.float64) * np.array(ds.scales)[:, None, None]
    assert stored.mask[:, ~valid].all() and not stored.mask[:, valid].any()
    np.testing.assert_allclose(stored[:, valid], proba[:, valid], atol=0.5 / 254 + 1e-6)
    assert writer.pixels.tolist()[-1] == 4
    assert not list((tmp_path / "work").glob("*.aux.xml"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "classes.tif",
        "probabilities.tif",
        "work",
    ]  # no temporary files left next to the outputs


def test_areas_equal_hand_computed_hectares(tmp_path: Path) -> None:
    proba = np.zeros((3, 10, 10), np.float32)
    proba[0, :4] = 1.0  # 40 px water
    proba[1, 4:, :7] = 1.0  # 42 px forest
    proba[2, 4:, 7:] = 1.0  # 18 px grassland
    valid = np.ones((10, 10), bool)
    valid[9, 7:] = False  # 3 px nodata (taken from grassland)
    s = write_map(tmp_path, proba, valid).summary()
    assert s["class_pixels"] == {"water": 40, "forest": 42, "grassland": 15}
    assert s["class_area_ha"] == {"water": 0.4, "forest": 0.42, "grassland": 0.15}  # 100 m²/px
    assert s["nodata_pixels"] == 3 and s["nodata_area_ha"] == pytest.approx(0.03)
    assert s["valid_area_ha"] == pytest.approx(0.97) and s["total_area_ha"] == pytest.approx(1.0)
    assert s["class_fraction"]["water"] == pytest.approx(40 / 97, abs=1e-6)
    json.dumps(s)  # JSON-ready


def test_quicklook_png(tmp_path: Path) -> None:
    classes = np.arange(30 * 40).reshape(30, 40).astype(np.uint8) % 3
    classes[:5] = NODATA_CLASS
    rgb = np.random.default_rng(0).uniform(0, 0.3, (3, 30, 40))
    path = render_quicklook(
        tmp_path / "q.png",
        [QuicklookPanel("a", classes, rgb), QuicklookPanel("b", classes, None)],
        CLASSES.names,
        CLASSES.colours,
        title="t",
        fractions={"water": 0.5, "forest": 0.25, "grassland": 0.25},
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one panel"):
        render_quicklook(tmp_path / "x.png", [], ("a",), ("#000000",))


def test_class_names_missing_is_a_clear_error(tmp_path: Path, geotiff) -> None:
    path = geotiff(tmp_path / "plain.tif", np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="no valid CLASS_NAMES tag"):
        read_class_names(path)


def test_colours_must_match_classes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 colours for 3 classes"):
        MapWriter(
            tmp_path,
            height=2,
            width=2,
            crs=UTM,
            transform=T10,
            class_names=("a", "b", "c"),
            colours=("#000000", "#ffffff"),
        )
