"""Benchmark ``fetch.source: sentinelhub`` download throughput against the local imitation.

The Sentinel Hub imitation of the tests (``tests/data/sh_server.py``) runs on 127.0.0.1 with an
added latency per Process API request (a stand-in for the service's processing time and the
network); the real sentinelhub client fetches the ``unlabelled`` dataset (SeCo, 5 scenes per
location) at each concurrency, each run with a fresh cache. Prints ONE JSON object on stdout::

    python benchmarks/bench_sh_fetch.py                      # 12 locations, 50 ms, 1/4/16
    python benchmarks/bench_sh_fetch.py --locations 24 --latency-ms 100 --concurrency 1 8 32

Measured per concurrency: ``scenes_per_s`` of the download phase (Process API requests, decoding
and cache writes), ``end_to_end_s`` (catalog searches + downloads + reading the cache back) and
``speedup`` over the first concurrency. With latency L and concurrency c the ceiling is about
c / L scenes/s until the client's own per-scene cost dominates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "data"))
sys.path.insert(0, str(REPO_ROOT / "tests"))


def log(message: str) -> None:
    print(f"[bench_sh_fetch] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locations", type=int, default=12, help="SeCo locations (x5 scenes)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="per process request")
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    return parser.parse_args(argv)


@contextmanager
def timed_phases(times: dict[str, float]) -> Iterator[Any]:
    """A progress factory recording when each phase (search, download) starts and ends."""

    @contextmanager
    def factory(description: str, total: int) -> Iterator[Any]:
        start = time.perf_counter()
        yield lambda n: None
        times[description.split()[0]] = time.perf_counter() - start

    yield factory


def run_once(args: argparse.Namespace, concurrency: int, root: Path) -> dict[str, Any]:
    from sentinelhub import SentinelHubDownloadClient

    from conftest import read_repo_params
    from s2ssl.config import parse_params
    from s2ssl.data.sources.sentinelhub.source import SentinelHubImagery

    raw = read_repo_params()
    raw["fetch"]["source"] = "sentinelhub"
    raw["fetch"]["datasets"] = ["unlabelled"]
    raw["fetch"]["sentinelhub"] = {
        "max_cloud_coverage": 0.9,
        "concurrency": concurrency,
        "cache_dir": str(root / f"cache-{concurrency}"),
        "regions": [
            {"name": "bench", "bbox": [14.0, 45.9, 14.6, 46.3], "locations": args.locations}
        ],
        "unlabelled": {"patch_size": args.patch_size},
    }
    params = parse_params(raw)
    SentinelHubDownloadClient.clear_cache()
    source = SentinelHubImagery(params)
    times: dict[str, float] = {}
    start = time.perf_counter()
    with timed_phases(times) as progress:
        n_samples = sum(len(chunk.rows) for chunk in source.chunks("unlabelled", progress))
    total = time.perf_counter() - start
    report = source.report["unlabelled"]
    scenes = report["scenes_downloaded"]
    return {
        "concurrency": concurrency,
        "samples": n_samples,
        "scenes": scenes,
        "download_s": round(times["download"], 3),
        "scenes_per_s": round(scenes / times["download"], 2),
        "search_s": round(times["search"], 3),
        "end_to_end_s": round(total, 3),
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from sh_server import Imitation, ShImitation

    with ShImitation(Imitation(latency_s=args.latency_ms / 1000.0)) as server:
        os.environ.update(server.env())
        results = []
        with tempfile.TemporaryDirectory(prefix="bench_sh_fetch-") as tmp:
            for c in args.concurrency:
                log(f"concurrency {c} ...")
                results.append(run_once(args, c, Path(tmp)))
                log(f"  {results[-1]['scenes_per_s']} scenes/s")
    base = results[0]["scenes_per_s"]
    for r in results:
        r["speedup"] = round(r["scenes_per_s"] / base, 2)
    print(
        json.dumps(
            {
                "benchmark": "sentinelhub fetch throughput against the local imitation",
                "latency_ms": args.latency_ms,
                "locations": args.locations,
                "scenes_per_location": 5,
                "patch_size": args.patch_size,
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
