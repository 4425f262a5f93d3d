"""The ``evaluate`` stage end to end (s2ssl.evaluation.report, .summary), on hand-made runs with
known effects."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
from runkit import PNG_SIGNATURE, arm_runs, strict_json, write_runs

from s2ssl.config import load_params
from s2ssl.evaluation.report import write_evaluation
from s2ssl.evaluation.summary import claim_slug

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _fake_runs() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []

    def lc(init: str, fraction: float, q: list[float], setting: str = "in_domain") -> None:
        records.extend(arm_runs("landcover", setting, init, "finetune", fraction, q))

    lc("random", 0.01, [0.40, 0.45, 0.42])
    lc("random_b", 0.01, [0.43, 0.41, 0.44])
    lc("dense", 0.01, [0.70, 0.72, 0.74])
    lc("random", 1.0, [0.80, 0.82, 0.81])
    lc("random_b", 1.0, [0.81, 0.80, 0.82])
    lc("dense", 1.0, [0.82, 0.84, 0.83])
    lc("random", 0.1, [0.5, 0.5, 0.52], "transfer")
    lc("dense", 0.1, [0.55, 0.5, 0.53], "transfer")
    for init, q in (("random", 0.3), ("random_b", 0.3), ("moco", 0.5), ("moco_tp", 0.6)):
        records.extend(arm_runs("scene", "in_domain", init, "linear", 1.0, [q, q, q]))
    records.extend(arm_runs("scene", "in_domain", "seco", "linear", 1.0, [0.6, 0.62, 0.58]))
    return records


def test_write_evaluation_end_to_end(tmp_path: Path) -> None:
    params = load_params(
        REPO_PARAMS,
        overrides={"finetune.tasks": ["landcover", "scene"], "evaluate.bootstrap_samples": 400},
    )
    runs_dir, out = tmp_path / "finetune", tmp_path / "evaluate"
    records = _fake_runs()
    n_runs = len(records)
    write_runs(runs_dir, records)

    result = write_evaluation(params, runs_dir, tmp_path / "no_data", out)
    assert result.tasks == ["landcover", "scene"] and result.n_runs == n_runs == 39

    # metrics.json: strict flat JSON; means over replicates, paired gains with their intervals
    metrics = strict_json(result.metrics.read_text(encoding="utf-8"))
    assert all(isinstance(v, int | float) for v in metrics.values())
    assert metrics["evaluate.replicates"] == 3
    f1 = "landcover.in_domain.dense.finetune.f1.miou"
    dense = [r["test"]["miou"] for r in records if r["key"].endswith("in_domain.dense.finetune.f1")]
    assert metrics[f1] == pytest.approx(sum(dense) / 3, abs=1e-6)
    assert metrics[f"{f1}.gain_lo"] < metrics[f"{f1}.gain"] < metrics[f"{f1}.gain_hi"]
    assert metrics[f"{f1}.gain_lo"] > 0.1  # a 30-point effect
    assert f"{f1}.gain_iqm" in metrics and 0 < metrics[f"{f1}.gain_p"] <= 1
    assert metrics["claims.embedding_earth.verdict"] == 0  # the transfer gain is unclear
    assert metrics["claims.embedding_earth.0.lo"] > 0
    assert metrics["claims.aa_control.verdict"] == 0
    assert "scene.majority_baseline.balanced_accuracy" in metrics

    verdicts = json.loads((out / "verdicts.json").read_text(encoding="utf-8"))
    assert set(verdicts) == {claim_slug(c) for c in ("Embedding Earth", "SeCo", "A/A control")}
    ee = verdicts["embedding_earth"]
    assert [c["verdict"] for c in ee["contrasts"]] == ["holds", "holds", "inconclusive"]
    assert ee["verdict"] == "inconclusive"
    assert len(ee["contrasts"][0]["estimate"]["per_replicate"]) == 3
    seco = verdicts["seco"]["contrasts"]
    # Holm: the interval a verdict was decided on is at the adjusted level, wider than 95 %
    widest = max(seco, key=lambda c: c["confidence"])
    assert widest["confidence"] > 0.95
    assert widest["hi"] - widest["lo"] > widest["estimate"]["hi"] - widest["estimate"]["lo"]
    assert verdicts["aa_control"]["verdict"] == "inconclusive"

    # the report states the rules before any number, then the verdicts
    report = result.report.read_text(encoding="utf-8")
    assert report.index("## Rules") < report.index("## Verdicts") < report.index("| Embedding")
    assert "A/A control (the protocol's false-positive check):** inconclusive everywhere" in report
    assert "R = 3" in report and "MDE" in report
    assert "![landcover landcover_gains](figures/landcover_gains.png)" in report

    # plots: one row per run (replicate) with its paired gain in the same replicate
    with (out / "plots" / "landcover.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 24 and {r["replicate"] for r in rows} == {"0", "1", "2"}
    row = next(r for r in rows if r["init"] == "dense" and r["fraction_pct"] == "1.0")
    miou = {r["key"]: r["test"]["miou"] for r in records if r["task"] == "landcover"}
    by_hand = miou["r0.in_domain.dense.finetune.f1"] - miou["r0.in_domain.random.finetune.f1"]
    assert row["replicate"] == "0" and float(row["gain"]) == pytest.approx(by_hand, abs=1e-6)

    names = {p.name for p in result.figures}
    assert {"landcover_gains.png", "landcover_class_gains.png", "scene_gains.png"} <= names
    for path in result.figures:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert not math.isnan(metrics["scene.in_domain.seco.linear.f100.balanced_accuracy"])


def test_a_gain_shows_the_same_interval_in_the_task_table_and_in_its_claim(tmp_path: Path) -> None:
    params = load_params(
        REPO_PARAMS,
        overrides={"finetune.tasks": ["landcover", "scene"], "evaluate.bootstrap_samples": 300},
    )
    write_runs(tmp_path / "finetune", _fake_runs())
    write_evaluation(params, tmp_path / "finetune", tmp_path / "none", tmp_path / "out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    gain = "landcover.in_domain.dense.finetune.f1.miou"
    assert metrics["claims.embedding_earth.0.lo"] == metrics[f"{gain}.gain_lo"]
    assert metrics["claims.embedding_earth.0.hi"] == metrics[f"{gain}.gain_hi"]
