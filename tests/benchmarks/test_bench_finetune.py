"""benchmarks/bench_finetune.py runs and prints one JSON object with consistent figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_finetune.py"


@pytest.mark.slow
def test_bench_finetune_prints_consistent_json() -> None:
    done = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--tasks", "landcover", "scene", "--steps", "2",
            "--warmup", "1", "--fit-steps", "2", "--val-size", "2", "--batch-size", "2",
            "--crop-size", "32",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["benchmark"] == "finetune" and set(report["tasks"]) == {"landcover", "scene"}
    landcover = report["tasks"]["landcover"]
    assert landcover["input"] == [1, 12, 32, 32] and landcover["eval_size"][-1] == 64
    for r in report["tasks"].values():
        assert r["batch_size"] == 2
        for key in ("model_step_s", "task_step_s"):
            lo, hi = r[f"{key}_min_max"]
            assert lo <= r[key] <= hi
        assert r["augmentation_share"] == pytest.approx(
            1 - r["model_step_s"] / r["task_step_s"], abs=2e-4
        )
        assert r["loop_share"] == pytest.approx(1 - r["task_step_s"] / r["fit_step_s"], abs=2e-4)
        assert r["samples_per_s"] == pytest.approx(2 / r["task_step_s"], rel=0.01)


def test_bench_finetune_refuses_a_fit_without_validation() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--fit-steps", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--fit-steps must be at least 2" in done.stderr
