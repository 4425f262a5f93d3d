"""``fetch.source: sentinelhub``: plan locations, download their scenes (concurrently, cached)
and assemble them into dataset chunks (see the package docstring)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import numpy as np
import pandas as pd

from s2ssl.bands import dn_offset_for_baseline
from s2ssl.classes import ClassSet
from s2ssl.config import LabelRaster, Params, SentinelHubSource, ShRegion, ShTimeSeriesSpec
from s2ssl.data.sources import base, sampling
from s2ssl.data.sources.base import Skip, Source
from s2ssl.data.sources.geo import georeference
from s2ssl.data.sources.retry import PermanentError, RetriesExhaustedError, RetryPolicy
from s2ssl.data.sources.sampling import CatalogScene
from s2ssl.data.sources.sentinelhub.auth import credentials, secrets_kept
from s2ssl.data.sources.sentinelhub.cache import Cache
from s2ssl.data.sources.sentinelhub.client import (
    EVALSCRIPT_VERSION,
    ShClient,
    check_collection_bands,
    estimate_processing_units,
    wgs84_bounds,
)
from s2ssl.data.sources.types import Chunk, DatasetName
from s2ssl.progress import ProgressFactory
from s2ssl.settings import Settings, get_settings

T = TypeVar("T")

_CHUNK: Final[int] = 32


@dataclass
class Location:
    """An accepted location and its chosen acquisitions (oldest first)."""

    region: ShRegion
    index: int
    lon: float
    lat: float
    split: str
    crs: str
    transform: tuple[float, float, float, float, float, float]
    size: int
    scenes: list[CatalogScene]

    @property
    def sample_id(self) -> str:
        """``<region>-<candidate index>``; the sample id is ``<dataset>-`` followed by this."""
        return f"{self.region.name}-{self.index:05d}"

    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in the location's UTM CRS."""
        x0, y0 = self.transform[2], self.transform[5]
        return x0, y0 - 10.0 * self.size, x0 + 10.0 * self.size, y0


class SentinelHubImagery(Source):
    """``fetch.source: sentinelhub`` (see the module docstring)."""

    kind = "sentinelhub"

    def __init__(
        self,
        params: Params,
        *,
        settings: Settings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        cfg = params.fetch.sentinelhub
        if cfg is None:
            raise ValueError("fetch.source is sentinelhub but params.yaml has no fetch.sentinelhub")
        self.params = params
        self.cfg: SentinelHubSource = cfg
        self.bands = params.band_names
        check_collection_bands(cfg.collection, self.bands)
        self.settings = settings if settings is not None else get_settings()
        credentials(self.settings)  # fail before any network call
        self.policy = RetryPolicy.from_config(cfg.retry, sleep=sleep)
        self.cache = Cache(cfg.cache_dir)
        self._client: ShClient | None = None
        self._failures: dict[str, Counter[str]] = {}
        """Per dataset: failed catalog searches / downloads, ``transient`` (retries exhausted)
        or ``permanent``; a dataset that got nothing only through transient failures raises
        :class:`RetriesExhaustedError` (try again later) instead of a plain ``ValueError``."""
        self._failures_lock = threading.Lock()

    # ------------------------------------------------------------------ Source interface
    def _size(self, dataset: DatasetName) -> int:
        if dataset == "croptype":
            return self._croptype().patch_size
        return getattr(self.cfg, dataset).patch_size

    def _n_dates(self, dataset: DatasetName) -> int:
        if dataset == "unlabelled":
            return self.cfg.unlabelled.n_dates
        return 1 if dataset == "landcover" else self._croptype().n_dates

    def _croptype(self) -> ShTimeSeriesSpec:
        if self.cfg.croptype is None:
            raise ValueError("croptype needs fetch.sentinelhub.croptype (period_start, period_end)")
        return self.cfg.croptype

    def _labels(self, dataset: DatasetName) -> list[str]:
        if dataset == "landcover" and self.cfg.landcover.labels is not None:
            return ["landcover"]
        if dataset == "croptype" and self._croptype().labels is not None:
            return ["croptype", "parcel"]
        return []

    def array_shapes(self, dataset: DatasetName) -> dict[str, tuple[tuple[int, ...], str]]:
        """image / mask (+ label maps when a label raster is configured)."""
        return base.array_shapes(
            self._n_dates(dataset), self._size(dataset), self._labels(dataset), self.bands
        )

    def _label_raster(self, dataset: DatasetName) -> LabelRaster | None:
        if dataset == "landcover":
            return self.cfg.landcover.labels
        return self._croptype().labels if dataset == "croptype" else None

    def _class_sets(self, dataset: DatasetName) -> dict[str, ClassSet]:
        """The class set of the label raster of ``dataset`` (defined by its ``classes``)."""
        raster = self._label_raster(dataset)
        if raster is None:
            return {}
        what = f"fetch.sentinelhub.{dataset}.labels.classes"
        return {dataset: base.class_set_from_mapping(raster.classes, raster.ignore_values, what)}

    def dataset_attrs(self, dataset: DatasetName) -> dict[str, object]:
        """Synthetic-compatible attrs plus the collection, filter and harmonisation used."""
        return base.dataset_attrs(
            "sentinelhub",
            self.params.seed,
            [r.name for r in self.cfg.regions],
            self._labels(dataset),
            self.bands,
            self._class_sets(dataset),
            collection=f"sentinel-2-{self.cfg.collection.lower()}",
            max_cloud_coverage=self.cfg.max_cloud_coverage,
            harmonize_values=self.cfg.harmonize_values,
            mask_source="SCL" if self.cfg.collection == "L2A" else "CLM",
            service_url=self.settings.sh_base_url,
            evalscript_version=EVALSCRIPT_VERSION,
        )

    def chunks(self, dataset: DatasetName, progress: ProgressFactory) -> Iterator[Chunk]:
        """Plan, download (concurrently, cached) and assemble ``dataset``."""
        secret = self.settings.sh_client_secret
        with secrets_kept(secret.get_secret_value() if secret else ""):
            client = self._connect()
            before = dict(client.counts)
            retries_before = self.policy.retries
            locations = self._plan(dataset, progress)
            stats = self._download(dataset, locations, progress)
            self.report[dataset] = {
                "locations": len(locations),
                "scenes": stats["scenes"],
                "scenes_from_cache": stats["cached"],
                "scenes_downloaded": stats["downloaded"],
                "catalog_searches": int(client.counts["catalog"] - before["catalog"]),
                "process_requests": int(client.counts["process"] - before["process"]),
                "retries": self.policy.retries - retries_before,
                "processing_units_spent": round(
                    client.counts["processing_units"] - before["processing_units"], 4
                ),
                "processing_units_estimated": round(
                    stats["downloaded"]
                    * estimate_processing_units(self._size(dataset), len(self.bands)),
                    4,
                ),
                "skipped_by_reason": self.skipped_by_reason(dataset),
            }
            failed = stats["failed"]
            good = [loc for loc in locations if (loc.region.name, loc.index) not in failed]
            if not good:
                message = (
                    f"sentinelhub: no {dataset} sample could be fetched; skipped: "
                    f"{self.skipped_by_reason(dataset) or 'nothing found'} (see the fetch report)"
                )
                failures = self._failures.get(dataset, Counter())
                if failures["transient"] and not failures["permanent"]:
                    raise RetriesExhaustedError(
                        f"{message}; every failure was transient (HTTP 429 / 5xx or connection "
                        "problems that outlasted the retries): try again later"
                    )
                raise ValueError(message)
            yield from self._assemble(dataset, good)

    def _count_failure(self, dataset: DatasetName, error: Exception) -> None:
        kind = "transient" if isinstance(error, RetriesExhaustedError) else "permanent"
        with self._failures_lock:  # catalog searches and downloads run in thread pools
            self._failures.setdefault(dataset, Counter())[kind] += 1

    def _connect(self) -> ShClient:
        if self._client is None:
            client = ShClient(self.cfg, self.settings, self.policy, self.bands)
            client.authenticate()
            self._client = client
        return self._client

    # ------------------------------------------------------------------ plan
    def _candidate(
        self, dataset: DatasetName, region: ShRegion, index: int
    ) -> Location | Skip | None:
        """Search candidate ``index``: a Location, a Skip (why it was rejected) or None (a
        fixed point list is exhausted)."""
        from sentinelhub import CRS, BBox

        fetch = self.params.fetch
        rng = sampling.candidate_rng(self.params.seed, dataset, region.name, index)
        split_u = float(rng.random())
        point = sampling.draw_location(region, rng, index)
        if point is None:
            return None
        lon, lat = point
        size = self._size(dataset)
        geo = georeference(lon, lat, size)
        item = f"{dataset}-{region.name}-{index:05d} ({lon:.4f}, {lat:.4f})"
        if dataset == "unlabelled":
            windows = sampling.seasonal_windows(
                sampling.draw_reference(rng, self.cfg.unlabelled, fetch.start_date, fetch.end_date),
                self.cfg.unlabelled,
            )
            start, end, splits = windows[0].start, windows[-1].end, None
        elif dataset == "landcover":
            spec = self.cfg.landcover
            windows = [
                sampling.single_window(
                    rng, spec.date, spec.window_days, fetch.start_date, fetch.end_date
                )
            ]
            start, end, splits = windows[0].start, windows[0].end, spec.splits
        else:
            ts = self._croptype()
            windows = []
            start, end, splits = ts.period_start, ts.period_end, ts.splits
        split = "train" if splits is None else base.split_of(split_u, splits.train, splits.val)
        loc = Location(region, index, lon, lat, split, geo.crs, geo.transform, size, [])
        bbox = BBox(wgs84_bounds(geo.crs, loc.bounds()), crs=CRS.WGS84)  # catalog wants lon/lat
        key = Cache.key(
            url=self.settings.sh_base_url,
            collection=self.cfg.collection,
            crs=geo.crs,
            bounds=[round(v, 2) for v in loc.bounds()],
            start=start,
            end=end,
            maxcc=self.cfg.max_cloud_coverage,
        )
        found = self.cache.get_catalog(key)
        if found is None:
            client = self._connect()
            try:
                found = client.search(bbox, start, end)
            except PermanentError as e:
                self._count_failure(dataset, e)
                return Skip(dataset, item, "catalog search failed", str(e))
            self.cache.put_catalog(key, found)
        percent = self.cfg.max_cloud_coverage * 100.0
        if dataset == "croptype":
            ts = self._croptype()
            days = sampling.acquisitions(found, start, end, percent)
            chosen = sampling.evenly_spread(days, ts.n_dates)
            if chosen is None:
                return Skip(
                    dataset,
                    item,
                    "too few acquisitions",
                    f"{len(days)} acceptable acquisition days in {start}..{end}, need {ts.n_dates}",
                )
            loc.scenes = chosen
            return loc
        picks = sampling.most_recent_per_window(found, windows, percent)
        empty = [w for w, s in zip(windows, picks, strict=True) if s is None]
        if empty:
            return Skip(
                dataset,
                item,
                "empty window",
                "no scene with cloud cover <= "
                f"{percent:g} % in {', '.join(f'{w.start}..{w.end}' for w in empty)}",
            )
        loc.scenes = [s for s in picks if s is not None]
        return loc

    def _plan(self, dataset: DatasetName, progress: ProgressFactory) -> list[Location]:
        """Accepted locations of every region (candidate order), replacing rejected ones."""
        total = sum(sampling.wanted(r) for r in self.cfg.regions)
        out: list[Location] = []
        with (
            progress(f"search {dataset} locations", total) as advance,
            ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool,
        ):
            for region in self.cfg.regions:
                need = sampling.wanted(region)
                limit = sampling.max_candidates(region, self.cfg.max_candidates_factor)
                accepted: list[Location] = []
                next_index = 0
                while len(accepted) < need and next_index < limit:
                    batch = range(next_index, min(next_index + need - len(accepted), limit))
                    next_index = batch.stop
                    results = _run_all(
                        pool, [lambda i=i, r=region: self._candidate(dataset, r, i) for i in batch]
                    )
                    for result in results:
                        if isinstance(result, Location):
                            accepted.append(result)
                            advance(1)
                        elif isinstance(result, Skip):
                            self.skipped.append(result)
                if len(accepted) < need:
                    self.skipped.append(
                        Skip(
                            dataset,
                            region.name,
                            "region short of locations",
                            f"{len(accepted)} of {need} locations found after {next_index} "
                            "candidates (raise max_candidates_factor, widen the area or the "
                            "cloud filter)",
                        )
                    )
                out.extend(accepted)
        return out

    # ------------------------------------------------------------------ download
    def _scene_key(self, loc: Location, scene: CatalogScene) -> str:
        return Cache.key(
            url=self.settings.sh_base_url,
            collection=self.cfg.collection,
            crs=loc.crs,
            transform=list(loc.transform),
            size=loc.size,
            day=scene.date,
            maxcc=self.cfg.max_cloud_coverage,
            harmonize=self.cfg.harmonize_values,
            baseline=scene.processing_baseline,
            evalscript=EVALSCRIPT_VERSION,
            bands=list(self.bands),
        )

    def _download(
        self, dataset: DatasetName, locations: Sequence[Location], progress: ProgressFactory
    ) -> dict[str, Any]:
        """Fetch every scene that is not cached yet; failures skip their location."""
        from sentinelhub import CRS, BBox

        jobs: list[tuple[Location, CatalogScene, str]] = []
        cached = 0
        for loc in locations:
            for scene in loc.scenes:
                key = self._scene_key(loc, scene)
                if self.cache.has_scene(key):
                    cached += 1
                else:
                    jobs.append((loc, scene, key))
        failed: dict[tuple[str, int], str] = {}
        n_failed = 0
        n_scenes = cached + len(jobs)
        client = self._connect()

        def fetch_one(loc: Location, scene: CatalogScene, key: str) -> None:
            bbox = BBox(loc.bounds(), crs=CRS(int(loc.crs.split(":")[1])))
            data = client.process(bbox, loc.size, scene.date, scene.processing_baseline)
            self.cache.put_scene(key, data)

        with progress(f"download {dataset} scenes", n_scenes) as advance:
            advance(cached)
            pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency)
            futures: dict[Future[None], tuple[Location, CatalogScene]] = {}
            try:
                for loc, scene, key in jobs:
                    futures[pool.submit(fetch_one, loc, scene, key)] = (loc, scene)
                for future in as_completed(futures):
                    loc, scene = futures[future]
                    try:
                        future.result()
                    except (PermanentError, RetriesExhaustedError) as e:
                        self._count_failure(dataset, e)
                        n_failed += 1
                        failed[(loc.region.name, loc.index)] = str(e)
                        self.skipped.append(
                            Skip(
                                dataset,
                                f"{dataset}-{loc.sample_id} {scene.id}",
                                "download failed",
                                str(e),
                            )
                        )
                    advance(1)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
        return {
            "scenes": n_scenes,
            "cached": cached,
            "downloaded": len(jobs) - n_failed,
            "failed": failed,
        }

    # ------------------------------------------------------------------ assemble
    def _assemble(self, dataset: DatasetName, locations: Sequence[Location]) -> Iterator[Chunk]:
        labels = self._labels(dataset)
        unmapped: Counter[int] = Counter()
        for lo in range(0, len(locations), _CHUNK):
            part = locations[lo : lo + _CHUNK]
            images, masks, rows = [], [], []
            label_maps: dict[str, list[np.ndarray]] = {name: [] for name in labels}
            for loc in part:
                scenes = []
                for scene in loc.scenes:
                    data = self.cache.get_scene(self._scene_key(loc, scene))
                    if data is None:
                        raise ValueError(
                            f"cache entry of {dataset}-{loc.sample_id} {scene.id} vanished under "
                            f"{self.cfg.cache_dir} while fetching: run fetch again"
                        )
                    scenes.append(data)
                image = np.stack([s.image for s in scenes])
                mask = np.stack([s.mask for s in scenes])
                images.append(image)
                masks.append(mask)
                for name, arr in self._label_maps(dataset, loc, unmapped).items():
                    label_maps[name].append(arr)
                rows.append(self._row(dataset, loc, mask))
            arrays = {"image": np.stack(images), "mask": np.stack(masks)}
            arrays.update({name: np.stack(v) for name, v in label_maps.items()})
            yield Chunk(arrays=arrays, rows=pd.DataFrame(rows))
        if unmapped:
            setting = f"fetch.sentinelhub.{dataset}.labels.classes"
            raise ValueError(f"{dataset}: {base.describe_unmapped(unmapped, setting)}")

    def _label_maps(
        self, dataset: DatasetName, loc: Location, unmapped: Counter[int]
    ) -> dict[str, np.ndarray]:
        """The label maps of one location; raster values no class maps add to ``unmapped``."""
        raster = self._label_raster(dataset)
        if raster is None:
            return {}
        classes = self._class_sets(dataset)[dataset]
        lm = base.label_map(raster.path, loc.crs, loc.transform, loc.size, raster.classes, classes)
        unmapped.update(lm.unmapped)
        if dataset == "landcover":
            return {"landcover": lm.labels}
        return {"croptype": lm.labels, "parcel": base.parcels_from_crops(lm.labels)}

    def _row(self, dataset: DatasetName, loc: Location, mask: np.ndarray) -> dict[str, object]:
        baselines = [s.processing_baseline for s in loc.scenes]
        offsets = [0 if self.cfg.harmonize_values else dn_offset_for_baseline(b) for b in baselines]
        return {
            "sample_id": f"{dataset}-{loc.sample_id}",
            "dataset": dataset,
            "region": loc.region.name,
            "hemisphere": sampling.hemisphere(loc.lat),
            "location": loc.index,
            "lon": loc.lon,
            "lat": loc.lat,
            "crs": loc.crs,
            "transform": list(loc.transform),
            "dates": [s.date.isoformat() for s in loc.scenes],
            "doy": [s.date.timetuple().tm_yday for s in loc.scenes],
            "processing_baseline": baselines,
            "dn_offset": offsets,
            "harmonize_values": self.cfg.harmonize_values,
            "split": loc.split,
            "source": "sentinelhub",
            "cloud_fraction": base.cloud_fractions(mask),
            "product_id": [s.id for s in loc.scenes],
            "scene_cloud_cover": [round(s.cloud_cover, 3) for s in loc.scenes],
            "baseline_source": [s.baseline_source for s in loc.scenes],
        }


def _run_all(pool: ThreadPoolExecutor, calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``calls`` on ``pool``; results in call order. The first error cancels the rest."""
    futures = [pool.submit(c) for c in calls]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise
