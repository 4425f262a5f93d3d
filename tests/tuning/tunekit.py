"""Helpers of the tuning tests: a tiny ``tune`` section on the tiny params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2ssl.config import set_dotted
from testkit import TINY_SIZES, read_repo_params, write_params

TINY_TUNE: dict[str, Any] = {
    "study_name": "tiny",
    "task": "croptype",  # the cheapest network of the tiny world (a 3-D U-Net of width 4)
    "init": "random",
    "fraction": 1.0,
    "n_trials": 4,
    "n_startup_trials": 2,
    "include_current": True,
    "pruner": {"enabled": True, "n_startup_trials": 2, "n_warmup_steps": 0, "interval_steps": 1},
    "fixed": {},
    "space": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "batch_size": {"type": "categorical", "choices": [2, 4, 8]},
    },
}


def write_tune_params(path: Path, **tune: Any) -> Path:
    """The tiny params (2-step fine-tunes, one torch thread) with a tiny `tune` section (the repo's
    `tune` section with :data:`TINY_TUNE` and ``tune`` applied)."""
    raw = read_repo_params()
    for key, value in {**TINY_SIZES, "finetune.torch_threads": 1}.items():
        set_dotted(raw, key, value)
    raw["tune"] = {**raw["tune"], **TINY_TUNE, **tune}
    return write_params(path, raw)
