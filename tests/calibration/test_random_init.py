"""Random-init runs: what their fingerprint covers; a stored run is reused, not retrained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from calibkit import write_calibrate_params

from s2ssl.calibration import random_init, run_calibration
from s2ssl.calibration.random_init import execute_run, run_fingerprint, run_key, run_spec
from s2ssl.config import load_params, override_params
from s2ssl.finetune.data import load_task_data
from s2ssl.finetune.plan import RunSpec

ONE_RUN = {
    "calibrate.tasks": ["croptype"],
    "finetune.fractions": [1.0],
    "calibrate.seasonal_dates": 2,
}
"""The cheapest calibration: the crop-type network (a 3-D U-Net of width 4), one fraction."""


def test_run_keys_name_the_task_and_the_fraction() -> None:
    assert run_key("landcover", 0.01) == "landcover.random.f1"
    assert run_key("scene", 1.0) == "scene.random.f100"
    assert run_spec("croptype", 0.1) == RunSpec("croptype", "in_domain", "random", "finetune", 0.1)


def test_the_fingerprint_covers_what_decides_a_run(tiny_validated: Path, tmp_path: Path) -> None:
    params = load_params(write_calibrate_params(tmp_path / "params.yaml"))
    data = load_task_data("croptype", tiny_validated, "in_domain", None)
    spec = run_spec("croptype", 1.0)
    base = run_fingerprint(params, spec, data, False)

    def changed(overrides: dict[str, Any]) -> bool:
        return run_fingerprint(override_params(params, overrides), spec, data, False) != base

    assert changed({"finetune.croptype.lr": 0.01})
    assert changed({"finetune.eval_batch_size": 3})
    assert changed({"finetune.min_train_samples": 3})
    assert changed({"seed": 7})
    assert changed({"holdout_region": "south_pampa"})
    assert not changed({"finetune.croptype.inits": ["random"]})  # always random init here
    assert not changed({"finetune.landcover.lr": 0.01})  # another task's settings
    assert not changed({"calibrate.pixel_classifier.max_iter": 3})  # baselines are recomputed
    assert run_fingerprint(params, spec, data, True) != base  # carries the zero-shot score
    assert run_fingerprint(params, run_spec("croptype", 0.5), data, False) != base


def test_only_random_init_fine_tunes_are_run(tiny_validated: Path, tmp_path: Path) -> None:
    params = load_params(write_calibrate_params(tmp_path / "params.yaml"))
    data = load_task_data("croptype", tiny_validated, "in_domain", None)
    with pytest.raises(ValueError, match="random-init fine-tunes only"):
        execute_run(params, RunSpec("croptype", "in_domain", "cscl", "finetune", 1.0), data, "x")


def test_a_stored_run_with_the_same_fingerprint_is_not_trained_again(
    tiny_validated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = load_params(write_calibrate_params(tmp_path / "params.yaml", ONE_RUN))
    reports = tmp_path / "reports"
    first = run_calibration(params, tiny_validated, reports)
    assert first.executed == ["croptype.random.f100"] and first.reused == []

    real = random_init.fit_run
    calls: list[str] = []

    def counted(p: Any, spec: RunSpec, *args: Any, **kwargs: Any) -> Any:
        calls.append(spec.key)
        return real(p, spec, *args, **kwargs)

    monkeypatch.setattr(random_init, "fit_run", counted)
    again = run_calibration(params, tiny_validated, reports)
    assert calls == [] and again.reused == ["croptype.random.f100"] and again.executed == []
    assert again.summary == first.summary  # the baselines are recomputed, deterministically

    path = reports / "runs" / "croptype.random.f100.json"
    path.write_text("{not json", encoding="utf-8")  # e.g. a file truncated by hand
    third = run_calibration(params, tiny_validated, reports)
    assert calls == ["r0.in_domain.random.finetune.f100"] and third.executed == [
        "croptype.random.f100"
    ]
    assert (
        json.loads(path.read_text(encoding="utf-8"))["fingerprint"]
        == (third.records["croptype.random.f100"]["fingerprint"])
    )
