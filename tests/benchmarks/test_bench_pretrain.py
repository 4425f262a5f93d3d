"""benchmarks/bench_pretrain.py runs and prints one JSON object with consistent figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pretrain.py"


@pytest.mark.slow
def test_bench_pretrain_prints_consistent_json() -> None:
    done = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--methods", "moco", "cscl", "--steps", "2",
            "--warmup", "1", "--batch-size", "2", "--matmul-size", "256", "--channels-last", "on",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["benchmark"] == "pretrain" and report["device"] == "cpu"
    peak = report["matmul_peak_gflops_per_s"]
    assert peak > 0
    moco, cscl = report["methods"]["moco"], report["methods"]["cscl"]
    assert moco["channels_last"] is True and cscl["channels_last"] is False  # 3-D U-Net keeps NCDHW
    for r in (moco, cscl):
        assert r["batch_size"] == 2 and r["flops_per_step"] > 0
        lo, hi = r["step_s_min_max"]
        assert lo <= r["step_s"] <= hi
        assert abs(r["samples_per_s"] - 2 / r["step_s"]) <= 0.01 * 2 / r["step_s"] + 0.05
        achieved = r["flops_per_step"] / r["step_s"] / 1e9
        assert abs(r["achieved_gflops_per_s"] - achieved) / achieved < 0.01
        assert abs(r["ratio_to_matmul_peak"] - r["achieved_gflops_per_s"] / peak) < 0.01
