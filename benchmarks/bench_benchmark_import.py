"""Benchmark the import of the standard benchmarks (``fetch.source: benchmark``) and their
validation, on downloads written at the published sizes.

Prints ONE JSON object on stdout; progress goes to stderr. Usage::

    python benchmarks/bench_benchmark_import.py                   # 200 / 200 / 8 samples
    python benchmarks/bench_benchmark_import.py --eurosat 40 --bigearthnet 40 --pastis 2

The downloads are written by the test suite's layout writers (``tests/benchkit.py``): EuroSAT
13-band 64 x 64 GeoTIFFs, BigEarthNet v2 patch folders of 12 single-band GeoTIFFs at 10 / 20 /
60 m (120 / 60 / 20 px) with ``metadata.parquet``, PASTIS ``T x 10 x 128 x 128`` int16 series
(``--pastis-dates`` dates, 61 by default: the longest PASTIS series). Measured per benchmark:
``fetch`` (list + read + write the store, quicklooks and reports) and ``validate`` (profile +
expectations + statistics) in samples per second, and the time the whole published dataset
would take at that rate (``est_full_s``: an extrapolation from this run, not a measurement;
the page cache is warm, so real disks may be slower).

``features``: the cost that dominates the frozen-encoder protocols (linear probe, kNN): global-
pooled ResNet-18 features per second (:func:`s2ssl.finetune.frozen.extract_features`, batches of
64, evaluation mode) at EuroSAT's and BigEarthNet's patch sizes with 12 bands, and the time one
pass over the whole published dataset would take (``est_full_pass_s``; the protocols make one
pass per init and replicate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(REPO_ROOT / "tests"))

FULL_SIZES = {"eurosat": 27_000, "bigearthnet": 549_488, "pastis": 2_433}
"""Samples in each published dataset (BigEarthNet v2: every patch, before the snow / cloud
exclusion)."""
BEN_TILE = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"


def log(message: str) -> None:
    print(f"[bench_benchmark_import] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Import + validation throughput of EuroSAT, BigEarthNet v2 and PASTIS downloads "
            "written at their published sizes. Prints one JSON object on stdout."
        )
    )
    parser.add_argument("--eurosat", type=int, default=200, help="EuroSAT patches (0: skip)")
    parser.add_argument("--bigearthnet", type=int, default=200, help="BigEarthNet patches")
    parser.add_argument("--pastis", type=int, default=8, help="PASTIS series (0: skip)")
    parser.add_argument("--pastis-dates", type=int, default=61, help="dates per PASTIS series")
    parser.add_argument(
        "--feature-images", type=int, default=256, help="images per frozen-feature timing (0: skip)"
    )
    return parser.parse_args(argv)


def _write(fmt: str, n: int, root: Path, dates: int) -> dict[str, Any]:
    """Write an ``n``-sample download of ``fmt`` under ``root``; its ``fetch.benchmark`` block."""
    import benchkit
    from s2ssl.data.sources.benchmark.eurosat import EUROSAT_CLASS_COUNTS

    if fmt == "eurosat":
        classes = tuple(EUROSAT_CLASS_COUNTS)
        per_class = max(1, -(-n // len(classes)))
        benchkit.write_eurosat(root, per_class=per_class, classes=classes)
        return {"path": str(root)}
    if fmt == "bigearthnet":
        splits = ("train", "validation", "test")
        rows = [
            {"patch_id": f"{BEN_TILE}_{k}_0", "labels": ["Arable land"], "split": splits[k % 3]}
            for k in range(n)
        ]
        for row in rows:
            benchkit.write_patch(root, row["patch_id"], step=100)
        benchkit.write_metadata(root / "metadata.parquet", rows)
        return {"path": str(root)}
    lengths = dict.fromkeys(range(1, n + 1), dates)
    folds = {pid: 1 + (pid - 1) % 5 for pid in lengths}
    benchkit.write_pastis(root, lengths, folds)
    return {"path": str(root)}


def measure(fmt: str, n: int, dates: int, tmp: Path) -> dict[str, Any]:
    """Write, import and validate ``n`` samples of ``fmt``; the timings."""
    import benchkit
    from s2ssl.config import load_params
    from s2ssl.data.fetch import fetch
    from s2ssl.data.store import open_dataset
    from s2ssl.validation.validate import validate

    root = tmp / fmt
    t0 = time.perf_counter()
    block = _write(fmt, n, root / "download", dates)
    written_s = time.perf_counter() - t0
    bands = "pastis" if fmt == "pastis" else "l2a"
    extra: dict[str, Any] = {"fetch.shard_size": 256}
    if fmt == "pastis":
        extra.update({"fetch.start_date": "2018-09-01", "fetch.end_date": "2019-12-31"})
    params = load_params(
        benchkit.benchmark_params(root / "p.yaml", fmt, block, bands=bands, **extra)
    )
    log(f"{fmt}: {n} samples written in {written_s:.1f} s; importing")
    t0 = time.perf_counter()
    result = fetch(params, root / "raw", root / "reports")
    fetch_s = time.perf_counter() - t0
    name = next(iter(result.datasets))
    imported = len(open_dataset(result.datasets[name]))
    log(f"{fmt}: {imported} imported in {fetch_s:.1f} s; validating")
    t0 = time.perf_counter()
    validate(params, root / "raw", root / "validated", root / "vreports")
    validate_s = time.perf_counter() - t0
    fetch_rate = imported / fetch_s
    validate_rate = imported / validate_s
    return {
        "samples": imported,
        "dataset": name,
        "fetch_s": round(fetch_s, 3),
        "fetch_samples_per_s": round(fetch_rate, 2),
        "validate_s": round(validate_s, 3),
        "validate_samples_per_s": round(validate_rate, 2),
        "full_samples": FULL_SIZES[fmt],
        "est_full_s": round(FULL_SIZES[fmt] / fetch_rate + FULL_SIZES[fmt] / validate_rate, 1),
        **({"dates_per_series": dates} if fmt == "pastis" else {}),
    }


def features(n: int, size: int) -> dict[str, Any]:
    """Frozen ResNet-18 features per second on ``n`` random 12-band ``size`` x ``size`` images."""
    import numpy as np
    import torch

    from s2ssl.bands import BAND_PRESETS
    from s2ssl.finetune.data import TaskSplit
    from s2ssl.finetune.frozen import extract_features
    from s2ssl.models.downstream import SceneNet
    from s2ssl.models.resnet import ResNetEncoder

    bands = BAND_PRESETS["l2a"]
    model = SceneNet(ResNetEncoder(18, len(bands)), bands, ("a", "b"), [0.0] * 12, [1.0] * 12)
    image = torch.randint(0, 3000, (n, 1, len(bands), size, size), dtype=torch.int16)
    split = TaskSplit(
        image=image,
        doy=torch.zeros((n, 1), dtype=torch.int64),
        label=torch.zeros(n, dtype=torch.int64),
        ids=tuple(map(str, range(n))),
        strata=np.zeros(n, np.int64),
        bands=bands,
    )
    with torch.no_grad():
        extract_features(model, split.subset(range(min(n, 64))))  # warm-up
        t0 = time.perf_counter()
        extract_features(model, split)
        wall = time.perf_counter() - t0
    return {"images": n, "size": size, "s": round(wall, 3), "images_per_s": round(n / wall, 1)}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    counts = {"eurosat": args.eurosat, "bigearthnet": args.bigearthnet, "pastis": args.pastis}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_benchmark_import_") as tmp:
        for fmt, n in counts.items():
            if n > 0:
                results[fmt] = measure(fmt, n, args.pastis_dates, Path(tmp))
    if args.feature_images > 0:
        for fmt, size in (("eurosat", 64), ("bigearthnet", 120)):
            log(f"frozen ResNet-18 features at {size} x {size}")
            timing = features(args.feature_images, size)
            timing["est_full_pass_s"] = round(FULL_SIZES[fmt] / timing["images_per_s"], 1)
            results.setdefault("features", {})[fmt] = timing
    print(
        json.dumps(
            {
                "benchmark": "benchmark_import",
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                },
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
