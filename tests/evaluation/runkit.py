"""Hand-made fine-tuning runs for the evaluation tests (importable as ``runkit``).

A run is what :func:`s2ssl.finetune.fitting.execute_run` and the finetune stage write: the
record ``<reports>/<task>/runs/<key>.json`` and its per-test-sample confusion matrices
``<key>.samples.npz``. Here every test sample's confusion matrix is built from a *quality* (the
share of its pixels / tiles predicted right), so an arm's score and the effect between two arms
are known by construction; the test samples' difficulty is shared by every arm and replicate
(the same test images), as in a real run.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from s2ssl.classes import ClassSet
from s2ssl.finetune.plan import RunSpec, fraction_label
from s2ssl.finetune.store import save_samples
from s2ssl.stats import score_from_confusion
from s2ssl.synthetic_vocabulary import LANDCOVER_CLASSES

NAN = math.nan
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
K = len(LANDCOVER_CLASSES)
N_TEST = 16
PIXELS = 40


def _difficulty(n: int) -> np.ndarray:
    """Per-test-sample offsets of the quality, the same for every arm (fixed seed)."""
    return np.random.default_rng(12345).normal(0.0, 0.08, n)


def segmentation_confusions(
    quality: float, seed: int, *, n: int = N_TEST, k: int = K, pixels: int = PIXELS
) -> np.ndarray:
    """``(n, k, k)``: sample ``i`` has ``pixels`` of class ``i % k`` and of ``(i + 1) % k``;
    each pixel is right with probability ``quality`` + the sample's difficulty offset (else
    predicted as the next class)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, k, k), dtype=np.int64)
    offsets = _difficulty(n)
    for i in range(n):
        p = float(np.clip(quality + offsets[i], 0.0, 1.0))
        for c in (i % k, (i + 1) % k):
            right = int(rng.binomial(pixels, p))
            out[i, c, c] += right
            out[i, c, (c + 1) % k] += pixels - right
    return out


def scene_confusions(quality: float, seed: int, *, n: int = 60, k: int = 3) -> np.ndarray:
    """``(n, k, k)`` one-hot: scene ``i`` of class ``i % k``, right with probability
    ``quality`` + its difficulty offset."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, k, k), dtype=np.int64)
    offsets = _difficulty(n)
    for i in range(n):
        truth = i % k
        right = rng.random() < float(np.clip(quality + offsets[i], 0.0, 1.0))
        out[i, truth, truth if right else (truth + 1) % k] = 1
    return out


def _test_metrics(task: str, parts: dict[str, np.ndarray]) -> dict[str, Any]:
    total = parts["all"].sum(axis=0)
    metrics = ("balanced_accuracy", "top1", "macro_f1", "kappa") if task == "scene" else (
        "miou", "overall_accuracy", "macro_f1", "kappa"
    )  # fmt: skip
    test: dict[str, Any] = {m: float(score_from_confusion(total, m)) for m in metrics}
    for part in ("boundary", "interior"):
        if part in parts:
            test[f"{part}.miou"] = float(score_from_confusion(parts[part].sum(axis=0), "miou"))
    test["confusion"] = total.tolist()
    return test


def run(
    task: str,
    setting: str,
    init: str,
    protocol: str,
    fraction: float,
    replicate: int,
    parts: dict[str, np.ndarray],
    *,
    wall_s: float = 2.0,
) -> dict[str, Any]:
    """One run record with the keys of ``s2ssl.finetune.fitting.execute_run`` (plus its parts,
    popped by :func:`write_runs`)."""
    spec = RunSpec(task, setting, init, protocol, fraction, replicate)
    random = init in ("random", "random_b")
    return {
        **asdict(spec),
        "key": spec.key,
        "arm": spec.arm,
        "fraction_label": fraction_label(fraction),
        "n_train": max(1, round(200 * fraction)),
        "n_val": 20,
        "n_test": int(parts["all"].shape[0]),
        "steps": 10,
        "best_step": 8,
        "val_score": 0.5,
        "val_metric": "balanced_accuracy" if task == "scene" else "miou",
        "wall_s": wall_s,
        "bands": ["B02", "B03", "B04"],
        "classes": ClassSet.from_names(
            [f"class{i}" for i in range(parts["all"].shape[-1])]
        ).to_json(),
        "encoder": None if random else f"models/pretrain/{init}/encoders/r{replicate}",
        "encoder_sha256": None if random else "0" * 64,
        "pretrain_method": None if random else init,
        "history": [{"step": 8.0, "val_score": 0.5}],
        "test": _test_metrics(task, parts),
        "fingerprint": "f" * 64,
        "seed": 1234 + replicate,
        "_parts": parts,
    }


def arm_runs(
    task: str,
    setting: str,
    init: str,
    protocol: str,
    fraction: float,
    qualities: list[float],
    *,
    boundary_shift: float = 0.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One run per replicate of an arm, replicate ``r`` of quality ``qualities[r]``. Crop type
    also gets boundary / interior parts: boundary quality = quality + ``boundary_shift``."""
    out = []
    for r, q in enumerate(qualities):
        s = seed + 1000 * r + int(fraction * 100) + 7 * len(init)
        if task == "scene":
            parts = {"all": scene_confusions(q, s)}
        else:
            parts = {"all": segmentation_confusions(q, s)}
            if task == "croptype":
                boundary = segmentation_confusions(q + boundary_shift, s + 1)
                interior = segmentation_confusions(q, s + 2)
                parts = {"all": boundary + interior, "boundary": boundary, "interior": interior}
        out.append(run(task, setting, init, protocol, fraction, r, parts))
    return out


def write_runs(runs_dir: Path, records: list[dict[str, Any]], *, ids: int = 0) -> None:
    """Write the records and their per-sample results as the finetune stage does."""
    for r in records:
        parts = r.pop("_parts")
        folder = runs_dir / r["task"] / "runs"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{r['key']}.json").write_text(json.dumps(r, indent=2), encoding="utf-8")
        n = parts["all"].shape[0]
        test_ids = tuple(f"s{i + ids}" for i in range(n))
        save_samples(folder / f"{r['key']}.samples.npz", test_ids, parts)


def strict_json(text: str) -> Any:
    """``json.loads`` that rejects NaN / Infinity (what other JSON readers do)."""

    def reject(token: str) -> Any:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=reject)


def lc(init: str, fraction: float, quality: float, setting: str = "in_domain") -> dict[str, Any]:
    """Replicate 0 of a land-cover run."""
    return arm_runs("landcover", setting, init, "finetune", fraction, [quality])[0]


def sc(
    init: str, protocol: str, fraction: float, quality: float, setting: str = "in_domain"
) -> dict[str, Any]:
    """Replicate 0 of a scene run."""
    return arm_runs("scene", setting, init, protocol, fraction, [quality])[0]
