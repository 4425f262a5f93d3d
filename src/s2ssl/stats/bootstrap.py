"""Confidence intervals of contrasts between training arms, and of the difference of two models.

**Contrasts over replicates and test samples** (:func:`contrast_bootstrap`). An *arm* is one
training configuration (e.g. an initialisation × label fraction × setting, or the boundary /
interior part of one); it was trained ``R`` times (replicates; replicate ``r`` of every arm used
the same seeds, so arms are *paired* by replicate) and every replicate was scored on the same
``n`` test samples, stored as one confusion matrix per test sample: ``C[a, r, i]``. The
contrast of replicate ``r`` is ``d_r = Σ_a w_a · score(Σ_i C[a, r, i])`` (a gain: weights
``[1, -1]``; a difference of gains: ``[1, -1, -1, 1]``). Its uncertainty has two sources, and
the interval combines them in two levels:

1. *Test samples, nonparametric.* A draw ``b`` resamples the ``n`` test samples with
   replacement (multinomial counts ``m_{b,i}``). The **same** draw is applied to every
   replicate and every arm, because all of them were scored on the same test images (a crossed
   design); independent draws per replicate would average the test-set noise over replicates
   and understate it. ``d_{r,b} = Σ_a w_a · score(Σ_i m_{b,i} C[a, r, i])``.
2. *Replicates, Student-t.* ``m_b = mean_r d_{r,b} + T_b · sd_r(d_{r,b}) / sqrt(R)`` with
   ``T_b ~ t(R − 1)`` and ``sd`` with ``ddof=1``. A percentile bootstrap that resamples
   ``R = 3`` replicates would put the interval at the [min, max] of the three and call an
   effect whenever all three share a sign, which happens 25 % of the time when there is no
   effect; the t step is the exact small-sample interval of the mean of ``R`` normal
   replicates and tends to the replicate bootstrap as ``R`` grows. With ``R = 1`` the
   replicate variance cannot be estimated: the interval is ``(-inf, +inf)`` and the p-value 1
   (never a finding), while the point value is still reported.

The interval is the percentile interval of the ``m_b``; the two-sided p-value is
``min(1, 2 · (1 + #{m_b on the far side of 0}) / (B + 1))``, where the far side is the side of
0 opposite to the bulk of the draws. Draws on which a score is undefined (``nan``) are dropped;
more than 5 % of them is an error.

**Ranking scores** (:func:`ranking_contrast_bootstrap`): the same two levels for the mAP of
multi-label arms, whose test samples are stored as rows of class scores and truth ``(n, 2, K)``
instead of confusion matrices; a draw's counts weight the samples
(:func:`s2ssl.stats.ranking.average_precision`).

**Two fixed models** (:func:`paired_difference`): ``score(a) − score(b)`` on the same test
samples, with a single-level paired bootstrap over test samples (``scipy.stats.bootstrap``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np
from scipy import stats

from s2ssl.stats.confusion import METRICS, score_from_confusion
from s2ssl.stats.ranking import RANKING_METRICS, average_precision

__all__ = [
    "Estimate",
    "contrast_bootstrap",
    "minimum_detectable_effect",
    "paired_difference",
    "ranking_contrast_bootstrap",
]

MAX_NAN_FRACTION: Final[float] = 0.05
"""The largest share of bootstrap draws whose score may be undefined (they are dropped)."""

MIN_BOOT: Final[int] = 100
"""The fewest bootstrap draws accepted."""

_CHUNK_BYTES: Final[int] = 64 * 2**20
"""Memory bound of one chunk of resampled confusion matrices."""


@dataclass(frozen=True)
class Estimate:
    """A contrast's point value, its bootstrap interval and what it was computed from."""

    metric: str
    value: float
    """Mean over replicates of the per-replicate contrast on the full test set."""
    lo: float
    hi: float
    confidence: float
    p_value: float
    """Two-sided bootstrap p-value of "the contrast is 0" (+1 corrected, in (0, 1])."""
    se: float
    """Standard deviation of the bootstrap draws (``inf`` when it cannot be estimated)."""
    iqm: float
    """Interquartile mean of :attr:`per_replicate` (``scipy.stats.trim_mean(·, 0.25)``)."""
    per_replicate: tuple[float, ...]
    n_replicates: int
    n_samples: int
    draws: np.ndarray = field(repr=False, compare=False)
    """The finite bootstrap draws of the contrast (empty when the interval is unbounded)."""

    @property
    def mean(self) -> float:
        """The same as :attr:`value`."""
        return self.value

    def interval(self, confidence: float) -> tuple[float, float]:
        """The percentile interval of the draws at another ``confidence`` level.

        Raises:
            ValueError: ``confidence`` not in (0, 1).
        """
        _check_confidence(confidence)
        if self.draws.size == 0:
            return -math.inf, math.inf
        alpha = (1.0 - confidence) / 2.0
        lo, hi = np.quantile(self.draws, [alpha, 1.0 - alpha])
        return float(lo), float(hi)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly record (without the draws; infinities as ``None``)."""

        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {
            "metric": self.metric,
            "value": num(self.value),
            "mean": num(self.value),
            "lo": num(self.lo),
            "hi": num(self.hi),
            "confidence": self.confidence,
            "p_value": self.p_value,
            "se": num(self.se),
            "iqm": num(self.iqm),
            "per_replicate": [num(x) for x in self.per_replicate],
            "n_replicates": self.n_replicates,
            "n_samples": self.n_samples,
        }


def _check_confidence(confidence: object) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise TypeError(f"confidence must be a float, got {type(confidence).__name__}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), e.g. 0.95; got {confidence}")
    return float(confidence)


def _check_common(
    metric: object,
    confidence: object,
    n_boot: object,
    seed: object,
    metrics: tuple[str, ...] = METRICS,
) -> None:
    if metric not in metrics:
        raise ValueError(f"metric must be one of {list(metrics)}, got {metric!r}")
    _check_confidence(confidence)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int):
        raise TypeError(f"n_boot must be an int, got {type(n_boot).__name__}")
    if n_boot < MIN_BOOT:
        raise ValueError(f"n_boot must be >= {MIN_BOOT} for a usable interval, got {n_boot}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")


def _counts(name: str, value: object, ndim: int, layout: str) -> np.ndarray:
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer confusion counts, got dtype {array.dtype}")
    if array.ndim != ndim or array.shape[-1] != array.shape[-2] or array.shape[-1] < 2:
        raise ValueError(f"{name} must have shape {layout} with K >= 2, got {array.shape}")
    if array.size and array.min() < 0:
        raise ValueError(f"{name} holds negative counts; confusion matrices count entries")
    return array


def _finite_draws(draws: np.ndarray, metric: str) -> np.ndarray:
    """``draws`` without ``nan``; an error when more than :data:`MAX_NAN_FRACTION` are ``nan``."""
    undefined = np.isnan(draws)
    share = float(undefined.mean()) if draws.size else 0.0
    if share > MAX_NAN_FRACTION:
        raise ValueError(
            f"{metric} is undefined on {share:.1%} of the bootstrap resamples (more than "
            f"{MAX_NAN_FRACTION:.0%}): too few labelled test samples or classes for this metric"
        )
    return draws[~undefined]


def _p_value(draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of 0, +1 corrected."""
    if draws.size == 0:
        return 1.0
    below = int(np.count_nonzero(draws <= 0.0))
    above = int(np.count_nonzero(draws >= 0.0))
    return min(1.0, 2.0 * (1 + min(below, above)) / (draws.size + 1))


def _estimate(
    metric: str,
    per_replicate: np.ndarray,
    draws: np.ndarray,
    confidence: float,
    n_samples: int,
    *,
    bounded: bool,
) -> Estimate:
    per = tuple(float(x) for x in per_replicate)
    kept = draws if bounded else np.empty(0)
    base = Estimate(
        metric=metric,
        value=float(np.mean(per_replicate)),
        lo=-math.inf,
        hi=math.inf,
        confidence=confidence,
        p_value=_p_value(kept),
        se=float(np.std(kept, ddof=1)) if kept.size > 1 else math.inf,
        iqm=float(stats.trim_mean(per_replicate, 0.25)),
        per_replicate=per,
        n_replicates=len(per),
        n_samples=n_samples,
        draws=kept,
    )
    lo, hi = base.interval(confidence)
    return replace(base, lo=lo, hi=hi)


def contrast_bootstrap(
    arms: Sequence[np.ndarray],
    weights: Sequence[float],
    metric: str,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """The contrast ``Σ_a w_a · score(arm a)`` with a two-level interval (module docstring).

    Args:
        arms: one ``(R, n, K, K)`` integer array per arm: per replicate, per test sample
            confusion matrices; every arm has the same ``R`` (paired by replicate), ``n`` (the
            same test samples, in the same order) and ``K``.
        weights: one weight per arm.
        metric: a score of :data:`s2ssl.stats.confusion.METRICS`.
        confidence: level of the interval.
        n_boot: number of bootstrap draws ``B`` (>= 100).
        seed: seed of the draws (the same seed gives the same draws).

    Raises:
        TypeError: non-integer counts or wrong argument types.
        ValueError: shapes that do not match, a weight per arm missing, ``confidence`` outside
            (0, 1), ``n_boot`` < 100, a score undefined on the full test set or on more than
            5 % of the resamples.
    """
    _check_common(metric, confidence, n_boot, seed)
    stacked, w = _paired_arms(
        arms, weights, "(R, n, K, K)", lambda a, arm: _counts(f"arms[{a}]", arm, 4, "(R, n, K, K)")
    )
    n_rep, n, k, _ = stacked[0].shape
    data = np.stack(stacked).reshape(len(stacked), n_rep, n, k * k).astype(np.float64)

    def contrasts(summed: np.ndarray) -> np.ndarray:
        """(A, R, ..., K²) summed matrices → (R, ...) contrasts."""
        scores = score_from_confusion(summed.reshape(*summed.shape[:-1], k, k), metric)
        return np.tensordot(w, scores, axes=(0, 0))

    chunk = max(1, min(n_boot, _CHUNK_BYTES // (8 * (data.shape[0] * n_rep * k * k + n))))
    return _two_level(
        lambda counts: contrasts(np.einsum("bi,arik->arbk", counts, data)),
        contrasts(data.sum(axis=2)),
        metric,
        undefined="; check the confusion matrices",
        confidence=confidence,
        n_boot=n_boot,
        seed=seed,
        chunk=chunk,
        n=n,
    )


def _paired_arms(
    arms: Sequence[np.ndarray],
    weights: Sequence[float],
    layout: str,
    convert: Callable[[int, np.ndarray], np.ndarray],
) -> tuple[list[np.ndarray], np.ndarray]:
    """The arms (each through ``convert``), checked to share one ``layout`` shape with at least
    one replicate and one test sample, and their weights as an array.

    Raises:
        TypeError: ``arms`` is not a non-empty sequence.
        ValueError: shapes that differ, no replicate or sample, a weight per arm missing.
    """
    if isinstance(arms, np.ndarray) or not isinstance(arms, Sequence) or not arms:
        raise TypeError(f"arms must be a non-empty sequence of {layout} arrays, one per arm")
    stacked = [convert(a, arm) for a, arm in enumerate(arms)]
    shape = stacked[0].shape
    for a, arm in enumerate(stacked):
        if arm.shape != shape:
            raise ValueError(
                f"every arm must have the shape {layout} of arms[0] {shape} (the same "
                f"replicates and test samples), arms[{a}] has {arm.shape}"
            )
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(stacked),) or not np.all(np.isfinite(w)):
        raise ValueError(
            f"weights must be {len(stacked)} finite numbers (one per arm), got {list(weights)}"
        )
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"arms need at least one replicate and one test sample, got {shape}")
    return stacked, w


def _two_level(
    contrasts: Callable[[np.ndarray], np.ndarray],
    per_replicate: np.ndarray,
    metric: str,
    *,
    undefined: str,
    confidence: float,
    n_boot: int,
    seed: int,
    chunk: int,
    n: int,
) -> Estimate:
    """The two-level interval: ``contrasts`` maps ``(B, n)`` multinomial test-sample counts
    (one draw shared by every replicate and arm, drawn ``chunk`` at a time) to ``(R, B)``
    contrasts; over replicates, their mean plus a Student-t term (R - 1 degrees of freedom).

    ``per_replicate`` are the contrasts on the full test set; a non-finite one raises
    ``ValueError`` ending with ``undefined`` (what to check)."""
    if not np.all(np.isfinite(per_replicate)):
        raise ValueError(
            f"{metric} is undefined on the full test set for some arm and replicate "
            f"(contrasts {per_replicate.tolist()}){undefined}"
        )
    n_rep = per_replicate.shape[0]
    sample_rng, t_rng = np.random.default_rng(seed).spawn(2)
    test_level = np.empty((n_rep, n_boot))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        counts = sample_rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)
        test_level[:, start : start + size] = contrasts(counts)
    if n_rep == 1:
        return _estimate(metric, per_replicate, test_level[0], confidence, n, bounded=False)
    t_draws = stats.t.rvs(df=n_rep - 1, size=n_boot, random_state=t_rng)
    draws = test_level.mean(axis=0) + t_draws * test_level.std(axis=0, ddof=1) / math.sqrt(n_rep)
    return _estimate(
        metric, per_replicate, _finite_draws(draws, metric), confidence, n, bounded=True
    )


def ranking_contrast_bootstrap(
    arms: Sequence[np.ndarray],
    weights: Sequence[float],
    metric: str,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """:func:`contrast_bootstrap` for ranking scores (``map_micro`` / ``map_macro``).

    Args:
        arms: one ``(R, n, 2, K)`` float array per arm: per replicate and test sample, the class
            scores (``[..., 0, :]``) and the multi-hot truth (``[..., 1, :]``); every arm has
            the same shape (paired replicates, the same test samples in the same order).
        weights, confidence, n_boot, seed: as :func:`contrast_bootstrap`.

    Raises:
        TypeError: wrong argument types.
        ValueError: as :func:`contrast_bootstrap`.
    """
    _check_common(metric, confidence, n_boot, seed, RANKING_METRICS)

    def scores_and_truth(a: int, arm: np.ndarray) -> np.ndarray:
        out = np.asarray(arm, dtype=np.float64)
        if out.ndim != 4 or out.shape[2] != 2:
            raise ValueError(f"every arm must have shape (R, n, 2, K), got {out.shape}")
        return out

    stacked, w = _paired_arms(arms, weights, "(R, n, 2, K)", scores_and_truth)
    n_rep, n, _, k = stacked[0].shape

    def contrasts(counts: np.ndarray) -> np.ndarray:
        """(B, n) sample weights → (R, B) contrasts."""
        out = np.zeros((n_rep, counts.shape[0]))
        for wa, arm in zip(w, stacked, strict=True):
            for r in range(n_rep):
                out[r] += wa * average_precision(arm[r, :, 0], arm[r, :, 1], counts, metric=metric)
        return out

    chunk = max(1, min(n_boot, _CHUNK_BYTES // (8 * 4 * n * k)))
    return _two_level(
        contrasts,
        contrasts(np.ones((1, n)))[:, 0],
        metric,
        undefined=": the test set has no positive label",
        confidence=confidence,
        n_boot=n_boot,
        seed=seed,
        chunk=chunk,
        n=n,
    )


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    metric: str,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """``score(Σ a) − score(Σ b)`` of two models scored on the same ``n`` test samples, with a
    paired percentile bootstrap over the test samples (``scipy.stats.bootstrap``: each draw
    resamples sample indices and sums both models' matrices of those samples).

    Args:
        a, b: ``(n, K, K)`` integer per-test-sample confusion matrices, sample ``i`` of ``a``
            and of ``b`` being the same test sample.
        metric: a score of :data:`s2ssl.stats.confusion.METRICS`.
        confidence: level of the interval.
        n_boot: number of bootstrap draws (>= 100).
        seed: seed of the draws.

    Returns:
        An :class:`Estimate` with ``n_replicates = 1`` and ``per_replicate = (value,)``.

    Raises:
        TypeError, ValueError: as :func:`contrast_bootstrap`.
    """
    _check_common(metric, confidence, n_boot, seed)
    first = _counts("a", a, 3, "(n, K, K)")
    second = _counts("b", b, 3, "(n, K, K)")
    if first.shape != second.shape:
        raise ValueError(
            f"a and b must score the same test samples and classes, got shapes {first.shape} "
            f"and {second.shape}"
        )
    n, k = first.shape[0], first.shape[1]
    if n < 2:
        raise ValueError(f"a paired bootstrap needs at least 2 test samples, got {n}")
    both = np.stack([first, second], axis=1).astype(np.float64)  # (n, 2, K, K)

    def difference(index: np.ndarray, axis: int = -1) -> np.ndarray:
        summed = both[np.moveaxis(index, axis, -1)].sum(axis=-4)  # (..., 2, K, K)
        scores = score_from_confusion(summed, metric)
        return scores[..., 0] - scores[..., 1]

    value = float(difference(np.arange(n)))
    if not math.isfinite(value):
        raise ValueError(f"{metric} is undefined on the full test set of a or b")
    result = stats.bootstrap(
        (np.arange(n),),
        difference,
        n_resamples=n_boot,
        batch=max(1, min(n_boot, _CHUNK_BYTES // (8 * 2 * n * k * k))),
        vectorized=True,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    draws = _finite_draws(np.asarray(result.bootstrap_distribution, dtype=np.float64), metric)
    return _estimate(metric, np.array([value]), draws, float(confidence), n, bounded=True)


def minimum_detectable_effect(estimate: Estimate, *, power: float = 0.8) -> float:
    """The smallest true contrast that this design would call (its interval clear of 0) with
    probability ``power``, at the estimate's own confidence level ``1 − α``.

    The standard error is read off the interval rather than the draws: with few replicates the
    Student-t step has heavy tails (``R = 3``: t with 2 degrees of freedom, infinite variance), so
    the draws' standard deviation is unstable while their percentiles are not. With the
    half-width ``h = t_{1−α/2, R−1} · SE``, the effect must lie ``t_{1−α/2} + t_{power}`` standard
    errors from 0: ``MDE = h · (1 + t_{power, R−1} / t_{1−α/2, R−1})``. ``inf`` when ``R < 2`` or
    the interval is unbounded.

    Raises:
        ValueError: ``power`` outside (0, 1).
    """
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must lie in (0, 1), got {power}")
    bounded = math.isfinite(estimate.lo) and math.isfinite(estimate.hi)
    if estimate.n_replicates < 2 or not bounded:
        return math.inf
    df = estimate.n_replicates - 1
    t_alpha = float(stats.t.ppf(0.5 + estimate.confidence / 2.0, df))
    t_power = float(stats.t.ppf(power, df))
    return (estimate.hi - estimate.lo) / 2.0 * (1.0 + t_power / t_alpha)
