"""Quicklooks read the dataset's own classes and colours and find bands by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s2ssl.classes import ClassSet, LabelClass
from s2ssl.data import quicklooks
from s2ssl.data.store import open_dataset, write_dataset


def test_true_colour_finds_red_green_blue_by_name() -> None:
    bands = ("B02", "B03", "B04", "B08")
    refl = np.stack([np.full((2, 2), v, np.float32) for v in (0.01, 0.02, 0.03, 0.3)])
    rgb = quicklooks.display(refl, bands)
    expected = quicklooks.rgb_to_display(refl[[2, 1, 0]])
    np.testing.assert_allclose(rgb, expected)
    with pytest.raises(ValueError, match="B04"):
        quicklooks.true_colour(refl[[0, 1, 3]], ("B02", "B03", "B08"))
    grey = quicklooks.display(refl[[3]], ("B08",))  # no RGB: the first band in grey
    assert grey.shape == (2, 2, 3) and np.allclose(grey[..., 0], grey[..., 2])


def own_croptype(tmp_path: Path, bands: tuple[str, ...]) -> Path:
    """A 3-sample croptype dataset with its own three classes (one without a colour)."""
    n, t, size = 3, 2, 8
    rng = np.random.default_rng(0)
    image = rng.integers(1500, 4000, (n, t, len(bands), size, size)).astype(np.uint16)
    crop = rng.integers(0, 3, (n, size, size)).astype(np.uint8)
    crop[:, 0] = 255
    classes = ClassSet(
        (LabelClass("meadow", 3, "#00ff00"), LabelClass("rye", 7, "#aa5500"), LabelClass("oat", 9)),
        (0,),
    )
    index = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "split": "train",
            "region": ["a", "a", "b"],
            "hemisphere": "north",
            "dates": [["2021-05-01", "2021-07-01"]] * n,
            "doy": [[121, 182]] * n,
            "dn_offset": [[-1000, -1000]] * n,
            "cloud_fraction": [[0.0, 0.0]] * n,
        }
    )
    arrays = {
        "image": image,
        "mask": np.zeros((n, t, size, size), np.uint8),
        "croptype": crop,
        "parcel": np.zeros((n, size, size), np.int32),
    }
    attrs = {"bands": list(bands), "classes": {"croptype": classes.to_json()}}
    return write_dataset(tmp_path / "croptype", arrays, index, attrs=attrs)


def test_ndvi_table_has_one_column_per_class_of_the_dataset(tmp_path: Path) -> None:
    ds = open_dataset(own_croptype(tmp_path, ("B02", "B03", "B04", "B08")))
    table = quicklooks.crop_ndvi_table(ds)
    assert table["ndvi"].shape == (3, 2, 3)
    image = ds.read("image", 0).astype(np.float32) - 1000
    ndvi = (image[:, 3] - image[:, 2]) / (image[:, 3] + image[:, 2])
    rye = ds.read("croptype", 0) == 1
    assert table["ndvi"][0, 0, 1] == pytest.approx(ndvi[0][rye].mean(), rel=1e-5)


def test_quicklooks_draw_own_classes_and_say_when_ndvi_bands_are_missing(tmp_path: Path) -> None:
    ds = open_dataset(own_croptype(tmp_path, ("B02", "B03", "B04", "B08")))
    for draw in (quicklooks.croptype_png, quicklooks.ndvi_curves_png):
        out = draw(ds, tmp_path / f"{draw.__name__}.png")
        assert out.stat().st_size > 1000
    rgb = open_dataset(own_croptype(tmp_path / "rgb", ("B02", "B03", "B04")))
    out = quicklooks.ndvi_curves_png(rgb, tmp_path / "rgb.png")  # no B08: a note, not a crash
    assert out.stat().st_size > 1000


def test_scenes_png_shows_each_class_or_label_set(tmp_path: Path) -> None:
    from benchkit import benchmark_params, write_eurosat
    from s2ssl.config import load_params
    from s2ssl.data.fetch import fetch
    from s2ssl.data.store import open_dataset

    root = write_eurosat(tmp_path / "e", per_class=2, classes=("Forest", "River"))
    params = load_params(benchmark_params(tmp_path / "p.yaml", "eurosat", {"path": str(root)}))
    ds = open_dataset(fetch(params, tmp_path / "raw", tmp_path / "rep").datasets["scene"])
    import matplotlib.image

    out = quicklooks.scenes_png(ds, tmp_path / "scenes.png", per_class=3)
    height, width = matplotlib.image.imread(out).shape[:2]
    assert width > height  # two class rows (2.3 in each) of three panels (2.1 in each)
    assert (tmp_path / "rep" / "scenes.png").is_file()  # fetch draws it for a scene dataset
