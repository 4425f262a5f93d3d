"""Sentinel-2 MSI bands, their order in s2ssl arrays, and the DN <-> reflectance convention.

An image array holds a list of bands in Sentinel-2 order (:data:`BAND_NAMES`, the 13 MSI bands of
Level-1C products): a dataset records the bands it holds, a model the bands it takes, and bands are
always matched by name (:func:`band_positions`, :func:`select_bands`), never by position. Presets
(:data:`BAND_PRESETS`) name the common lists: Level-2A products have no B10 (cirrus).

Radiometry (ESA processing baseline 04.00, in force for scenes acquired since 2022-01-25):
``reflectance = (DN + offset) / 10000`` with ``offset = -1000`` for baseline >= 04.00 and ``0``
before. DN are stored as ``uint16``; the offset is recorded per acquisition in the dataset index.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np

QUANTIFICATION_VALUE: Final[int] = 10_000
"""DN per unit reflectance (``BOA_QUANTIFICATION_VALUE`` / ``QUANTIFICATION_VALUE``)."""

BASELINE_04_00_DATE: Final[dt.date] = dt.date(2022, 1, 25)
"""First acquisitions processed with baseline 04.00 (radiometric offset introduced)."""

BASELINE_04_00_OFFSET: Final[int] = -1000
"""``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` of baseline >= 04.00."""


@dataclass(frozen=True, slots=True)
class Band:
    """One MSI band: its name, central wavelength (nm, Sentinel-2A) and native resolution (m)."""

    name: str
    wavelength_nm: float
    resolution_m: int
    description: str


BANDS: Final[tuple[Band, ...]] = (
    Band("B01", 442.7, 60, "coastal aerosol"),
    Band("B02", 492.4, 10, "blue"),
    Band("B03", 559.8, 10, "green"),
    Band("B04", 664.6, 10, "red"),
    Band("B05", 704.1, 20, "red edge 1"),
    Band("B06", 740.5, 20, "red edge 2"),
    Band("B07", 782.8, 20, "red edge 3"),
    Band("B08", 832.8, 10, "NIR"),
    Band("B8A", 864.7, 20, "narrow NIR"),
    Band("B09", 945.1, 60, "water vapour"),
    Band("B10", 1373.5, 60, "SWIR cirrus"),
    Band("B11", 1613.7, 20, "SWIR 1"),
    Band("B12", 2202.4, 20, "SWIR 2"),
)
BAND_NAMES: Final[tuple[str, ...]] = tuple(b.name for b in BANDS)
N_BANDS: Final[int] = len(BANDS)
RGB: Final[tuple[str, str, str]] = ("B04", "B03", "B02")
"""The bands SeCo pre-trains on (red, green, blue), in display order."""

L2A_BAND_NAMES: Final[tuple[str, ...]] = tuple(n for n in BAND_NAMES if n != "B10")
"""Level-2A has no cirrus band."""

BAND_PRESETS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "l2a": L2A_BAND_NAMES,
        "l1c": BAND_NAMES,
        "rgb": ("B02", "B03", "B04"),
        "pastis": ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
    }
)
"""Named band lists (Sentinel-2 order): ``l2a`` (Level-2A: 12 bands, no B10), ``l1c`` (all 13),
``rgb`` (B02, B03, B04: what SeCo pre-trains on), ``pastis`` (the 10 bands at 10 and 20 m)."""

# Per-pixel quality mask convention shared by every source (uint8).
MASK_CLEAR: Final[int] = 0
MASK_CLOUD: Final[int] = 1
MASK_SHADOW: Final[int] = 2
MASK_SNOW: Final[int] = 3
MASK_NODATA: Final[int] = 255
MASK_NAMES: Final[dict[int, str]] = {
    MASK_CLEAR: "clear",
    MASK_CLOUD: "cloud",
    MASK_SHADOW: "cloud shadow",
    MASK_SNOW: "snow",
    MASK_NODATA: "no data",
}


def band_index(name: str) -> int:
    """Position of band ``name`` on the band axis; raises ``ValueError`` naming the valid bands."""
    try:
        return BAND_NAMES.index(name)
    except ValueError:
        raise ValueError(
            f"unknown Sentinel-2 band {name!r}; valid bands are {', '.join(BAND_NAMES)}"
        ) from None


def band_indices(names: list[str] | tuple[str, ...]) -> list[int]:
    """Positions of several bands (order kept)."""
    return [band_index(n) for n in names]


def resolve_bands(spec: str | Sequence[str]) -> tuple[str, ...]:
    """A band list from a preset name (:data:`BAND_PRESETS`) or a list of band names.

    The result is in Sentinel-2 order whatever the order given; an unknown preset or band, a
    repeated band or an empty list raises ``ValueError`` saying what is valid.
    """
    if isinstance(spec, str):
        preset = BAND_PRESETS.get(spec)
        if preset is None:
            raise ValueError(
                f"unknown band preset {spec!r}; use one of {', '.join(BAND_PRESETS)} "
                f"or a list of band names ({', '.join(BAND_NAMES)})"
            )
        return preset
    names = [str(b) for b in spec]
    if not names:
        raise ValueError("a band list needs at least one band")
    unknown = [b for b in names if b not in BAND_NAMES]
    if unknown:
        raise ValueError(
            f"unknown Sentinel-2 band(s) {', '.join(unknown)}; valid bands are "
            f"{', '.join(BAND_NAMES)}"
        )
    repeated = sorted({b for b in names if names.count(b) > 1})
    if repeated:
        raise ValueError(f"band(s) {', '.join(repeated)} listed more than once")
    return tuple(b for b in BAND_NAMES if b in names)


def missing_bands(have: Sequence[str], want: Sequence[str]) -> tuple[str, ...]:
    """The bands of ``want`` that ``have`` lacks (``want``'s order)."""
    present = set(have)
    return tuple(b for b in want if b not in present)


def band_positions(
    have: Sequence[str], want: Sequence[str], *, what: str = "the data"
) -> list[int]:
    """Where each band of ``want`` sits in ``have`` (selection by name, ``want``'s order).

    Raises:
        ValueError: ``have`` (described as ``what``) lacks some of ``want``; the message names
            the missing bands and what ``have`` holds.
    """
    missing = missing_bands(have, want)
    if missing:
        raise ValueError(
            f"{what} lacks band(s) {', '.join(missing)} (it holds {', '.join(have) or 'none'}; "
            f"needed: {', '.join(want)})"
        )
    index = {b: i for i, b in enumerate(have)}
    return [index[b] for b in want]


def select_bands(
    array: np.ndarray,
    have: Sequence[str],
    want: Sequence[str],
    *,
    axis: int = -3,
    what: str = "the data",
) -> np.ndarray:
    """The bands ``want`` of ``array`` whose band axis ``axis`` holds ``have`` (by name).

    A superset is reduced to ``want``; a missing band raises ``ValueError`` naming it (never a
    filled band). The band axis must have ``len(have)`` entries.
    """
    if array.shape[axis] != len(have):
        raise ValueError(
            f"{what}: the band axis has {array.shape[axis]} entries but {len(have)} band names "
            f"were given ({', '.join(have)})"
        )
    return np.take(array, band_positions(have, want, what=what), axis=axis)


def bands_at_resolution(resolution_m: int) -> tuple[str, ...]:
    """Names of the bands whose native resolution is ``resolution_m`` metres."""
    return tuple(b.name for b in BANDS if b.resolution_m == resolution_m)


def processing_baseline_for(date: dt.date) -> str:
    """The ESA processing baseline a (reprocessed) scene acquired on ``date`` carries.

    Approximates the real history closely enough for the offset rule: 04.00 from 2022-01-25,
    05.09 from 2023-01-01 (Collection-1 reprocessing also uses >= 05.00), 03.01 before.
    """
    if date >= dt.date(2023, 1, 1):
        return "05.09"
    if date >= BASELINE_04_00_DATE:
        return "04.00"
    return "03.01"


def parse_baseline(baseline: str) -> tuple[int, int]:
    """``"04.00"`` -> ``(4, 0)``; raises ``ValueError`` on anything else."""
    try:
        major, minor = baseline.split(".")
        return int(major), int(minor)
    except (ValueError, AttributeError):
        raise ValueError(
            f"processing baseline must look like 'NN.NN' (e.g. '04.00'), got {baseline!r}"
        ) from None


def dn_offset_for_baseline(baseline: str) -> int:
    """The radiometric offset (added to DN before scaling) of a processing baseline."""
    return BASELINE_04_00_OFFSET if parse_baseline(baseline) >= (4, 0) else 0


def dn_to_reflectance(dn: np.ndarray, offset: int | np.ndarray) -> np.ndarray:
    """``(DN + offset) / 10000`` as float32; ``offset`` broadcasts (e.g. one per date)."""
    return (dn.astype(np.float32) + np.asarray(offset, dtype=np.float32)) / QUANTIFICATION_VALUE


def reflectance_to_dn(reflectance: np.ndarray, offset: int | np.ndarray) -> np.ndarray:
    """Inverse of :func:`dn_to_reflectance`, rounded and clipped to the uint16 range."""
    dn = np.asarray(reflectance, dtype=np.float32) * np.float32(QUANTIFICATION_VALUE)
    dn -= np.asarray(offset, dtype=np.float32)
    np.rint(dn, out=dn)
    np.clip(dn, 0, np.iinfo(np.uint16).max, out=dn)
    return dn.astype(np.uint16)


def ndvi(
    reflectance: np.ndarray, band_axis: int = -3, bands: Sequence[str] = BAND_NAMES
) -> np.ndarray:
    """NDVI = (B08 - B04) / (B08 + B04) along ``band_axis`` of a reflectance array holding
    ``bands`` (default: all 13)."""
    nir_at, red_at = band_positions(bands, ("B08", "B04"), what="the NDVI input")
    nir = np.take(reflectance, nir_at, axis=band_axis).astype(np.float32)
    red = np.take(reflectance, red_at, axis=band_axis).astype(np.float32)
    return (nir - red) / np.maximum(nir + red, 1e-6)
