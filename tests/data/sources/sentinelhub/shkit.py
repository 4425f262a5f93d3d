"""Helpers of the Sentinel Hub source tests: params pointed at the imitation, one fetch."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sh_server import Imitation

from s2ssl.config import Params, parse_params
from s2ssl.data import fetch as fetch_module
from s2ssl.data.sources import sampling
from s2ssl.data.sources.sentinelhub.source import SentinelHubImagery
from testkit import read_repo_params

BBOX = [14.0, 45.9, 14.6, 46.3]  # Slovenia, one UTM zone


def sh_params(tmp_path: Path, datasets: list[str], **sentinelhub: Any) -> Params:
    """The repo's params with source sentinelhub, 16 px patches and fast retries."""
    return parse_params(sh_raw(tmp_path, datasets, **sentinelhub))


def sh_raw(tmp_path: Path, datasets: list[str], **sentinelhub: Any) -> dict[str, Any]:
    """:func:`sh_params` as a plain mapping (to write a params.yaml for the CLI)."""
    raw = read_repo_params()
    raw["fetch"]["source"] = "sentinelhub"
    raw["fetch"]["datasets"] = datasets
    raw["fetch"]["shard_size"] = 4
    cfg: dict[str, Any] = {
        "max_cloud_coverage": 0.5,
        "concurrency": 4,
        "cache_dir": str(tmp_path / "cache"),
        "regions": [{"name": "slovenia", "bbox": BBOX, "locations": 3}],
        "unlabelled": {"patch_size": 16},
        "landcover": {"patch_size": 16},
        "croptype": {
            "patch_size": 16,
            "period_start": "2021-03-01",
            "period_end": "2021-10-31",
            "n_dates": 5,
        },
        "retry": {"backoff_s": 0.001, "max_backoff_s": 0.01},
    }
    cfg.update(sentinelhub)
    raw["fetch"]["sentinelhub"] = cfg
    return raw


def run(params: Params, tmp_path: Path, **kwargs: Any) -> fetch_module.FetchResult:
    source = SentinelHubImagery(params, sleep=kwargs.pop("sleep", lambda s: None))
    return fetch_module.fetch(
        params, tmp_path / "raw", tmp_path / "reports", source=source, **kwargs
    )


def expected_pick(state: Imitation, window: sampling.Window, max_cc: float) -> dt.date | None:
    days = [
        d for d in state.acquisitions(window.start, window.end) if state.cloud_cover(d) <= max_cc
    ]
    return max(days) if days else None
