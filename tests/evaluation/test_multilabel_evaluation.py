"""Multi-label run records through the replicate / interval machinery: the headline is mAP,
intervals come from the ranking bootstrap, nothing assumes a confusion matrix."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from runkit import run, write_runs

from s2ssl.config import EvaluateConfig
from s2ssl.evaluation.comparisons import class_gains, gains
from s2ssl.evaluation.records import collect_runs, load_arms
from s2ssl.evaluation.report import _task_table
from s2ssl.evaluation.summary import flat_metrics
from s2ssl.training.multilabel_metrics import MultilabelMetrics

N, K = 40, 3


def _multilabel_run(init: str, replicate: int, noise: float) -> dict[str, Any]:
    rng = np.random.default_rng(100 * replicate + int(noise * 10))
    target = (np.random.default_rng(7).random((N, K)) < 0.4).astype(np.float32)
    scores = np.clip(0.5 * target + 0.25 + rng.normal(0, noise, (N, K)), 0, 1).astype(np.float32)
    parts = {"all": np.stack([scores, target], axis=1)}
    # runkit scores confusion matrices: build the record on a stand-in, then put the real parts
    stand_in = {"all": np.tile(np.eye(K, dtype=np.int64), (N, 1, 1))}
    record = run("multilabel", "in_domain", init, "linear", 1.0, replicate, stand_in)
    record["_parts"] = parts
    metrics = MultilabelMetrics(K, class_names=[f"class{i}" for i in range(K)])
    metrics.update(torch.from_numpy(scores), torch.from_numpy(target).long())
    record["test"] = metrics.compute()
    record["val_metric"] = "map_micro"
    return record


def test_multilabel_report_row_has_map_and_interval(tmp_path: Path) -> None:
    records = [
        _multilabel_run(init, r, noise)
        for init, noise in (("random", 0.4), ("seco", 0.1))
        for r in range(3)
    ]
    write_runs(tmp_path, records)
    runs = collect_runs(tmp_path, ["multilabel"])
    arms = load_arms(tmp_path, "multilabel", runs["multilabel"])
    cfg = EvaluateConfig(
        replicates=3, replicate_seed=0, confidence=0.95, bootstrap_samples=200, power=0.8,
        strip_samples=2,
    )  # fmt: skip
    found = gains("multilabel", arms, cfg)
    assert len(found) == 1
    gain = found[0]
    assert gain.metric == "map_micro" and gain.arm.init == "seco"
    assert gain.estimate.lo < gain.estimate.value < gain.estimate.hi
    assert gain.estimate.lo > 0  # the less noisy scores rank better
    table = _task_table("multilabel", arms, found)
    assert "mAP (mean ± sd)" in table[0]
    seco_row = next(line for line in table if "| seco |" in line)
    assert "[" in seco_row and "]" in seco_row  # gain with its interval
    assert seco_row.split("|")[5].strip()[0].isdigit()  # the mean mAP, not a dash
    flat = flat_metrics({"multilabel": arms}, {"multilabel": found}, [], 3)
    key = "multilabel.in_domain.seco.linear.f100"
    assert {f"{key}.map_micro", f"{key}.map_macro", f"{key}.map_micro.gain_lo"} <= set(flat)
    assert not any("majority_baseline" in k for k in flat)
    per_class = class_gains("multilabel", arms[gain.arm], arms[gain.arm.with_init("random")])
    assert per_class.shape == (K,) and all(math.isfinite(v) for v in per_class)
