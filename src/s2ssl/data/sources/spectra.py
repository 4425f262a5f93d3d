"""Physics of the synthetic world: endmember spectra, crop phenology, seasonal curves.

Reflectances are surface (bottom-of-atmosphere) values in :data:`s2ssl.bands.BAND_NAMES` order,
hand-set from typical Sentinel-2 L2A spectra and checked against the class means of the real
eo-learn Slovenia patch (tests/data/sources/test_synthetic.py). Every function is vectorised: day-of-year
arguments broadcast against per-pixel parameter arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from s2ssl.bands import BAND_NAMES, band_index
from s2ssl.synthetic_vocabulary import CROP_CLASSES

# fmt: off
#              B01    B02    B03    B04    B05    B06    B07    B08    B8A    B09    B10    B11    B12
_GREEN_VEG = (0.020, 0.030, 0.070, 0.030, 0.110, 0.320, 0.420, 0.450, 0.470, 0.450, 0.300, 0.165, 0.065)
_SOIL =      (0.070, 0.090, 0.130, 0.180, 0.210, 0.230, 0.250, 0.270, 0.280, 0.280, 0.300, 0.350, 0.290)
_DRY_VEG =   (0.060, 0.080, 0.120, 0.160, 0.200, 0.240, 0.270, 0.300, 0.310, 0.300, 0.350, 0.400, 0.300)
_WATER =     (0.070, 0.070, 0.060, 0.035, 0.025, 0.015, 0.013, 0.010, 0.009, 0.007, 0.005, 0.005, 0.003)
_BUILT =     (0.100, 0.120, 0.140, 0.160, 0.170, 0.180, 0.190, 0.200, 0.210, 0.200, 0.230, 0.240, 0.210)
_SNOW =      (0.920, 0.940, 0.930, 0.900, 0.880, 0.850, 0.820, 0.800, 0.780, 0.700, 0.300, 0.120, 0.090)
_FLOWER =    (0.040, 0.050, 0.220, 0.200, 0.250, 0.320, 0.380, 0.420, 0.430, 0.420, 0.300, 0.220, 0.100)
# fmt: on

ENDMEMBER_NAMES: Final[tuple[str, ...]] = (
    "soil",
    "green_veg",
    "green_veg_nir",  # extra NIR plateau of a crop's leaf structure (see Crop.nir_scale)
    "dry_veg",
    "water",
    "built",
    "snow",
    "flower",
)
_NIR_BANDS = [band_index(b) for b in ("B06", "B07", "B08", "B8A", "B09")]
_gv_nir = np.zeros(len(BAND_NAMES))
_gv_nir[_NIR_BANDS] = np.asarray(_GREEN_VEG)[_NIR_BANDS]

ENDMEMBERS: Final[np.ndarray] = np.array(
    [_SOIL, _GREEN_VEG, _gv_nir, _DRY_VEG, _WATER, _BUILT, _SNOW, _FLOWER], dtype=np.float32
)
"""``[E, 13]`` surface reflectance of each endmember (rows in :data:`ENDMEMBER_NAMES` order)."""

TRANSMISSION: Final[np.ndarray] = np.ones(len(BAND_NAMES), dtype=np.float32)
TRANSMISSION[band_index("B09")] = 0.40  # water-vapour absorption
TRANSMISSION[band_index("B10")] = 0.01  # cirrus band: the surface is almost invisible
"""Two-way atmospheric transmission of the surface signal per band."""

PATH_RADIANCE: Final[np.ndarray] = np.array(
    (0.045, 0.032, 0.020, 0.012, 0.010, 0.008, 0.006, 0.005, 0.005, 0.002, 0.000, 0.002, 0.001),
    dtype=np.float32,
)
"""Residual path radiance added at ``RegionSpec.atmosphere = 1`` (scattering, blue-heavy)."""

HAZE: Final[np.ndarray] = np.array(
    (0.300, 0.280, 0.250, 0.220, 0.210, 0.200, 0.190, 0.180, 0.180, 0.120, 0.020, 0.120, 0.080),
    dtype=np.float32,
)
"""Spectrum of thin haze / aerosol veil, mixed in with a per-date fraction."""

CLOUD: Final[np.ndarray] = np.array(
    (0.480, 0.500, 0.510, 0.530, 0.540, 0.550, 0.560, 0.570, 0.570, 0.420, 0.160, 0.430, 0.300),
    dtype=np.float32,
)
"""Thick cloud: bright and flat in all bands, visible in the cirrus band, darker in SWIR."""


@dataclass(frozen=True, slots=True)
class Crop:
    """Phenology of one crop in northern-hemisphere days of year (southern ones shift 6 months).

    Green cover rises as a half-Gaussian from ``green_up`` to ``peak``, falls as another until
    ``senescence``, dry matter replaces it until ``harvest``, then bare soil with stubble.
    """

    name: str
    green_up: float
    peak: float
    senescence: float
    harvest: float
    max_green: float
    nir_scale: float = 1.0
    flower_doy: float | None = None
    flower_strength: float = 0.0


CROP_TABLE: Final[tuple[Crop, ...]] = (
    Crop("winter_wheat", 285, 135, 182, 200, 0.86),
    Crop("winter_barley", 275, 121, 168, 186, 0.82, nir_scale=0.97),
    Crop(
        "rapeseed", 262, 105, 160, 190, 0.80, nir_scale=1.03, flower_doy=118, flower_strength=0.45
    ),
    Crop("maize", 135, 207, 258, 282, 0.90, nir_scale=0.95),
    Crop("soybean", 148, 214, 252, 270, 0.86, nir_scale=1.08),
    Crop("sunflower", 118, 190, 228, 250, 0.76, flower_doy=198, flower_strength=0.40),
    Crop("sugar_beet", 112, 200, 285, 296, 0.90, nir_scale=1.10),
    Crop("potato", 122, 180, 222, 238, 0.80, nir_scale=1.05),
)
if tuple(c.name for c in CROP_TABLE) != CROP_CLASSES[1:]:
    raise RuntimeError("CROP_TABLE must list the crops in CROP_CLASSES order")


def _crop_column(attr: str, background: float) -> np.ndarray:
    values = [background] + [
        float(getattr(c, attr)) if getattr(c, attr) is not None else -1e3 for c in CROP_TABLE
    ]
    return np.array(values, dtype=np.float32)


# Lookup tables indexed by crop label (0 = background, whose values are never used).
CROP_PEAK = _crop_column("peak", 180)
CROP_RISE = np.array(
    [60] + [(c.peak - c.green_up) % 365 for c in CROP_TABLE], dtype=np.float32
)  # days from green-up to peak
CROP_FALL = np.array([60] + [(c.senescence - c.peak) % 365 for c in CROP_TABLE], np.float32)
CROP_HARVEST = np.array([90] + [(c.harvest - c.peak) % 365 for c in CROP_TABLE], np.float32)
CROP_MAX_GREEN = _crop_column("max_green", 0.0)
CROP_NIR_SCALE = _crop_column("nir_scale", 1.0)
CROP_FLOWER_DOY = _crop_column("flower_doy", -1e3)
CROP_FLOWER = _crop_column("flower_strength", 0.0)


def wrap_days(delta: np.ndarray | float) -> np.ndarray:
    """Signed circular day difference in (-182.5, 182.5]."""
    return (np.asarray(delta, dtype=np.float32) + 182.5) % 365.0 - 182.5


def crop_green(crop: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Green-vegetation cover fraction (0..1 of ``max_green``) of ``crop`` on day ``doy``."""
    delta = wrap_days(doy - CROP_PEAK[crop])
    rise = CROP_RISE[crop]
    fall = CROP_FALL[crop]
    harvest = CROP_HARVEST[crop]
    left = np.exp(-0.5 * (delta / (rise / 2.5)) ** 2)
    right = np.exp(-0.5 * (delta / (fall / 2.0)) ** 2)
    green = np.where(delta < 0, left, right)
    return np.where((delta > harvest) | (delta < -rise), 0.0, green).astype(np.float32)


def crop_dry(crop: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Dry-matter (senescent canopy, stubble) cover fraction on day ``doy``."""
    delta = wrap_days(doy - CROP_PEAK[crop])
    harvest = CROP_HARVEST[crop]
    green = crop_green(crop, doy)
    ripening = np.where((delta >= 0) & (delta <= harvest), 0.75 * (1.0 - green), 0.0)
    stubble = np.where(delta > harvest, 0.18 * np.exp(-(delta - harvest) / 40.0), 0.0)
    return (ripening + stubble).astype(np.float32)


def crop_flower(crop: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Yellow-flower cover (rapeseed, sunflower) on day ``doy``."""
    delta = wrap_days(doy - CROP_FLOWER_DOY[crop])
    return (CROP_FLOWER[crop] * np.exp(-0.5 * (delta / 9.0) ** 2)).astype(np.float32)


def grass_green(doy: np.ndarray) -> np.ndarray:
    """Seasonal greenness of grassland (0.25 in winter to 1 in early summer)."""
    return (0.25 + 0.75 * np.exp(-0.5 * (wrap_days(doy - 160.0) / 55.0) ** 2)).astype(np.float32)


def leaf_on(doy: np.ndarray) -> np.ndarray:
    """Leaf-on fraction of deciduous trees (budburst ~ doy 115, leaf fall ~ doy 295)."""
    d = np.asarray(doy, dtype=np.float32) % 365.0
    rise = 1.0 / (1.0 + np.exp(-(d - 115.0) / 7.0))
    fall = 1.0 / (1.0 + np.exp(-(295.0 - d) / 9.0))
    return (0.15 + 0.85 * rise * fall).astype(np.float32)
