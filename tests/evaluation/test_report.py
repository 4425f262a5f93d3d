"""The ``evaluate`` stage (s2ssl.evaluation.report): the claims and the whole written report.

Small hand-made fine-tuning run records; every expected number below is computed by hand.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
from runkit import (
    NAN,
    PNG_SIGNATURE,
    ct,
    lc,
    sc,
    strict_json,
    write_runs,
)

from s2ssl.config import load_params
from s2ssl.evaluation.records import collect_runs, flat_metrics
from s2ssl.evaluation.report import claims, write_evaluation
from testkit import REPO_PARAMS

# ----------------------------------------------------------------------------------------- claims


def _line(lines: list[str], name: str) -> str:
    found = [line for line in lines if line.startswith(f"- **{name}**")]
    assert len(found) == 1, lines
    return found[0]


def test_claim_embedding_earth_holds_when_largest_positive_gain_is_at_scarcest_fraction() -> None:
    runs = {
        "landcover": [
            lc("random", 0.01, 0.20),
            lc("dense", 0.01, 0.35),  # +15
            lc("random", 0.1, 0.40),
            lc("dense", 0.1, 0.45),  # +5
            lc("random", 1.0, 0.60),
            lc("dense", 1.0, 0.61),  # +1
            lc("random", 0.1, 0.30, setting="transfer"),
            lc("dense", 0.1, 0.33, setting="transfer"),  # +3, not part of the verdict
        ]
    }
    line = _line(claims(runs), "Embedding Earth")
    assert "1 %: +15.0, 10 %: +5.0, 100 %: +1.0 mIoU; largest at 1 % (+15.0)" in line
    assert "Unseen region: +3.0 mIoU." in line
    assert "**holds** in this run" in line


@pytest.mark.parametrize(
    ("dense", "largest"),
    [
        ((0.22, 0.50, 0.61), "largest at 10 % (+10.0)"),  # positive, but not at the scarcest
        ((0.19, 0.30, 0.45), "largest at 1 % (-1.0)"),  # largest at the scarcest, but negative
    ],
)
def test_claim_embedding_earth_does_not_hold(dense: tuple[float, ...], largest: str) -> None:
    records = []
    for fraction, random_miou, dense_miou in zip(
        (0.01, 0.1, 1.0), (0.20, 0.40, 0.60), dense, strict=True
    ):
        records += [lc("random", fraction, random_miou), lc("dense", fraction, dense_miou)]
    line = _line(claims({"landcover": records}), "Embedding Earth")
    assert largest in line
    assert "Unseen region" not in line
    assert "**does not hold** in this run" in line


def test_claim_cscl_boundary_vs_interior() -> None:
    base = [ct("random", 0.1, 0.30, 0.60), ct("random", 1.0, 0.40, 0.70)]
    holds = claims({"croptype": [*base, ct("cscl", 0.1, 0.40, 0.62), ct("cscl", 1.0, 0.45, 0.71)]})
    line = _line(holds, "CSCL")
    assert "10 %: boundary +10.0 / interior +2.0" in line
    assert "100 %: boundary +5.0 / interior +1.0" in line
    assert "at 2 of 2 fractions: the claim **holds**" in line

    # boundary gain larger at one fraction of two: not a majority
    not_held = claims(
        {"croptype": [*base, ct("cscl", 0.1, 0.40, 0.62), ct("cscl", 1.0, 0.41, 0.75)]}
    )
    assert "at 1 of 2 fractions: the claim **does not hold**" in _line(not_held, "CSCL")


def _scene(best: dict[str, str]) -> list[dict[str, Any]]:
    """Scene runs of random / moco / seco; ``best[protocol]`` scores 0.9, the others less."""
    records = []
    fractions = {"linear": 0.1, "knn": 0.1, "finetune": 1.0}
    for protocol, fraction in fractions.items():
        for init, score in zip(("random", "moco", "seco"), (0.50, 0.60, 0.70), strict=True):
            records.append(sc(init, protocol, fraction, 0.90 if best[protocol] == init else score))
    # region transfer never counts: seco loses there in every case
    records += [
        sc("random", "linear", 0.1, 0.8, "transfer"),
        sc("seco", "linear", 0.1, 0.1, "transfer"),
    ]
    return records


@pytest.mark.parametrize(
    ("best", "wins", "verdict"),
    [
        ({"linear": "seco", "knn": "seco", "finetune": "seco"}, 3, "holds"),
        ({"linear": "seco", "knn": "moco", "finetune": "random"}, 1, "partly holds"),
        ({"linear": "moco", "knn": "moco", "finetune": "random"}, 0, "does not hold"),
    ],
)
def test_claim_seco(best: dict[str, str], wins: int, verdict: str) -> None:
    line = _line(claims({"scene": _scene(best)}), "SeCo")
    assert f"SeCo is best in {wins} of 3 settings: the claim **{verdict}** in this run" in line
    if best["knn"] == "moco":
        assert "knn 10 %: best moco (90.0), seco 70.0" in line
    if best["linear"] == "seco":
        assert "linear 10 %: best seco (90.0)" in line
        assert "linear 10 %: best seco (90.0), seco" not in line


def test_claims_need_the_numbers() -> None:
    assert claims({}) == []
    # random init only: no gains, no claims
    only_random = {
        "landcover": [lc("random", 0.1, 0.4)],
        "croptype": [ct("random", 0.1, 0.3, 0.6)],
    }
    assert claims(only_random) == []
    # scene without a seco run: nothing to check
    assert (
        claims({"scene": [sc("random", "linear", 0.1, 0.5), sc("moco", "linear", 0.1, 0.6)]}) == []
    )


# -------------------------------------------------------------------------------- end to end


def _fake_runs() -> list[dict[str, Any]]:
    records = []
    for fraction, r_miou, d_miou in ((0.01, 0.20, 0.35), (0.1, 0.40, 0.45), (1.0, 0.60, 0.61)):
        records += [lc("random", fraction, r_miou), lc("dense", fraction, d_miou)]
    records += [lc("random", 0.1, 0.30, "transfer"), lc("dense", 0.1, 0.33, "transfer")]
    for protocol in ("linear", "knn"):
        for fraction in (0.01, 0.1, 1.0):
            records += [
                sc("random", protocol, fraction, 0.40 + fraction / 10),
                sc("seco", protocol, fraction, 0.55 + fraction / 10),
            ]
    records += [
        sc("random", "finetune", 1.0, 0.70),
        sc("seco", "finetune", 1.0, 0.80),
        sc("moco", "knn", 0.01, NAN),  # a failed run: no plot row, no metric, "–" in the table
    ]
    return records


@pytest.mark.slow
def test_write_evaluation_end_to_end(tmp_path: Path) -> None:
    params = load_params(REPO_PARAMS, overrides={"finetune.tasks": ["landcover", "scene"]})
    runs_dir, out = tmp_path / "finetune", tmp_path / "evaluate"
    records = _fake_runs()
    write_runs(runs_dir, records)

    result = write_evaluation(params, runs_dir, tmp_path / "no_data", out)

    assert result.tasks == ["landcover", "scene"]
    assert result.n_runs == len(records) == 23
    assert result.metrics == out / "metrics.json"
    assert result.report == out / "report.md"

    # metrics.json: strict, flat JSON; the same numbers as flat_metrics
    metrics = strict_json(result.metrics.read_text(encoding="utf-8"))
    assert metrics == flat_metrics(collect_runs(runs_dir, ["landcover", "scene"]))
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["landcover.in_domain.dense.finetune.f1.miou"] == 0.35
    assert metrics["landcover.in_domain.dense.finetune.f1.miou.gain"] == 0.15
    assert metrics["landcover.transfer.dense.finetune.f10.miou.gain"] == 0.03
    assert metrics["scene.in_domain.seco.finetune.f100.balanced_accuracy.gain"] == 0.10
    assert metrics["scene.in_domain.seco.finetune.f100.top1"] == 0.7
    assert metrics["scene.majority_baseline.top1"] == 0.6
    assert metrics["scene.majority_baseline.balanced_accuracy"] == 0.333333
    assert not [k for k in metrics if ".moco." in k and k.endswith(".balanced_accuracy")]

    # plots/<task>.csv: one row per run with a finite headline score
    fields = ["fraction_pct", "score", "init", "setting", "protocol", "metric", "gain"]
    tables = {}
    for task, n_rows in (("landcover", 8), ("scene", 14)):
        with (out / "plots" / f"{task}.csv").open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            assert reader.fieldnames == fields
            tables[task] = list(reader)
        assert len(tables[task]) == n_rows
    dense_f1 = [
        r for r in tables["landcover"] if r["init"] == "dense" and r["fraction_pct"] == "1.0"
    ]
    assert dense_f1 == [
        {
            "fraction_pct": "1.0",
            "score": "0.35",
            "init": "dense",
            "setting": "in_domain",
            "protocol": "finetune",
            "metric": "miou",
            "gain": "0.15",
        }
    ]
    random_rows = [r for r in tables["landcover"] if r["init"] == "random"]
    assert {r["gain"] for r in random_rows} == {""}
    assert {r["metric"] for r in tables["scene"]} == {"balanced_accuracy"}
    assert {r["init"] for r in tables["scene"]} == {
        "random",
        "seco",
        "random (linear)",
        "seco (linear)",
        "random (knn)",
        "seco (knn)",
    }
    for row in tables["landcover"] + tables["scene"]:
        assert math.isfinite(float(row["score"]))
        assert float(row["fraction_pct"]) in (1.0, 10.0, 100.0)

    # figures: valid PNGs; no strip without a prediction preview
    names = {p.name for p in result.figures}
    assert names == {
        "landcover_fractions.png",
        "landcover_confusion.png",
        "scene_fractions.png",
        "scene_confusion.png",
    }
    for figure in result.figures:
        assert figure.parent == out / "figures"
        data = figure.read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert len(data) > 1000
    assert not list((out / "figures").glob("*_strip.png"))
    assert not list(out.rglob("*.tmp"))

    # report.md: a row per init with the bracketed difference to random init
    report = result.report.read_text(encoding="utf-8")
    lines = report.splitlines()
    assert "| init | 1 % labels | 10 % labels | 100 % labels |" in lines
    assert "| random | 20.0 | 40.0 | 60.0 |" in lines
    assert "| dense | 35.0 (+15.0) | 45.0 (+5.0) | 61.0 (+1.0) |" in lines
    assert "**miou — finetune, unseen region**" in lines
    assert "| dense | 33.0 (+3.0) |" in lines
    assert "| random (linear) |" not in report
    # scene, linear probe: 0.40 + f / 10 vs 0.55 + f / 10
    assert "| seco | 55.1 (+15.0) | 56.0 (+15.0) | 65.0 (+15.0) |" in lines
    # the NaN run has a dash, and no difference
    assert "| moco | – | – | – |" in lines
    assert "| seco | 80.0 (+10.0) |" in lines
    assert (
        "Majority-class baseline (always the most frequent test class): 60.0 % top-1, 33.3 % "
        "balanced accuracy (1 / the number of classes in the test truth)."
    ) in lines
    # top-1 is reported next to the headline: 0.7 for every scene run
    assert "**top1 — linear, in domain**" in lines
    assert "| seco | 70.0 (+0.0) | 70.0 (+0.0) | 70.0 (+0.0) |" in lines
    assert "Training samples per fraction — 1 %: 2, 10 %: 20, 100 %: 200." in lines
    assert f"`{params.holdout_region}`" in report
    assert "**Embedding Earth**" in report and "**holds** in this run" in report
    assert "SeCo is best in 7 of 7 settings: the claim **holds**" in report
    assert "**CSCL**" not in report
    assert "![landcover label fractions](figures/landcover_fractions.png)" in lines
    assert "8 runs, 16 s of training and scoring in total." in lines
    assert "15 runs, 30 s of training and scoring in total." in lines
