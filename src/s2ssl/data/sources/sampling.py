"""Where and when to acquire real imagery: location samplers and acquisition-date selection.

Locations (WGS84 lon/lat) come from a region's ``bbox`` (uniform), ``geojson`` polygons (uniform
inside), a fixed list of ``points``, or ``places`` with SeCo's Gaussian sampler (σ = 50 km around
each place). Candidate ``k`` of a region is a pure function of ``(seed, dataset, region, k)``, so
a location that has to be replaced (an empty search window) is replaced by the next candidate and
the final selection never depends on download order or concurrency.

Dates: *seasonal* (SeCo: a reference date, then −12, −24, −36, −48 weeks, each searched in a
±7.5-day window, the most recent acceptable scene kept, a random whole-year shift per location),
*time series* (every acceptable acquisition in a period, ``n`` of them evenly spread) and *single
date* (the most recent acceptable scene in one window).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.bands import processing_baseline_for
from s2ssl.config import ShRegion, ShSeasonalSpec

KM_PER_DEGREE: Final[float] = 111.32
"""Length of one degree of latitude (and of longitude at the equator), km."""

_DATASET_CODES: Final[dict[str, int]] = {"unlabelled": 11, "landcover": 12, "croptype": 13}
_BASELINE_IN_ID = re.compile(r"_N(\d{2})(\d{2})_")


@dataclass(frozen=True, slots=True)
class CatalogScene:
    """One catalog search result: a Sentinel-2 product over the location."""

    id: str
    datetime: dt.datetime
    cloud_cover: float
    """Scene cloud cover, percent (``eo:cloud_cover``)."""
    processing_baseline: str
    baseline_source: str
    """Where the baseline came from: ``property``, ``product_id`` or ``date`` (a fallback)."""

    @property
    def date(self) -> dt.date:
        """The UTC acquisition day."""
        return self.datetime.date()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_json`)."""
        return {
            "id": self.id,
            "datetime": self.datetime.isoformat(),
            "cloud_cover": self.cloud_cover,
            "processing_baseline": self.processing_baseline,
            "baseline_source": self.baseline_source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CatalogScene:
        """Rebuild from :meth:`to_json` output."""
        return cls(
            id=str(data["id"]),
            datetime=dt.datetime.fromisoformat(str(data["datetime"])),
            cloud_cover=float(data["cloud_cover"]),
            processing_baseline=str(data["processing_baseline"]),
            baseline_source=str(data["baseline_source"]),
        )

    @classmethod
    def from_stac(cls, feature: dict[str, Any]) -> CatalogScene:
        """Parse a STAC item of a Sentinel Hub catalog search.

        The processing baseline is read from ``s2:processing_baseline`` when the catalog gives it,
        else from the ``_Nxxyy_`` part of the ESA product id, else estimated from the date.
        """
        props = feature.get("properties") or {}
        when = dt.datetime.fromisoformat(str(props["datetime"]).replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        product = str(feature.get("id", ""))
        prop = props.get("s2:processing_baseline")
        match = _BASELINE_IN_ID.search(product)
        if isinstance(prop, str) and re.fullmatch(r"\d{2}\.\d{2}", prop):
            baseline, source = prop, "property"
        elif match:
            baseline, source = f"{match.group(1)}.{match.group(2)}", "product_id"
        else:
            baseline, source = processing_baseline_for(when.date()), "date"
        cloud = props.get("eo:cloud_cover")
        return cls(
            id=product,
            datetime=when.astimezone(dt.UTC),
            cloud_cover=float(cloud) if cloud is not None else 0.0,
            processing_baseline=baseline,
            baseline_source=source,
        )


@dataclass(frozen=True, slots=True)
class Window:
    """A search window ``[start, end]`` (inclusive days) around a nominal date."""

    nominal: dt.date
    start: dt.date
    end: dt.date


# --------------------------------------------------------------------------- locations
def candidate_rng(seed: int, dataset: str, region: str, index: int) -> np.random.Generator:
    """The random generator of candidate ``index`` of a region (independent of all others)."""
    key = [seed, _DATASET_CODES[dataset], zlib.crc32(region.encode()), index]
    return np.random.default_rng(np.random.SeedSequence(key))


def max_candidates(region: ShRegion, factor: int) -> int:
    """How many candidates a region may try: its points, or ``factor`` × its locations."""
    if region.points is not None:
        return len(region.points)
    return region.locations * factor


def wanted(region: ShRegion) -> int:
    """How many locations a region should deliver."""
    return len(region.points) if region.points is not None else region.locations


def gaussian_around(
    rng: np.random.Generator, lon: float, lat: float, sigma_km: float
) -> tuple[float, float]:
    """A point drawn from an isotropic Gaussian (σ in km) around (lon, lat) (SeCo's sampler)."""
    dx, dy = rng.normal(0.0, sigma_km, size=2)
    new_lat = float(np.clip(lat + dy / KM_PER_DEGREE, -80.0, 80.0))
    cos = max(math.cos(math.radians(new_lat)), 1e-6)
    new_lon = (lon + dx / (KM_PER_DEGREE * cos) + 180.0) % 360.0 - 180.0
    return float(new_lon), new_lat


def draw_location(
    region: ShRegion, rng: np.random.Generator, index: int
) -> tuple[float, float] | None:
    """Candidate ``index``'s (lon, lat), or None when a fixed point list is exhausted."""
    if region.points is not None:
        if index >= len(region.points):
            return None
        lon, lat = region.points[index]
        return float(lon), float(lat)
    if region.places is not None:
        lon, lat = region.places[int(rng.integers(len(region.places)))]
        return gaussian_around(rng, lon, lat, region.sigma_km)
    if region.bbox is not None:
        lo_lon, lo_lat, hi_lon, hi_lat = region.bbox
        return float(rng.uniform(lo_lon, hi_lon)), float(rng.uniform(lo_lat, hi_lat))
    if region.geojson is not None:
        return _inside_polygons(rng, region.geojson)
    raise ValueError(f"region {region.name!r} has no area (bbox, geojson, points or places)")


@lru_cache(maxsize=16)
def _load_polygons(path: Path) -> Any:
    """The union of the (multi)polygons of a GeoJSON file, as a prepared shapely geometry."""
    from shapely.geometry import shape
    from shapely.ops import unary_union
    from shapely.prepared import prep

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"GeoJSON file {path} not found (fetch.sentinelhub.regions)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid GeoJSON: {e}") from None
    if data.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in data.get("features", [])]
    elif data.get("type") == "Feature":
        geoms = [data.get("geometry")]
    else:
        geoms = [data]
    shapes = [shape(g) for g in geoms if g and g.get("type") in ("Polygon", "MultiPolygon")]
    if not shapes:
        raise ValueError(f"{path} holds no Polygon or MultiPolygon geometry (WGS84 lon/lat)")
    union = unary_union(shapes)
    return union.bounds, prep(union)


def _inside_polygons(rng: np.random.Generator, path: Path) -> tuple[float, float]:
    from shapely.geometry import Point

    (lo_lon, lo_lat, hi_lon, hi_lat), prepared = _load_polygons(Path(path))
    for _ in range(10_000):
        lon, lat = float(rng.uniform(lo_lon, hi_lon)), float(rng.uniform(lo_lat, hi_lat))
        if prepared.contains(Point(lon, lat)):
            return lon, lat
    raise ValueError(
        f"could not draw a point inside the polygons of {path} (10000 tries): is the area tiny "
        "compared with its bounding box?"
    )


def hemisphere(lat: float) -> str:
    """``north`` or ``south``."""
    return "north" if lat >= 0 else "south"


# --------------------------------------------------------------------------- dates
def _years_back(date: dt.date, years: int) -> dt.date:
    try:
        return date.replace(year=date.year - years)
    except ValueError:  # 29 February
        return date.replace(year=date.year - years, day=28)


def seasonal_windows(ref: dt.date, spec: ShSeasonalSpec) -> list[Window]:
    """The ``n_dates`` search windows of a reference date, oldest first."""
    half = dt.timedelta(days=spec.window_days)
    out = []
    for k in range(spec.n_dates - 1, -1, -1):
        nominal = ref - dt.timedelta(weeks=spec.interval_weeks * k)
        out.append(Window(nominal, nominal - half, nominal + half))
    return out


def draw_reference(
    rng: np.random.Generator, spec: ShSeasonalSpec, start: dt.date, end: dt.date
) -> dt.date:
    """A location's SeCo reference date: the configured (or a random) date shifted back by a
    random whole number of years, every window kept inside ``[start, end]``."""
    span = dt.timedelta(weeks=spec.interval_weeks * (spec.n_dates - 1))
    half = dt.timedelta(days=math.ceil(spec.window_days))
    earliest, latest = start + span + half, end - half
    if latest < earliest:
        raise ValueError(
            f"fetch period {start}..{end} is too short for {spec.n_dates} dates "
            f"{spec.interval_weeks} weeks apart with ±{spec.window_days}-day windows"
        )
    if spec.reference_date is None:
        base = earliest + dt.timedelta(days=int(rng.integers(0, (latest - earliest).days + 1)))
    else:
        base = spec.reference_date
        if not earliest <= base <= latest:
            raise ValueError(
                f"fetch.sentinelhub.unlabelled.reference_date {base} must lie in "
                f"{earliest}..{latest} so that every window fits in start_date..end_date"
            )
    feasible = [k for k in range(spec.max_year_shift + 1) if _years_back(base, k) >= earliest]
    return _years_back(base, int(rng.choice(feasible)))


def single_window(
    rng: np.random.Generator, date: dt.date | None, window_days: float, start: dt.date, end: dt.date
) -> Window:
    """The search window of a single-date sample (a random centre when ``date`` is None)."""
    half = dt.timedelta(days=window_days)
    if date is None:
        lo, hi = start + dt.timedelta(days=math.ceil(window_days)), end - half
        if hi < lo:
            raise ValueError(f"fetch period {start}..{end} is shorter than the search window")
        date = lo + dt.timedelta(days=int(rng.integers(0, (hi - lo).days + 1)))
    return Window(date, max(date - half, start), min(date + half, end))


def window_around(date: dt.date, window_days: float) -> Window:
    """The search window ``date`` ± ``window_days`` (whole days)."""
    if window_days < 0:
        raise ValueError(f"the search window must be >= 0 days, got {window_days}")
    half = dt.timedelta(days=window_days)
    return Window(date, date - half, date + half)


def most_recent_per_window(
    scenes: Sequence[CatalogScene], windows: Sequence[Window], max_cloud_percent: float
) -> list[CatalogScene | None]:
    """Per window, the most recent scene with cloud cover <= the limit (None if the window is
    empty). Windows never share a scene."""
    out: list[CatalogScene | None] = []
    for w in windows:
        inside = [
            s
            for s in scenes
            if w.start <= s.date <= w.end and s.cloud_cover <= max_cloud_percent + 1e-9
        ]
        out.append(max(inside, key=lambda s: (s.datetime, s.id)) if inside else None)
    return out


def acquisitions(
    scenes: Sequence[CatalogScene], start: dt.date, end: dt.date, max_cloud_percent: float
) -> list[CatalogScene]:
    """Every acceptable acquisition day in ``[start, end]``, oldest first (one scene per day,
    the least cloudy of that day's tiles)."""
    by_day: dict[dt.date, CatalogScene] = {}
    for s in scenes:
        if start <= s.date <= end and s.cloud_cover <= max_cloud_percent + 1e-9:
            best = by_day.get(s.date)
            if best is None or (s.cloud_cover, s.id) < (best.cloud_cover, best.id):
                by_day[s.date] = s
    return [by_day[d] for d in sorted(by_day)]


def evenly_spread(items: Sequence[CatalogScene], n: int) -> list[CatalogScene] | None:
    """``n`` of ``items`` spread evenly over their order (None when there are fewer than ``n``)."""
    if len(items) < n:
        return None
    idx = np.round(np.linspace(0, len(items) - 1, n)).astype(int)
    return [items[int(i)] for i in idx]


PICKS: Final[tuple[str, ...]] = ("least_cloudy", "closest")
"""How :func:`pick_acquisition` chooses among the acceptable acquisitions of a window."""


def pick_acquisition(
    scenes: Sequence[CatalogScene],
    date: dt.date,
    window: Window,
    max_cloud_percent: float,
    pick: str = "least_cloudy",
) -> tuple[CatalogScene, list[CatalogScene]] | None:
    """The acquisition of ``window`` to use for a map of ``date``, and every acceptable
    acquisition day of the window (oldest first); None when the window holds none.

    ``least_cloudy``: the lowest scene cloud cover, ties to the day closest to ``date``, then the
    earlier day; ``closest``: the day closest to ``date``, ties to the lower cloud cover, then the
    earlier day. One scene per day (the least cloudy tile of the day, see :func:`acquisitions`).

    Raises:
        ValueError: an unknown ``pick``.
    """
    if pick not in PICKS:
        raise ValueError(f"unknown pick {pick!r}; choose one of {', '.join(PICKS)}")
    days = acquisitions(scenes, window.start, window.end, max_cloud_percent)
    if not days:
        return None

    def distance(s: CatalogScene) -> int:
        return abs((s.date - date).days)

    if pick == "least_cloudy":
        best = min(days, key=lambda s: (s.cloud_cover, distance(s), s.date, s.id))
    else:
        best = min(days, key=lambda s: (distance(s), s.cloud_cover, s.date, s.id))
    return best, days
