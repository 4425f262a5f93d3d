"""Per-region spectral character of the synthetic world: what makes one region's imagery look
different from another's beyond illumination and haze.

Real regions differ in soil mineralogy (iron-rich red soils, pale calcareous ones), vegetation
species and canopy structure, building materials, and in the residual radiometric differences of
atmospheric correction. Each region gets its own version of every endmember spectrum and a
band-wise gain, drawn once from its name: smooth random multiplicative curves over the 13 bands
whose amplitude is the region's ``spectral_shift`` (0 = the reference spectra of
:mod:`s2ssl.data.sources.spectra`). A model trained on some regions therefore meets spectra it
has not seen when applied to another one, which is the domain shift a region-transfer test is
about.
"""

from __future__ import annotations

import functools
import zlib
from typing import Final

import numpy as np

from s2ssl.bands import BAND_NAMES
from s2ssl.data.sources import spectra

__all__ = ["band_gain", "region_endmembers"]

_CODE: Final[int] = 0x5EC7
_N_BANDS: Final[int] = len(BAND_NAMES)


def _smooth_curve(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random curve over ``size`` bands in [-1, 1], correlated over ~3 neighbouring bands."""
    raw = rng.standard_normal(size + 4)
    kernel = np.array([0.25, 0.5, 1.0, 0.5, 0.25])
    curve = np.convolve(raw, kernel / kernel.sum(), mode="valid")[:size]
    return np.asarray(np.clip(curve / max(1e-6, float(np.abs(curve).max())), -1.0, 1.0))


def _rng(name: str, what: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([_CODE, zlib.crc32(name.encode()), what]))


@functools.lru_cache(maxsize=32)
def region_endmembers(name: str, spectral_shift: float) -> np.ndarray:
    """``[E, 13]`` endmember spectra of region ``name`` (rows of ``spectra.ENDMEMBER_NAMES``).

    Every endmember except snow and water (physically stable) is multiplied by ``1 + shift ×
    curve``; a common per-region brightness offset is added to soil (its mineralogy).
    """
    if not 0.0 <= spectral_shift < 1.0:
        raise ValueError(f"spectral_shift must be in [0, 1), got {spectral_shift}")
    out = spectra.ENDMEMBERS.astype(np.float64).copy()
    stable = {"snow", "water"}
    for row, endmember in enumerate(spectra.ENDMEMBER_NAMES):
        if endmember in stable:
            continue
        curve = _smooth_curve(_rng(name, row), _N_BANDS)
        out[row] *= 1.0 + spectral_shift * curve
    out = np.clip(out, 0.0, None)
    return out.astype(np.float32)


@functools.lru_cache(maxsize=32)
def band_gain(name: str, spectral_shift: float) -> np.ndarray:
    """``[13]`` multiplicative radiometric gain of region ``name`` (``1 ± shift / 3``)."""
    if not 0.0 <= spectral_shift < 1.0:
        raise ValueError(f"spectral_shift must be in [0, 1), got {spectral_shift}")
    curve = _smooth_curve(_rng(name, 1000), _N_BANDS)
    return (1.0 + spectral_shift / 3.0 * curve).astype(np.float32)
