"""The ``evaluate`` stage (s2ssl.evaluation.report) on small hand-made fine-tuning run records.

The records have the layout :func:`s2ssl.finetune.fitting.execute_run` writes to
``<reports>/<task>/runs/<key>.json``; every expected number below is computed by hand.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from s2ssl.bands import BAND_NAMES
from s2ssl.classes import LANDCOVER_CLASSES
from s2ssl.config import load_params
from s2ssl.evaluation.report import (
    claims,
    collect_runs,
    flat_metrics,
    gains,
    majority_baseline,
    strip_png,
    write_evaluation,
)
from s2ssl.finetune.plan import RunSpec, fraction_label
from testkit import REPO_PARAMS

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


def scene_test(top1: float, **extra: Any) -> dict[str, Any]:
    test: dict[str, Any] = {
        "top1": top1,
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
        "val_metric": "top1" if task == "scene" else "miou",
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
    init: str, protocol: str, fraction: float, top1: float, setting: str = "in_domain"
) -> dict[str, Any]:
    return run("scene", setting, init, protocol, fraction, scene_test(top1))


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


# ------------------------------------------------------------------------------------------ gains


def test_gains_are_differences_to_random_init_in_the_same_group() -> None:
    records = [
        lc("random", 0.01, 0.20),
        lc("dense", 0.01, 0.35),  # +0.15
        lc("random", 0.1, 0.40),
        lc("dense", 0.1, 0.37),  # -0.03
        lc("seco", 0.1, NAN),  # NaN itself: no entry
        lc("random", 1.0, NAN),  # NaN random: no entry for dense at 100 %
        lc("dense", 1.0, 0.60),
        lc("dense", 0.1, 0.30, setting="transfer"),  # no random run in transfer
        # another task's random run is no baseline for landcover
        run("croptype", "transfer", "random", "finetune", 0.1, seg_test(0.10)),
    ]
    assert gains(records, "miou") == pytest.approx(
        {"in_domain.dense.finetune.f1": 0.15, "in_domain.dense.finetune.f10": -0.03}
    )
    assert set(gains(records, "miou")) == {
        "in_domain.dense.finetune.f1",
        "in_domain.dense.finetune.f10",
    }
    # a metric the records lack has no gain at all
    assert gains(records, "top1") == {}


def test_gains_do_not_mix_protocols_or_settings() -> None:
    records = [
        sc("random", "linear", 0.1, 0.50),
        sc("seco", "linear", 0.1, 0.70),  # +0.20
        sc("random", "knn", 0.1, 0.60),
        sc("seco", "knn", 0.1, 0.65),  # +0.05
        sc("random", "linear", 0.1, 0.10, setting="transfer"),
        sc("seco", "linear", 0.1, 0.40, setting="transfer"),  # +0.30
        sc("seco", "finetune", 1.0, 0.90),  # no random fine-tuned run
    ]
    assert gains(records, "top1") == pytest.approx(
        {
            "in_domain.seco.linear.f10": 0.20,
            "in_domain.seco.knn.f10": 0.05,
            "transfer.seco.linear.f10": 0.30,
        }
    )
    assert len(gains(records, "top1")) == 3


# ----------------------------------------------------------------------------------- flat metrics


def test_flat_metrics_keys_values_gains_and_nan_left_out() -> None:
    runs = {
        "landcover": [
            lc("random", 0.1, 0.40, overall_accuracy=0.80, macro_f1=0.30, kappa=0.50),
            lc("dense", 0.1, 0.50, overall_accuracy=0.85, macro_f1=NAN, kappa=0.55),
        ],
        "scene": [
            sc("random", "linear", 0.01, 0.25),
            sc("seco", "linear", 0.01, 0.45),
        ],
    }
    for r in runs["scene"]:
        r["test"]["kappa"] = NAN  # NaN in both: neither the value nor a gain
    flat = flat_metrics(runs)
    expected = {
        "landcover.in_domain.random.finetune.f10.miou": 0.40,
        "landcover.in_domain.random.finetune.f10.overall_accuracy": 0.80,
        "landcover.in_domain.random.finetune.f10.macro_f1": 0.30,
        "landcover.in_domain.random.finetune.f10.kappa": 0.50,
        "landcover.in_domain.dense.finetune.f10.miou": 0.50,
        "landcover.in_domain.dense.finetune.f10.miou.gain": 0.10,
        "landcover.in_domain.dense.finetune.f10.overall_accuracy": 0.85,
        "landcover.in_domain.dense.finetune.f10.overall_accuracy.gain": 0.05,
        "landcover.in_domain.dense.finetune.f10.kappa": 0.55,
        "landcover.in_domain.dense.finetune.f10.kappa.gain": 0.05,
        "scene.in_domain.random.linear.f1.top1": 0.25,
        "scene.in_domain.random.linear.f1.macro_f1": 0.5,
        "scene.in_domain.seco.linear.f1.top1": 0.45,
        "scene.in_domain.seco.linear.f1.top1.gain": 0.20,
        "scene.in_domain.seco.linear.f1.macro_f1": 0.5,
        "scene.in_domain.seco.linear.f1.macro_f1.gain": 0.0,
        "scene.majority_baseline.top1": 0.6,
    }
    assert sorted(flat) == sorted(expected)
    # values are rounded to 6 decimals: the float noise of the subtraction is gone
    assert flat == expected
    assert all(type(v) is float for v in flat.values())
    # per-class scores and the confusion matrix stay in the run files
    assert not [k for k in flat if ".iou." in k or ".acc." in k or "confusion" in k]


def test_flat_metrics_croptype_reports_boundary_and_interior() -> None:
    flat = flat_metrics({"croptype": [ct("random", 1.0, 0.30, 0.60), ct("cscl", 1.0, 0.45, 0.62)]})
    assert flat["croptype.in_domain.cscl.finetune.f100.boundary.miou"] == 0.45
    assert flat["croptype.in_domain.cscl.finetune.f100.boundary.miou.gain"] == 0.15
    assert flat["croptype.in_domain.cscl.finetune.f100.interior.miou.gain"] == 0.02
    assert "scene.majority_baseline.top1" not in flat


# ------------------------------------------------------------------------------ majority baseline


def test_majority_baseline_from_the_confusion_matrix() -> None:
    # true-class totals (row sums) 4, 10, 6: always predicting class 1 is right 10 / 20 times
    record = {"test": {"confusion": [[3, 1, 0], [2, 6, 2], [0, 0, 6]]}}
    assert majority_baseline(record) == pytest.approx(0.5)
    assert majority_baseline({"test": {"confusion": SCENE_CONFUSION}}) == pytest.approx(0.6)
    assert math.isnan(majority_baseline({"test": {"confusion": [[0, 0], [0, 0]]}}))


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


# ------------------------------------------------------------------------------------ collect_runs


def test_collect_runs_reads_and_sorts_records(tmp_path: Path) -> None:
    records = [
        lc("random", 1.0, 0.6, setting="transfer"),
        lc("random", 0.1, 0.4),
        lc("dense", 1.0, 0.7),
        lc("dense", 0.01, 0.3),
        lc("dense", 0.1, 0.5),
    ]
    write_runs(tmp_path, records)
    # not a run record: the ``.npz`` preview next to it
    (tmp_path / "landcover" / "runs" / "in_domain.dense.finetune.f10.npz").write_bytes(b"x")
    runs = collect_runs(tmp_path, ["landcover"])
    assert list(runs) == ["landcover"]
    assert [r["key"] for r in runs["landcover"]] == [
        "in_domain.dense.finetune.f1",
        "in_domain.dense.finetune.f10",
        "in_domain.dense.finetune.f100",
        "in_domain.random.finetune.f10",
        "transfer.random.finetune.f100",
    ]
    # NaN survives the round trip through the file
    assert math.isnan(runs["landcover"][0]["test"]["iou.water"])


def test_collect_runs_names_the_stage_to_run_when_a_task_has_no_runs(tmp_path: Path) -> None:
    write_runs(tmp_path, [lc("random", 0.1, 0.4)])
    with pytest.raises(ValueError, match=r"dvc repro finetune@scene") as info:
        collect_runs(tmp_path, ["landcover", "scene"])
    assert str(tmp_path / "scene" / "runs") in str(info.value)
    # an existing but empty runs folder is the same
    (tmp_path / "croptype" / "runs").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"dvc repro finetune@croptype"):
        collect_runs(tmp_path, ["croptype"])


def test_collect_runs_rejects_invalid_json(tmp_path: Path) -> None:
    write_runs(tmp_path, [lc("random", 0.1, 0.4)])
    broken = tmp_path / "landcover" / "runs" / "in_domain.dense.finetune.f10.json"
    broken.write_text('{"task": "landcover", "setting": ', encoding="utf-8")
    with pytest.raises(ValueError, match="is not valid JSON") as info:
        collect_runs(tmp_path, ["landcover"])
    assert broken.name in str(info.value)
    assert "finetune@landcover" in str(info.value)


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
    assert metrics["scene.in_domain.seco.finetune.f100.top1.gain"] == 0.10
    assert metrics["scene.majority_baseline.top1"] == 0.6
    assert not [k for k in metrics if ".moco." in k and k.endswith(".top1")]

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
    assert {r["metric"] for r in tables["scene"]} == {"top1"}
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
    assert "Majority-class baseline (always the most frequent test class): 60.0 % top-1." in lines
    assert "Training samples per fraction — 1 %: 2, 10 %: 20, 100 %: 200." in lines
    assert f"`{params.holdout_region}`" in report
    assert "**Embedding Earth**" in report and "**holds** in this run" in report
    assert "SeCo is best in 7 of 7 settings: the claim **holds**" in report
    assert "**CSCL**" not in report
    assert "![landcover label fractions](figures/landcover_fractions.png)" in lines
    assert "8 runs, 16 s of training and scoring in total." in lines
    assert "15 runs, 30 s of training and scoring in total." in lines


def test_strip_needs_a_prediction_preview(tmp_path: Path) -> None:
    records = [lc("random", 0.1, 0.4), lc("dense", 0.1, 0.5)]
    write_runs(tmp_path, records)
    path = tmp_path / "strip.png"
    assert strip_png("landcover", records, tmp_path, tmp_path / "none", None, 4, path) is None
    assert not path.exists()


def _fake_test_split(
    monkeypatch: pytest.MonkeyPatch, ids: tuple[str, ...], *, scene: bool = False
) -> None:
    """``load_task_data`` answering a test split whose sample ``i`` has truth ``i`` (everywhere)."""
    import torch

    import s2ssl.evaluation.report

    n = len(ids)
    label = torch.arange(n)
    test = SimpleNamespace(
        ids=ids,
        image=torch.full((n, 1, len(BAND_NAMES), 6, 6), 1000, dtype=torch.int16),
        label=label if scene else label.view(n, 1, 1).expand(n, 6, 6).clone(),
    )
    monkeypatch.setattr(
        s2ssl.evaluation.report, "load_task_data", lambda *a, **k: SimpleNamespace(test=test)
    )


def test_strip_pairs_each_image_with_its_own_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import s2ssl.evaluation.report as report

    _fake_test_split(monkeypatch, ("s0", "s1", "s2", "s3", "s4"))
    records = [lc("random", 1.0, 0.4), lc("dense", 1.0, 0.5), lc("dense", 0.1, 0.3)]
    write_runs(tmp_path, records)
    # previews in the finetune layout; "gone" is not (any more) a test sample
    ids = np.array(["s1", "gone", "s3", "s4"])
    for r in records[:2]:
        pred = np.stack([np.full((6, 6), i, np.uint8) for i in (1, 5, 3, 4)])
        np.savez(tmp_path / "landcover" / "runs" / f"{r['key']}.npz", ids=ids, pred=pred)
    drawn: list[Any] = []
    save = report._save
    monkeypatch.setattr(report, "_save", lambda fig, path: (drawn.append(fig), save(fig, path))[1])

    path = tmp_path / "figures" / "landcover_strip.png"
    assert strip_png("landcover", records, tmp_path, tmp_path, None, 3, path) == path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    # rows: s1 and s3 (of the first 3 preview ids); columns: image, truth, dense, random
    (fig,) = drawn
    grid = np.array(fig.axes[: 2 * 4], dtype=object).reshape(2, 4)
    for row, truth in enumerate((1, 3)):
        shown = [np.asarray(ax.images[0].get_array()) for ax in grid[row][1:]]
        assert [int(a.max()) for a in shown] == [truth] * 3, f"row {row}"


def test_scene_strip_titles_pair_truth_and_guess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import s2ssl.evaluation.report as report

    _fake_test_split(monkeypatch, ("s0", "s1", "s2"), scene=True)
    records = [sc("random", "linear", 1.0, 0.5), sc("seco", "finetune", 1.0, 0.8)]
    write_runs(tmp_path, records)
    np.savez(
        tmp_path / "scene" / "runs" / f"{records[1]['key']}.npz",
        ids=np.array(["s2", "gone", "s0"]),
        pred=np.array([2, 5, 0], np.uint8),
    )
    drawn: list[Any] = []
    save = report._save
    monkeypatch.setattr(report, "_save", lambda fig, path: (drawn.append(fig), save(fig, path))[1])

    path = tmp_path / "scene_strip.png"
    assert strip_png("scene", records, tmp_path, tmp_path, None, 4, path) == path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    titles = [ax.get_title() for ax in drawn[0].axes]
    water, grassland = LANDCOVER_CLASSES[0], LANDCOVER_CLASSES[2]
    assert titles == [f"true {grassland}\nseco: {grassland}", f"true {water}\nseco: {water}"]


def test_strip_without_any_known_test_sample_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_test_split(monkeypatch, ("s0", "s1"))
    records = [lc("random", 1.0, 0.4)]
    write_runs(tmp_path, records)
    np.savez(
        tmp_path / "landcover" / "runs" / f"{records[0]['key']}.npz",
        ids=np.array(["x", "y"]),
        pred=np.zeros((2, 6, 6), np.uint8),
    )
    path = tmp_path / "strip.png"
    assert strip_png("landcover", records, tmp_path, tmp_path, None, 4, path) is None
    assert not path.exists()
