"""benchmarks/gpu_check.sh / gpu_check.py: the CPU fallback prints (and keeps) one JSON object
with consistent figures; the DDP section runs through Lightning with 2 gloo processes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
METHODS = ("seco", "moco", "moco_tp", "dense", "cscl")
TINY = ["--steps", "2", "--warmup", "1", "--batch-size", "2", "--matmul-size", "512"]


def _run_sh(out: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_OUT": str(out)}
    return subprocess.run(
        ["bash", str(BENCH / "gpu_check.sh"), *args, "--device", "cpu"],
        capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip


def _run_py(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py"), "--device", "cpu", *args],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_cpu_fallback_prints_and_keeps_consistent_json(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "gpu_check.json"
    done = _run_sh(out, *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert json.loads(out.read_text()) == report  # kept as printed, no temp file left
    assert [p.name for p in out.parent.iterdir()] == ["gpu_check.json"]

    assert report["benchmark"] == "gpu_check"
    assert report["device"] == "cpu" and report["fallback"] is True
    assert report["precision"] == "fp32" and report["ok"] is True and report["complete"] is True
    assert report["errors"] == [] and report["skipped"] == []
    assert report["versions"]["torch"] and report["versions"]["cuda"] is None
    assert report["settings"]["steps"] == 2 and report["settings"]["batch_size"] == 2

    peak = report["peak"]
    assert peak["dtype"] == "float32" and peak["matmul"] == [512, 512, 512]
    assert _positive(peak["flops_per_s"])
    assert peak["flops_per_s"] / 1e12 == pytest.approx(
        max(peak["before_after_tflops_per_s"]), abs=1e-3
    )

    assert set(report["methods"]) == set(METHODS)
    for name, r in report["methods"].items():
        for key in ("step_s", "samples_per_s", "flops_per_step", "achieved_flops_per_s", "mfu"):
            assert _positive(r[key]), (name, key, r[key])
        assert r["batch_size"] == 2 and r["steps"] == 2 and r["warmup_steps"] == 1
        assert r["samples_per_s"] == pytest.approx(2 / r["step_s"], rel=1e-3, abs=0.01)  # rounding
        assert r["achieved_flops_per_s"] == pytest.approx(
            r["flops_per_step"] / r["step_s"], rel=1e-3
        )
        assert r["mfu"] == pytest.approx(r["achieved_flops_per_s"] / peak["flops_per_s"], abs=1e-4)
        assert 0 < r["mfu"] < 1.5
        # the stage's channels-last rule: 2-D nets yes (pretrain.channels_last: true), 3-D U-Net no
        assert r["channels_last"] is (name != "cscl")
    # the shapes of params.yaml's synthetic world: 5 dates of 64 px, CSCL 16 dates of 32 px
    assert report["methods"]["seco"]["input"] == [5, 12, 64, 64]
    assert report["methods"]["cscl"]["input"] == [16, 12, 32, 32]
    assert report["ddp"] == {"skipped": "no GPU (CPU fallback)"}

    pred = report["predict"]
    assert pred["raster"] == [13, 256, 256] and pred["pixel_area_km2"] == pytest.approx(6.5536)
    assert pred["area_km2"] == pytest.approx(pred["pixel_area_km2"], abs=1e-3)
    assert _positive(pred["km2_per_s"]) and _positive(pred["seconds"])
    assert pred["km2_per_s"] == pytest.approx(pred["area_km2"] / pred["seconds"], rel=0.02)
    assert 0 < pred["model_fraction"] <= 1

    # FLOPs per step do not depend on the run (the number of steps, the augmentation seeds)
    again = _run_py("--methods", "dense", "seco", "--steps", "1", "--warmup", "0",
                    "--batch-size", "2", "--matmul-size", "256", "--skip-predict")  # fmt: skip
    for name in ("dense", "seco"):
        assert again["methods"][name]["flops_per_step"] == report["methods"][name]["flops_per_step"]
    assert again["predict"] == {"skipped": "--skip-predict"}


def test_gpu_check_sh_refuses_bad_arguments_and_keeps_the_old_json(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    out.write_text('{"old": true}')
    done = _run_sh(out, "--steps", "0", timeout=120)
    assert done.returncode == 2 and "--steps must be >= 1" in done.stderr
    assert done.stdout == "" and json.loads(out.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["gpu_check.json"]


@pytest.mark.slow
def test_ddp_section_runs_lightning_ddp_with_two_gloo_processes() -> None:
    report = _run_py("--methods", "cscl", "--steps", "1", "--warmup", "1", "--batch-size", "2",
                     "--matmul-size", "256", "--skip-predict", "--ddp-devices", "2",
                     "--ddp-steps", "2")  # fmt: skip
    ddp = report["ddp"]
    assert report["ok"] is True, report["errors"]
    assert ddp["method"] == "seco" and ddp["devices"] == 2 and ddp["steps"] == 2
    assert ddp["batch_size_per_device"] == 2 and ddp["precision"] == "32-true"
    for key in ("samples_per_s_1", "samples_per_s", "step_s_1", "step_s"):
        assert _positive(ddp[key]), key
    assert ddp["samples_per_s"] == pytest.approx(2 * 2 / ddp["step_s"], rel=0.01)
    assert ddp["scaling_efficiency"] == pytest.approx(
        ddp["samples_per_s"] / (2 * ddp["samples_per_s_1"]), abs=2e-3
    )
