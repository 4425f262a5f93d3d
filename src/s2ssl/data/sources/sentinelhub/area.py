"""One acquisition over an area: catalog search around a date, pick a day, download it on a grid
(used by ``s2ssl acquire``)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from s2ssl.bands import dn_offset_for_baseline
from s2ssl.config import SentinelHubSource
from s2ssl.data.sources import sampling
from s2ssl.data.sources.retry import PermanentError, RetryPolicy
from s2ssl.data.sources.sampling import CatalogScene
from s2ssl.data.sources.sentinelhub.auth import credentials, secrets_kept
from s2ssl.data.sources.sentinelhub.cache import Cache
from s2ssl.data.sources.sentinelhub.client import (
    EVALSCRIPT_VERSION,
    SceneData,
    ShClient,
    wgs84_bounds,
)
from s2ssl.progress import ProgressFactory, no_progress
from s2ssl.settings import Settings, get_settings

MAX_PROCESS_PX: Final[int] = 2500
"""Largest width / height of one Process API request (pixels)."""
_CATALOG_SETTLE_DAYS: Final[int] = 3
"""Catalog answers of windows ending this close to today are not cached (scenes still arrive)."""


@dataclass(frozen=True)
class AreaAcquisition:
    """One acquisition downloaded over an area (see :func:`acquire_area`)."""

    scene: CatalogScene
    """The chosen acquisition (the least cloudy catalog item of its day)."""
    products: list[str]
    """Every catalog item of that day over the area (the Process API mosaics them)."""
    candidates: list[CatalogScene]
    """Every acceptable acquisition day of the window, oldest first."""
    data: SceneData
    dn_offset: int
    """``reflectance = (DN + dn_offset) / 10000`` of ``data.image``."""
    from_cache: bool
    requests: dict[str, float]
    """Catalog and Process API requests made, processing units reported by the service."""


def acquire_area(
    cfg: SentinelHubSource,
    crs: str,
    bounds: tuple[float, float, float, float],
    width: int,
    height: int,
    date: dt.date,
    window_days: float,
    pick: str = "least_cloudy",
    *,
    bands: Sequence[str],
    settings: Settings | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: ProgressFactory | None = None,
    today: dt.date | None = None,
) -> AreaAcquisition:
    """Search the catalog within ± ``window_days`` of ``date`` over the UTM rectangle
    ``bounds`` (in ``crs``), choose one acquisition day (``pick``, see
    :func:`~.sampling.pick_acquisition`) and download ``bands`` on the ``width`` × ``height``
    grid.

    Credentials are checked before any request; every call goes through the retry policy of
    ``cfg.retry``; catalog answers and the scene are cached under ``cfg.cache_dir`` (a repeated
    call costs no request), except catalog answers of windows that end less than
    3 days before ``today`` (new acquisitions may still arrive).

    Raises:
        SentinelHubCredentialsError: credentials missing (nothing was requested).
        SentinelHubAuthError: credentials rejected.
        ValueError: the grid exceeds the Process API limit, the window holds no acceptable
            acquisition, a download failed for good (retries exhausted or a 4xx answer).
    """
    from sentinelhub import CRS, BBox

    if not (1 <= width <= MAX_PROCESS_PX and 1 <= height <= MAX_PROCESS_PX):
        raise ValueError(
            f"the area is {width} x {height} px, but one Process API request returns at most "
            f"{MAX_PROCESS_PX} x {MAX_PROCESS_PX} px; give a smaller area"
        )
    settings = settings if settings is not None else get_settings()
    credentials(settings)  # before any request
    progress = progress or no_progress
    policy = RetryPolicy.from_config(cfg.retry, sleep=sleep)
    cache = Cache(cfg.cache_dir)
    window = sampling.window_around(date, window_days)
    secret = settings.sh_client_secret
    client: ShClient | None = None

    def connect() -> ShClient:
        nonlocal client
        if client is None:
            client = ShClient(cfg, settings, policy, bands)
            client.authenticate()
        return client

    with secrets_kept(secret.get_secret_value() if secret else ""):
        key = Cache.key(
            url=settings.sh_base_url,
            collection=cfg.collection,
            crs=crs,
            bounds=[round(v, 2) for v in bounds],
            start=window.start,
            end=window.end,
            maxcc=cfg.max_cloud_coverage,
        )
        with progress(f"search {window.start}..{window.end}", 1) as advance:
            found = cache.get_catalog(key)
            if found is None:
                wgs84 = BBox(wgs84_bounds(crs, bounds), crs=CRS.WGS84)
                try:
                    found = connect().search(wgs84, window.start, window.end)
                except PermanentError as e:
                    raise ValueError(f"Sentinel Hub catalog search failed: {e}") from None
                settled = (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(
                    days=_CATALOG_SETTLE_DAYS
                )
                if window.end < settled:
                    cache.put_catalog(key, found)
            advance(1)
        percent = cfg.max_cloud_coverage * 100.0
        picked = sampling.pick_acquisition(found, date, window, percent, pick)
        if picked is None:
            raise ValueError(
                f"no Sentinel-2 {cfg.collection} acquisition with scene cloud cover <= "
                f"{percent:g} % over the area in {window.start}..{window.end}: widen the "
                "window (--window-days), allow more clouds (--max-cloud or "
                "fetch.sentinelhub.max_cloud_coverage) or pick another date (Sentinel-2 "
                "data start in 2015-06; recent days may not be processed yet)"
            )
        scene, candidates = picked
        products = sorted(s.id for s in found if s.date == scene.date)
        scene_key = Cache.key(
            url=settings.sh_base_url,
            collection=cfg.collection,
            crs=crs,
            bounds=[round(v, 2) for v in bounds],
            size=[width, height],
            day=scene.date,
            maxcc=cfg.max_cloud_coverage,
            harmonize=cfg.harmonize_values,
            baseline=scene.processing_baseline,
            evalscript=EVALSCRIPT_VERSION,
            bands=list(bands),
        )
        with progress(f"download {scene.date}", 1) as advance:
            data = cache.get_scene(scene_key)
            from_cache = data is not None
            if data is None:
                epsg = int(crs.split(":")[1])
                try:
                    data = connect().process(
                        BBox(bounds, crs=CRS(epsg)),
                        (width, height),
                        scene.date,
                        scene.processing_baseline,
                    )
                except PermanentError as e:
                    raise ValueError(f"Sentinel Hub download failed: {e}") from None
                cache.put_scene(scene_key, data)
            advance(1)
    counts = dict(client.counts) if client is not None else {}
    return AreaAcquisition(
        scene=scene,
        products=products,
        candidates=candidates,
        data=data,
        dn_offset=0 if cfg.harmonize_values else dn_offset_for_baseline(scene.processing_baseline),
        from_cache=from_cache,
        requests={
            "catalog": counts.get("catalog", 0),
            "process": counts.get("process", 0),
            "processing_units": round(counts.get("processing_units", 0.0), 4),
        },
    )
