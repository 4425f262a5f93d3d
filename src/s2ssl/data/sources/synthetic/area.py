"""One synthetic acquisition over an area (``s2ssl acquire`` with ``fetch.source: synthetic``)."""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from typing import Final

import numpy as np

from s2ssl.bands import (
    MASK_CLOUD,
    dn_offset_for_baseline,
    reflectance_to_dn,
)
from s2ssl.config import RegionSpec, SyntheticSource
from s2ssl.data.sources.synthetic.dates import (
    baseline_for,
)
from s2ssl.data.sources.synthetic.world import (
    Scene,
    Weather,
    draw_scene,
    draw_weather,
    local_doy,
    render,
)

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
    refl, mask = render(scenes, weathers, ldoy, region, cfg.noise)
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
