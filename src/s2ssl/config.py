"""Validated configuration: ``params.yaml`` loaded into frozen pydantic models (``extra="forbid"``).

One model per ``params.yaml`` section; the sections are the only place hyperparameters and data
selection live. A wrong key or value fails at once with a :class:`ConfigError` whose
message names the key's dotted path (``fetch.synthetic.regions.0.hemisphere``) and the allowed
values or keys. Secrets never live here: see :mod:`s2ssl.settings`.
"""

from __future__ import annotations

import datetime as dt
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from s2ssl.bands import BAND_NAMES

LANDCOVER_CLASSES: tuple[str, ...] = (
    "water",
    "forest",
    "grassland",
    "cropland",
    "artificial",
    "bare",
    "wetland",
)
"""Land-cover classes; a class's label value is its position here."""

CROP_CLASSES: tuple[str, ...] = (
    "background",
    "winter_wheat",
    "winter_barley",
    "rapeseed",
    "maize",
    "soybean",
    "sunflower",
    "sugar_beet",
    "potato",
)
"""Crop-type classes; 0 is background (not cropland, or a parcel boundary)."""

CROPS: tuple[str, ...] = CROP_CLASSES[1:]

LABEL_IGNORE: int = 255
"""Label value of unlabelled / unknown pixels (excluded from losses and metrics)."""

LABEL_CLASSES: dict[str, tuple[str, ...]] = {
    "landcover": LANDCOVER_CLASSES,
    "croptype": CROP_CLASSES,
}
"""The class set of each label array a dataset may carry."""

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]


class ConfigError(ValueError):
    """A ``params.yaml`` problem, with the dotted path of every offending key."""


class StrictModel(BaseModel):
    """Frozen, no unknown keys: the base of every params section."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- synthetic world
class RegionSpec(StrictModel):
    """One region of the synthetic world: its landscape, crops, sky and hemisphere."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    hemisphere: Literal["north", "south"]
    lon: tuple[float, float] = Field(description="longitude range (degrees) of its locations")
    lat: tuple[float, float] = Field(description="latitude range (degrees) of its locations")
    class_priors: dict[str, Fraction]
    crop_mix: dict[str, Fraction]
    parcel_size_px: float = Field(gt=4, description="mean parcel area in 10 m pixels")
    landscape_scale_px: float = Field(gt=1, description="correlation length of land cover")
    illumination: float = Field(gt=0.5, lt=1.5, description="multiplicative gain (sun, terrain)")
    atmosphere: Fraction = Field(description="path-radiance strength (0 = none)")
    haze_max: Fraction = Field(description="largest per-date haze fraction")
    cloudiness: Fraction = Field(description="probability that a date has clouds")
    snow: bool = Field(description="winter dates may have snow")
    evergreen_fraction: Fraction
    soil_brightness: float = Field(gt=0.3, lt=2.0)
    phenology_shift_days: float = Field(ge=-30, le=30)

    @field_validator("lon", "lat")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError(f"must be [min, max] with min < max, got {list(v)}")
        return v

    @field_validator("class_priors")
    @classmethod
    def _priors(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_distribution(v, LANDCOVER_CLASSES, "land-cover class")

    @field_validator("crop_mix")
    @classmethod
    def _crops(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_distribution(v, CROPS, "crop")

    @model_validator(mode="after")
    def _latitudes_match_hemisphere(self) -> RegionSpec:
        north = self.lat[0] >= 0
        south = self.lat[1] <= 0
        if (self.hemisphere == "north" and not north) or (self.hemisphere == "south" and not south):
            raise ValueError(
                f"lat range {list(self.lat)} is not in the {self.hemisphere}ern hemisphere"
            )
        if abs(self.lat[0]) > 80 or abs(self.lat[1]) > 80:
            raise ValueError("lat must stay within ±80° (UTM zones)")
        return self


def _check_distribution(
    v: dict[str, float], allowed: tuple[str, ...], what: str
) -> dict[str, float]:
    unknown = sorted(set(v) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; allowed: {', '.join(allowed)}")
    total = sum(v.values())
    if not math.isclose(total, 1.0, abs_tol=1e-3):
        raise ValueError(f"{what} fractions must sum to 1, they sum to {total:.4f}")
    return v


class SplitFractions(StrictModel):
    """Fractions of locations in each split (they must sum to 1)."""

    train: Fraction
    val: Fraction
    test: Fraction

    @model_validator(mode="after")
    def _sum(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + val + test must be 1, got {total:.4f}")
        return self


class UnlabelledSpec(StrictModel):
    """SeCo pre-training data: per location, ``n_dates`` acquisitions ``interval_weeks`` apart."""

    locations_per_region: PositiveInt
    patch_size: int = Field(ge=16, le=512)
    n_dates: int = Field(ge=2, le=12)
    interval_weeks: int = Field(ge=1, le=26)
    window_days: float = Field(ge=0, le=30, description="± search window per date")
    max_cloud_coverage: Fraction


class LandcoverSpec(StrictModel):
    """Labelled single-date patches for land-cover segmentation (and derived scene labels)."""

    patches_per_region: PositiveInt
    patch_size: int = Field(ge=16, le=512)
    max_cloud_coverage: Fraction
    splits: SplitFractions

    @field_validator("patch_size")
    @classmethod
    def _div16(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"must be divisible by 16 (U-Net with 4 poolings), got {v}")
        return v


class CroptypeSpec(StrictModel):
    """Satellite image time series (SITS) over cropland, for crop-type segmentation (CSCL)."""

    patches_per_region: PositiveInt
    patch_size: int = Field(ge=8, le=256)
    n_dates: int = Field(ge=2, le=64)
    season_start_doy: int = Field(ge=1, le=366, description="northern-hemisphere doy")
    season_end_doy: int = Field(ge=1, le=366)
    date_jitter_days: int = Field(ge=0, le=15)
    max_cloud_coverage: Fraction
    cropland_boost: float = Field(ge=0, le=10, description="bias toward cropland")
    splits: SplitFractions

    @field_validator("patch_size")
    @classmethod
    def _div4(cls, v: int) -> int:
        if v % 4:
            raise ValueError(f"must be divisible by 4 (3-D U-Net), got {v}")
        return v

    @model_validator(mode="after")
    def _season(self) -> CroptypeSpec:
        if self.season_end_doy - self.season_start_doy < self.n_dates:
            raise ValueError("season_end_doy must be after season_start_doy by at least n_dates")
        return self


class SyntheticSource(StrictModel):
    """The embedded synthetic Sentinel-2 world."""

    regions: list[RegionSpec] = Field(min_length=1)
    unlabelled: UnlabelledSpec
    landcover: LandcoverSpec
    croptype: CroptypeSpec
    noise: float = Field(ge=0, le=0.1, description="per-pixel reflectance noise σ")
    processing_baseline: Literal["by_date", "03.01", "04.00", "05.09"]

    @field_validator("regions")
    @classmethod
    def _unique(cls, v: list[RegionSpec]) -> list[RegionSpec]:
        names = [r.name for r in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"region names must be unique; repeated: {dupes}")
        return v


# --------------------------------------------------------------------------- real imagery
class RetryConfig(StrictModel):
    """Our retry policy around every Sentinel Hub call (the client's own retries are off).

    429 (rate limit) and 5xx answers and connection errors are retried with exponential back-off
    plus jitter; other 4xx answers are never retried (they would fail again).
    """

    max_attempts: int = Field(default=6, ge=1, le=50, description="tries per call, first included")
    backoff_s: float = Field(default=2.0, ge=0, le=600, description="first back-off sleep")
    max_backoff_s: float = Field(default=120.0, ge=0, le=3600, description="cap of one sleep")
    jitter: Fraction = Field(default=0.5, description="sleep × uniform(1 - jitter, 1 + jitter)")
    timeout_s: float = Field(default=120.0, gt=0, le=3600, description="one HTTP request")


class ShRegion(StrictModel):
    """One named area to sample locations from: exactly one of ``bbox``, ``geojson``,
    ``points`` or ``places`` (SeCo's Gaussian sampler, σ = ``sigma_km`` around each place).

    Coordinates are WGS84 longitude, latitude in degrees.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="[min_lon, min_lat, max_lon, max_lat]"
    )
    geojson: Path | None = Field(default=None, description="a GeoJSON file of (multi)polygons")
    points: list[tuple[float, float]] | None = Field(
        default=None, description="fixed [lon, lat] locations (no replacement possible)"
    )
    places: list[tuple[float, float]] | None = Field(
        default=None, description="[lon, lat] centres of the Gaussian sampler"
    )
    sigma_km: float = Field(default=50.0, gt=0, le=1000, description="Gaussian σ around places")
    locations: PositiveInt = Field(default=10, description="locations to fetch (not for points)")

    @model_validator(mode="after")
    def _one_area(self) -> ShRegion:
        given = [k for k in ("bbox", "geojson", "points", "places") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of bbox, geojson, points or places (got {given or 'none'})"
            )
        if self.bbox is not None:
            lo_lon, lo_lat, hi_lon, hi_lat = self.bbox
            if not (-180 <= lo_lon < hi_lon <= 180 and -80 <= lo_lat < hi_lat <= 80):
                raise ValueError(
                    "bbox must be [min_lon, min_lat, max_lon, max_lat] with min < max, "
                    f"lon in [-180, 180], lat in [-80, 80]; got {list(self.bbox)}"
                )
        for key in ("points", "places"):
            pts = getattr(self, key)
            if pts is not None:
                if not pts:
                    raise ValueError(f"{key} must hold at least one [lon, lat] pair")
                bad = [list(p) for p in pts if not (-180 <= p[0] <= 180 and -80 <= p[1] <= 80)]
                if bad:
                    raise ValueError(
                        f"{key} must be [lon, lat] pairs with lon in [-180, 180] and lat in "
                        f"[-80, 80]; out of range: {bad[:3]}"
                    )
        return self


class LabelRaster(StrictModel):
    """A label raster (any CRS) and the mapping of its values to the dataset's class names;
    unmapped values become 255 (unknown). Resampled with nearest neighbour."""

    path: Path
    classes: dict[int, str] = Field(min_length=1, description="raster value -> class name")


class ShSeasonalSpec(StrictModel):
    """SeCo sampling (``unlabelled``): a reference date, then −``interval_weeks``, −2×, … weeks;
    each date searched in ± ``window_days``, the most recent acceptable scene kept."""

    patch_size: int = Field(default=64, ge=8, le=2500)
    n_dates: int = Field(default=5, ge=2, le=12)
    interval_weeks: int = Field(default=12, ge=1, le=26)
    window_days: float = Field(default=7.5, ge=0.5, le=30)
    reference_date: dt.date | None = Field(
        default=None, description="None: a random reference date per location in the fetch range"
    )
    max_year_shift: int = Field(
        default=2, ge=0, le=20, description="random whole-year shift back per location (SeCo)"
    )


class ShSingleDateSpec(StrictModel):
    """Single-date sampling (``landcover``): the most recent acceptable scene in a window."""

    patch_size: int = Field(default=64, ge=16, le=2500)
    date: dt.date | None = Field(
        default=None, description="window centre; None: a random date per location"
    )
    window_days: float = Field(default=15.0, ge=0.5, le=183)
    splits: SplitFractions = SplitFractions(train=0.7, val=0.15, test=0.15)
    labels: LabelRaster | None = Field(
        default=None, description="a land-cover raster resampled onto every patch (optional)"
    )

    @field_validator("patch_size")
    @classmethod
    def _div16(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"must be divisible by 16 (U-Net with 4 poolings), got {v}")
        return v


class ShTimeSeriesSpec(StrictModel):
    """Time-series sampling (``croptype``, SITS): every acceptable acquisition in
    [``period_start``, ``period_end``]; ``n_dates`` of them, evenly spread, are kept."""

    patch_size: int = Field(default=32, ge=8, le=2500)
    period_start: dt.date
    period_end: dt.date
    n_dates: int = Field(default=16, ge=2, le=64)
    splits: SplitFractions = SplitFractions(train=0.7, val=0.15, test=0.15)
    labels: LabelRaster | None = Field(
        default=None, description="a crop-type raster resampled onto every patch (optional)"
    )

    @field_validator("patch_size")
    @classmethod
    def _div4(cls, v: int) -> int:
        if v % 4:
            raise ValueError(f"must be divisible by 4 (3-D U-Net), got {v}")
        return v

    @model_validator(mode="after")
    def _period(self) -> ShTimeSeriesSpec:
        if (self.period_end - self.period_start).days < self.n_dates:
            raise ValueError("period_end must be after period_start by at least n_dates days")
        return self


class SentinelHubSource(StrictModel):
    """Real Sentinel-2 imagery through sentinelhub-py: catalog search, then the Process API.

    Credentials and the service URL come from the environment (``SH_CLIENT_ID``,
    ``SH_CLIENT_SECRET``, ``SH_BASE_URL``, ``SH_TOKEN_URL``) or ``.env``, never from here.
    """

    collection: Literal["L2A", "L1C"] = "L2A"
    max_cloud_coverage: Fraction = Field(default=0.1, description="scene filter (SeCo: 10 %)")
    harmonize_values: bool = Field(
        default=False,
        description="Sentinel Hub harmonizeValues; false keeps raw DN and records the offset",
    )
    regions: list[ShRegion] = Field(min_length=1)
    unlabelled: ShSeasonalSpec = ShSeasonalSpec()
    landcover: ShSingleDateSpec = ShSingleDateSpec()
    croptype: ShTimeSeriesSpec | None = None
    concurrency: int = Field(default=4, ge=1, le=64, description="parallel downloads")
    cache_dir: Path = Field(
        default=Path("data/cache/sentinelhub"), description="resumable on-disk cache"
    )
    max_candidates_factor: int = Field(
        default=5, ge=1, le=100, description="candidate locations tried per wanted location"
    )
    catalog_page_size: int = Field(default=100, ge=1, le=100)
    retry: RetryConfig = RetryConfig()

    @field_validator("regions")
    @classmethod
    def _unique(cls, v: list[ShRegion]) -> list[ShRegion]:
        names = [r.name for r in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"region names must be unique; repeated: {dupes}")
        return v


class LocalDatasetSpec(StrictModel):
    """One dataset imported from GeoTIFFs under ``path``.

    ``layout: multiband`` — every ``*.tif`` is one image with all bands (``band_order`` names
    them; by default 13 bands in Sentinel-2 order, or 12 without B10 for Level-2A);
    ``band_files`` — one GeoTIFF per band (``*_B02.tif``, …, the BigEarthNet layout), one folder
    per image, 20 m / 60 m bands resampled to the 10 m grid; ``auto`` tells them apart.
    With ``n_dates > 1`` each sub-folder of ``path`` is one sample holding its dated images.
    Label rasters lie beside an image as ``<image name><suffix>.tif``.
    """

    path: Path
    layout: Literal["auto", "multiband", "band_files"] = "auto"
    band_order: list[str] | None = Field(
        default=None, description="band names of multiband files, in file order"
    )
    patch_size: int = Field(default=64, ge=8, le=4096, description="images are tiled into these")
    n_dates: int = Field(default=1, ge=1, le=64)
    region: str = Field(default="local", pattern=r"^[a-z][a-z0-9_]*$")
    processing_baseline: str = Field(
        default="by_date", description='"by_date", or one baseline such as "04.00" for all files'
    )
    harmonized: bool = Field(
        default=False, description="DN already without the 04.00 offset (dn_offset 0)"
    )
    resampling: Literal["bilinear", "nearest", "cubic", "average"] = "bilinear"
    labels: dict[Literal["landcover", "croptype", "parcel"], str] = Field(
        default_factory=dict, description="label array -> file-name suffix, e.g. _landcover"
    )
    label_classes: dict[Literal["landcover", "croptype"], dict[int, str]] = Field(
        default_factory=dict, description="raster value -> class name (default: value = index)"
    )
    splits: SplitFractions = SplitFractions(train=0.7, val=0.15, test=0.15)

    @field_validator("band_order")
    @classmethod
    def _bands(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        unknown = [b for b in v if b not in BAND_NAMES]
        if unknown:
            raise ValueError(f"unknown band(s) {unknown}; Sentinel-2 bands are {list(BAND_NAMES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"band names must be unique, got {v}")
        return v

    @field_validator("processing_baseline")
    @classmethod
    def _baseline(cls, v: str) -> str:
        import re

        if v != "by_date" and not re.fullmatch(r"\d{2}\.\d{2}", v):
            raise ValueError(f'must be "by_date" or a baseline like "04.00", got {v!r}')
        return v


class LocalSource(StrictModel):
    """Bring your own GeoTIFFs: one :class:`LocalDatasetSpec` per dataset name."""

    unlabelled: LocalDatasetSpec | None = None
    landcover: LocalDatasetSpec | None = None
    croptype: LocalDatasetSpec | None = None


class FetchConfig(StrictModel):
    """``fetch`` stage: where imagery comes from and which time range it covers."""

    source: Literal["synthetic", "sentinelhub", "local"]
    start_date: dt.date
    end_date: dt.date
    shard_size: int = Field(ge=1, le=100_000)
    datasets: list[Literal["unlabelled", "landcover", "croptype"]] = Field(min_length=1)
    synthetic: SyntheticSource
    sentinelhub: SentinelHubSource | None = Field(
        description="real imagery (used when source: sentinelhub)"
    )
    local: LocalSource | None = Field(description="your own GeoTIFFs (used when source: local)")

    @model_validator(mode="after")
    def _range(self) -> FetchConfig:
        if (self.end_date - self.start_date).days < 400:
            raise ValueError(
                "end_date must be at least 400 days after start_date (a SeCo location spans a year)"
            )
        return self

    @model_validator(mode="after")
    def _source_section(self) -> FetchConfig:
        if self.source == "sentinelhub":
            if self.sentinelhub is None:
                raise ValueError("source: sentinelhub needs a fetch.sentinelhub section")
            ts = self.sentinelhub.croptype
            if "croptype" in self.datasets and ts is None:
                raise ValueError(
                    "datasets lists croptype: give fetch.sentinelhub.croptype "
                    "(period_start, period_end) or drop croptype from fetch.datasets"
                )
            if ts is not None and not (
                self.start_date <= ts.period_start and ts.period_end <= self.end_date
            ):
                raise ValueError(
                    f"fetch.sentinelhub.croptype period {ts.period_start}..{ts.period_end} must "
                    f"lie within start_date..end_date ({self.start_date}..{self.end_date})"
                )
        if self.source == "local":
            if self.local is None:
                raise ValueError("source: local needs a fetch.local section")
            missing = [d for d in self.datasets if getattr(self.local, d) is None]
            if missing:
                raise ValueError(
                    f"fetch.local has no section for dataset(s) {missing}: add one per name in "
                    "fetch.datasets, or drop them from fetch.datasets"
                )
            if self.local.landcover is not None and self.local.landcover.n_dates != 1:
                raise ValueError(
                    "fetch.local.landcover holds single-date patches: n_dates must be 1"
                )
        return self


class ValidateConfig(StrictModel):
    """``validate`` stage: thresholds of the great-expectations suite.

    A sample failing a sample-level expectation is quarantined; a dataset whose pass fraction
    drops below ``min_pass_fraction`` (or whose schema is wrong, or a split empties) is unusable.
    """

    allowed_dtypes: list[Literal["uint16", "float32"]] = Field(min_length=1)
    max_nan_fraction: Fraction
    max_nodata_fraction: Fraction
    dn_range: tuple[int, int]
    max_cloud_fraction: Fraction
    min_label_coverage: Fraction
    min_pass_fraction: Fraction
    quantiles: tuple[float, float]
    required_bands: list[str] = Field(min_length=1)

    @field_validator("required_bands")
    @classmethod
    def _known_bands(cls, v: list[str]) -> list[str]:
        unknown = [b for b in v if b not in BAND_NAMES]
        if unknown:
            raise ValueError(f"unknown band(s) {unknown}; Sentinel-2 bands are {list(BAND_NAMES)}")
        return v

    @model_validator(mode="after")
    def _ranges(self) -> ValidateConfig:
        lo, hi = self.dn_range
        if not -1000 <= lo < hi <= 65535:
            raise ValueError(
                f"dn_range must be [low, high] with -1000 <= low < high <= 65535, got {[lo, hi]}"
            )
        q_lo, q_hi = self.quantiles
        if not 0.0 <= q_lo < q_hi <= 1.0:
            raise ValueError(
                f"quantiles must be [low, high] in [0, 1], low < high, got {[q_lo, q_hi]}"
            )
        return self


# --------------------------------------------------------------------------- pre-training
PRETRAIN_METHODS: tuple[str, ...] = ("seco", "moco", "moco_tp", "dense", "cscl")
"""Pre-training methods; each is one DVC ``foreach`` item of the ``pretrain`` stage."""

PretrainMethod = Literal["seco", "moco", "moco_tp", "dense", "cscl"]


def _check_pair(v: tuple[float, float], low: float, high: float, what: str) -> tuple[float, float]:
    lo, hi = v
    if not low < lo <= hi <= high:
        raise ValueError(
            f"{what} must be [low, high] with {low} < low <= high <= {high}, got {[lo, hi]}"
        )
    return v


def _check_milestones(v: tuple[float, ...]) -> tuple[float, ...]:
    if any(not 0.0 < m < 1.0 for m in v) or list(v) != sorted(set(v)):
        raise ValueError(
            f"must be increasing fractions of max_epochs in (0, 1), e.g. [0.6, 0.8], got {list(v)}"
        )
    return v


class AppearanceConfig(StrictModel):
    """The appearance augmentation ``A`` (SeCo / MoCo-v2, adapted to multispectral input).

    SeCo's RGB pipeline (colour jitter 0.4 with p = 0.8, grayscale p = 0.2, Gaussian blur σ in
    [0.1, 2] with p = 0.5, horizontal flip) becomes band-wise brightness/contrast, blur, optional
    noise and flips (our choice). Grayscale only applies to RGB input.
    """

    brightness: float = Field(ge=0, le=2, description="shift, in band std units")
    contrast: float = Field(ge=0, le=1, description="factor range 1 ± contrast")
    jitter_p: Fraction = Field(description="probability of brightness/contrast")
    grayscale_p: Fraction = Field(description="RGB input only (SeCo)")
    blur_p: Fraction
    blur_sigma: tuple[float, float]
    noise_p: Fraction
    noise_std: float = Field(ge=0, le=1, description="reflectance units")
    flip: bool = Field(description="random horizontal flip (part of A in SeCo)")

    @field_validator("blur_sigma")
    @classmethod
    def _sigma(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _check_pair(v, 0.0, 20.0, "blur_sigma")


class ProbeConfig(StrictModel):
    """Online cosine kNN probe run after every pre-training epoch.

    Votes are weighted by ``exp(cos / temperature)`` (Wu et al. 2018 "InstDisc"; DINO, Caron et
    al. 2021) or counted (``voting: majority``).
    """

    k: PositiveInt
    temperature: float = Field(gt=0, le=10)
    voting: Literal["weighted", "majority"]
    bank_size: PositiveInt = Field(description="scene level: max bank patches")
    query_size: PositiveInt = Field(description="scene level: max query patches")
    scene_tile: PositiveInt = Field(
        description="scene level: patches are cut into tiles labelled by majority"
    )
    pixel_bank_images: PositiveInt = Field(description="pixel level: bank images")
    pixel_query_images: PositiveInt = Field(description="pixel level: query images")
    pixels_per_image: PositiveInt = Field(description="pixel level: pixels per image")
    batch_size: PositiveInt = Field(description="images per encoding batch")


class _SgdCropTraining(StrictModel):
    """What the contrastive methods share: random-resized-crop scale and the SGD step schedule
    (lr × ``lr_gamma`` at the ``lr_milestones`` fractions of ``max_epochs``)."""

    crop_scale: tuple[float, float]
    lr: float = Field(gt=0, le=10)
    sgd_momentum: float = Field(ge=0, lt=1)
    weight_decay: float = Field(ge=0, le=1)
    lr_milestones: tuple[float, ...]
    lr_gamma: float = Field(gt=0, le=1)

    @field_validator("crop_scale")
    @classmethod
    def _scale(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _check_pair(v, 0.0, 1.0, "crop_scale")

    @field_validator("lr_milestones")
    @classmethod
    def _milestones(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        return _check_milestones(v)


class MocoConfig(_SgdCropTraining):
    """``seco``, ``moco`` and ``moco_tp`` (Mañas et al., ICCV 2021; MoCo-v2, Chen et al. 2020).

    Paper defaults: ResNet-18, RGB, SGD lr 0.03 momentum 0.9 wd 1e-4, batch 256, 200 epochs with
    lr × 0.1 at 60 % and 80 %, key momentum 0.999, K = 16384, τ = 0.07. The defaults here fit the
    CPU budget and the small synthetic world (384 locations): the queue must stay far below the
    training set size — with K close to N a location's own stale key from the previous epoch is
    often still queued and acts as a negative (measured: with K = 256 the loss rose towards
    chance and the embeddings collapsed); K = 64 makes that rare (≈ (K/N)²/2 of the queries).
    With a few hundred steps a key momentum of 0.99 lets the key encoder follow. The learning
    rate follows MoCo's linear scaling rule, 0.03 × batch / 256 = 0.00375 at batch 32 (measured on
    the default world, SeCo, 10 epochs: with lr 0.03 the embedding std fell to 0.005 and the loss
    stayed near chance; with 0.00375 the loss fell 12.9 → 12.1 and the std stayed 0.02–0.03).
    """

    lr: float = Field(gt=0, le=10, description="paper: 0.03 at batch 256")
    max_epochs: PositiveInt
    batch_size: int = Field(ge=2, le=65536)
    depth: Literal[18, 50]
    bands: Literal["rgb", "all"]
    crop_size: int = Field(ge=32, le=1024, description="output of the resized crop")
    embedding_dim: PositiveInt
    queue_size: PositiveInt
    temperature: float = Field(gt=0, le=10)
    key_momentum: float = Field(ge=0, le=1)
    appearance: AppearanceConfig


class DenseConfig(_SgdCropTraining):
    """``dense``: pixel-level contrastive pre-training of a ResNet U-Net (Embedding Earth, Tarasiou
    & Zafeiriou 2022; the official code was never released, the design is ours)."""

    max_epochs: PositiveInt
    batch_size: int = Field(ge=2, le=65536)
    depth: Literal[18, 50]
    bands: Literal["rgb", "all"]
    crop_size: int = Field(ge=32, le=1024)
    crop_scale: tuple[float, float] = Field(
        description="larger than SeCo's 0.2 so two crops overlap"
    )
    rot90: bool
    points_per_image: PositiveInt
    feature_dim: PositiveInt = Field(description="U-Net per-pixel output channels")
    embedding_dim: PositiveInt
    temperature: float = Field(gt=0, le=10)
    symmetric: bool
    key_encoder: bool = Field(description="momentum (dual) key encoder")
    key_momentum: float = Field(ge=0, le=1)
    optimizer: Literal["sgd", "adamw"]
    appearance: AppearanceConfig

    @field_validator("crop_size")
    @classmethod
    def _div32(cls, v: int) -> int:
        if v % 32:
            raise ValueError(f"must be divisible by 32 (the U-Net's output stride), got {v}")
        return v


class CSCLConfig(StrictModel):
    """``cscl``: stage 1 of CSCL (Tarasiou, Guler, Zafeiriou 2021/2022), supervised.

    ``labels: croptype`` trains the 3-D U-Net on the crop-type time series (13 bands as
    reflectance + day-of-year / 365); ``labels: landcover`` trains a ResNet U-Net on single-date
    land cover. Paper: U-Net width 16, Adam lr 1e-4 × 0.975 per epoch, batch 32, w⁺ = 0.125,
    3×3 window. The defaults here shrink width and crops to fit the CPU budget.
    """

    labels: Literal["croptype", "landcover"]
    max_epochs: PositiveInt
    batch_size: int = Field(ge=1, le=65536)
    features: PositiveInt = Field(description="3-D U-Net base width (paper: 16)")
    depth: Literal[18, 50] = Field(description="ResNet U-Net depth (landcover)")
    crop_size: int | None = Field(
        ge=4, description="random square crop per step (None: whole patch)"
    )
    flip: bool
    rot90: bool
    embedding_dim: PositiveInt
    kernel_size: int = Field(ge=1, le=15)
    dilation: PositiveInt
    pos_weight: float = Field(ge=0, le=10, description="w⁺")
    lr: float = Field(gt=0, le=10)
    lr_decay: float = Field(gt=0, le=1, description="lr factor per epoch")
    weight_decay: float = Field(ge=0, le=1)

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd (a centred window), got {v}")
        return v

    @field_validator("crop_size")
    @classmethod
    def _div4(cls, v: int | None) -> int | None:
        if v is not None and v % 4:
            raise ValueError(
                f"must be divisible by 4 (3-D U-Net; 32 for the ResNet U-Net), got {v}"
            )
        return v

    @model_validator(mode="after")
    def _landcover_crop(self) -> CSCLConfig:
        if self.labels == "landcover" and self.crop_size is not None and self.crop_size % 32:
            raise ValueError(
                f"labels: landcover trains a ResNet U-Net, so crop_size must be divisible by 32 "
                f"or null (whole patch), got {self.crop_size}"
            )
        return self


class PretrainConfig(StrictModel):
    """``pretrain`` stage: which methods run, their hyperparameters, the probe and the hardware.

    ``accelerator`` / ``devices`` / ``strategy`` are Lightning's (``auto`` picks the GPUs when
    present, DDP over several); ``precision: auto`` is ``bf16-mixed`` on CUDA and ``32`` on CPU;
    ``channels_last`` trains the 2-D networks in channels-last memory format (``auto``: on CUDA
    only; the 3-D U-Net always keeps its layout). It changes no result beyond summation order and
    made dense pre-training 15-30 % faster on the 2-core CPU (SeCo / MoCo unchanged), hence on.
    """

    methods: list[PretrainMethod] = Field(min_length=1)
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"]
    devices: int | Literal["auto"]
    strategy: Literal["auto", "ddp", "ddp_spawn"]
    num_nodes: PositiveInt
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"]
    channels_last: bool | Literal["auto"]
    deterministic: bool
    num_workers: int = Field(ge=0, le=64)
    limit_train_batches: PositiveInt | None = Field(
        description="cap on training batches per epoch (None: the whole split)"
    )
    log_every_n_steps: PositiveInt
    torch_threads: PositiveInt | None = Field(
        description="torch intra-op threads (None: torch's default, all cores)"
    )
    probe: ProbeConfig
    seco: MocoConfig
    moco: MocoConfig
    moco_tp: MocoConfig
    dense: DenseConfig
    cscl: CSCLConfig

    @field_validator("methods")
    @classmethod
    def _unique_methods(cls, v: list[str]) -> list[str]:
        dupes = sorted({m for m in v if v.count(m) > 1})
        if dupes:
            raise ValueError(f"methods must be unique; repeated: {dupes}")
        return v

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"must be >= 1 or 'auto', got {v}")
        return v

    def method_config(self, method: str) -> MocoConfig | DenseConfig | CSCLConfig:
        """The hyperparameters of ``method`` (one of :data:`PRETRAIN_METHODS`)."""
        if method not in PRETRAIN_METHODS:
            raise ValueError(
                f"unknown pre-training method {method!r}; choose one of {list(PRETRAIN_METHODS)}"
            )
        cfg: MocoConfig | DenseConfig | CSCLConfig = getattr(self, method)
        return cfg


FINETUNE_TASKS: tuple[str, ...] = ("landcover", "croptype", "scene")
"""Downstream tasks: land-cover segmentation, crop-type segmentation from time series, scenes."""

FinetuneTask = Literal["landcover", "croptype", "scene"]
Init = Literal["random", "seco", "moco", "moco_tp", "dense", "cscl"]
ScanProtocol = Literal["linear", "knn", "finetune"]


def _unique(v: list[Any], what: str) -> list[Any]:
    dupes = sorted({str(x) for x in v if v.count(x) > 1})
    if dupes:
        raise ValueError(f"{what} must be unique; repeated: {dupes}")
    return v


class SupervisedTraining(StrictModel):
    """What every fine-tuning run shares: the step budget, the optimiser and the batch size.

    A run takes ``max(min_steps, epochs × batches per epoch)`` optimiser steps (capped at
    ``max_steps``), so a 1 % label fraction still trains long enough to converge while 100 %
    sees every sample ``epochs`` times. The model is evaluated on the validation split every
    ``val_every`` steps and the best state (validation metric) is the one scored on test.
    """

    epochs: PositiveInt
    min_steps: PositiveInt
    max_steps: PositiveInt
    val_every: PositiveInt = Field(description="validation every n steps")
    batch_size: PositiveInt
    lr: float = Field(gt=0, le=10)
    weight_decay: float = Field(ge=0, le=1)
    encoder_lr_scale: float = Field(
        gt=0, le=10, description="lr factor of pre-trained weights (1: same lr)"
    )
    flip: bool
    rot90: bool
    crop_size: int | None = Field(
        ge=4, description="random square training crop (None: whole patch)"
    )

    crop_multiple: ClassVar[tuple[int, str]] = (1, "")
    """``(multiple, network)``: ``crop_size`` must be a multiple of it (the network's stride)."""

    @field_validator("inits", check_fields=False)
    @classmethod
    def _inits(cls, v: list[str]) -> list[str]:
        return _unique(v, "inits")

    @field_validator("crop_size")
    @classmethod
    def _crop_multiple(cls, v: int | None) -> int | None:
        multiple, network = cls.crop_multiple
        if v is not None and v % multiple:
            raise ValueError(f"must be divisible by {multiple} ({network}), got {v}")
        return v

    @model_validator(mode="after")
    def _steps(self) -> SupervisedTraining:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) > max_steps ({self.max_steps})")
        return self


class LandcoverFinetune(SupervisedTraining):
    """Land-cover segmentation: a ResNet U-Net, fresh 1×1 classifier (Embedding Earth transfer).

    ``random`` uses ``depth`` / ``bands`` / ``feature_dim`` below; a pre-trained init brings its own
    architecture and bands (SeCo-family: the ResNet encoder, decoder random; ``dense`` and
    ``cscl`` with ``pretrain.cscl.labels: landcover``: the whole U-Net).
    """

    inits: list[Init] = Field(min_length=1)
    depth: Literal[18, 50]
    bands: Literal["rgb", "all"]
    feature_dim: PositiveInt = Field(description="random-init U-Net output channels")

    crop_multiple: ClassVar[tuple[int, str]] = (32, "ResNet U-Net")


class CroptypeFinetune(SupervisedTraining):
    """Crop-type segmentation from time series: CSCL stage 2 (Tarasiou et al. 2021/22).

    The 3-D U-Net backbone is reloaded from stage 1 (similarity head dropped), a fresh 1×1
    classifier is trained with masked cross-entropy (unknown pixels ignored) and the
    learning-rate schedule starts again (Adam, × ``lr_decay`` per epoch; paper lr 1e-4, batch 32).
    """

    inits: list[Literal["random", "cscl"]] = Field(min_length=1)
    features: PositiveInt = Field(description="random-init 3-D U-Net width")
    embedding_dim: PositiveInt = Field(description="random-init output channels")
    lr_decay: float = Field(gt=0, le=1, description="lr factor per epoch")

    crop_multiple: ClassVar[tuple[int, str]] = (4, "3-D U-Net")


class LinearProbeConfig(StrictModel):
    """Logistic regression on frozen, standardised global-pooled features (full batch)."""

    epochs: PositiveInt
    lr: float = Field(gt=0, le=10)
    weight_decay: float = Field(ge=0, le=10)


class SceneFinetune(SupervisedTraining):
    """Scene classification (EuroSAT-like): ``tile_size`` tiles of the land-cover patches, each
    labelled with its majority land-cover class (whole 64 px patches are nearly all "cropland").

    Each encoder is evaluated frozen (``linear``: logistic regression; ``knn``: cosine kNN with
    the probe's voting) and fully fine-tuned (``finetune``: encoder + fresh linear layer). The
    full fine-tune runs at ``finetune_fractions`` only (it costs as much as a segmentation run).
    """

    inits: list[Literal["random", "seco", "moco", "moco_tp", "dense", "cscl"]] = Field(min_length=1)
    protocols: list[ScanProtocol] = Field(min_length=1)
    finetune_fractions: list[Fraction]
    tile_size: int = Field(ge=8, description="scene tile edge (divides the patch)")
    depth: Literal[18, 50]
    bands: Literal["rgb", "all"]
    linear: LinearProbeConfig
    knn_k: PositiveInt
    knn_temperature: float = Field(gt=0, le=10)

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, v: list[str]) -> list[str]:
        return _unique(v, "protocols")


class RegionTransferConfig(StrictModel):
    """Fine-tune and test on ``holdout_region`` (never seen in pre-training) at these fractions."""

    enabled: bool
    fractions: list[Fraction]


class FinetuneConfig(StrictModel):
    """``finetune`` stage: one DVC ``foreach`` item per task; inside, every init × fraction.

    ``fractions`` of the labelled train split are sampled deterministically and nested
    (1 % ⊂ 10 % ⊂ 100 %, :func:`s2ssl.finetune.splits.label_fraction_subset`), stratified by the
    majority class so every class keeps a sample; at least ``min_train_samples`` are kept.
    """

    tasks: list[FinetuneTask] = Field(min_length=1)
    fractions: list[Fraction] = Field(min_length=1)
    min_train_samples: PositiveInt
    region_transfer: RegionTransferConfig
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"]
    devices: int | Literal["auto"]
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"]
    deterministic: bool
    torch_threads: PositiveInt | None
    eval_batch_size: PositiveInt
    landcover: LandcoverFinetune
    croptype: CroptypeFinetune
    scene: SceneFinetune

    @model_validator(mode="after")
    def _scene_crop(self) -> FinetuneConfig:
        if self.scene.crop_size is not None:
            raise ValueError(
                "scene.crop_size must be null: a scene label belongs to the whole patch"
            )
        return self

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: list[str]) -> list[str]:
        return _unique(v, "tasks")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(f <= 0 for f in v):
            raise ValueError(f"label fractions must be in (0, 1], got {v}")
        return sorted(_unique(v, "fractions"))

    def task_config(self, task: str) -> LandcoverFinetune | CroptypeFinetune | SceneFinetune:
        """The settings of downstream ``task`` (one of :data:`FINETUNE_TASKS`)."""
        if task not in FINETUNE_TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {list(FINETUNE_TASKS)}")
        cfg: LandcoverFinetune | CroptypeFinetune | SceneFinetune = getattr(self, task)
        return cfg


class EvaluateConfig(StrictModel):
    """``evaluate`` stage: which figures the report draws."""

    strip_samples: PositiveInt = Field(description="test images in each strip PNG")


class PromotionPolicy(StrictModel):
    """When a registered ``challenger`` may replace the ``champion`` (:func:`should_promote`).

    ``metric`` (``null``: the task's headline, mIoU for segmentation, top-1 for scenes) must be
    higher by at least ``min_improvement`` (absolute, metric units); both must have been scored
    on the same test set when ``require_same_test_set``; and no per-class score (``iou.<class>`` /
    ``acc.<class>``) may drop by more than ``max_class_drop`` (``null``: no such guard rail).
    """

    metric: str | None = Field(pattern=r"^[a-z0-9_.]+$")
    min_improvement: float = Field(ge=0.0, le=1.0)
    require_same_test_set: bool
    max_class_drop: float | None = Field(ge=0.0, le=1.0)


class RegisterConfig(StrictModel):
    """``register`` / ``promote`` stages: MLflow registry names and the promotion policy."""

    model_prefix: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        description="registered models are named <model_prefix>-<task>",
    )
    tasks: list[FinetuneTask] | None = Field(
        description="tasks to register (null: every finetune.tasks)"
    )
    promote: PromotionPolicy

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _unique(v, "tasks")

    def model_name(self, task: str) -> str:
        """The registered model name of ``task`` (``s2ssl-landcover``)."""
        return f"{self.model_prefix}-{task}"


TuneValue = bool | int | float | str
"""A value a tuned setting may take (the scalars of ``params.yaml``)."""


class SearchDimension(StrictModel):
    """One searched setting of a sweep (an Optuna distribution).

    ``float`` / ``int``: a value in [``low``, ``high``], log-uniform with ``log: true``, on a grid
    of ``step`` otherwise if given; ``categorical``: one of ``choices``.
    """

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    choices: list[TuneValue] | None = None

    @model_validator(mode="after")
    def _shape(self) -> SearchDimension:
        if self.type == "categorical":
            if self.choices is None or len(self.choices) < 2:
                raise ValueError("type categorical needs choices: [a, b, ...] (at least two)")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("type categorical takes choices only (no low, high, log, step)")
            _unique([repr(c) for c in self.choices], "choices")
            return self
        if self.choices is not None:
            raise ValueError(
                f"type {self.type} takes low and high, not choices (use type: categorical)"
            )
        if self.low is None or self.high is None:
            raise ValueError(f"type {self.type} needs low and high")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna refuses it)")
        if self.type == "int":
            bounds = [self.low, self.high] + ([self.step] if self.step is not None else [])
            if any(not float(v).is_integer() for v in bounds):
                raise ValueError(f"type int needs whole-number low / high / step, got {bounds}")
        return self

    def values_to_check(self) -> list[TuneValue]:
        """The values whose validity stands for the whole dimension: both ends, or every choice."""
        if self.choices is not None:
            return list(self.choices)
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]  # type: ignore[arg-type]


class TunePrunerConfig(StrictModel):
    """Optuna's median pruner: stop a trial whose validation score at a step is below the median
    of earlier trials' scores at that step."""

    enabled: bool
    n_startup_trials: int = Field(ge=0, description="finished trials before any trial is pruned")
    n_warmup_steps: int = Field(
        ge=0, description="optimiser steps of a trial before it may be pruned"
    )
    interval_steps: PositiveInt = Field(description="pruning checks every n steps")


class TuneConfig(StrictModel):
    """``tune`` stage (Optuna sweep, run only when targeted): a short fine-tune of ``task`` from
    ``init`` on a ``fraction`` of the train split per trial, scored on the validation split.

    ``space`` and ``fixed`` name settings under ``finetune.<task>`` by dotted key (``lr``,
    ``linear.lr``); ``fixed`` values apply to every trial (e.g. a finer ``val_every`` for the
    pruner). The study resumes from its sqlite storage (``n_trials`` counts finished trials);
    ``s2ssl tune apply`` writes the best values into ``params.yaml``.
    """

    study_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    task: FinetuneTask
    init: Init
    fraction: float = Field(gt=0, le=1, description="label fraction of train")
    n_trials: PositiveInt = Field(description="finished trials the study should hold")
    timeout_s: float | None = Field(
        gt=0, description="no new trial after this many seconds (per execution)"
    )
    seed: int | None = Field(
        ge=0, le=2**32 - 1, description="sampler seed (None: the top-level seed)"
    )
    n_startup_trials: int = Field(
        ge=0, description="TPE: randomly sampled trials before the model takes over"
    )
    include_current: bool = Field(
        description="trial 0 = the current values of params.yaml (the baseline)"
    )
    pruner: TunePrunerConfig
    fixed: dict[str, TuneValue | None]
    space: dict[str, SearchDimension] = Field(
        min_length=1,
    )


class Params(StrictModel):
    """The whole ``params.yaml``."""

    seed: int = Field(ge=0, le=2**32 - 1)
    fetch: FetchConfig
    validation: ValidateConfig = Field(alias="validate")
    """The ``validate`` section (a field called ``validate`` would shadow pydantic's method)."""
    holdout_region: str | None
    """A region never used for pre-training nor in-domain fine-tuning: the region-transfer test."""
    pretrain: PretrainConfig
    """The ``pretrain`` section (defaults apply when a params file has none)."""
    finetune: FinetuneConfig
    evaluate: EvaluateConfig
    registry: RegisterConfig = Field(alias="register")
    """The ``register`` section (a field called ``register`` would shadow ``ABC.register``)."""
    tune: TuneConfig
    """The Optuna sweep (``dvc repro tune/dvc.yaml`` only; never part of a plain ``dvc repro``)."""

    @model_validator(mode="after")
    def _register_tasks(self) -> Params:
        extra = sorted(set(self.registry.tasks or []) - set(self.finetune.tasks))
        if extra:
            raise ValueError(
                f"register.tasks {extra} are not fine-tuned (finetune.tasks: "
                f"{self.finetune.tasks}); add them there or remove them from register.tasks"
            )
        return self

    def registered_tasks(self) -> list[str]:
        """The tasks whose fine-tuned models are registered (``register.tasks`` or all)."""
        return list(self.registry.tasks or self.finetune.tasks)

    @model_validator(mode="after")
    def _tune_keys(self) -> Params:
        _check_tune(self.tune, self.finetune)
        return self

    @model_validator(mode="after")
    def _holdout(self) -> Params:
        synthetic = getattr(self.fetch, "synthetic", None)
        names = [r.name for r in synthetic.regions] if synthetic is not None else []
        if self.fetch.source != "synthetic":
            names = []
        if self.holdout_region is not None and names and self.holdout_region not in names:
            raise ValueError(
                f"holdout_region {self.holdout_region!r} is not a region; regions: {names}"
            )
        if self.holdout_region is not None and names and len(names) < 2:
            raise ValueError("holdout_region needs at least two regions (one is held out)")
        return self


def _leaf_types(annotation: Any) -> set[Any]:
    """``int | None`` -> ``{int, NoneType}``; ``Literal[18, 50]`` -> ``{int}``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_leaf_types(a) for a in typing.get_args(annotation)))
    if origin is Literal:
        return {type(a) for a in typing.get_args(annotation)}
    return {annotation}


def tune_target(task: str, key: str) -> str:
    """The full dotted ``params.yaml`` key of a ``tune.space`` / ``tune.fixed`` key."""
    return f"finetune.{task}.{key}"


def _check_tune_key(tune: TuneConfig, finetune: FinetuneConfig, section: str, key: str) -> Any:
    """The field annotation of ``finetune.<task>.<key>``; ValueError naming ``tune.<section>``."""
    where = f"tune.{section}.{key}"
    target = tune_target(tune.task, key)
    if key.startswith("finetune."):
        raise ValueError(
            f"{where}: keys are relative to finetune.{tune.task}; write "
            f"{key.split('.', 2)[-1]!r}, not {key!r}"
        )
    model: Any = type(finetune.task_config(tune.task))
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = model.model_fields if isinstance(model, type) else {}
        if part not in fields:
            parent = ".".join(["finetune", tune.task, *parts[:i]])
            raise ValueError(
                f"{where}: {target} is not a setting; keys of {parent}: {', '.join(fields)}"
            )
        annotation = fields[part].annotation
        if i < len(parts) - 1:
            model = _unwrap(annotation)
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise ValueError(f"{where}: {'.'.join(parts[: i + 1])} is not a section")
    if isinstance(_unwrap(annotation), type) and issubclass(_unwrap(annotation), BaseModel):
        raise ValueError(f"{where}: {target} is a section; name one of its settings")
    if typing.get_origin(annotation) in (list, dict, tuple):
        raise ValueError(f"{where}: {target} is a list / mapping; only single values are tuned")
    return annotation


def _check_tune_value(
    tune: TuneConfig, finetune: FinetuneConfig, where: str, key: str, value: Any
) -> None:
    raw = finetune.model_dump(mode="python")
    set_dotted(raw[tune.task], key, value)
    try:
        FinetuneConfig.model_validate(raw)
    except ValidationError as e:
        reasons = "; ".join(str(err["msg"]) for err in e.errors())
        raise ValueError(
            f"{where}: {value!r} is not a valid {tune_target(tune.task, key)} ({reasons})"
        ) from None


def _check_tune(tune: TuneConfig, finetune: FinetuneConfig) -> None:
    """Every ``tune.space`` / ``tune.fixed`` key names a scalar setting of ``finetune.<task>``
    and every searched or fixed value is valid there; ``init`` is an init of ``task``."""
    cfg = finetune.task_config(tune.task)
    try:
        type(cfg).model_validate({**cfg.model_dump(), "inits": [tune.init]})
    except ValidationError:
        allowed = typing.get_args(_unwrap(type(cfg).model_fields["inits"].annotation))
        names = [a for arg in allowed for a in (typing.get_args(arg) or [arg])]
        raise ValueError(
            f"tune.init: {tune.init!r} cannot initialise task {tune.task!r}; choose one of {names}"
        ) from None
    both = sorted(set(tune.space) & set(tune.fixed))
    if both:
        raise ValueError(f"tune.fixed: {both} are also in tune.space; keep each key in one")
    for key, dim in tune.space.items():
        where = f"tune.space.{key}"
        annotation = _check_tune_key(tune, finetune, "space", key)
        kinds = _leaf_types(annotation)
        if dim.type == "float" and float not in kinds and int in kinds:
            raise ValueError(
                f"{where}: {tune_target(tune.task, key)} is a whole number; use type: int"
            )
        if key == "encoder_lr_scale" and tune.init == "random":
            raise ValueError(
                f"{where}: encoder_lr_scale only scales pre-trained weights; with init random it "
                "has no effect (tune a pre-trained init or drop the key)"
            )
        for value in dim.values_to_check():
            _check_tune_value(tune, finetune, where, key, value)
    for key, value in tune.fixed.items():
        _check_tune_key(tune, finetune, "fixed", key)
        _check_tune_value(tune, finetune, f"tune.fixed.{key}", key, value)


# --------------------------------------------------------------------------- loading
def load_params(
    path: str | Path = "params.yaml", overrides: Mapping[str, Any] | None = None
) -> Params:
    """Read and validate ``params.yaml``; ``overrides`` maps dotted keys to values."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"params file not found: {p} (run from the project root, or pass --params)"
        )
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p} is not valid YAML (UTF-8 text expected): {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p} must hold a mapping of sections, got {type(raw).__name__}")
    for key, value in (overrides or {}).items():
        try:
            set_dotted(raw, key, value)
        except (TypeError, IndexError, ValueError, AttributeError) as e:
            raise ConfigError(f"cannot set override {key!r} in {p}: {e}") from None
    return parse_params(raw, source=str(p))


def override_params(params: Params, overrides: Mapping[str, Any], source: str = "params") -> Params:
    """A validated copy of ``params`` with dotted ``overrides`` applied (``params`` is unchanged).

    Raises:
        ConfigError: an override names no setting or gives it an invalid value.
    """
    raw = params.model_dump(mode="python", by_alias=True)
    for key, value in overrides.items():
        try:
            set_dotted(raw, key, value)
        except (TypeError, IndexError, ValueError, AttributeError) as e:
            raise ConfigError(f"cannot set override {key!r} in {source}: {e}") from None
    return parse_params(raw, source=source)


def parse_params(raw: Mapping[str, Any], source: str = "params") -> Params:
    """Validate an already-loaded mapping; raises :class:`ConfigError` with dotted paths."""
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = [_describe(err, Params) for err in e.errors()]
        raise ConfigError(f"invalid {source}:\n  " + "\n  ".join(lines)) from None


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``raw["a"]["b"][0]["c"] = value`` for ``key = "a.b.0.c"`` (lists indexed by number)."""
    parts = key.split(".")
    node: Any = raw
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _describe(err: Mapping[str, Any], root: type[BaseModel]) -> str:
    loc = tuple(err["loc"])
    path = ".".join(str(x) for x in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        allowed = ", ".join(parent.model_fields) if parent else "?"
        return f"{path}: unknown key; allowed keys here: {allowed}"
    if kind == "missing":
        return f"{path}: required key is missing"
    msg = str(err["msg"])
    if not loc and msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")  # a whole-file check names its own keys
    value = err.get("input")
    if value is not None and not isinstance(value, dict | list) and repr(value) not in msg:
        shown = repr(value)
        msg += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
    return f"{path}: {msg}"


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that validates the value at ``loc`` (None if not a model)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``list[RegionSpec]`` / ``RegionSpec | None`` -> ``RegionSpec``."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation
