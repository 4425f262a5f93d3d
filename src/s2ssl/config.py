"""Validated configuration: ``params.yaml`` loaded into frozen pydantic models (``extra="forbid"``).

One model per ``params.yaml`` section; the sections are the only place hyperparameters and data
selection live (DESIGN §1). A wrong key or value fails at once with a :class:`ConfigError` whose
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
from typing import Annotated, Any, Literal

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
    """One region of the synthetic world (DESIGN §3): its landscape, crops, sky and hemisphere."""

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

    train: Fraction = 0.7
    val: Fraction = 0.15
    test: Fraction = 0.15

    @model_validator(mode="after")
    def _sum(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + val + test must be 1, got {total:.4f}")
        return self


class UnlabelledSpec(StrictModel):
    """SeCo pre-training data: per location, ``n_dates`` acquisitions ``interval_weeks`` apart."""

    locations_per_region: PositiveInt = 96
    patch_size: int = Field(default=64, ge=16, le=512)
    n_dates: int = Field(default=5, ge=2, le=12)
    interval_weeks: int = Field(default=12, ge=1, le=26)
    window_days: float = Field(default=7.5, ge=0, le=30, description="± search window per date")
    max_cloud_coverage: Fraction = 0.1


class LandcoverSpec(StrictModel):
    """Labelled single-date patches for land-cover segmentation (and derived scene labels)."""

    patches_per_region: PositiveInt = 160
    patch_size: int = Field(default=64, ge=16, le=512)
    max_cloud_coverage: Fraction = 0.1
    splits: SplitFractions = SplitFractions()

    @field_validator("patch_size")
    @classmethod
    def _div16(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"must be divisible by 16 (U-Net with 4 poolings), got {v}")
        return v


class CroptypeSpec(StrictModel):
    """Satellite image time series (SITS) over cropland, for crop-type segmentation (CSCL)."""

    patches_per_region: PositiveInt = 96
    patch_size: int = Field(default=32, ge=8, le=256)
    n_dates: int = Field(default=16, ge=2, le=64)
    season_start_doy: int = Field(default=60, ge=1, le=366, description="northern-hemisphere doy")
    season_end_doy: int = Field(default=330, ge=1, le=366)
    date_jitter_days: int = Field(default=3, ge=0, le=15)
    max_cloud_coverage: Fraction = 0.5
    cropland_boost: float = Field(default=2.0, ge=0, le=10, description="bias toward cropland")
    splits: SplitFractions = SplitFractions()

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
    """The embedded synthetic Sentinel-2 world (DESIGN §3)."""

    regions: list[RegionSpec] = Field(min_length=1)
    unlabelled: UnlabelledSpec = UnlabelledSpec()
    landcover: LandcoverSpec = LandcoverSpec()
    croptype: CroptypeSpec = CroptypeSpec()
    noise: float = Field(default=0.004, ge=0, le=0.1, description="per-pixel reflectance noise σ")
    processing_baseline: Literal["by_date", "03.01", "04.00", "05.09"] = "by_date"

    @field_validator("regions")
    @classmethod
    def _unique(cls, v: list[RegionSpec]) -> list[RegionSpec]:
        names = [r.name for r in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"region names must be unique; repeated: {dupes}")
        return v


class FetchConfig(StrictModel):
    """``fetch`` stage: where imagery comes from and which time range it covers."""

    source: Literal["synthetic"] = "synthetic"
    start_date: dt.date = dt.date(2019, 1, 1)
    end_date: dt.date = dt.date(2023, 12, 31)
    shard_size: int = Field(default=256, ge=1, le=100_000)
    datasets: list[Literal["unlabelled", "landcover", "croptype"]] = Field(
        default=["unlabelled", "landcover", "croptype"], min_length=1
    )
    synthetic: SyntheticSource

    @model_validator(mode="after")
    def _range(self) -> FetchConfig:
        if (self.end_date - self.start_date).days < 400:
            raise ValueError(
                "end_date must be at least 400 days after start_date (a SeCo location spans a year)"
            )
        return self


class ValidateConfig(StrictModel):
    """``validate`` stage: thresholds of the great-expectations suite (DESIGN §5).

    A sample failing a sample-level expectation is quarantined; a dataset whose pass fraction
    drops below ``min_pass_fraction`` (or whose schema is wrong, or a split empties) is unusable.
    """

    allowed_dtypes: list[Literal["uint16", "float32"]] = Field(
        default=["uint16", "float32"], min_length=1
    )
    max_nan_fraction: Fraction = 0.0
    max_nodata_fraction: Fraction = 0.05
    dn_range: tuple[int, int] = (-1000, 20000)
    max_cloud_fraction: Fraction = 0.9
    min_label_coverage: Fraction = 0.5
    min_pass_fraction: Fraction = 0.8
    quantiles: tuple[float, float] = (0.02, 0.98)
    required_bands: list[str] = Field(default_factory=lambda: list(BAND_NAMES), min_length=1)

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


class Params(StrictModel):
    """The whole ``params.yaml``."""

    seed: int = Field(ge=0, le=2**32 - 1)
    fetch: FetchConfig
    validation: ValidateConfig = Field(default=ValidateConfig(), alias="validate")
    """The ``validate`` section (a field called ``validate`` would shadow pydantic's method)."""


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
