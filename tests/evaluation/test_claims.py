"""The papers' claims as three-valued tests and the A/A control (s2ssl.evaluation.claims)."""

from __future__ import annotations

from pathlib import Path

import pytest
from runkit import arm_runs, write_runs
from test_comparisons import CFG

from s2ssl.evaluation import claims
from s2ssl.evaluation.records import collect_runs, load_arms


def _load(tmp_path: Path, task: str, records: list) -> dict:
    write_runs(tmp_path, records)
    return load_arms(tmp_path, task, collect_runs(tmp_path, [task])[task])


def _lc(init: str, fraction: float, q: list[float], setting: str = "in_domain") -> list:
    return arm_runs("landcover", setting, init, "finetune", fraction, q)


def test_embedding_earth_holds_with_a_large_scarce_gain_a_smaller_full_gain_and_transfer(
    tmp_path: Path,
) -> None:
    records = (
        _lc("random", 0.01, [0.40, 0.45, 0.42])
        + _lc("dense", 0.01, [0.70, 0.72, 0.74])
        + _lc("random", 1.0, [0.80, 0.82, 0.81])
        + _lc("dense", 1.0, [0.83, 0.85, 0.84])
        + _lc("random", 0.1, [0.5, 0.5, 0.52], "transfer")
        + _lc("dense", 0.1, [0.7, 0.72, 0.71], "transfer")
    )
    result = claims.embedding_earth(_load(tmp_path, "landcover", records), CFG)
    assert [c.verdict for c in result.contrasts] == ["holds"] * 3
    assert result.verdict == "holds"
    assert [c.label for c in result.contrasts] == [
        "dense − random at 1 % labels",
        "gain at 1 % − gain at 100 %",
        "dense − random on the unseen region, 10 %",
    ]
    # the difference of gains is the four-arm contrast, by hand from the two gains
    gain_1 = result.contrasts[0].estimate.per_replicate
    diff = result.contrasts[1].estimate.per_replicate
    assert all(d < g for d, g in zip(diff, gain_1, strict=True))


def test_embedding_earth_refuted_when_dense_is_clearly_worse_at_scarce_labels(
    tmp_path: Path,
) -> None:
    records = (
        _lc("random", 0.01, [0.70, 0.72, 0.71])
        + _lc("dense", 0.01, [0.40, 0.42, 0.41])
        + _lc("random", 1.0, [0.80, 0.80, 0.80])
        + _lc("dense", 1.0, [0.80, 0.80, 0.80])
    )
    result = claims.embedding_earth(_load(tmp_path, "landcover", records), CFG)
    assert result.contrasts[0].verdict == "refuted" and result.verdict == "refuted"


def test_one_replicate_is_never_a_finding(tmp_path: Path) -> None:
    records = (
        _lc("random", 0.01, [0.40])
        + _lc("dense", 0.01, [0.90])
        + _lc("random", 1.0, [0.80])
        + _lc("dense", 1.0, [0.81])
    )
    result = claims.embedding_earth(_load(tmp_path, "landcover", records), CFG)
    assert result.verdict == "inconclusive"
    assert all(c.verdict == "inconclusive" for c in result.contrasts)


def test_cscl_boundary_gain_larger_than_interior_gain_holds(tmp_path: Path) -> None:
    def ct(init: str, q: list[float], shift: float) -> list:
        return arm_runs("croptype", "in_domain", init, "finetune", 1.0, q, boundary_shift=shift)

    arms = _load(tmp_path, "croptype", ct("random", [0.4, 0.42, 0.41], 0.0) + ct(
        "cscl", [0.6, 0.62, 0.61], 0.25
    ))  # fmt: skip
    result = claims.cscl(arms, CFG)
    assert [c.label for c in result.contrasts] == [
        "cscl − random at 100 % labels",
        "boundary gain − interior gain at 100 %",
    ]
    assert result.verdict == "holds"


def test_seco_ordering_is_holm_corrected_and_needs_every_step(tmp_path: Path) -> None:
    records = []
    # five replicates: with three, t(2) tails keep a p-value above Holm's 0.05 / 3 unless the
    # replicates agree almost exactly (the price of few replicates, shown by the MDE)
    for init, q in (("random", 0.15), ("moco", 0.5), ("moco_tp", 0.88), ("seco", 0.88)):
        records += arm_runs("scene", "in_domain", init, "linear", 1.0, [q] * 5)
    arms = _load(tmp_path, "scene", records)
    result = claims.seco({"scene": arms}, CFG)
    verdicts = {c.label.split(": ")[1]: c.verdict for c in result.contrasts}
    assert verdicts["moco − random"] == "holds" and verdicts["moco_tp − moco"] == "holds"
    assert verdicts["seco − moco_tp"] == "inconclusive"  # equal quality
    assert result.verdict == "inconclusive"
    # Holm levels: 3 contrasts tested at 1 − 0.05/3, 1 − 0.05/2, 1 − 0.05 by p-value rank
    levels = sorted(c.confidence for c in result.contrasts)
    assert levels == pytest.approx([0.95, 1 - 0.05 / 2, 1 - 0.05 / 3])


def test_aa_control_inconclusive_without_a_difference_and_flags_a_false_positive(
    tmp_path: Path,
) -> None:
    same = _lc("random", 1.0, [0.60, 0.55, 0.58]) + _lc("random_b", 1.0, [0.57, 0.60, 0.55])
    result = claims.aa_control({"landcover": _load(tmp_path / "a", "landcover", same)}, CFG)
    assert result.verdict == "inconclusive" and "as it must be" in result.note
    broken = _lc("random", 1.0, [0.40, 0.42, 0.41]) + _lc("random_b", 1.0, [0.8, 0.82, 0.81])
    flagged = claims.aa_control({"landcover": _load(tmp_path / "b", "landcover", broken)}, CFG)
    assert flagged.verdict == "holds" and flagged.note.startswith("FALSE POSITIVE")


def test_claims_without_their_inits_are_not_evaluated(tmp_path: Path) -> None:
    arms = _load(tmp_path, "landcover", _lc("random", 1.0, [0.5, 0.5, 0.5]))
    result = claims.embedding_earth(arms, CFG)
    assert result.verdict is None and result.note.startswith("not evaluated")
    seco = claims.seco({"landcover": arms}, CFG)
    assert seco.verdict is None
    assert seco.note.endswith(
        "here: no scene runs; landcover (finetune) lacks init moco, moco_tp, seco"
    )
    # a benchmark whose only task is not one the claim is defined on says so, not "needs inits"
    other = claims.seco({"multilabel": arms}, CFG)
    assert other.note == (
        "not evaluated: defined on scene (linear) and landcover (finetune) with inits random, "
        "moco, moco_tp, seco; here: no scene runs; no landcover runs"
    )
