"""The spatial and regional structure of the synthetic world that the methods are about:
wetlands at water margins, an urban fabric, regions with their own spectra."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from s2ssl.config import load_params
from s2ssl.data.sources import spectra
from s2ssl.data.sources.synthetic.regional import band_gain, region_endmembers
from s2ssl.data.sources.synthetic.world import (
    ARTIFICIAL,
    URBAN_GARDEN,
    URBAN_NONE,
    URBAN_ROAD,
    URBAN_ROOF,
    WATER,
    WETLAND,
    draw_scene,
)
from s2ssl.synthetic_vocabulary import LANDCOVER_CLASSES
from testkit import REPO_PARAMS

REGIONS = load_params(REPO_PARAMS).fetch.synthetic.regions


def _scenes(n: int = 12, size: int = 64):
    rng = np.random.default_rng(3)
    return [draw_scene(rng, REGIONS[i % len(REGIONS)], size) for i in range(n)]


def test_wetland_lies_at_the_margin_of_open_water() -> None:
    wetland_pixels = touching = 0
    for scene in _scenes():
        wet = scene.landcover == WETLAND
        if not wet.any():
            continue
        near_water = ndimage.binary_dilation(scene.landcover == WATER, iterations=6)
        wetland_pixels += int(wet.sum())
        touching += int((wet & near_water).sum())
        # every wetland blob touches water
        blobs, n = ndimage.label(wet)
        for b in range(1, n + 1):
            assert near_water[blobs == b].any()
    assert wetland_pixels > 0 and touching / wetland_pixels > 0.9


def test_artificial_land_is_an_urban_fabric_and_only_there() -> None:
    codes = np.concatenate([s.urban[s.landcover == ARTIFICIAL] for s in _scenes()])
    outside = np.concatenate([s.urban[s.landcover != ARTIFICIAL] for s in _scenes()])
    assert (outside == URBAN_NONE).all()
    shares = np.bincount(codes, minlength=4)[1:] / codes.size
    assert set(np.unique(codes)) == {URBAN_ROAD, URBAN_ROOF, URBAN_GARDEN}
    assert 0.1 < shares[URBAN_ROAD - 1] < 0.45  # 1 px streets every 6-10 px in both directions
    assert 0.2 < shares[URBAN_ROOF - 1] < 0.6


def test_class_priors_still_hold_with_the_wetland_rim() -> None:
    scenes = _scenes(n=40)
    freq = np.bincount(np.concatenate([s.landcover.ravel() for s in scenes]), minlength=7)
    freq = freq / freq.sum()
    mean_prior = np.mean([[r.class_priors[c] for c in LANDCOVER_CLASSES] for r in REGIONS], axis=0)
    assert np.abs(freq - mean_prior).max() < 0.08, (freq.round(3), mean_prior.round(3))


def test_regions_have_their_own_spectra_scaled_by_spectral_shift() -> None:
    reference = spectra.ENDMEMBERS
    assert np.allclose(region_endmembers("x", 0.0), reference)
    assert np.allclose(band_gain("x", 0.0), 1.0)
    a, b = region_endmembers("north_west", 0.2), region_endmembers("south_highveld", 0.2)
    assert not np.allclose(a, b)
    positive = reference > 0
    relative = np.abs(a[positive] / reference[positive] - 1.0)
    assert relative.max() <= 0.2 + 1e-6  # the amplitude bounds the change
    water = spectra.ENDMEMBER_NAMES.index("water")
    assert np.array_equal(a[water], reference[water])  # physically stable members are kept
    assert np.abs(band_gain("south_highveld", 0.3) - 1.0).max() <= 0.1 + 1e-6
    assert np.array_equal(region_endmembers("north_west", 0.2), a)  # a function of the name


@pytest.mark.parametrize("shift", [-0.1, 1.0])
def test_spectral_shift_out_of_range_is_refused(shift: float) -> None:
    with pytest.raises(ValueError, match="spectral_shift"):
        region_endmembers("x", shift)
