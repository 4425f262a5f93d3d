"""The runs of a fine-tuning task (s2ssl.finetune.plan)."""

from __future__ import annotations

from pathlib import Path

from s2ssl.config import load_params
from s2ssl.finetune.plan import fraction_label, plan_runs


def test_plan_runs_keys_and_order(tiny_run_params: Path) -> None:
    params = load_params(tiny_run_params, {"holdout_region": "north_west"})
    keys = [r.key for r in plan_runs(params, "scene")]
    assert keys == [
        "in_domain.random.linear.f50",
        "in_domain.random.linear.f100",
        "transfer.random.linear.f10",
        "in_domain.random.knn.f50",
        "in_domain.random.knn.f100",
        "transfer.random.knn.f10",
        "in_domain.random.finetune.f100",
    ]
    assert fraction_label(0.01) == "1" and fraction_label(0.005) == "0.5"
