"""benchmarks/bench_benchmark_import.py runs and prints one JSON object with consistent figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_benchmark_import.py"


@pytest.mark.slow
def test_bench_benchmark_import_prints_consistent_json() -> None:
    done = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--eurosat", "10", "--bigearthnet", "3", "--pastis", "1",
            "--pastis-dates", "5", "--feature-images", "8",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)["results"]
    assert report["eurosat"]["samples"] == 10 and report["eurosat"]["dataset"] == "scene"
    assert report["bigearthnet"]["samples"] == 3 and report["pastis"]["dataset"] == "croptype"
    for fmt in ("eurosat", "bigearthnet", "pastis"):
        r = report[fmt]
        assert r["fetch_samples_per_s"] == pytest.approx(r["samples"] / r["fetch_s"], rel=0.01)
        expected = r["full_samples"] / r["fetch_samples_per_s"]
        expected += r["full_samples"] / r["validate_samples_per_s"]
        assert r["est_full_s"] == pytest.approx(expected, rel=0.01)
    assert report["features"]["bigearthnet"]["size"] == 120
    assert report["features"]["eurosat"]["images_per_s"] > 0
