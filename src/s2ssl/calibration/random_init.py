"""One random-init calibration run: a fine-tune exactly as the ``finetune`` stage would train
``RunSpec(task, "in_domain", "random", "finetune", fraction)``, scored once on test, with its
plateau statistics and (at the largest fraction, with a held-out region) its zero-shot score on
the held-out region's test split.

The record of a run is stored as ``runs/<key>.json`` (key ``<task>.random.f<pct>``) with the
fingerprint of everything that determines it (:func:`run_fingerprint`); a stored record with the
same fingerprint is reused instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any, Final

import lightning
import torch

import s2ssl
from s2ssl.calibration.curves import plateau_stats
from s2ssl.config import Params
from s2ssl.finetune.data import TaskData
from s2ssl.finetune.fitting import fit_run
from s2ssl.finetune.plan import RunSpec, fraction_label
from s2ssl.finetune.train import score
from s2ssl.taskspec import task_spec
from s2ssl.training.resume import fingerprint_of

__all__ = [
    "NO_ENCODERS",
    "RUN_CODE",
    "code_digest",
    "execute_run",
    "load_record",
    "run_fingerprint",
    "run_key",
    "run_spec",
]

NO_ENCODERS: Final[Path] = Path("calibration-never-loads-pretrained-encoders")
"""The encoder directory handed to the fine-tuning code: random init never reads it."""

RUN_CODE: Final[tuple[str, ...]] = (
    "bands.py",
    "classes.py",
    "seeding.py",
    "taskspec.py",
    "data",
    "finetune",
    "models",
    "training",
)
"""The parts of the ``s2ssl`` package (relative to it) whose code decides a run's result."""


def run_spec(task: str, fraction: float) -> RunSpec:
    """The fine-tuning run of random init at ``fraction`` in domain."""
    return RunSpec(task, "in_domain", "random", "finetune", fraction)


def run_key(task: str, fraction: float) -> str:
    """``<task>.random.f<pct>``: the run's file name in ``runs/`` and its summary prefix."""
    return f"{task}.random.f{fraction_label(fraction)}"


@cache
def code_digest() -> str:
    """SHA-256 of the source of :data:`RUN_CODE` and the torch / Lightning versions: a stored
    run is not reused once the code that trained it changed."""
    root = Path(s2ssl.__file__).parent
    digest = hashlib.sha256(f"torch {torch.__version__} L {lightning.__version__}".encode())
    for part in RUN_CODE:
        path = root / part
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def run_fingerprint(params: Params, spec: RunSpec, data: TaskData, zero_shot: bool) -> str:
    """SHA-256 of everything a run's record depends on: its spec, the params the fine-tune
    reads (``seed``, ``bands``, ``holdout_region``, ``finetune.<task>`` without its ``inits``
    and the shared ``finetune`` keys), the data, whether it carries the zero-shot score, the
    code."""
    ft = params.finetune
    task_config = ft.task_config(spec.task).model_dump(mode="json")
    task_config.pop("inits", None)  # calibration always trains random init
    record = {
        "spec": asdict(spec),
        "seed": params.seed,
        "bands": list(params.band_names),
        "holdout_region": params.holdout_region,
        "task_config": task_config,
        "min_train_samples": ft.min_train_samples,
        "accelerator": ft.accelerator,
        "devices": ft.devices,
        "precision": ft.precision,
        "deterministic": ft.deterministic,
        "torch_threads": ft.torch_threads,
        "eval_batch_size": ft.eval_batch_size,
        "data": data.manifest.get("raw_fingerprint") or data.manifest,
        "zero_shot": zero_shot,
        "code": code_digest(),
    }
    return fingerprint_of(record)


def load_record(path: Path) -> dict[str, Any] | None:
    """A stored run record, or ``None`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _per_class(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    return {
        k.removeprefix(prefix): float(v)
        for k, v in metrics.items()
        if k.startswith(prefix) and isinstance(v, int | float)
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def execute_run(
    params: Params,
    spec: RunSpec,
    data: TaskData,
    fingerprint: str,
    transfer: Callable[[], TaskData] | None = None,
) -> dict[str, Any]:
    """Fine-tune random init for ``spec``, score it on test and return its record.

    ``transfer``: loads the held-out region's data; given, the trained model is also scored on
    its test split without any adaptation (``zero_shot``).

    Raises:
        ValueError: ``spec`` is not a random-init fine-tune (calibration never loads encoders).
    """
    if spec.init != "random" or spec.protocol != "finetune":
        raise ValueError(f"calibration trains random-init fine-tunes only, not {spec}")
    tspec = task_spec(spec.task)
    metric = tspec.headline
    batch = params.finetune.eval_batch_size
    started = time.perf_counter()
    fitted = fit_run(params, spec, data, NO_ENCODERS)
    if fitted.info.transferred or fitted.info.encoder is not None:  # pragma: no cover - guard
        raise ValueError(f"{spec.key} loaded pre-trained weights; calibration must not")
    test, _ = score(fitted.model, data.test, batch_size=batch)
    test_score = float(test[metric])  # type: ignore[arg-type]
    history = [dict(row) for row in fitted.fit.history]
    stats = plateau_stats(history, metric)
    zero_shot: dict[str, Any] | None = None
    if transfer is not None:
        holdout = transfer()
        zs, _ = score(fitted.model, holdout.test, batch_size=batch)
        zs_score = float(zs[metric])  # type: ignore[arg-type]
        zero_shot = {
            "region": params.holdout_region,
            "score": zs_score,
            "drop": test_score - zs_score,
            "n_test": len(holdout.test),
            "per_class": _per_class(zs, tspec.class_prefix),
            "test": zs,
        }
    return {
        "key": run_key(spec.task, spec.fraction),
        **asdict(spec),
        "fraction_label": fraction_label(spec.fraction),
        "metric": metric,
        "test_score": test_score,
        "per_class": _per_class(test, tspec.class_prefix),
        "test": test,
        "val_score": float(fitted.fit.best_val),
        "steps": int(fitted.fit.steps),
        "best_step": stats.best_step,
        "last_step": stats.last_step,
        "val_gain_second_half": _finite(stats.val_gain_second_half),
        "history": history,
        "zero_shot": zero_shot,
        "n_train": len(fitted.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "seed": fitted.seed,
        "wall_s": time.perf_counter() - started,
        "fingerprint": fingerprint,
    }
