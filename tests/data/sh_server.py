"""A small Sentinel Hub imitation on 127.0.0.1 that the real sentinelhub-py client talks to.

It serves the three endpoints s2ssl uses:

* ``POST /oauth/token`` — client-credentials grant; wrong credentials get 401 ``invalid_client``;
* ``POST /api/v1/catalog/1.0.0/search`` — STAC search over a deterministic acquisition schedule
  (one Sentinel-2 pass every ``revisit_days``, cloud cover per day from a hash, ESA-style product
  ids carrying the processing baseline), ``eo:cloud_cover <= x`` filters and paging via ``next``;
* ``POST /api/v1/process`` — parses the evalscript's inputs and outputs and answers with a TIFF
  (one response) or a tar of ``<id>.tif`` + ``userdata.json`` (several). Pixel values encode the
  acquisition: band B01 = 1000 + day of year (+ 1000 when the 04.00 offset applies and
  ``harmonizeValues`` is false), the other bands 500 + 100 × band position (+ offset); the top
  ``cloud_cover``-share of rows is cloud (SCL 9 / CLM 1).

Failures are injected per endpoint (``inject("process", [429, 500])``), latency can be added,
areas can be made empty, and every request is counted. Used by tests and by
``benchmarks/bench_sh_fetch.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import re
import tarfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

EPOCH = dt.date(2015, 7, 4)
"""First acquisition of the schedule."""

CLIENT_ID = "s2ssl-test-client"
CLIENT_SECRET = "very-secret-Zq8#kP2!value"  # must never show up in any s2ssl output


def default_cloud_cover(day: dt.date) -> float:
    """Scene cloud cover (percent) of an acquisition day: uniform 0..100 from a hash."""
    digest = hashlib.sha256(day.isoformat().encode()).digest()
    return round(int.from_bytes(digest[:4], "big") / 2**32 * 100.0, 2)


def baseline_of(day: dt.date) -> str:
    """The processing baseline a product of that day carries."""
    if day >= dt.date(2023, 1, 1):
        return "05.09"
    if day >= dt.date(2022, 1, 25):
        return "04.00"
    return "03.00"


def product_id(day: dt.date, collection: str) -> str:
    """An ESA-style product id (baseline in its ``_Nxxyy_`` part)."""
    level = "L2A" if collection.endswith("l2a") else "L1C"
    b = baseline_of(day).replace(".", "")
    stamp = day.strftime("%Y%m%d")
    return f"S2A_MSI{level}_{stamp}T101031_N{b}_R022_T33TVM_{stamp}T120000"


@dataclass
class Imitation:
    """The server's behaviour and counters (thread-safe)."""

    revisit_days: int = 5
    cloud_cover: Callable[[dt.date], float] = default_cloud_cover
    empty_areas: list[tuple[float, float, float, float]] = field(default_factory=list)
    """lon/lat boxes without any acquisition (e.g. the open sea)."""
    latency_s: float = 0.0
    """Added to every process request."""
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    counts: Counter[str] = field(default_factory=Counter)
    process_log: list[dict[str, Any]] = field(default_factory=list)
    _inject: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: set[str] = field(default_factory=set)

    def inject(self, endpoint: str, statuses: list[int]) -> None:
        """The next requests to ``endpoint`` (token, catalog, process) answer these statuses."""
        with self._lock:
            self._inject[endpoint].extend(statuses)

    def next_failure(self, endpoint: str) -> int | None:
        with self._lock:
            queue = self._inject[endpoint]
            return queue.popleft() if queue else None

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def acquisitions(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Every acquisition day of the schedule in ``[start, end]``."""
        first = (start - EPOCH).days
        k0 = max(0, -(-first // self.revisit_days))
        out = []
        k = k0
        while True:
            day = EPOCH + dt.timedelta(days=k * self.revisit_days)
            if day > end:
                return out
            out.append(day)
            k += 1

    def covered(self, bbox: list[float]) -> bool:
        """Whether a lon/lat bbox has data (not inside an empty area)."""
        lon = (bbox[0] + bbox[2]) / 2
        lat = (bbox[1] + bbox[3]) / 2
        return not any(a <= lon <= c and b <= lat <= d for a, b, c, d in self.empty_areas)


def _date(text: str) -> dt.date:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()


def _jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT-shaped token (the client reads its ``azp`` claim to cache sessions)."""
    text = json.dumps(claims)
    text += " " * (-len(text) % 3)  # base64 without padding, as the client decodes it
    payload = base64.b64encode(text.encode()).decode()
    return f"eyJhbGciOiJub25lIn0.{payload}.sig"


def _tiff(array: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, array, photometric="minisblack", planarconfig="contig")
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _error(self, status: int) -> None:
        headers = {"Retry-After": "0"} if status == 429 else None
        self._json(
            status, {"error": {"status": status, "reason": "injected", "message": "x"}}, headers
        )

    def _authorised(self) -> bool:
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.server.state.tokens:
            self._json(401, {"error": {"status": 401, "reason": "Unauthorized"}})
            return False
        return True

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        path = self.path.split("?")[0]
        if path == "/oauth/token":
            return self._token(state, body)
        endpoint = {"/api/v1/catalog/1.0.0/search": "catalog", "/api/v1/process": "process"}.get(
            path
        )
        if endpoint is None:
            return self._json(404, {"error": {"status": 404, "message": f"no {path}"}})
        state.count(f"{endpoint}_requests")
        failure = state.next_failure(endpoint)
        if failure is not None:
            state.count(f"{endpoint}_failed_{failure}")
            return self._error(failure)
        if not self._authorised():
            return None
        payload = json.loads(body or b"{}")
        if endpoint == "catalog":
            return self._catalog(state, payload)
        return self._process(state, payload)

    def _token(self, state: Imitation, body: bytes) -> None:
        state.count("token_requests")
        failure = state.next_failure("token")
        if failure is not None:
            return self._error(failure)
        form = urllib.parse.parse_qs(body.decode())
        ok = (
            form.get("grant_type") == ["client_credentials"]
            and form.get("client_id") == [state.client_id]
            and form.get("client_secret") == [state.client_secret]
        )
        if not ok:
            return self._json(
                401, {"error": "invalid_client", "error_description": "Invalid client credentials"}
            )
        token = _jwt({"azp": state.client_id, "n": len(state.tokens), "t": time.time_ns()})
        with state._lock:
            state.tokens.add(token)
        return self._json(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _catalog(self, state: Imitation, payload: dict[str, Any]) -> None:
        start_s, end_s = payload["datetime"].split("/")
        start, end = _date(start_s), _date(end_s)
        collection = payload["collections"][0]
        limit = int(payload.get("limit", 10))
        offset = int(payload.get("next") or 0)
        max_cc = 100.0
        match = re.search(r"eo:cloud_cover\s*<=?\s*([0-9.]+)", str(payload.get("filter", "")))
        if match:
            max_cc = float(match.group(1))
        features = []
        if state.covered(payload["bbox"]):
            for day in state.acquisitions(start, end):
                cc = state.cloud_cover(day)
                if cc <= max_cc:
                    features.append(
                        {
                            "type": "Feature",
                            "id": product_id(day, collection),
                            "properties": {
                                "datetime": f"{day.isoformat()}T10:10:31Z",
                                "eo:cloud_cover": cc,
                            },
                            "bbox": payload["bbox"],
                        }
                    )
        page = features[offset : offset + limit]
        more = offset + limit < len(features)
        context: dict[str, Any] = {"limit": limit, "returned": len(page)}
        if more:
            context["next"] = offset + limit
        state.count("catalog_pages")
        return self._json(200, {"type": "FeatureCollection", "features": page, "context": context})

    def _process(self, state: Imitation, payload: dict[str, Any]) -> None:
        if state.latency_s:
            time.sleep(state.latency_s)
        data = payload["input"]["data"][0]
        rng = data.get("dataFilter", {}).get("timeRange", {})
        start, end = _date(rng["from"]), _date(rng["to"])
        harmonize = data.get("processing", {}).get("harmonizeValues", True)
        max_cc = float(data.get("dataFilter", {}).get("maxCloudCoverage", 100.0))
        out = payload["output"]
        width, height = int(out["width"]), int(out["height"])
        script = payload["evalscript"]
        inputs = re.search(r"bands:\s*\[([^\]]*)\]", script)
        names = re.findall(r'"([A-Za-z0-9]+)"', inputs.group(1)) if inputs else []
        outputs = {
            m.group(1): (int(m.group(2)), m.group(3))
            for m in re.finditer(
                r'id:\s*"(\w+)",\s*bands:\s*(\d+),\s*sampleType:\s*"(\w+)"', script
            )
        }
        bbox = payload["input"]["bounds"].get("bbox")
        days = [d for d in state.acquisitions(start, end) if state.cloud_cover(d) <= max_cc]
        day = days[-1] if days else None
        with state._lock:
            state.process_log.append({"day": day, "bbox": bbox, "size": (width, height)})
        spectral = [n for n in names if re.fullmatch(r"B\d\d|B8A", n)]
        files: dict[str, bytes] = {}
        for ident, (n_bands, sample_type) in outputs.items():
            dtype = np.uint16 if sample_type == "UINT16" else np.uint8
            arr = np.zeros((height, width, n_bands), dtype)
            if day is not None:
                offset = 1000 if (baseline_of(day) >= "04.00" and not harmonize) else 0
                cloud_rows = round(height * state.cloud_cover(day) / 100.0)
                if ident == "bands":
                    for i, name in enumerate(spectral[:n_bands]):
                        value = 1000 + day.timetuple().tm_yday if name == "B01" else 500 + 100 * i
                        arr[:, :, i] = value + offset
                elif ident == "quality":
                    scl = "SCL" in names
                    arr[:, :, 0] = 4 if scl else 0
                    arr[:cloud_rows, :, 0] = 9 if scl else 1
                    if n_bands > 1:
                        arr[:, :, 1] = 1
            files[f"{ident}.tif"] = _tiff(arr)
        pu = f"{max(width * height / 512**2, 0.01) * len(spectral) / 3:.4f}"
        responses = payload["output"]["responses"]
        if len(responses) == 1:
            ident = responses[0]["identifier"]
            return self._send(
                200, files[f"{ident}.tif"], "image/tiff", {"x-processingunits-spent": pu}
            )
        userdata = json.dumps({"serviceVersion": "imitation", "normalizationFactor": 0.0001})
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, blob in [*files.items(), ("userdata.json", userdata.encode())]:
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        return self._send(200, buf.getvalue(), "application/x-tar", {"x-processingunits-spent": pu})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: Imitation


class ShImitation:
    """Run an :class:`Imitation` on 127.0.0.1 (a free port) in a background thread.

    ``with ShImitation() as sh: sh.base_url, sh.token_url, sh.state``.
    """

    def __init__(self, state: Imitation | None = None) -> None:
        self.state = state or Imitation()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.state = self.state
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return f"{self.base_url}/oauth/token"

    def env(self, client_secret: str = CLIENT_SECRET) -> dict[str, str]:
        """Environment variables pointing s2ssl at this server."""
        return {
            "SH_CLIENT_ID": self.state.client_id,
            "SH_CLIENT_SECRET": client_secret,
            "SH_BASE_URL": self.base_url,
            "SH_TOKEN_URL": self.token_url,
            "OAUTHLIB_INSECURE_TRANSPORT": "1",
        }

    def __enter__(self) -> ShImitation:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
