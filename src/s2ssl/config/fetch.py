"""The ``fetch`` section: the synthetic world, Sentinel Hub and local GeoTIFF sources."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from s2ssl.config.common import (
    Fraction,
    PositiveInt,
    SplitFractions,
    StrictModel,
    unique_items,
)
from s2ssl.config.local import LocalDatasetSpec, LocalSource
from s2ssl.synthetic_vocabulary import CROPS, LANDCOVER_CLASSES

__all__ = [
    "BenchmarkSource",
    "CroptypeSpec",
    "FetchConfig",
    "LabelRaster",
    "LandcoverSpec",
    "LocalDatasetSpec",
    "LocalSource",
    "RegionSpec",
    "RetryConfig",
    "SentinelHubSource",
    "ShRegion",
    "ShSeasonalSpec",
    "ShSingleDateSpec",
    "ShTimeSeriesSpec",
    "SplitFractions",
    "SyntheticSource",
    "UnlabelledSpec",
]


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
    spectral_shift: float = Field(
        ge=0,
        lt=1,
        description="amplitude of the region's own endmember spectra and band gains (0: reference)",
    )

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
        unique_items([r.name for r in v], "region names")
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
    """A label raster (any CRS) and the mapping of its values to class names: the mapping
    defines the dataset's class set (class order: ascending raster value). ``ignore_values``
    (and the raster's nodata value) mean "no label" (stored as 255); any other unmapped value
    fails the import, naming it. Resampled with nearest neighbour."""

    path: Path
    classes: dict[int, str] = Field(min_length=1, description="raster value -> class name")
    ignore_values: list[int] = Field(
        default_factory=list, description='raster values meaning "no label" (stored as 255)'
    )

    @model_validator(mode="after")
    def _disjoint(self) -> LabelRaster:
        both = sorted(set(self.classes) & set(self.ignore_values))
        if both:
            raise ValueError(f"raster value(s) {both} are both in classes and in ignore_values")
        return self


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
        unique_items([r.name for r in v], "region names")
        return v


BENCHMARK_DATASETS: dict[str, str] = {
    "eurosat": "scene",
    "bigearthnet": "scene",
    "bigearthnet_v1": "scene",
    "pastis": "croptype",
}
"""The store dataset each benchmark format is imported as."""


class BenchmarkSource(StrictModel):
    """A published benchmark read from its own download layout (``docs/benchmarks.md``).

    ``eurosat`` (EuroSAT MS), ``bigearthnet`` (BigEarthNet v2) and ``bigearthnet_v1`` (the
    original release, labels mapped to the 19 classes) become the ``scene`` dataset
    (single-date patches with one class, ``scene``, or a multi-hot label set, ``multilabel``);
    ``pastis`` becomes the ``croptype`` dataset (time series padded to the longest, with
    ``n_dates`` per sample). The benchmark's own splits are kept: EuroSAT's split lists (else a
    seeded split stratified by class with ``splits``), BigEarthNet v2's ``split`` column,
    BigEarthNet v1's published patch lists, PASTIS's folds as given by ``folds``.
    """

    format: Literal["eurosat", "bigearthnet", "bigearthnet_v1", "pastis"]
    path: Path = Field(description="the folder the benchmark was unpacked into")
    split_dir: Path | None = Field(
        description="EuroSAT: folder of eurosat-{train,val,test}.txt; BigEarthNet v1: of its "
        "train / val / test patch lists (null: path)"
    )
    splits: SplitFractions = Field(
        description="EuroSAT without split lists: seeded split stratified by class"
    )
    folds: dict[Literal["train", "val", "test"], list[int]] = Field(
        description="PASTIS: official folds (1..5) of each split"
    )
    exclude_snow_cloud: bool = Field(
        description="BigEarthNet: drop patches flagged seasonal snow / cloud / shadow (v1: "
        "those of patches_with_seasonal_snow.csv and patches_with_cloud_and_shadow.csv)"
    )
    max_per_split: PositiveInt | None = Field(
        description="import at most this many samples per split (first in order; null: all)"
    )

    @field_validator("folds")
    @classmethod
    def _folds(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        missing = [s for s in ("train", "val", "test") if not v.get(s)]
        if missing:
            raise ValueError(f"folds needs a non-empty list for {missing}")
        flat = [f for folds in v.values() for f in folds]
        bad = sorted({f for f in flat if f not in (1, 2, 3, 4, 5)})
        if bad:
            raise ValueError(f"PASTIS folds are 1..5, got {bad}")
        if len(set(flat)) != len(flat):
            raise ValueError(f"a fold may belong to one split only, got {dict(v)}")
        return v


class FetchConfig(StrictModel):
    """``fetch`` stage: where imagery comes from and which time range it covers."""

    source: Literal["synthetic", "sentinelhub", "local", "benchmark"]
    start_date: dt.date
    end_date: dt.date
    shard_size: int = Field(ge=1, le=100_000)
    datasets: list[Literal["unlabelled", "landcover", "croptype", "scene"]] = Field(min_length=1)
    synthetic: SyntheticSource
    sentinelhub: SentinelHubSource | None = Field(
        description="real imagery (used when source: sentinelhub)"
    )
    local: LocalSource | None = Field(description="your own GeoTIFFs (used when source: local)")
    benchmark: BenchmarkSource | None = Field(
        description="a published benchmark (used when source: benchmark)"
    )

    @model_validator(mode="after")
    def _range(self) -> FetchConfig:
        if (self.end_date - self.start_date).days < 400:
            raise ValueError(
                "end_date must be at least 400 days after start_date (a SeCo location spans a year)"
            )
        return self

    @model_validator(mode="after")
    def _source_section(self) -> FetchConfig:
        if "scene" in self.datasets and self.source != "benchmark":
            raise ValueError(
                "the scene dataset comes from a benchmark (source: benchmark, format eurosat, "
                "bigearthnet or bigearthnet_v1); the synthetic world's scene task tiles the "
                "landcover dataset"
            )
        if self.source == "benchmark":
            if self.benchmark is None:
                raise ValueError("source: benchmark needs a fetch.benchmark section")
            wanted = BENCHMARK_DATASETS[self.benchmark.format]
            if list(self.datasets) != [wanted]:
                raise ValueError(
                    f"fetch.benchmark.format {self.benchmark.format} imports the {wanted} dataset: "
                    f"set fetch.datasets: [{wanted}] (got {list(self.datasets)})"
                )
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
