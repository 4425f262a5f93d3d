"""The embedded synthetic Sentinel-2 world: a physical toy, deterministic by seed.

Each location is drawn from its own random generator seeded by ``(seed, dataset, region, location)``
(so a location never depends on chunking or on how many others are generated), then rendered in
vectorised numpy over a chunk of locations and all their dates:

1. **scene** (static): land cover as the arg-max of smooth random fields biased by the region's
   class priors; cropland cut into elongated Voronoi parcels separated by 1-pixel margins, each
   parcel one crop with its own timing, vigour and soil; texture, evergreen and snow-line fields.
2. **abundances** per date from class + phenology (:mod:`.spectra`), shifted 6 months in the south.
3. **spectra**: linear mixing of endmembers, atmospheric transmission, region illumination and path
   radiance, per-date haze, clouds (bright in all bands) with displaced shadows, sensor noise, and
   point-spread blur per native resolution (10 / 20 / 60 m), so boundary pixels are mixed.
4. **DN** as uint16 with the processing-baseline offset of the acquisition date.

Datasets: ``unlabelled`` (SeCo: ``n_dates`` acquisitions ``interval_weeks`` apart), ``landcover``
(one date + land-cover mask) and ``croptype`` (a season of dates + crop-type mask + parcel ids).
"""

from __future__ import annotations

import datetime as dt
import functools
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd
from pyproj import Transformer
from scipy import ndimage
from scipy.spatial import cKDTree

from s2ssl.bands import (
    BAND_NAMES,
    MASK_CLEAR,
    MASK_CLOUD,
    MASK_SHADOW,
    MASK_SNOW,
    N_BANDS,
    band_indices,
    bands_at_resolution,
    dn_offset_for_baseline,
    processing_baseline_for,
    reflectance_to_dn,
)
from s2ssl.classes import CROPS, LANDCOVER_CLASSES
from s2ssl.config import RegionSpec, SyntheticSource
from s2ssl.data.sources import spectra

DatasetName = Literal["unlabelled", "landcover", "croptype"]
DATASET_NAMES: Final[tuple[str, ...]] = ("unlabelled", "landcover", "croptype")
_DATASET_CODES: Final[dict[str, int]] = {"unlabelled": 1, "landcover": 2, "croptype": 3}
WORLD_VERSION: Final[str] = "1"

WATER, FOREST, GRASSLAND, CROPLAND, ARTIFICIAL, BARE, WETLAND = range(7)
_E: Final[dict[str, int]] = {name: i for i, name in enumerate(spectra.ENDMEMBER_NAMES)}
_PSF_SIGMA_PX: Final[dict[int, float]] = {10: 0.35, 20: 0.85, 60: 2.4}
_CLOUD_MASK_OPACITY: Final[float] = 0.25  # opacity above which a pixel is flagged as cloud


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
    urban_green: np.ndarray  # float32 0..1


@dataclass(frozen=True, slots=True)
class Weather:
    """Per-date conditions of one location (``T`` dates)."""

    cloud: np.ndarray  # float32 [T, H, W] cloud opacity 0..1
    shadow: np.ndarray  # float32 [T, H, W] shadow strength 0..1
    haze: np.ndarray  # float32 [T] haze fraction
    snow_level: np.ndarray  # float32 [T]; -inf = no snow that date
    noise: np.ndarray  # float32 [T, C, H, W] standard normal


@dataclass(frozen=True, slots=True)
class Chunk:
    """A batch of generated samples, ready for :class:`s2ssl.data.store.DatasetWriter`."""

    arrays: dict[str, np.ndarray]
    rows: pd.DataFrame


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
    """Draw the static landscape of one location."""
    scale = region.landscape_scale_px
    priors = tuple(region.class_priors.get(c, 0.0) for c in LANDCOVER_CLASSES)
    score = smooth_fields(rng, len(LANDCOVER_CLASSES), size, scale)
    score += np.asarray(class_biases(priors), np.float32)[:, None, None]
    score[CROPLAND] += cropland_boost
    landcover = np.argmax(score, axis=0).astype(np.uint8)

    parcel, margin = _parcels(rng, landcover == CROPLAND, region.parcel_size_px)
    n_parcels = int(parcel.max())
    crop_probs = np.array([region.crop_mix.get(c, 0.0) for c in CROPS])
    parcel_crop = np.concatenate([[0], 1 + rng.choice(len(CROPS), size=n_parcels, p=crop_probs)])
    parcel_shift = np.concatenate([[0.0], rng.normal(0.0, 6.0, n_parcels)])
    parcel_vigour = np.concatenate([[1.0], rng.uniform(0.82, 1.06, n_parcels)])
    parcel_soil = np.concatenate([[1.0], rng.normal(1.0, 0.08, n_parcels)])

    texture = smooth_fields(rng, 1, size, 1.5)[0]
    evergreen = smooth_fields(rng, 1, size, scale)[0]
    snow_z = smooth_fields(rng, 1, size, 2.0 * scale)[0]
    urban = smooth_fields(rng, 1, size, 3.0)[0]
    soil_field = smooth_fields(rng, 1, size, scale / 2.0)[0]
    soil = region.soil_brightness * parcel_soil[parcel] * (1.0 + 0.08 * soil_field)
    return Scene(
        landcover=landcover,
        crop=parcel_crop[parcel].astype(np.uint8),
        parcel=parcel.astype(np.int32),
        margin=margin,
        pheno_shift=parcel_shift[parcel].astype(np.float32),
        vigour=parcel_vigour[parcel].astype(np.float32),
        soil=soil.astype(np.float32),
        texture=texture,
        evergreen=np.clip(region.evergreen_fraction + 0.25 * evergreen, 0, 1).astype(np.float32),
        snow_z=snow_z,
        urban_green=(1.0 / (1.0 + np.exp(-1.5 * urban))).astype(np.float32),
    )


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
    urban = scenes["urban_green"][:, None]

    def put(cls: np.ndarray, **fractions: np.ndarray | float) -> None:
        for name, value in fractions.items():
            a[:, :, _E[name]] = np.where(cls, value, a[:, :, _E[name]])

    put(lc == WATER, water=0.90 - 0.04 * tex, soil=np.clip(0.05 + 0.03 * tex, 0, 1), green_veg=0.01)
    put(lc == FOREST, green_veg=0.55 * leaves, dry_veg=0.25 * (1 - leaves), soil=0.03)
    put(lc == GRASSLAND, green_veg=0.78 * grass, dry_veg=0.55 * (1 - grass), soil=0.12)
    parcel = (lc == CROPLAND) & ~margin
    put(parcel, green_veg=green, dry_veg=dry, flower=flower)
    put(parcel, soil=np.clip(0.97 - green - dry - flower, 0.0, 1.0))
    put(parcel, green_veg_nir=green * (spectra.CROP_NIR_SCALE[crop] - 1.0))
    put((lc == CROPLAND) & margin, green_veg=0.6 * grass, dry_veg=0.3 * (1 - grass), soil=0.1)
    put(lc == ARTIFICIAL, built=0.62 + 0.08 * tex, green_veg=0.28 * urban * grass, soil=0.06)
    put(lc == BARE, soil=0.86 + 0.05 * tex, dry_veg=0.08, green_veg=0.02)
    wet = 0.35 + 0.1 * np.cos(2 * np.pi * (d - 90) / 365)
    put(lc == WETLAND, water=wet, green_veg=0.55 * grass, dry_veg=0.25 * (1 - grass))
    put(lc == WETLAND, soil=np.clip(0.95 - wet - 0.55 * grass - 0.25 * (1 - grass), 0, 1))

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
    illumination: float,
    atmosphere: float,
    noise_sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance ``[N, T, C, H, W]`` (float32) and the quality mask ``[N, T, H, W]`` (uint8)."""
    snow = np.clip(
        (weather["snow_level"][:, :, None, None] - scenes["snow_z"][:, None]) * 1.5, 0.0, 1.0
    ).astype(np.float32)
    a = abundances(scenes, ldoy, snow)
    refl = np.moveaxis(np.moveaxis(a, 2, -1) @ spectra.ENDMEMBERS, -1, 2)  # [N, T, C, H, W]
    refl *= (spectra.TRANSMISSION * illumination)[:, None, None]
    refl += (spectra.PATH_RADIANCE * atmosphere)[:, None, None]
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


# --------------------------------------------------------------------------- dates
def _days(start: dt.date, end: dt.date) -> int:
    return (end - start).days


def seasonal_dates(
    rng: np.random.Generator,
    start: dt.date,
    end: dt.date,
    n: int,
    interval_weeks: int,
    window: float,
) -> list[dt.date]:
    """SeCo sampling: a random reference date, then ``-interval``, ``-2·interval``, … weeks.

    Each acquisition falls within ± ``window`` days of its nominal date (the catalog search window);
    all dates lie in ``[start, end]`` and are returned oldest first.
    """
    span = (n - 1) * interval_weeks * 7
    w = int(np.floor(window))
    earliest = span + w
    latest = _days(start, end) - w
    if latest < earliest:
        raise ValueError(
            f"fetch period {start}..{end} is too short for {n} dates {interval_weeks} weeks apart"
        )
    ref = start + dt.timedelta(days=int(rng.integers(earliest, latest + 1)))
    jitter = rng.integers(-w, w + 1, size=n) if w > 0 else np.zeros(n, int)
    nominal = [ref - dt.timedelta(weeks=interval_weeks * k) for k in range(n - 1, -1, -1)]
    return [d + dt.timedelta(days=int(j)) for d, j in zip(nominal, jitter, strict=True)]


def season_dates(
    rng: np.random.Generator,
    start: dt.date,
    end: dt.date,
    region: RegionSpec,
    n: int,
    first_doy: int,
    last_doy: int,
    jitter: int,
) -> list[dt.date]:
    """``n`` dates over one growing season (northern doy range, shifted 6 months in the south)."""
    shift = 182 if region.hemisphere == "south" else 0
    offsets = np.linspace(first_doy - 1 + shift, last_doy - 1 + shift, n).round().astype(int)
    offsets += rng.integers(-jitter, jitter + 1, size=n) if jitter > 0 else 0
    offsets = np.maximum.accumulate(np.clip(offsets, 0, None))  # keep chronological order
    offsets = offsets + np.arange(n) * (np.diff(offsets, prepend=-1) <= 0)  # strictly increasing
    years = [
        y
        for y in range(start.year, end.year + 1)
        if dt.date(y, 1, 1) + dt.timedelta(days=int(offsets[0])) >= start
        and dt.date(y, 1, 1) + dt.timedelta(days=int(offsets[-1])) <= end
    ]
    if not years:
        raise ValueError(f"fetch period {start}..{end} holds no whole growing season")
    base = dt.date(int(rng.choice(years)), 1, 1)
    return [base + dt.timedelta(days=int(o)) for o in offsets]


def single_date(rng: np.random.Generator, start: dt.date, end: dt.date) -> list[dt.date]:
    """One acquisition anywhere in ``[start, end]``."""
    return [start + dt.timedelta(days=int(rng.integers(0, _days(start, end) + 1)))]


# --------------------------------------------------------------------------- georeference
@dataclass(frozen=True, slots=True)
class Georeference:
    """Where a patch lies: centre lon/lat, UTM CRS and 10 m affine transform (GDAL order)."""

    lon: float
    lat: float
    crs: str
    transform: tuple[float, float, float, float, float, float]


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the WGS84 / UTM zone of (lon, lat) (326xx north, 327xx south)."""
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def georeference(lon: float, lat: float, size: int) -> Georeference:
    """A north-up 10 m grid of ``size`` pixels centred on (lon, lat) in its UTM zone."""
    epsg = utm_epsg(lon, lat)
    x, y = _utm_transformer(epsg).transform(lon, lat)
    x0 = float(np.round(x / 10.0) * 10.0 - size * 5.0)
    y0 = float(np.round(y / 10.0) * 10.0 + size * 5.0)
    return Georeference(lon, lat, f"EPSG:{epsg}", (10.0, 0.0, x0, 0.0, -10.0, y0))


_TRANSFORMERS: dict[int, Transformer] = {}


def _utm_transformer(epsg: int) -> Transformer:
    if epsg not in _TRANSFORMERS:
        _TRANSFORMERS[epsg] = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    return _TRANSFORMERS[epsg]


# --------------------------------------------------------------------------- areas
_AREA_CODE: Final[int] = 101
"""Seed-key code of area renderings (datasets use 1..3)."""


@dataclass(frozen=True, slots=True)
class AreaScene:
    """One synthetic acquisition over an area (see :func:`render_area`)."""

    image: np.ndarray  # [13, H, W] uint16 DN in BAND_NAMES order (>= 1: 0 is no data)
    mask: np.ndarray  # [H, W] uint8 quality mask (clear / cloud / shadow / snow)
    landcover: np.ndarray  # [H, W] uint8 LANDCOVER_CLASSES index: the truth, for evaluation
    region: str
    processing_baseline: str
    dn_offset: int
    """``reflectance = (DN + dn_offset) / 10000``."""
    cloud_fraction: float


def region_containing(cfg: SyntheticSource, bbox: tuple[float, float, float, float]) -> RegionSpec:
    """The first region whose lon/lat box contains the whole ``bbox`` (lon/lat, WGS84).

    Raises:
        ValueError: no region contains it; the message lists every region's box.
    """
    lon0, lat0, lon1, lat1 = bbox
    for r in cfg.regions:
        if r.lon[0] <= lon0 and lon1 <= r.lon[1] and r.lat[0] <= lat0 and lat1 <= r.lat[1]:
            return r
    boxes = "; ".join(
        f"{r.name}: {r.lon[0]:g},{r.lat[0]:g},{r.lon[1]:g},{r.lat[1]:g}" for r in cfg.regions
    )
    area = ",".join(f"{v:g}" for v in bbox)
    raise ValueError(
        f"area {area} lies in no region of the synthetic world: give an area inside one "
        f"region's box (LON_MIN,LAT_MIN,LON_MAX,LAT_MAX) — {boxes} — or add a region to "
        "fetch.synthetic.regions"
    )


def _area_rng(
    seed: int, region: str, bbox: tuple[float, float, float, float], date: dt.date | None
) -> np.random.Generator:
    """The generator of an area's landscape (``date`` None) or of its weather on ``date``."""
    text = ",".join(f"{v:.6f}" for v in bbox)
    key = [seed, _AREA_CODE, zlib.crc32(region.encode()), zlib.crc32(text.encode())]
    key.append(0 if date is None else date.toordinal())
    return np.random.default_rng(np.random.SeedSequence(key))


def render_area(
    cfg: SyntheticSource,
    seed: int,
    bbox: tuple[float, float, float, float],
    height: int,
    width: int,
    date: dt.date,
) -> AreaScene:
    """Render one acquisition on ``date`` of a ``height`` × ``width`` area inside one region.

    The landscape is drawn from the region's statistics and keyed by ``(seed, region, bbox)``, the
    weather (clouds, shadows, haze, snow, noise) by ``(seed, region, bbox, date)``: the same area
    on another date shows the same fields in another season. The synthetic world has no global
    map, so overlapping areas are independent landscapes. Single-date acquisitions use the
    ``landcover`` scene cloud filter. DN carry the date's processing-baseline offset.

    Raises:
        ValueError: no region contains ``bbox``, or a non-positive size.
    """
    if height < 1 or width < 1:
        raise ValueError(f"area size must be at least 1 x 1 pixel, got {height} x {width}")
    region = region_containing(cfg, bbox)
    side = max(height, width)
    scene = draw_scene(_area_rng(seed, region.name, bbox, None), region, side)
    doy = np.array([date.timetuple().tm_yday])
    weather = draw_weather(
        _area_rng(seed, region.name, bbox, date),
        region,
        doy,
        side,
        cfg.landcover.max_cloud_coverage,
    )

    def crop(a: np.ndarray) -> np.ndarray:
        return a[..., :height, :width][None] if a.ndim >= 2 else a[None]

    scenes = {f: crop(getattr(scene, f)) for f in Scene.__slots__}
    weathers = {f: crop(getattr(weather, f)) for f in Weather.__slots__}
    ldoy = local_doy(doy[None].astype(np.float32), region)
    refl, mask = render(scenes, weathers, ldoy, region.illumination, region.atmosphere, cfg.noise)
    baseline = baseline_for(cfg, date)
    offset = dn_offset_for_baseline(baseline)
    image = np.maximum(reflectance_to_dn(refl[0, 0], offset), 1)  # DN 0 is reserved for no data
    return AreaScene(
        image=image,
        mask=mask[0, 0],
        landcover=scenes["landcover"][0],
        region=region.name,
        processing_baseline=baseline,
        dn_offset=offset,
        cloud_fraction=round(float((mask[0, 0] == MASK_CLOUD).mean()), 6),
    )


# --------------------------------------------------------------------------- datasets
def location_rng(seed: int, dataset: str, region: str, location: int) -> np.random.Generator:
    """The random generator of one location: a function of (seed, dataset, region, location)."""
    key = [seed, _DATASET_CODES[dataset], zlib.crc32(region.encode()), location]
    return np.random.default_rng(np.random.SeedSequence(key))


def baseline_for(cfg: SyntheticSource, date: dt.date) -> str:
    """The processing baseline of a synthetic acquisition on ``date``
    (``processing_baseline: by_date`` follows the real history, else the fixed value)."""
    if cfg.processing_baseline == "by_date":
        return processing_baseline_for(date)
    return cfg.processing_baseline


def _split(u: float, fractions: tuple[float, float, float]) -> str:
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def dataset_size(cfg: SyntheticSource, dataset: DatasetName) -> int:
    """How many samples :func:`generate` yields for ``dataset``."""
    per_region = {
        "unlabelled": cfg.unlabelled.locations_per_region,
        "landcover": cfg.landcover.patches_per_region,
        "croptype": cfg.croptype.patches_per_region,
    }[dataset]
    return per_region * len(cfg.regions)


def array_shapes(
    cfg: SyntheticSource, dataset: DatasetName
) -> dict[str, tuple[tuple[int, ...], str]]:
    """Per-sample shape and dtype of every array of ``dataset``."""
    if dataset == "unlabelled":
        t, s = cfg.unlabelled.n_dates, cfg.unlabelled.patch_size
    elif dataset == "landcover":
        t, s = 1, cfg.landcover.patch_size
    else:
        t, s = cfg.croptype.n_dates, cfg.croptype.patch_size
    shapes: dict[str, tuple[tuple[int, ...], str]] = {
        "image": ((t, N_BANDS, s, s), "uint16"),
        "mask": ((t, s, s), "uint8"),
    }
    if dataset in ("landcover", "croptype"):
        shapes["landcover"] = ((s, s), "uint8")
    if dataset == "croptype":
        shapes["croptype"] = ((s, s), "uint8")
        shapes["parcel"] = ((s, s), "int32")
    return shapes


def generate(
    cfg: SyntheticSource,
    dataset: DatasetName,
    seed: int,
    start: dt.date,
    end: dt.date,
    chunk_size: int = 32,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Chunk]:
    """Yield ``dataset`` in chunks of at most ``chunk_size`` locations (region by region)."""
    if dataset not in _DATASET_CODES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASET_NAMES)}")
    per_region = dataset_size(cfg, dataset) // len(cfg.regions)
    for region in cfg.regions:
        for first in range(0, per_region, chunk_size):
            locations = range(first, min(first + chunk_size, per_region))
            yield _render_chunk(cfg, dataset, seed, start, end, region, locations)
            if on_progress is not None:
                on_progress(len(locations))


def _render_chunk(
    cfg: SyntheticSource,
    dataset: DatasetName,
    seed: int,
    start: dt.date,
    end: dt.date,
    region: RegionSpec,
    locations: range,
) -> Chunk:
    scenes: list[Scene] = []
    weathers: list[Weather] = []
    rows: list[dict[str, object]] = []
    size = int(array_shapes(cfg, dataset)["image"][0][-1])
    for loc in locations:
        rng = location_rng(seed, dataset, region.name, loc)
        split_u = float(rng.random())
        lon = float(rng.uniform(*region.lon))
        lat = float(rng.uniform(*region.lat))
        if dataset == "unlabelled":
            spec_u = cfg.unlabelled
            dates = seasonal_dates(
                rng, start, end, spec_u.n_dates, spec_u.interval_weeks, spec_u.window_days
            )
            split, max_cloud, boost = "train", spec_u.max_cloud_coverage, 0.0
        elif dataset == "landcover":
            spec_l = cfg.landcover
            dates = single_date(rng, start, end)
            fr = (spec_l.splits.train, spec_l.splits.val, spec_l.splits.test)
            split, max_cloud, boost = _split(split_u, fr), spec_l.max_cloud_coverage, 0.0
        else:
            spec_c = cfg.croptype
            dates = season_dates(
                rng,
                start,
                end,
                region,
                spec_c.n_dates,
                spec_c.season_start_doy,
                spec_c.season_end_doy,
                spec_c.date_jitter_days,
            )
            fr = (spec_c.splits.train, spec_c.splits.val, spec_c.splits.test)
            split, max_cloud, boost = (
                _split(split_u, fr),
                spec_c.max_cloud_coverage,
                spec_c.cropland_boost,
            )
        doy = np.array([d.timetuple().tm_yday for d in dates])
        scenes.append(draw_scene(rng, region, size, cropland_boost=boost))
        weathers.append(draw_weather(rng, region, doy, size, max_cloud))
        geo = georeference(lon, lat, size)
        baselines = [baseline_for(cfg, d) for d in dates]
        rows.append(
            {
                "sample_id": f"{dataset}-{region.name}-{loc:05d}",
                "dataset": dataset,
                "region": region.name,
                "hemisphere": region.hemisphere,
                "location": loc,
                "lon": geo.lon,
                "lat": geo.lat,
                "crs": geo.crs,
                "transform": list(geo.transform),
                "dates": [d.isoformat() for d in dates],
                "doy": doy.tolist(),
                "processing_baseline": baselines,
                "dn_offset": [dn_offset_for_baseline(b) for b in baselines],
                "harmonize_values": False,
                "split": split,
                "source": "synthetic",
            }
        )

    stacked = {f: np.stack([getattr(s, f) for s in scenes]) for f in Scene.__slots__}
    weather = {f: np.stack([getattr(w, f) for w in weathers]) for f in Weather.__slots__}
    ldoy = local_doy(np.array([r["doy"] for r in rows], dtype=np.float32), region)
    refl, mask = render(stacked, weather, ldoy, region.illumination, region.atmosphere, cfg.noise)
    offsets = np.array([r["dn_offset"] for r in rows])[:, :, None, None, None]
    cloud_fraction = (mask == MASK_CLOUD).mean(axis=(-2, -1))
    for row, cf in zip(rows, cloud_fraction, strict=True):
        row["cloud_fraction"] = [round(float(c), 6) for c in cf]

    arrays: dict[str, np.ndarray] = {"image": reflectance_to_dn(refl, offsets), "mask": mask}
    if dataset in ("landcover", "croptype"):
        arrays["landcover"] = stacked["landcover"]
    if dataset == "croptype":
        arrays["croptype"] = stacked["crop"]
        arrays["parcel"] = stacked["parcel"]
    arrays["image"] = np.maximum(arrays["image"], 1)  # DN 0 is reserved for no data
    return Chunk(arrays=arrays, rows=pd.DataFrame(rows))


def dataset_attrs(cfg: SyntheticSource, dataset: DatasetName, seed: int) -> dict[str, object]:
    """Metadata stored with a generated dataset (``meta.json`` attrs)."""
    attrs: dict[str, object] = {
        "source": "synthetic",
        "world_version": WORLD_VERSION,
        "seed": seed,
        "bands": list(BAND_NAMES),
        "mask_codes": {
            "clear": MASK_CLEAR,
            "cloud": MASK_CLOUD,
            "shadow": MASK_SHADOW,
            "snow": MASK_SNOW,
        },
        "regions": [r.name for r in cfg.regions],
        "radiometry": "reflectance = (DN + dn_offset[date]) / 10000",
    }
    if dataset in ("landcover", "croptype"):
        attrs["landcover_classes"] = list(LANDCOVER_CLASSES)
    if dataset == "croptype":
        attrs["croptype_classes"] = ["background", *CROPS]
    return attrs
