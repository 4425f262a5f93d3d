"""Hand-made fine-tuning run records for the evaluation tests (importable as ``runkit``).

The records have the layout :func:`s2ssl.finetune.fitting.execute_run` writes to
``<reports>/<task>/runs/<key>.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from s2ssl.classes import LANDCOVER_CLASSES
from s2ssl.finetune.plan import RunSpec, fraction_label

NAN = math.nan
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
K = len(LANDCOVER_CLASSES)


def confusion(counts: dict[tuple[int, int], int], k: int = K) -> list[list[int]]:
    """A ``k x k`` confusion matrix (rows: true class, columns: predicted class)."""
    cm = [[0] * k for _ in range(k)]
    for (true, pred), n in counts.items():
        cm[true][pred] = n
    return cm


SEG_CONFUSION = confusion({(0, 0): 5, (1, 1): 3, (1, 0): 1, (2, 2): 4})
# true-class totals 12 / 5 / 3 of 20 samples: always predicting class 0 scores 12 / 20 = 0.6
SCENE_CONFUSION = confusion({(0, 0): 10, (0, 1): 2, (1, 1): 4, (1, 0): 1, (2, 2): 3})


def seg_test(miou: float, **extra: Any) -> dict[str, Any]:
    """A segmentation test-metrics dict; missing headline metrics derive from ``miou``."""
    test: dict[str, Any] = {
        "miou": miou,
        "overall_accuracy": extra.pop("overall_accuracy", 0.9),
        "macro_f1": extra.pop("macro_f1", 0.5),
        "kappa": extra.pop("kappa", 0.4),
        **{f"iou.{name}": NAN for name in LANDCOVER_CLASSES},
        "confusion": SEG_CONFUSION,
    }
    test.update(extra)
    return test


def scene_test(balanced_accuracy: float, **extra: Any) -> dict[str, Any]:
    """A scene test-metrics dict scored ``balanced_accuracy`` (the headline); top-1 is 0.7 unless
    given, so a table or claim that reads top-1 instead of the headline shows."""
    test: dict[str, Any] = {
        "balanced_accuracy": balanced_accuracy,
        "top1": extra.pop("top1", 0.7),
        "macro_f1": extra.pop("macro_f1", 0.5),
        "kappa": extra.pop("kappa", 0.4),
        **{f"acc.{name}": 0.5 for name in LANDCOVER_CLASSES},
        "confusion": SCENE_CONFUSION,
    }
    test.update(extra)
    return test


def run(
    task: str,
    setting: str,
    init: str,
    protocol: str,
    fraction: float,
    test: dict[str, Any],
    *,
    n_train: int | None = None,
    wall_s: float = 2.0,
) -> dict[str, Any]:
    """One run record with the keys of ``s2ssl.finetune.fitting.execute_run``."""
    spec = RunSpec(task, setting, init, protocol, fraction)
    return {
        **asdict(spec),
        "key": spec.key,
        "fraction_label": fraction_label(fraction),
        "n_train": n_train if n_train is not None else max(1, round(200 * fraction)),
        "n_val": 20,
        "n_test": 20,
        "steps": 10,
        "best_step": 8,
        "val_score": 0.5,
        "val_metric": "balanced_accuracy" if task == "scene" else "miou",
        "wall_s": wall_s,
        "bands": ["B02", "B03", "B04"],
        "encoder": None if init == "random" else f"models/pretrain/{init}/encoder.pt",
        "encoder_sha256": None if init == "random" else "0" * 64,
        "pretrain_method": None if init == "random" else init,
        "history": [{"step": 8.0, "val_score": 0.5}],
        "test": test,
        "fingerprint": "f" * 64,
        "seed": 1234,
    }


def lc(init: str, fraction: float, miou: float, setting: str = "in_domain", **extra: Any):
    return run("landcover", setting, init, "finetune", fraction, seg_test(miou, **extra))


def ct(init: str, fraction: float, boundary: float, interior: float) -> dict[str, Any]:
    test = seg_test(0.5, **{"boundary.miou": boundary, "interior.miou": interior})
    return run("croptype", "in_domain", init, "finetune", fraction, test)


def sc(
    init: str, protocol: str, fraction: float, balanced: float, setting: str = "in_domain"
) -> dict[str, Any]:
    return run("scene", setting, init, protocol, fraction, scene_test(balanced))


def write_runs(runs_dir: Path, records: list[dict[str, Any]]) -> None:
    """Write the records as the finetune stage does (``<task>/runs/<key>.json``, NaN as NaN)."""
    for r in records:
        folder = runs_dir / r["task"] / "runs"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{r['key']}.json").write_text(json.dumps(r, indent=2), encoding="utf-8")


def strict_json(text: str) -> Any:
    """``json.loads`` that rejects NaN / Infinity (what other JSON readers do)."""

    def reject(token: str) -> Any:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=reject)
