"""The synthetic world's physics: a location's static scene, its weather per date, and the
rendering of both into top-of-atmosphere reflectance and a quality mask."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from s2ssl.bands import (
    MASK_CLEAR,
    MASK_CLOUD,
    MASK_SHADOW,
    MASK_SNOW,
    N_BANDS,
    band_indices,
    bands_at_resolution,
)
from s2ssl.config import RegionSpec
from s2ssl.data.sources import spectra
from s2ssl.data.sources.synthetic.regional import band_gain, region_endmembers
from s2ssl.synthetic_vocabulary import CROPS, LANDCOVER_CLASSES

WORLD_VERSION: Final[str] = "2"

WATER, FOREST, GRASSLAND, CROPLAND, ARTIFICIAL, BARE, WETLAND = range(7)
_E: Final[dict[str, int]] = {name: i for i, name in enumerate(spectra.ENDMEMBER_NAMES)}
_PSF_SIGMA_PX: Final[dict[int, float]] = {10: 0.35, 20: 0.85, 60: 2.4}
_CLOUD_MASK_OPACITY: Final[float] = 0.25  # opacity above which a pixel is flagged as cloud
URBAN_NONE, URBAN_ROAD, URBAN_ROOF, URBAN_GARDEN = range(4)
_ROOF_SHARE: Final[float] = 0.45  # of the built-up blocks between roads; the rest are gardens
_CLEARING_Z: Final[float] = -0.6  # forest pixels whose crown field is below this are clearings


@dataclass(frozen=True, slots=True)
class Scene:
    """Static per-location maps, each ``[H, W]``."""

    landcover: np.ndarray  # uint8, LANDCOVER_CLASSES index
    crop: np.ndarray  # uint8, CROP_CLASSES index (0 = background or parcel margin)
    parcel: np.ndarray  # int32, 0 = not in a parcel
    margin: np.ndarray  # bool, cropland pixel on a parcel boundary
    pheno_shift: np.ndarray  # float32 days (per parcel)
    vigour: np.ndarray  # float32 multiplier of a crop's max green cover (per parcel)
    soil: np.ndarray  # float32 soil brightness multiplier
    texture: np.ndarray  # float32 z-field, within-class variability
    evergreen: np.ndarray  # float32 0..1, evergreen share of forest
    snow_z: np.ndarray  # float32 z-field, snow lies where snow_z < the date's snow level
    urban: np.ndarray  # uint8 URBAN_* fabric of artificial pixels (roads, roofs, gardens)
    crown: np.ndarray  # float32 z-field at pixel scale: tree crowns and canopy gaps


@dataclass(frozen=True, slots=True)
class Weather:
    """Per-date conditions of one location (``T`` dates)."""

    cloud: np.ndarray  # float32 [T, H, W] cloud opacity 0..1
    shadow: np.ndarray  # float32 [T, H, W] shadow strength 0..1
    haze: np.ndarray  # float32 [T] haze fraction
    snow_level: np.ndarray  # float32 [T]; -inf = no snow that date
    noise: np.ndarray  # float32 [T, C, H, W] standard normal


# --------------------------------------------------------------------------- random fields
def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Periodic Gaussian smoothing of the last two axes via FFT (σ in pixels)."""
    h, w = x.shape[-2:]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    return np.fft.irfft2(np.fft.rfft2(x) * kernel, s=(h, w))


def smooth_fields(rng: np.random.Generator, n: int, size: int, scale: float) -> np.ndarray:
    """``n`` z-scored smooth random fields ``[n, size, size]`` with correlation length ``scale``.

    Generated on a padded canvas and cropped, so the periodic FFT leaves no wrap-around seams.
    """
    pad = int(np.ceil(2.0 * scale)) + 1
    noise = rng.standard_normal((n, size + 2 * pad, size + 2 * pad))
    f = gaussian_smooth(noise, scale)[:, pad : pad + size, pad : pad + size]
    f = f - f.mean(axis=(-2, -1), keepdims=True)
    return (f / np.maximum(f.std(axis=(-2, -1), keepdims=True), 1e-8)).astype(np.float32)


# --------------------------------------------------------------------------- scene
@functools.lru_cache(maxsize=64)
def class_biases(priors: tuple[float, ...]) -> tuple[float, ...]:
    """Biases ``b`` such that ``argmax_k(z_k + b_k)`` of i.i.d. N(0, 1) fields has ``priors`` as
    its class frequencies (solved by fixed-point iteration on a fixed Monte-Carlo sample)."""
    p = np.asarray(priors, dtype=np.float64)
    z = np.random.default_rng(0).standard_normal((200_000, len(p)))
    b = np.where(p > 0, np.log(np.maximum(p, 1e-12)), -50.0)
    for _ in range(60):
        freq = np.bincount(np.argmax(z + b, axis=1), minlength=len(p)) / len(z)
        b = np.where(p > 0, b + 0.8 * np.log(np.maximum(p, 1e-12) / np.maximum(freq, 1e-6)), -50.0)
    return tuple(float(x) for x in b)


def draw_scene(
    rng: np.random.Generator, region: RegionSpec, size: int, cropland_boost: float = 0.0
) -> Scene:
    """Draw the static landscape of one location.

    Land cover is the arg-max of smooth random fields (biased to the region's class priors) with
    two spatial rules a per-pixel classifier cannot see: wetland is the margin of open water (the
    low-margin rim of each wet area, so it always borders water), and artificial land is an urban
    fabric of roads, roofs and gardens (gardens look like grassland, roofs like bright soil, so
    only the neighbourhood identifies them).
    """
    scale = region.landscape_scale_px
    priors = {c: region.class_priors.get(c, 0.0) for c in LANDCOVER_CLASSES}
    wet_share = priors["water"] + priors["wetland"]
    merged = dict(priors, water=wet_share, wetland=0.0)
    score = smooth_fields(rng, len(LANDCOVER_CLASSES), size, scale)
    score += np.asarray(class_biases(tuple(merged[c] for c in LANDCOVER_CLASSES)), np.float32)[
        :, None, None
    ]
    score[CROPLAND] += cropland_boost
    landcover = np.argmax(score, axis=0).astype(np.uint8)
    wet = landcover == WATER
    if wet.any() and priors["wetland"] > 0:
        others = np.delete(score, [WATER, WETLAND], axis=0).max(axis=0)
        margin = score[WATER] - others
        rim = np.quantile(margin[wet], priors["wetland"] / wet_share)
        landcover[wet & (margin <= rim)] = WETLAND
        # A wet area too small to have an open-water core gets one: its upper third.
        areas, n_areas = ndimage.label(wet)
        for area in range(1, n_areas + 1):
            inside = areas == area
            if not (landcover[inside] == WATER).any():
                core = inside & (margin >= np.quantile(margin[inside], 2.0 / 3.0))
                landcover[core] = WATER

    parcel, margin_mask = _parcels(rng, landcover == CROPLAND, region.parcel_size_px)
    n_parcels = int(parcel.max())
    crop_probs = np.array([region.crop_mix.get(c, 0.0) for c in CROPS])
    parcel_crop = np.concatenate([[0], 1 + rng.choice(len(CROPS), size=n_parcels, p=crop_probs)])
    parcel_shift = np.concatenate([[0.0], rng.normal(0.0, 6.0, n_parcels)])
    parcel_vigour = np.concatenate([[1.0], rng.uniform(0.82, 1.06, n_parcels)])
    parcel_soil = np.concatenate([[1.0], rng.normal(1.0, 0.08, n_parcels)])

    texture = smooth_fields(rng, 1, size, 1.5)[0]
    evergreen = smooth_fields(rng, 1, size, scale)[0]
    snow_z = smooth_fields(rng, 1, size, 2.0 * scale)[0]
    soil_field = smooth_fields(rng, 1, size, scale / 2.0)[0]
    crown = smooth_fields(rng, 1, size, 0.7)[0]
    urban = _urban_fabric(rng, landcover == ARTIFICIAL)
    soil = region.soil_brightness * parcel_soil[parcel] * (1.0 + 0.08 * soil_field)
    return Scene(
        landcover=landcover,
        crop=parcel_crop[parcel].astype(np.uint8),
        parcel=parcel.astype(np.int32),
        margin=margin_mask,
        pheno_shift=parcel_shift[parcel].astype(np.float32),
        vigour=parcel_vigour[parcel].astype(np.float32),
        soil=soil.astype(np.float32),
        texture=texture,
        evergreen=np.clip(region.evergreen_fraction + 0.25 * evergreen, 0, 1).astype(np.float32),
        snow_z=snow_z,
        urban=urban,
        crown=crown,
    )


def _urban_fabric(rng: np.random.Generator, artificial: np.ndarray) -> np.ndarray:
    """``URBAN_*`` codes: a rotated street grid (1 px roads every 6-10 px) on ``artificial``
    pixels, the blocks between them split into roofs and gardens by a pixel-scale field."""
    h, w = artificial.shape
    theta = rng.uniform(0.0, np.pi / 2)
    period = rng.uniform(6.0, 10.0, size=2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u = np.cos(theta) * xx + np.sin(theta) * yy + rng.uniform(0, period[0])
    v = -np.sin(theta) * xx + np.cos(theta) * yy + rng.uniform(0, period[1])
    road = (np.mod(u, period[0]) < 1.0) | (np.mod(v, period[1]) < 1.0)
    blocks = smooth_fields(rng, 1, max(h, w), 1.2)[0][:h, :w]
    roof = blocks > np.quantile(blocks, 1.0 - _ROOF_SHARE)
    fabric = np.where(road, URBAN_ROAD, np.where(roof, URBAN_ROOF, URBAN_GARDEN))
    return np.where(artificial, fabric, URBAN_NONE).astype(np.uint8)


def _parcels(
    rng: np.random.Generator, cropland: np.ndarray, parcel_size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``cropland`` into elongated Voronoi parcels with 1-pixel margins between them.

    Returns ``(parcel ids [H, W], margin mask)``: ids are 1..P on parcel pixels (4-connected
    components), 0 elsewhere; no two different parcels are 4-adjacent.
    """
    h, w = cropland.shape
    n_seeds = max(1, int(rng.poisson(h * w / parcel_size)))
    theta = rng.uniform(0.0, np.pi)
    aspect = rng.uniform(1.0, 2.5)
    seeds = rng.uniform(0.0, [h, w], size=(n_seeds, 2))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    def rotate(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        u = np.cos(theta) * x + np.sin(theta) * y
        v = (-np.sin(theta) * x + np.cos(theta) * y) * aspect
        return np.stack([u, v], axis=-1)

    _, cell = cKDTree(rotate(seeds[:, 0], seeds[:, 1])).query(rotate(yy.ravel(), xx.ravel()))
    cell = cell.reshape(h, w) + 1
    cell[~cropland] = 0
    margin = np.zeros_like(cropland)
    margin[:, :-1] |= (cell[:, :-1] != cell[:, 1:]) & cropland[:, :-1] & cropland[:, 1:]
    margin[:-1, :] |= (cell[:-1, :] != cell[1:, :]) & cropland[:-1, :] & cropland[1:, :]
    four_connected = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
    labels, _ = ndimage.label(cropland & ~margin, structure=four_connected)
    return labels.astype(np.int32), margin


# --------------------------------------------------------------------------- weather
def local_doy(doy: np.ndarray, region: RegionSpec) -> np.ndarray:
    """Day of the local phenological year (southern seasons shifted by half a year)."""
    shift = 182.5 if region.hemisphere == "south" else 0.0
    return (np.asarray(doy, dtype=np.float32) + shift - region.phenology_shift_days) % 365.0


def draw_weather(
    rng: np.random.Generator,
    region: RegionSpec,
    doy: np.ndarray,
    size: int,
    max_cloud_coverage: float,
) -> Weather:
    """Per-date clouds (with shadows), haze, snow and sensor noise for one location.

    Cloud cover of a date never exceeds ``max_cloud_coverage`` (the scene filter of a catalog
    search, 10 % by default as in SeCo).
    """
    t = len(doy)
    fields = smooth_fields(rng, t, size, 5.0)
    cloudy = rng.random(t) < region.cloudiness
    coverage = rng.uniform(0.3, 1.0, t) * max_cloud_coverage * cloudy
    sun = 1 if region.hemisphere == "north" else -1  # shadows fall away from the sun
    offsets = rng.integers(3, 9, size=(t, 2)) * np.array([-sun, sun])
    haze = rng.uniform(0.0, region.haze_max, t).astype(np.float32)
    level = rng.uniform(-0.8, 1.2, t)
    winter = np.isin(np.floor(local_doy(doy, region) / 30.0), [0, 1, 11, 12])
    snowy = region.snow & winter & (rng.random(t) < 0.6)
    noise = rng.standard_normal((t, N_BANDS, size, size), dtype=np.float32)

    cloud = np.zeros((t, size, size), np.float32)
    shadow = np.zeros((t, size, size), np.float32)
    for i in np.flatnonzero(coverage > 0):
        # Opacity ramps up over the blob edge; the flagged part (opacity > 0.25) is the target size.
        thr = np.quantile(fields[i], 1.0 - coverage[i])
        opacity = np.clip(0.3 + (fields[i] - thr) / 0.8, 0.0, 1.0)
        cloud[i] = np.where(fields[i] > thr - 0.3, opacity, 0.0)
        shadow[i] = np.roll(cloud[i], shift=(int(offsets[i, 0]), int(offsets[i, 1])), axis=(0, 1))
    return Weather(
        cloud=cloud,
        shadow=shadow,
        haze=haze,
        snow_level=np.where(snowy, level, -np.inf).astype(np.float32),
        noise=noise,
    )


# --------------------------------------------------------------------------- rendering
def abundances(scenes: dict[str, np.ndarray], ldoy: np.ndarray, snow: np.ndarray) -> np.ndarray:
    """Endmember fractions ``[N, T, E, H, W]`` (rows of :data:`spectra.ENDMEMBERS`).

    ``scenes`` holds stacked :class:`Scene` maps ``[N, H, W]``; ``ldoy`` is the local day of year
    ``[N, T]``; ``snow`` the snow cover ``[N, T, H, W]``. What the fractions leave below 1 is shade.
    """
    lc = scenes["landcover"][:, None]
    crop = scenes["crop"][:, None]
    margin = scenes["margin"][:, None]
    d = ldoy[:, :, None, None]
    tex = scenes["texture"][:, None]
    shape = (ldoy.shape[0], ldoy.shape[1], *scenes["landcover"].shape[1:])
    a = np.zeros((shape[0], shape[1], len(_E), *shape[2:]), np.float32)

    grass = spectra.grass_green(d) * (1.0 + 0.08 * tex)
    leaves = scenes["evergreen"][:, None] + (1 - scenes["evergreen"][:, None]) * spectra.leaf_on(d)
    crop_day = d - scenes["pheno_shift"][:, None]
    green = spectra.crop_green(crop, crop_day) * spectra.CROP_MAX_GREEN[crop]
    green = green * scenes["vigour"][:, None] * (1.0 + 0.04 * tex)
    dry = spectra.crop_dry(crop, crop_day)
    flower = spectra.crop_flower(crop, crop_day)
    urban = scenes["urban"][:, None]
    crown = scenes["crown"][:, None]

    def put(cls: np.ndarray, **fractions: np.ndarray | float) -> None:
        for name, value in fractions.items():
            a[:, :, _E[name]] = np.where(cls, value, a[:, :, _E[name]])

    put(lc == WATER, water=0.90 - 0.04 * tex, soil=np.clip(0.05 + 0.03 * tex, 0, 1), green_veg=0.01)
    canopy = np.clip(1.0 + 0.3 * crown, 0.3, 1.4)  # crowns and gaps at pixel scale
    put(lc == FOREST, green_veg=0.55 * leaves * canopy, dry_veg=0.25 * (1 - leaves), soil=0.03)
    clearing = (lc == FOREST) & (crown < _CLEARING_Z)  # gaps: grass seen through the canopy
    put(clearing, green_veg=0.7 * grass, dry_veg=0.45 * (1 - grass), soil=0.1)
    put(lc == GRASSLAND, green_veg=0.78 * grass, dry_veg=0.55 * (1 - grass), soil=0.12)
    parcel = (lc == CROPLAND) & ~margin
    put(parcel, green_veg=green, dry_veg=dry, flower=flower)
    put(parcel, soil=np.clip(0.97 - green - dry - flower, 0.0, 1.0))
    put(parcel, green_veg_nir=green * (spectra.CROP_NIR_SCALE[crop] - 1.0))
    put((lc == CROPLAND) & margin, green_veg=0.6 * grass, dry_veg=0.3 * (1 - grass), soil=0.1)
    put(urban == URBAN_ROAD, built=0.45 + 0.05 * tex, water=0.08, soil=0.04)
    put(urban == URBAN_ROOF, built=0.55 + 0.1 * tex, soil=0.35, dry_veg=0.05)
    put(urban == URBAN_GARDEN, green_veg=0.65 * grass, dry_veg=0.4 * (1 - grass), soil=0.12)
    rocky = np.clip(1.0 + 0.2 * crown, 0.6, 1.4)  # gravel and rock at pixel scale
    put(lc == BARE, soil=(0.86 + 0.05 * tex) * rocky, dry_veg=0.08, green_veg=0.02)
    wet = 0.22 + 0.08 * np.cos(2 * np.pi * (d - 90) / 365)  # wet meadow: mostly vegetation
    put(lc == WETLAND, water=wet, green_veg=0.62 * grass, dry_veg=0.25 * (1 - grass))
    put(lc == WETLAND, soil=np.clip(0.95 - wet - 0.62 * grass - 0.25 * (1 - grass), 0, 1))

    # Snow hides the ground (only partly under forest canopy).
    cover = snow[:, :, None] * np.where(lc == FOREST, 0.5, 1.0)[:, :, None]
    a *= 1.0 - cover
    a[:, :, _E["snow"]] += cover[:, :, 0] * 0.95
    np.clip(a, 0.0, None, out=a)
    a[:, :, _E["soil"]] *= scenes["soil"][:, None]  # soil brightness as abundance scale
    return a


def render(
    scenes: dict[str, np.ndarray],
    weather: dict[str, np.ndarray],
    ldoy: np.ndarray,
    region: RegionSpec,
    noise_sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance ``[N, T, C, H, W]`` (float32) and the quality mask ``[N, T, H, W]`` (uint8).

    Surfaces are mixed from the region's own endmember spectra and radiometric gain
    (:mod:`~s2ssl.data.sources.synthetic.regional`), then lit, veiled and clouded.
    """
    snow = np.clip(
        (weather["snow_level"][:, :, None, None] - scenes["snow_z"][:, None]) * 1.5, 0.0, 1.0
    ).astype(np.float32)
    a = abundances(scenes, ldoy, snow)
    endmembers = region_endmembers(region.name, region.spectral_shift)
    refl = np.moveaxis(np.moveaxis(a, 2, -1) @ endmembers, -1, 2)  # [N, T, C, H, W]
    gain = band_gain(region.name, region.spectral_shift)
    refl *= (spectra.TRANSMISSION * gain * region.illumination)[:, None, None]
    refl += (spectra.PATH_RADIANCE * region.atmosphere)[:, None, None]
    haze = weather["haze"][:, :, None, None, None]
    refl = (1.0 - haze) * refl + haze * spectra.HAZE[:, None, None]
    cloud = weather["cloud"][:, :, None]
    shadow = weather["shadow"][:, :, None]
    refl = refl * (1.0 - 0.6 * shadow)
    refl = (1.0 - cloud) * refl + cloud * spectra.CLOUD[:, None, None]
    refl += weather["noise"] * (noise_sigma * (1.0 + 2.0 * refl))
    for resolution, sigma in _PSF_SIGMA_PX.items():
        idx = band_indices(bands_at_resolution(resolution))
        refl[:, :, idx] = ndimage.gaussian_filter(refl[:, :, idx], sigma=(0, 0, 0, sigma, sigma))

    mask = np.full(snow.shape, MASK_CLEAR, np.uint8)
    is_cloud = weather["cloud"] > _CLOUD_MASK_OPACITY
    mask[(snow > 0.5) & ~is_cloud] = MASK_SNOW
    mask[(weather["shadow"] > _CLOUD_MASK_OPACITY) & ~is_cloud] = MASK_SHADOW
    mask[is_cloud] = MASK_CLOUD
    return refl.astype(np.float32), mask
