"""Run records and per-test-sample results of the ``evaluate`` stage (s2ssl.evaluation.records)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from runkit import arm_runs, write_runs

from s2ssl.evaluation.records import (
    Arm,
    collect_runs,
    load_arms,
    majority_baselines,
    mean_scores,
    replicate_scores,
)


def test_collect_runs_reads_and_sorts_records_by_arm_then_replicate(tmp_path: Path) -> None:
    records = arm_runs("landcover", "in_domain", "random", "finetune", 1.0, [0.6, 0.7])
    records += arm_runs("landcover", "in_domain", "dense", "finetune", 0.1, [0.5, 0.5, 0.4])
    write_runs(tmp_path, records[::-1])
    runs = collect_runs(tmp_path, ["landcover"])["landcover"]
    assert [(r["init"], r["replicate"]) for r in runs] == [
        ("dense", 0), ("dense", 1), ("dense", 2), ("random", 0), ("random", 1)
    ]  # fmt: skip


def test_collect_runs_names_the_stage_to_run_when_a_task_has_no_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dvc repro finetune@croptype"):
        collect_runs(tmp_path, ["croptype"])


def test_collect_runs_rejects_invalid_json(tmp_path: Path) -> None:
    folder = tmp_path / "scene" / "runs"
    folder.mkdir(parents=True)
    (folder / "r0.x.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"not valid JSON.*re-run finetune@scene"):
        collect_runs(tmp_path, ["scene"])


def test_load_arms_stacks_replicates_and_parts(tmp_path: Path) -> None:
    records = arm_runs("croptype", "in_domain", "cscl", "finetune", 0.1, [0.6, 0.7, 0.8])
    write_runs(tmp_path, records)
    runs = collect_runs(tmp_path, ["croptype"])["croptype"]
    arms = load_arms(tmp_path, "croptype", runs)
    (arm,) = arms
    assert arm == Arm("in_domain", "finetune", "cscl", 0.1)
    results = arms[arm]
    assert results.replicates == (0, 1, 2) and results.ids[:2] == ("s0", "s1")
    assert set(results.parts) == {"all", "boundary", "interior"}
    assert results.parts["all"].shape[:2] == (3, 16)
    assert np.array_equal(
        results.parts["all"], results.parts["boundary"] + results.parts["interior"]
    )
    scores = replicate_scores(results, "miou")
    assert scores == [r["test"]["miou"] for r in runs]
    mean, sd = mean_scores(results, "miou")
    assert mean == pytest.approx(np.mean(scores)) and sd == pytest.approx(np.std(scores, ddof=1))


def test_load_arms_refuses_missing_or_unpaired_sample_files(tmp_path: Path) -> None:
    records = arm_runs("landcover", "in_domain", "random", "finetune", 1.0, [0.6, 0.7])
    write_runs(tmp_path, records[:1])
    write_runs(tmp_path, records[1:], ids=100)  # replicate 1 scored on other test samples
    runs = collect_runs(tmp_path, ["landcover"])["landcover"]
    with pytest.raises(ValueError, match=r"different test samples"):
        load_arms(tmp_path, "landcover", runs)
    (tmp_path / "landcover" / "runs" / "r1.in_domain.random.finetune.f100.samples.npz").unlink()
    with pytest.raises(ValueError, match=r"samples\.npz is missing.*finetune@landcover"):
        load_arms(tmp_path, "landcover", runs)


def test_majority_baselines_from_the_confusion_matrix() -> None:
    # true-class totals 12 / 5 / 3 (and an absent class): top-1 12 / 20, balanced 1 / 3
    cm = [[10, 2, 0, 0], [1, 4, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0]]
    base = majority_baselines({"test": {"confusion": cm}})
    assert base == {"top1": pytest.approx(0.6), "balanced_accuracy": pytest.approx(1 / 3)}
    json.dumps(base)
