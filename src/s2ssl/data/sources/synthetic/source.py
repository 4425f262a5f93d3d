"""The synthetic datasets ``fetch`` builds: per-location generators, chunked rendering,
array shapes and attrs.

The world renders all 13 bands; a dataset keeps the configured ``bands`` (by name). Its
radiometry is the same for every band list: a top-of-atmosphere-like signal (surface reflectance
with atmospheric transmission, residual path radiance and haze), recorded in attrs
``radiometric_level``; a Level-2A band list only leaves out B10, it does not remove that term.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Final

import numpy as np
import pandas as pd

from s2ssl.bands import (
    BAND_NAMES,
    MASK_CLOUD,
    band_positions,
    dn_offset_for_baseline,
    reflectance_to_dn,
)
from s2ssl.config import RegionSpec, SyntheticSource
from s2ssl.data.sources import base
from s2ssl.data.sources.geo import georeference
from s2ssl.data.sources.synthetic.dates import (
    baseline_for,
    season_dates,
    seasonal_dates,
    single_date,
)
from s2ssl.data.sources.synthetic.world import (
    WORLD_VERSION,
    Scene,
    Weather,
    draw_scene,
    draw_weather,
    local_doy,
    render,
)
from s2ssl.data.sources.types import DATASET_NAMES, Chunk, DatasetName
from s2ssl.synthetic_vocabulary import SYNTHETIC_CLASS_SETS

_DATASET_CODES: Final[dict[str, int]] = {"unlabelled": 1, "landcover": 2, "croptype": 3}


def location_rng(seed: int, dataset: str, region: str, location: int) -> np.random.Generator:
    """The random generator of one location: a function of (seed, dataset, region, location)."""
    key = [seed, _DATASET_CODES[dataset], zlib.crc32(region.encode()), location]
    return np.random.default_rng(np.random.SeedSequence(key))


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
    cfg: SyntheticSource, dataset: DatasetName, *, bands: Sequence[str]
) -> dict[str, tuple[tuple[int, ...], str]]:
    """Per-sample shape and dtype of every array of ``dataset`` holding ``bands``."""
    if dataset == "unlabelled":
        t, s = cfg.unlabelled.n_dates, cfg.unlabelled.patch_size
    elif dataset == "landcover":
        t, s = 1, cfg.landcover.patch_size
    else:
        t, s = cfg.croptype.n_dates, cfg.croptype.patch_size
    shapes: dict[str, tuple[tuple[int, ...], str]] = {
        "image": ((t, len(bands), s, s), "uint16"),
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
    *,
    bands: Sequence[str],
) -> Iterator[Chunk]:
    """Yield ``dataset`` in chunks of at most ``chunk_size`` locations (region by region), the
    image holding ``bands`` (Sentinel-2 names; the rendered values do not depend on them)."""
    if dataset not in _DATASET_CODES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASET_NAMES)}")
    keep = band_positions(BAND_NAMES, bands, what="the synthetic world")
    per_region = dataset_size(cfg, dataset) // len(cfg.regions)
    for region in cfg.regions:
        for first in range(0, per_region, chunk_size):
            locations = range(first, min(first + chunk_size, per_region))
            yield _render_chunk(cfg, dataset, seed, start, end, region, locations, keep)
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
    keep: list[int],
) -> Chunk:
    scenes: list[Scene] = []
    weathers: list[Weather] = []
    rows: list[dict[str, object]] = []
    size = int(array_shapes(cfg, dataset, bands=BAND_NAMES)["image"][0][-1])
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
    refl, mask = render(stacked, weather, ldoy, region, cfg.noise)
    offsets = np.array([r["dn_offset"] for r in rows])[:, :, None, None, None]
    cloud_fraction = (mask == MASK_CLOUD).mean(axis=(-2, -1))
    for row, cf in zip(rows, cloud_fraction, strict=True):
        row["cloud_fraction"] = [round(float(c), 6) for c in cf]

    dn = reflectance_to_dn(refl[:, :, keep], offsets)
    arrays: dict[str, np.ndarray] = {"image": dn, "mask": mask}
    if dataset in ("landcover", "croptype"):
        arrays["landcover"] = stacked["landcover"]
    if dataset == "croptype":
        arrays["croptype"] = stacked["crop"]
        arrays["parcel"] = stacked["parcel"]
    arrays["image"] = np.maximum(arrays["image"], 1)  # DN 0 is reserved for no data
    return Chunk(arrays=arrays, rows=pd.DataFrame(rows))


def dataset_attrs(
    cfg: SyntheticSource, dataset: DatasetName, seed: int, *, bands: Sequence[str]
) -> dict[str, object]:
    """Metadata stored with a generated dataset (``meta.json`` attrs): the bands it holds and
    the class set (names, colours) of each label array, in the world's own vocabulary."""
    labels: list[str] = {"unlabelled": [], "landcover": ["landcover"]}.get(
        dataset, ["landcover", "croptype", "parcel"]
    )
    return base.dataset_attrs(
        "synthetic",
        seed,
        [r.name for r in cfg.regions],
        labels,
        bands,
        {name: SYNTHETIC_CLASS_SETS[name] for name in labels if name != "parcel"},
        world_version=WORLD_VERSION,
        radiometric_level="top-of-atmosphere-like (synthetic world, the same for every band list)",
    )
