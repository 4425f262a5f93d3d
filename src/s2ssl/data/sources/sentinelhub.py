"""Real Sentinel-2 imagery through sentinelhub-py: catalog search, then the
Process API, with the robustness of an unattended bulk download.

For each dataset:

1. **plan** — per region, candidate locations (:mod:`.sampling`) are searched in the catalog
   (scene cloud filter ``eo:cloud_cover``) and their acquisitions chosen: *seasonal* for
   ``unlabelled`` (SeCo), *single date* for ``landcover``, *time series* for ``croptype``. A
   candidate with an empty window (or too few acquisitions) is replaced by the next candidate.
2. **download** — one Process API request per (location, acquisition): all bands on the 10 m
   grid as DN (``harmonizeValues`` as configured), plus the scene classification (L2A: SCL) or
   cloud mask (L1C: CLM) and ``dataMask``; concurrent, retried on 429 / 5xx with back-off and
   jitter (never on other 4xx), each result written atomically to an on-disk cache — a killed or
   repeated fetch only downloads what is missing. Catalog answers are cached too.
3. **assemble** — the cache is read location by location into chunks with the synthetic
   world's arrays and index columns (plus provenance: product ids, scene cloud cover).

Credentials come only from the environment / ``.env`` (:mod:`s2ssl.settings`); they are checked
before any network call and never appear in logs, outputs or error messages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
import pandas as pd
from pydantic import SecretStr

from s2ssl.bands import (
    BAND_NAMES,
    L2A_BAND_NAMES,
    MASK_NODATA,
    N_BANDS,
    band_index,
    dn_offset_for_baseline,
)
from s2ssl.classes import CROP_CLASSES, LANDCOVER_CLASSES
from s2ssl.config import Params, SentinelHubSource, ShRegion, ShTimeSeriesSpec
from s2ssl.data.sources import base, sampling
from s2ssl.data.sources.base import Chunk, DatasetName, Skip, Source
from s2ssl.data.sources.retry import (
    PermanentError,
    RetriesExhaustedError,
    RetryPolicy,
    TransientError,
)
from s2ssl.data.sources.sampling import CatalogScene
from s2ssl.data.sources.synthetic import georeference
from s2ssl.progress import ProgressFactory
from s2ssl.settings import Settings, get_settings

T = TypeVar("T")
LOGGER = logging.getLogger(__name__)

EVALSCRIPT_VERSION: Final[str] = "1"
"""Bump when the evalscript changes: it is part of every scene's cache key."""
PU_HEADER: Final[str] = "x-processingunits-spent"
_CHUNK: Final[int] = 32
_SECRET_PATTERNS: Final[tuple[re.Pattern[str], ...]] = (
    re.compile(r"(client_secret=)[^&\s'\"]+"),
    re.compile(r"(['\"]access_token['\"]\s*:\s*['\"])[^'\"]+"),
    re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+"),
)
_AUTH_ERRORS: Final[frozenset[str]] = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_grant", "access_denied", "invalid_scope"}
)
"""OAuth error codes that mean the credentials themselves are wrong (never retried)."""
_NOISY_LOGGERS: Final[tuple[str, ...]] = (
    "requests_oauthlib.oauth2_session",
    "oauthlib.oauth2.rfc6749.clients.base",
    "oauthlib.oauth2.rfc6749.parameters",
    "urllib3.connectionpool",
    "sentinelhub.download.session",
    "sentinelhub.download.sentinelhub_client",
    "sentinelhub.download.client",
    "sentinelhub.download.handlers",
)


class SentinelHubCredentialsError(ValueError):
    """Credentials are missing (raised before any network call)."""


class SentinelHubAuthError(ValueError):
    """The service rejected the credentials or the account lacks rights (HTTP 401 / 403)."""


# --------------------------------------------------------------------------- secrets
def credentials(settings: Settings) -> tuple[str, SecretStr]:
    """The OAuth client id and secret; :class:`SentinelHubCredentialsError` names what to set."""
    missing = [
        name
        for name, value in (
            ("SH_CLIENT_ID", settings.sh_client_id),
            ("SH_CLIENT_SECRET", settings.sh_client_secret),
        )
        if value is None or not value.get_secret_value().strip()
    ]
    if missing or settings.sh_client_id is None or settings.sh_client_secret is None:
        raise SentinelHubCredentialsError(
            f"fetch.source is sentinelhub but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: export SH_CLIENT_ID and "
            "SH_CLIENT_SECRET (an OAuth client of your Sentinel Hub / Copernicus Data Space "
            "account) or put them in a .env file in the working directory. Never put them in "
            "params.yaml."
        )
    return settings.sh_client_id.get_secret_value().strip(), settings.sh_client_secret


class _Redact(logging.Filter):
    """Scrubs secrets (client secret, access tokens) from log records of the HTTP stack."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for s in self.secrets:
            text = text.replace(s, "***")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(r"\1***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


@contextmanager
def _secrets_kept(secret: str) -> Iterator[None]:
    """While inside: the HTTP stack's loggers are scrubbed of secrets, and the OAuth ones log at
    most INFO (requests-oauthlib logs the token request body, client secret included, at DEBUG)."""
    redact = _Redact([secret])
    saved: list[tuple[logging.Logger, int]] = []
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addFilter(redact)
        if "oauthlib" in name and logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)  # they log request bodies at DEBUG
    try:
        yield
    finally:
        for logger, level in saved:
            logger.removeFilter(redact)
            logger.setLevel(level)


# --------------------------------------------------------------------------- the client
def evalscript(collection: str) -> str:
    """The Process API evalscript: every band as DN (UINT16) on the request grid, plus the
    quality layer (L2A: SCL, L1C: CLM) and dataMask (UINT8), and the service metadata."""
    bands = L2A_BAND_NAMES if collection == "L2A" else BAND_NAMES
    quality = "SCL" if collection == "L2A" else "CLM"
    inputs = ", ".join(f'"{b}"' for b in (*bands, quality, "dataMask"))
    samples = ", ".join(f"s.{b}" for b in bands)
    return (
        "//VERSION=3\n"
        "function setup() {\n"
        f'  return {{ input: [{{ bands: [{inputs}], units: "DN" }}],\n'
        f'    output: [ {{ id: "bands", bands: {len(bands)}, sampleType: "UINT16" }},\n'
        '              { id: "quality", bands: 2, sampleType: "UINT8" } ] };\n'
        "}\n"
        "function evaluatePixel(s) {\n"
        f"  return {{ bands: [{samples}], quality: [s.{quality}, s.dataMask] }};\n"
        "}\n"
        "function updateOutputMetadata(scenes, inputMetadata, outputMetadata) {\n"
        "  outputMetadata.userData = { serviceVersion: inputMetadata.serviceVersion,\n"
        "    normalizationFactor: inputMetadata.normalizationFactor };\n"
        "}\n"
    )


def estimate_processing_units(size: int | tuple[int, int], collection: str) -> float:
    """Processing units of one scene request of ``size`` pixels square or ``(width, height)``
    (Sentinel Hub rules: 512 × 512 px × 3 bands of 16-bit output = 1 PU; area factor at least
    0.01; minimum 0.005 PU per request)."""
    n_inputs = (len(L2A_BAND_NAMES) if collection == "L2A" else N_BANDS) + 1  # + SCL / CLM
    width, height = (size, size) if isinstance(size, int) else size
    area = max(width * height / 512.0**2, 0.01)
    return max(area * n_inputs / 3.0, 0.005)


@dataclass(frozen=True)
class SceneData:
    """One downloaded acquisition on the patch grid."""

    image: np.ndarray  # [13, H, W] uint16, BAND_NAMES order (B10 filled for L2A)
    mask: np.ndarray  # [H, W] uint8, s2ssl mask codes
    processing_units: float


class ShClient:
    """The real sentinelhub-py client, pointed at ``settings.sh_base_url``, with the client's own
    retries off and our :class:`~.retry.RetryPolicy` around every call."""

    def __init__(self, cfg: SentinelHubSource, settings: Settings, policy: RetryPolicy) -> None:
        from sentinelhub import DataCollection, SHConfig
        from sentinelhub.exceptions import SHRateLimitWarning

        client_id, secret = credentials(settings)
        self.cfg = cfg
        self.policy = policy
        self.secret = secret
        base_url = settings.sh_base_url.rstrip("/")
        token_url = settings.sh_token_url or (
            f"{base_url}/auth/realms/main/protocol/openid-connect/token"
        )
        self.config = SHConfig(
            use_defaults=True,
            sh_client_id=client_id,
            sh_client_secret=secret.get_secret_value(),
            sh_base_url=base_url,
            sh_token_url=token_url,
            max_download_attempts=1,
            download_sleep_time=0,
            max_retries=1,
            download_timeout_seconds=cfg.retry.timeout_s,
        )
        stock = (
            DataCollection.SENTINEL2_L2A
            if cfg.collection == "L2A"
            else DataCollection.SENTINEL2_L1C
        )
        digest = hashlib.sha1(base_url.encode()).hexdigest()[:12]
        self.collection = stock.define_from(
            f"S2SSL_{cfg.collection}_{digest}", service_url=base_url
        )
        self.base_url = base_url
        self._lock = threading.Lock()
        self.counts: dict[str, float] = {"catalog": 0, "process": 0, "processing_units": 0.0}
        # our policy reports rate limiting; the client's own warning per 429 is noise
        warnings.filterwarnings("ignore", category=SHRateLimitWarning)

    def _count(self, key: str, value: float = 1) -> None:
        with self._lock:
            self.counts[key] += value

    def _guard(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn`` and translate client errors into Transient / Permanent / Auth errors."""
        import requests
        from oauthlib.oauth2.rfc6749.errors import OAuth2Error
        from sentinelhub.exceptions import DownloadFailedException, OutOfRequestsException

        try:
            return fn()
        except OutOfRequestsException:
            raise TransientError(f"{what}: HTTP 429 (rate limit)", status=429) from None
        except DownloadFailedException as e:
            raise _http_error(e.request_exception, what) from None
        except requests.RequestException as e:
            raise _http_error(e, what) from None
        except OAuth2Error as e:
            if str(e.error) not in _AUTH_ERRORS:  # e.g. a rate-limited or failing token service
                raise TransientError(f"{what}: token service error ({e.error})") from None
            raise SentinelHubAuthError(
                f"Sentinel Hub rejected the credentials ({e.error}, HTTP {e.status_code}) at "
                f"{self.config.sh_token_url}: check SH_CLIENT_ID / SH_CLIENT_SECRET and "
                "SH_BASE_URL / SH_TOKEN_URL (the deployment the OAuth client belongs to)"
            ) from None

    def authenticate(self) -> None:
        """Fetch one token now (wrong credentials fail here, before any search) and share the
        session with every download thread."""
        from sentinelhub import SentinelHubDownloadClient, SentinelHubSession

        session = self.policy.call(
            lambda: self._guard(lambda: SentinelHubSession(config=self.config), "token"),
            "Sentinel Hub authentication",
        )
        SentinelHubDownloadClient.cache_session(session)

    def search(self, bbox: Any, start: dt.date, end: dt.date) -> list[CatalogScene]:
        """Every catalog item over ``bbox`` in ``[start, end]`` within the scene cloud filter
        (all pages)."""
        from sentinelhub import SentinelHubCatalog

        catalog = SentinelHubCatalog(config=self.config)
        percent = round(self.cfg.max_cloud_coverage * 100.0, 3)

        def run() -> list[CatalogScene]:
            self._count("catalog")
            items = catalog.search(
                self.collection,
                bbox=bbox,
                time=(start, end),
                filter=f"eo:cloud_cover <= {percent}",
                limit=self.cfg.catalog_page_size,
            )
            return [CatalogScene.from_stac(f) for f in items]

        what = f"catalog search {start}..{end}"
        return self.policy.call(lambda: self._guard(run, what), what)

    def process(
        self, bbox: Any, size: int | tuple[int, int], day: dt.date, baseline: str
    ) -> SceneData:
        """Download one acquisition day on the grid of ``bbox``: ``size`` pixels square, or
        ``(width, height)``."""
        from sentinelhub import MimeType, MosaickingOrder, SentinelHubRequest

        width, height = (size, size) if isinstance(size, int) else size

        request = SentinelHubRequest(
            evalscript=evalscript(self.cfg.collection),
            input_data=[
                SentinelHubRequest.input_data(
                    data_collection=self.collection,
                    time_interval=(day, day),
                    maxcc=self.cfg.max_cloud_coverage,
                    mosaicking_order=MosaickingOrder.MOST_RECENT,
                    other_args={"processing": {"harmonizeValues": self.cfg.harmonize_values}},
                )
            ],
            responses=[
                SentinelHubRequest.output_response("bands", MimeType.TIFF),
                SentinelHubRequest.output_response("quality", MimeType.TIFF),
                SentinelHubRequest.output_response("userdata", MimeType.JSON),
            ],
            bbox=bbox,
            size=(width, height),
            config=self.config,
        )

        def run() -> Any:
            self._count("process")
            return request.get_data(decode_data=False, max_threads=1)[0]

        what = f"process {day}"
        response = self.policy.call(lambda: self._guard(run, what), what)
        try:
            data = response.decode()
            bands, quality = np.asarray(data["bands.tif"]), np.asarray(data["quality.tif"])
        except (KeyError, ValueError, TypeError, OSError) as e:
            raise PermanentError(f"{what}: unreadable answer ({type(e).__name__}: {e})") from None
        try:
            pu = float(response.headers.get(PU_HEADER, 0.0))
        except (TypeError, ValueError):
            pu = 0.0
        self._count("processing_units", pu)
        return self._to_scene(bands, quality, (height, width), baseline, pu, what)

    def _to_scene(
        self,
        bands: np.ndarray,
        quality: np.ndarray,
        shape: tuple[int, int],
        baseline: str,
        pu: float,
        what: str,
    ) -> SceneData:
        names = L2A_BAND_NAMES if self.cfg.collection == "L2A" else BAND_NAMES
        h, w = shape
        if bands.ndim == 2:
            bands = bands[:, :, None]
        if bands.shape != (h, w, len(names)) or quality.shape[:2] != (h, w):
            raise PermanentError(
                f"{what}: expected {h}x{w}x{len(names)} bands and a quality layer, got "
                f"{bands.shape} and {quality.shape}"
            )
        quality = quality.reshape(h, w, -1)
        data_mask = quality[:, :, 1] if quality.shape[2] > 1 else np.ones((h, w), np.uint8)
        mask = base.mask_from_quality(
            "SCL" if self.cfg.collection == "L2A" else "CLM", quality[:, :, 0], data_mask
        )
        offset = 0 if self.cfg.harmonize_values else dn_offset_for_baseline(baseline)
        image = np.zeros((N_BANDS, h, w), np.uint16)
        for i, name in enumerate(names):
            image[band_index(name)] = bands[:, :, i]
        valid = mask != MASK_NODATA
        image[:, valid] = np.maximum(image[:, valid], 1)  # DN 0 is reserved for no data
        if self.cfg.collection == "L2A":  # no B10 in L2A: reflectance 0 on valid pixels
            image[band_index("B10"), valid] = max(-offset, 1)
        image[:, ~valid] = 0
        return SceneData(image=image, mask=mask, processing_units=pu)


def _http_error(exc: BaseException | None, what: str) -> ValueError:
    """Transient (429, 5xx, connection), auth (401/403) or permanent (other 4xx) error."""
    import requests

    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is None or isinstance(exc, requests.ConnectionError | requests.Timeout):
        name = type(exc).__name__ if exc is not None else "no answer"
        return TransientError(f"{what}: connection problem ({name})")
    if status in (401, 403):
        return SentinelHubAuthError(
            f"{what}: HTTP {status} — Sentinel Hub refused the request (expired or wrong "
            "credentials, or no access to this collection): check SH_CLIENT_ID / "
            "SH_CLIENT_SECRET and the account's subscription"
        )
    if status == 429 or status >= 500:
        retry_after = None
        try:
            retry_after = float(response.headers.get("Retry-After", ""))
        except (TypeError, ValueError, AttributeError):
            retry_after = None
        return TransientError(f"{what}: HTTP {status}", status=status, retry_after=retry_after)
    detail = ""
    try:
        body = response.json()
        detail = str(body.get("error", {}).get("message", "") if isinstance(body, dict) else "")
    except (ValueError, AttributeError):
        detail = ""
    return PermanentError(f"{what}: HTTP {status}{f' ({detail})' if detail else ''}", status=status)


# --------------------------------------------------------------------------- cache
class Cache:
    """On-disk cache of catalog answers (JSON) and scenes (npz), written atomically so a kill
    never leaves a half-written entry."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @staticmethod
    def key(**parts: object) -> str:
        """A stable hash of ``parts``."""
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def get_catalog(self, key: str) -> list[CatalogScene] | None:
        """Cached scenes of a search, or None."""
        path = self._path("catalog", key, ".json")
        try:
            return [CatalogScene.from_json(d) for d in json.loads(path.read_text("utf-8"))]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # damaged entry: search again
            return None

    def put_catalog(self, key: str, scenes: Sequence[CatalogScene]) -> None:
        """Store a search result."""
        data = json.dumps([s.to_json() for s in scenes]).encode()
        self._write(self._path("catalog", key, ".json"), data)

    def has_scene(self, key: str) -> bool:
        """Whether a scene is cached."""
        return self._path("scenes", key, ".npz").is_file()

    def get_scene(self, key: str) -> SceneData | None:
        """A cached scene, or None (a damaged entry is removed so it is fetched again)."""
        path = self._path("scenes", key, ".npz")
        try:
            with np.load(path, allow_pickle=False) as z:
                return SceneData(z["image"], z["mask"], float(z["processing_units"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, OSError, EOFError):
            path.unlink(missing_ok=True)
            return None

    def put_scene(self, key: str, scene: SceneData) -> None:
        """Store a scene."""
        buf = io.BytesIO()
        np.savez(
            buf,
            image=scene.image,
            mask=scene.mask,
            processing_units=np.float64(scene.processing_units),
        )
        self._write(self._path("scenes", key, ".npz"), buf.getvalue())


# --------------------------------------------------------------------------- one area
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
    settings: Settings | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: ProgressFactory | None = None,
    today: dt.date | None = None,
) -> AreaAcquisition:
    """Search the catalog within ± ``window_days`` of ``date`` over the UTM rectangle
    ``bounds`` (in ``crs``), choose one acquisition day (``pick``, see
    :func:`~.sampling.pick_acquisition`) and download it on the ``width`` × ``height`` grid.

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

    from s2ssl.progress import no_progress

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
            client = ShClient(cfg, settings, policy)
            client.authenticate()
        return client

    with _secrets_kept(secret.get_secret_value() if secret else ""):
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
                wgs84 = BBox(_wgs84_bounds(crs, bounds), crs=CRS.WGS84)
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


# --------------------------------------------------------------------------- the source
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
        return base.array_shapes(self._n_dates(dataset), self._size(dataset), self._labels(dataset))

    def dataset_attrs(self, dataset: DatasetName) -> dict[str, object]:
        """Synthetic-compatible attrs plus the collection, filter and harmonisation used."""
        return base.dataset_attrs(
            "sentinelhub",
            self.params.seed,
            [r.name for r in self.cfg.regions],
            self._labels(dataset),
            filled_bands=("B10",) if self.cfg.collection == "L2A" else (),
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
        with _secrets_kept(secret.get_secret_value() if secret else ""):
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
                    * estimate_processing_units(self._size(dataset), self.cfg.collection),
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
            client = ShClient(self.cfg, self.settings, self.policy)
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
        bbox = BBox(_wgs84_bounds(geo.crs, loc.bounds()), crs=CRS.WGS84)  # catalog wants lon/lat
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
                for name, arr in self._label_maps(dataset, loc).items():
                    label_maps[name].append(arr)
                rows.append(self._row(dataset, loc, mask))
            arrays = {"image": np.stack(images), "mask": np.stack(masks)}
            arrays.update({name: np.stack(v) for name, v in label_maps.items()})
            yield Chunk(arrays=arrays, rows=pd.DataFrame(rows))

    def _label_maps(self, dataset: DatasetName, loc: Location) -> dict[str, np.ndarray]:
        if dataset == "landcover" and self.cfg.landcover.labels is not None:
            spec = self.cfg.landcover.labels
            lc = base.label_map(
                spec.path, loc.crs, loc.transform, loc.size, spec.classes, LANDCOVER_CLASSES
            )
            return {"landcover": lc}
        if dataset == "croptype" and self._croptype().labels is not None:
            spec = self._croptype().labels
            crop = base.label_map(
                spec.path, loc.crs, loc.transform, loc.size, spec.classes, CROP_CLASSES
            )
            return {"croptype": crop, "parcel": base.parcels_from_crops(crop)}
        return {}

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


def _wgs84_bounds(crs: str, bounds: tuple[float, float, float, float]) -> tuple[float, ...]:
    """Lon/lat bounds of a UTM rectangle (densified edges, so the box covers it)."""
    from pyproj import Transformer

    return tuple(Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform_bounds(*bounds))


def _run_all(pool: ThreadPoolExecutor, calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``calls`` on ``pool``; results in call order. The first error cancels the rest."""
    futures = [pool.submit(c) for c in calls]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise
