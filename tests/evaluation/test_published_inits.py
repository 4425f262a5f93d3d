"""A published encoder is an init like any other: its gain over random init gets the same
table row, interval, metrics and forest-plot entry as ours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runkit import arm_runs, strict_json, write_runs

from s2ssl.config import load_params
from s2ssl.evaluation.report import write_evaluation

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
PUBLISHED = "ssl4eo_r18"


def _published(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in records:
        r.update(
            {
                "encoder": "weights/ssl4eo_r18.pth",
                "encoder_sha256": "ab" * 32,
                "pretrain_method": None,
                "published": True,
                "load_report": {"layout": "ssl4eo_moco", "adapted": {}},
            }
        )
    return records


def _runs() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for init, q in (("random", [0.40, 0.42, 0.41]), ("dense", [0.60, 0.61, 0.62])):
        records += arm_runs("landcover", "in_domain", init, "finetune", 0.01, q)
    records += _published(
        arm_runs("landcover", "in_domain", PUBLISHED, "finetune", 0.01, [0.70, 0.72, 0.71])
    )
    for init, q in (("random", 0.3), (PUBLISHED, 0.3)):
        records += arm_runs("scene", "in_domain", init, "linear", 1.0, [q, q, q])
    _published([r for r in records if r["task"] == "scene" and r["init"] == PUBLISHED])
    return records


def test_a_published_init_is_compared_with_random_init_like_ours(tmp_path: Path) -> None:
    params = load_params(
        REPO_PARAMS,
        overrides={"finetune.tasks": ["landcover", "scene"], "evaluate.bootstrap_samples": 300},
    )
    runs_dir, out = tmp_path / "finetune", tmp_path / "evaluate"
    write_runs(runs_dir, _runs())
    result = write_evaluation(params, runs_dir, tmp_path / "no_data", out)

    metrics = strict_json(result.metrics.read_text(encoding="utf-8"))
    key = f"landcover.in_domain.{PUBLISHED}.finetune.f1.miou"
    ours = "landcover.in_domain.dense.finetune.f1.miou"
    for k in (key, ours):
        assert metrics[f"{k}.gain_lo"] < metrics[f"{k}.gain"] < metrics[f"{k}.gain_hi"]
    assert metrics[f"{key}.gain_lo"] > 0.15  # a 30-point effect, as for ours
    assert metrics[f"{key}.gain"] > metrics[f"{ours}.gain"]
    scene = f"scene.in_domain.{PUBLISHED}.linear.f100.balanced_accuracy"
    assert metrics[f"{scene}.gain_lo"] < 0 < metrics[f"{scene}.gain_hi"]  # no effect: unclear

    report = result.report.read_text(encoding="utf-8")
    rows = [line for line in report.splitlines() if f"| {PUBLISHED} |" in line]
    assert len(rows) == 2 and all("[" in row for row in rows)  # a gain with its interval
    assert f"`{PUBLISHED}` (weights/ssl4eo_r18.pth, ssl4eo_moco, sha256 abababababab)" in report
    with (out / "plots" / "landcover.csv").open(encoding="utf-8") as fh:
        assert sum(f",{PUBLISHED}," in line for line in fh) == 3
    assert {"landcover_gains.png", "scene_gains.png"} <= {p.name for p in result.figures}
