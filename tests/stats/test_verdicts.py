"""s2ssl.stats.verdicts against hand-worked intervals and Holm's procedure."""

from __future__ import annotations

import numpy as np
import pytest

from s2ssl.stats.bootstrap import Estimate
from s2ssl.stats.verdicts import combine, holm, verdict_from_interval


def test_verdict_from_interval() -> None:
    assert verdict_from_interval(0.01, 0.05) == "holds"
    assert verdict_from_interval(-0.05, -0.01) == "refuted"
    assert verdict_from_interval(-0.01, 0.05) == "inconclusive"
    assert verdict_from_interval(0.0, 0.05) == "inconclusive"  # touching is not excluding
    assert verdict_from_interval(-0.05, -0.01, claimed="less") == "holds"
    assert verdict_from_interval(0.01, 0.05, claimed="less") == "refuted"
    assert verdict_from_interval(0.01, 0.05, threshold=0.02) == "inconclusive"
    assert verdict_from_interval(0.03, 0.05, threshold=0.02) == "holds"
    with pytest.raises(ValueError, match="lo <= hi"):
        verdict_from_interval(0.1, 0.0)
    with pytest.raises(ValueError, match="claimed"):
        verdict_from_interval(0.0, 0.1, claimed="two-sided")


def estimate(p_value: float, centre: float) -> Estimate:
    """An estimate whose draws spread evenly over centre ± 0.01."""
    draws = np.linspace(centre - 0.01, centre + 0.01, 1001)
    return Estimate(
        metric="miou",
        value=centre,
        lo=float(np.quantile(draws, 0.025)),
        hi=float(np.quantile(draws, 0.975)),
        confidence=0.95,
        p_value=p_value,
        se=float(draws.std(ddof=1)),
        iqm=centre,
        per_replicate=(centre,) * 3,
        n_replicates=3,
        n_samples=20,
        draws=draws,
    )


def test_holm_hand_worked() -> None:
    # p = 0.01, 0.04, 0.03 (m = 3, α = 0.05), sorted 0.01 | 0.03 | 0.04:
    #   rank 0: 0.01 <= 0.05 / 3 = 0.0167 → rejected
    #   rank 1: 0.03 >  0.05 / 2 = 0.025  → not rejected, and everything after stops
    # adjusted p: 3·0.01 = 0.03, max(0.03, 2·0.03) = 0.06, max(0.06, 1·0.04) = 0.06
    results = holm([estimate(0.01, 0.05), estimate(0.04, 0.05), estimate(0.03, -0.05)])
    assert [r.verdict for r in results] == ["holds", "inconclusive", "inconclusive"]
    assert [r.rank for r in results] == [0, 2, 1]
    assert [r.adjusted_p for r in results] == pytest.approx([0.03, 0.06, 0.06])
    assert [r.adjusted_confidence for r in results] == pytest.approx([1 - 0.05 / 3, 0.95, 0.975])
    first = estimate(0.01, 0.05)
    assert (results[0].lo, results[0].hi) == first.interval(1 - 0.05 / 3)


def test_holm_rejects_all_and_signs_decide() -> None:
    # 0.01 <= 0.0167, 0.02 <= 0.025, 0.04 <= 0.05: all rejected
    results = holm([estimate(0.04, 0.05), estimate(0.01, -0.05), estimate(0.02, 0.05)])
    assert [r.verdict for r in results] == ["holds", "refuted", "holds"]
    assert [r.verdict for r in holm([estimate(0.01, -0.05)], claimed="less")] == ["holds"]
    assert all(r.adjusted_p <= 1.0 for r in holm([estimate(0.9, 0.0), estimate(0.8, 0.0)]))
    with pytest.raises(ValueError, match="alpha"):
        holm([estimate(0.01, 0.05)], alpha=0.0)
    with pytest.raises(TypeError, match="Estimate"):
        holm([0.01])


def test_combine() -> None:
    assert combine(["holds", "holds"]) == "holds"
    assert combine(["holds", "inconclusive"]) == "inconclusive"
    assert combine(["holds", "refuted", "inconclusive"]) == "refuted"
    with pytest.raises(ValueError, match="at least one"):
        combine([])
    with pytest.raises(ValueError, match="verdict"):
        combine(["maybe"])
