"""The sentinelhub-py client: catalog search and Process API requests, every call wrapped in the
retry policy, client errors translated into transient / permanent / auth errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import numpy as np

from s2ssl.bands import (
    BAND_NAMES,
    MASK_NODATA,
)
from s2ssl.config import SentinelHubSource
from s2ssl.data.sources import base
from s2ssl.data.sources.retry import PermanentError, RetryPolicy, TransientError
from s2ssl.data.sources.sampling import CatalogScene
from s2ssl.data.sources.sentinelhub.auth import SentinelHubAuthError, credentials
from s2ssl.settings import Settings

T = TypeVar("T")

EVALSCRIPT_VERSION: Final[str] = "2"
"""Bump when the evalscript changes: it is part of every scene's cache key."""
PU_HEADER: Final[str] = "x-processingunits-spent"
_AUTH_ERRORS: Final[frozenset[str]] = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_grant", "access_denied", "invalid_scope"}
)
"""OAuth error codes that mean the credentials themselves are wrong (never retried)."""


def collection_bands(collection: str) -> tuple[str, ...]:
    """The bands a Sentinel-2 collection offers (Level-2A has no B10)."""
    return tuple(b for b in BAND_NAMES if not (collection == "L2A" and b == "B10"))


def check_collection_bands(collection: str, bands: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the bands of ``bands`` that ``collection`` does not offer."""
    offered = collection_bands(collection)
    absent = [b for b in bands if b not in offered]
    if absent:
        raise ValueError(
            f"Sentinel-2 {collection} has no band(s) {', '.join(absent)}: drop them from "
            "`bands` in params.yaml (e.g. bands: l2a) or set fetch.sentinelhub.collection: L1C"
        )


def evalscript(collection: str, bands: Sequence[str]) -> str:
    """The Process API evalscript: ``bands`` as DN (UINT16) on the request grid, plus the
    quality layer (L2A: SCL, L1C: CLM) and dataMask (UINT8), and the service metadata."""
    check_collection_bands(collection, bands)
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


def estimate_processing_units(size: int | tuple[int, int], n_bands: int) -> float:
    """Processing units of one scene request of ``n_bands`` bands, ``size`` pixels square or
    ``(width, height)`` (Sentinel Hub rules: 512 × 512 px × 3 bands of 16-bit output = 1 PU;
    area factor at least 0.01; minimum 0.005 PU per request)."""
    n_inputs = n_bands + 1  # + SCL / CLM
    width, height = (size, size) if isinstance(size, int) else size
    area = max(width * height / 512.0**2, 0.01)
    return max(area * n_inputs / 3.0, 0.005)


@dataclass(frozen=True)
class SceneData:
    """One downloaded acquisition on the patch grid."""

    image: np.ndarray  # [B, H, W] uint16, the requested bands in Sentinel-2 order
    mask: np.ndarray  # [H, W] uint8, s2ssl mask codes
    processing_units: float


class ShClient:
    """The real sentinelhub-py client, pointed at ``settings.sh_base_url``, with the client's own
    retries off and our :class:`~.retry.RetryPolicy` around every call."""

    def __init__(
        self,
        cfg: SentinelHubSource,
        settings: Settings,
        policy: RetryPolicy,
        bands: Sequence[str],
    ) -> None:
        from sentinelhub import DataCollection, SHConfig
        from sentinelhub.exceptions import SHRateLimitWarning

        check_collection_bands(cfg.collection, bands)
        client_id, secret = credentials(settings)
        self.cfg = cfg
        self.bands = tuple(bands)
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
            evalscript=evalscript(self.cfg.collection, self.bands),
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
        names = self.bands
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
        image = np.ascontiguousarray(np.moveaxis(bands, -1, 0)).astype(np.uint16)
        valid = mask != MASK_NODATA
        image[:, valid] = np.maximum(image[:, valid], 1)  # DN 0 is reserved for no data
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


def wgs84_bounds(crs: str, bounds: tuple[float, float, float, float]) -> tuple[float, ...]:
    """Lon/lat bounds of a UTM rectangle (densified edges, so the box covers it)."""
    from pyproj import Transformer

    return tuple(Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform_bounds(*bounds))
