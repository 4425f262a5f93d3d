"""Benchmark the ``validate`` stage: samples profiled + validated per second.

Prints ONE JSON object on stdout; progress goes to stderr. Usage::

    python benchmarks/bench_validate.py                         # 10 000 landcover samples
    python benchmarks/bench_validate.py --dataset unlabelled --n 2000

The benchmark builds a dataset of ``--n`` samples by tiling the samples of an existing raw
dataset (``data/raw/<dataset>``, made by ``dvc repro fetch``; a small synthetic one is generated
when it is absent) with fresh sample ids, in a temporary directory, then times the three parts
of ``validate`` separately on it:

* ``profile``: the vectorised per-sample profile table (:func:`profile_dataset`);
* ``expectations``: the great-expectations suite on that table (ephemeral context, no Data
  Docs; the ~3 s import of great_expectations is reported separately as ``gx_import_s``);
* ``norm_stats``: exact per-band histograms of the accepted samples.

The page cache is warm (the data were just written): this is compute, not disk speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(f"[bench_validate] {message}", file=sys.stderr, flush=True)


def build(source: Path, out: Path, n: int) -> None:
    from s2ssl.data.store import RESERVED_COLUMNS, ArraySpec, DatasetWriter, open_dataset

    src = open_dataset(source)
    specs = list(src.specs.values())
    index = src.index.drop(columns=list(RESERVED_COLUMNS))
    with DatasetWriter(
        out, [ArraySpec(s.name, s.dtype, s.shape) for s in specs], attrs=src.attrs
    ) as w:
        done = 0
        while done < n:
            take = np.arange(min(len(src), n - done))
            rows = index.iloc[take].copy()
            rows["sample_id"] = [f"bench-{done + i:07d}" for i in range(len(take))]
            w.append({s.name: src.read_many(s.name, take) for s in specs}, rows)
            done += len(take)


def ensure_source(dataset: str, tmp: Path) -> Path:
    raw = REPO_ROOT / "data" / "raw" / dataset
    if (raw / "index.parquet").is_file():
        return raw
    log(f"{raw} absent: generating a small synthetic {dataset} dataset")
    from s2ssl.config import load_params
    from s2ssl.data.fetch import dataset_writer
    from s2ssl.data.sources.synthetic import source as synthetic_source

    params = load_params(REPO_ROOT / "params.yaml")
    with dataset_writer(params, dataset, tmp / "src") as writer:  # type: ignore[arg-type]
        for chunk in synthetic_source.generate(
            params.fetch.synthetic,
            dataset,
            params.seed,
            params.fetch.start_date,
            params.fetch.end_date,  # type: ignore[arg-type]
        ):
            writer.append(chunk.arrays, chunk.rows)
    return tmp / "src" / dataset


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", default="landcover", choices=["unlabelled", "landcover", "croptype"]
    )
    parser.add_argument("--n", type=int, default=10_000, help="samples in the benchmark dataset")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per part (best kept)")
    args = parser.parse_args()

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from s2ssl.config import load_params
    from s2ssl.data.stats import band_histograms, stats_from_histograms
    from s2ssl.data.store import open_dataset
    from s2ssl.validation.profile import band_names_of, label_arrays_of, profile_dataset

    params = load_params(REPO_ROOT / "params.yaml")
    with tempfile.TemporaryDirectory(prefix="bench_validate_") as tmp_name:
        tmp = Path(tmp_name)
        source = ensure_source(args.dataset, tmp)
        log(f"tiling {source} to {args.n} samples")
        t = time.perf_counter()
        build(source, tmp / "bench", args.n)
        build_s = time.perf_counter() - t
        store = open_dataset(tmp / "bench")
        t_dates = store.specs["image"].shape[0]

        t = time.perf_counter()
        from s2ssl.validation.expectations import Validator

        gx_import_s = time.perf_counter() - t

        def best(fn: Any) -> tuple[float, Any]:
            times, out = [], None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - t0)
            return min(times), out

        log("profile")
        profile_s, prof = best(
            lambda: profile_dataset(store, params.fetch.start_date, params.fetch.end_date)
        )
        log("expectations")
        runs = iter(range(1000))

        def expectations() -> Any:
            return Validator(params.validation).validate(
                f"bench{next(runs)}",
                prof,
                label_arrays=label_arrays_of(store),
                n_dates=t_dates,
                required_splits=sorted(prof["split"].unique()),
            )

        gx_s, outcome = best(expectations)
        log("norm stats")
        stats_s, _ = best(
            lambda: stats_from_histograms(
                band_histograms(store), band_names_of(store), params.validation.quantiles
            )
        )
    total = profile_s + gx_s + stats_s
    n = args.n
    return {
        "benchmark": "validate",
        "dataset": args.dataset,
        "n_samples": n,
        "n_dates": t_dates,
        "sample_shape": list(store.specs["image"].shape),
        "quarantined": len(outcome.sample_failures),
        "build_s": round(build_s, 2),
        "gx_import_s": round(gx_import_s, 2),
        "profile": {"s": round(profile_s, 3), "samples_per_s": round(n / profile_s, 1)},
        "expectations": {"s": round(gx_s, 3), "samples_per_s": round(n / gx_s, 1)},
        "norm_stats": {"s": round(stats_s, 3), "samples_per_s": round(n / stats_s, 1)},
        "total": {
            "s": round(total, 3),
            "samples_per_s": round(n / total, 1),
            "single_date_images_per_s": round(n * t_dates / total, 1),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
