"""Paired gains over random init with intervals (s2ssl.evaluation.comparisons)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from runkit import arm_runs, write_runs

from s2ssl.config import EvaluateConfig
from s2ssl.evaluation.comparisons import class_gains, gains
from s2ssl.evaluation.records import Arm, collect_runs, load_arms
from s2ssl.stats import score_from_confusion

CFG = EvaluateConfig(
    replicates=3,
    replicate_seed=0,
    confidence=0.95,
    bootstrap_samples=400,
    power=0.8,
    strip_samples=2,
)


def _arms(tmp_path: Path, task: str, arms: dict[tuple[str, float], list[float]], **kw):
    records = []
    for (init, fraction), qualities in arms.items():
        protocol = "linear" if task == "scene" else "finetune"
        records += arm_runs(task, "in_domain", init, protocol, fraction, qualities, **kw)
    write_runs(tmp_path, records)
    return load_arms(tmp_path, task, collect_runs(tmp_path, [task])[task])


def test_a_clear_gain_has_an_interval_above_zero_and_the_exact_paired_mean(tmp_path: Path) -> None:
    arms = _arms(
        tmp_path,
        "landcover",
        {("random", 0.1): [0.50, 0.55, 0.52], ("dense", 0.1): [0.75, 0.80, 0.78]},
    )
    (g,) = gains("landcover", arms, CFG)
    assert g.arm == Arm("in_domain", "finetune", "dense", 0.1) and g.part == "all"
    dense = arms[g.arm].parts["all"].sum(axis=1)
    random = arms[g.arm.with_init("random")].parts["all"].sum(axis=1)
    by_hand = score_from_confusion(dense, "miou") - score_from_confusion(random, "miou")
    assert g.estimate.per_replicate == pytest.approx(tuple(by_hand))
    assert g.estimate.value == pytest.approx(float(np.mean(by_hand)))
    assert g.estimate.lo > 0 and g.estimate.hi > g.estimate.value > g.estimate.lo
    assert g.metric_key == "miou" and math.isfinite(g.mde) and g.mde > 0


def test_no_effect_gives_an_interval_across_zero(tmp_path: Path) -> None:
    arms = _arms(
        tmp_path,
        "landcover",
        {("random", 0.1): [0.60, 0.52, 0.56], ("random_b", 0.1): [0.55, 0.58, 0.54]},
    )
    (g,) = gains("landcover", arms, CFG)
    assert g.arm.init == "random_b" and g.estimate.lo < 0 < g.estimate.hi


def test_croptype_is_also_compared_on_boundary_and_interior_pixels(tmp_path: Path) -> None:
    arms = _arms(
        tmp_path,
        "croptype",
        {("random", 1.0): [0.5, 0.5, 0.5], ("cscl", 1.0): [0.5, 0.5, 0.5]},
    )
    assert [g.part for g in gains("croptype", arms, CFG)] == ["all", "boundary", "interior"]
    assert [g.metric_key for g in gains("croptype", arms, CFG)][1] == "boundary.miou"


def test_scenes_are_compared_on_balanced_accuracy(tmp_path: Path) -> None:
    arms = _arms(tmp_path, "scene", {("random", 1.0): [0.4] * 3, ("seco", 1.0): [0.9] * 3})
    (g,) = gains("scene", arms, CFG)
    assert g.metric == "balanced_accuracy" and g.estimate.lo > 0.2


def test_class_gains_are_per_class_differences_averaged_over_replicates(tmp_path: Path) -> None:
    arms = _arms(tmp_path, "landcover", {("random", 1.0): [0.5] * 3, ("dense", 1.0): [0.8] * 3})
    dense = arms[Arm("in_domain", "finetune", "dense", 1.0)]
    random = arms[Arm("in_domain", "finetune", "random", 1.0)]
    got = class_gains("landcover", dense, random)

    def iou(c: np.ndarray) -> np.ndarray:  # (R, K, K) -> (R, K), by hand
        tp = np.diagonal(c, axis1=1, axis2=2)
        return tp / (c.sum(axis=2) + c.sum(axis=1) - tp)

    expected = (iou(dense.parts["all"].sum(axis=1)) - iou(random.parts["all"].sum(axis=1))).mean(0)
    assert got == pytest.approx(expected) and np.all(got > 0)
