"""The synthetic source keeps the configured bands by name and declares its own class sets."""

from __future__ import annotations

import numpy as np
import pytest
from test_synthetic import generate_all, small

from s2ssl.bands import BAND_NAMES, BAND_PRESETS, L2A_BAND_NAMES
from s2ssl.classes import ClassSet
from s2ssl.data.sources.synthetic import source as synthetic_source
from s2ssl.synthetic_vocabulary import SYNTHETIC_CROPTYPE, SYNTHETIC_LANDCOVER


@pytest.mark.parametrize(("preset", "n_bands"), [("l2a", 12), ("l1c", 13), ("pastis", 10)])
def test_dataset_stores_exactly_the_configured_bands(preset: str, n_bands: int) -> None:
    params = small(bands=preset)
    cfg = params.fetch.synthetic
    attrs = synthetic_source.dataset_attrs(cfg, "landcover", params.seed, bands=params.band_names)
    shapes = synthetic_source.array_shapes(cfg, "landcover", bands=params.band_names)
    chunk = generate_all(params, "landcover", bands=params.band_names)
    assert attrs["bands"] == list(BAND_PRESETS[preset])
    assert len(attrs["bands"]) == n_bands
    assert shapes["image"][0] == (1, n_bands, cfg.landcover.patch_size, cfg.landcover.patch_size)
    assert chunk.arrays["image"].shape[2] == n_bands


def test_l2a_is_l1c_without_b10_and_the_same_values() -> None:
    params = small()
    full = generate_all(params, "landcover", bands=BAND_NAMES)
    l2a = generate_all(params, "landcover", bands=L2A_BAND_NAMES)
    assert "B10" not in L2A_BAND_NAMES and len(L2A_BAND_NAMES) == 12
    keep = [BAND_NAMES.index(b) for b in L2A_BAND_NAMES]
    assert np.array_equal(l2a.arrays["image"], full.arrays["image"][:, :, keep])
    assert np.array_equal(l2a.arrays["landcover"], full.arrays["landcover"])


def test_attrs_declare_the_worlds_class_sets_and_radiometric_level() -> None:
    params = small()
    cfg = params.fetch.synthetic
    attrs = synthetic_source.dataset_attrs(cfg, "croptype", params.seed, bands=L2A_BAND_NAMES)
    classes = attrs["classes"]
    assert isinstance(classes, dict) and set(classes) == {"landcover", "croptype"}
    assert ClassSet.from_json(classes["landcover"]) == SYNTHETIC_LANDCOVER
    assert ClassSet.from_json(classes["croptype"]) == SYNTHETIC_CROPTYPE
    assert attrs["labels"] == ["landcover", "croptype", "parcel"]
    assert "top-of-atmosphere" in str(attrs["radiometric_level"])
    assert "filled_bands" not in attrs
    unlabelled = synthetic_source.dataset_attrs(cfg, "unlabelled", params.seed, bands=("B02",))
    assert unlabelled["classes"] == {} and unlabelled["bands"] == ["B02"]


def test_a_band_the_world_does_not_render_is_named() -> None:
    params = small()
    with pytest.raises(ValueError, match="B13"):
        generate_all(params, "landcover", bands=("B02", "B13"))
