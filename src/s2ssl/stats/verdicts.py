"""Verdicts on claims from confidence intervals, with Holm's correction for several contrasts.

A claim says a contrast is greater (or less) than a threshold. Its interval decides: entirely on
the claimed side → ``"holds"``; entirely on the other side → ``"refuted"``; straddling the
threshold → ``"inconclusive"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from s2ssl.stats.bootstrap import Estimate

__all__ = ["Claim", "HolmResult", "Verdict", "combine", "holm", "verdict_from_interval"]

Verdict = Literal["holds", "refuted", "inconclusive"]
"""What the data say about a claim."""

Claim = Literal["greater", "less"]
"""The claimed direction of a contrast relative to its threshold."""


def _check_claimed(claimed: object) -> None:
    if claimed not in get_args(Claim):
        raise ValueError(f"claimed must be one of {list(get_args(Claim))}, got {claimed!r}")


def verdict_from_interval(
    lo: float, hi: float, *, claimed: Claim = "greater", threshold: float = 0.0
) -> Verdict:
    """The verdict on "the contrast is ``claimed`` than ``threshold``" from its interval.

    ``claimed="greater"``: ``"holds"`` iff ``lo > threshold``, ``"refuted"`` iff
    ``hi < threshold``; ``"less"`` mirrored; otherwise ``"inconclusive"``.

    Raises:
        ValueError: ``lo > hi``, a ``nan`` bound, or an unknown ``claimed``.
    """
    _check_claimed(claimed)
    if lo != lo or hi != hi or lo > hi:
        raise ValueError(f"an interval needs lo <= hi (not nan), got [{lo}, {hi}]")
    above, below = lo > threshold, hi < threshold
    if claimed == "greater":
        return "holds" if above else "refuted" if below else "inconclusive"
    return "holds" if below else "refuted" if above else "inconclusive"


@dataclass(frozen=True)
class HolmResult:
    """One contrast's outcome under Holm's step-down procedure (:func:`holm`)."""

    verdict: Verdict
    adjusted_confidence: float
    """The level ``1 − α / (m − rank)`` the contrast was tested at."""
    lo: float
    hi: float
    """The contrast's bootstrap interval at :attr:`adjusted_confidence`."""
    p_value: float
    adjusted_p: float
    """Holm-adjusted p-value (monotone in the p-value order, at most 1)."""
    rank: int
    """Position in the ascending order of the p-values (0-based)."""


def holm(
    estimates: Sequence[Estimate], *, alpha: float = 0.05, claimed: Claim = "greater"
) -> list[HolmResult]:
    """Holm's step-down correction of ``m`` contrasts, controlling the family-wise error rate.

    The bootstrap p-values are sorted ascending; the contrast of rank ``k`` (0-based) is
    rejected ("not 0") iff its p-value is at most ``α / (m − k)`` and every smaller rank was
    rejected. A rejected contrast holds or is refuted by the side of its interval at its own
    level ``1 − α / (m − k)``; every other contrast is inconclusive.

    Returns:
        One :class:`HolmResult` per estimate, in input order.

    Raises:
        ValueError: ``alpha`` outside (0, 1) or an unknown ``claimed``.
        TypeError: an item is not an :class:`Estimate`.
    """
    _check_claimed(claimed)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), e.g. 0.05; got {alpha}")
    for i, estimate in enumerate(estimates):
        if not isinstance(estimate, Estimate):
            raise TypeError(f"estimates[{i}] must be an Estimate, got {type(estimate).__name__}")
    m = len(estimates)
    order = sorted(range(m), key=lambda i: estimates[i].p_value)
    results: dict[int, HolmResult] = {}
    rejecting = True
    running = 0.0
    for rank, index in enumerate(order):
        estimate = estimates[index]
        level = alpha / (m - rank)
        running = max(running, min(1.0, (m - rank) * estimate.p_value))
        rejecting = rejecting and estimate.p_value <= level
        lo, hi = estimate.interval(1.0 - level)
        verdict = verdict_from_interval(lo, hi, claimed=claimed) if rejecting else "inconclusive"
        results[index] = HolmResult(
            verdict=verdict,
            adjusted_confidence=1.0 - level,
            lo=lo,
            hi=hi,
            p_value=estimate.p_value,
            adjusted_p=running,
            rank=rank,
        )
    return [results[i] for i in range(m)]


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """The verdict on a claim made of parts: ``"holds"`` iff every part holds, ``"refuted"`` if
    any part is refuted, else ``"inconclusive"``.

    Raises:
        ValueError: no verdicts, or an unknown one.
    """
    parts = list(verdicts)
    if not parts:
        raise ValueError("combine needs at least one verdict")
    for part in parts:
        if part not in get_args(Verdict):
            raise ValueError(f"a verdict must be one of {list(get_args(Verdict))}, got {part!r}")
    if "refuted" in parts:
        return "refuted"
    return "holds" if all(p == "holds" for p in parts) else "inconclusive"
