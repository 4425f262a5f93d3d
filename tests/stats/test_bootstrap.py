"""s2ssl.stats.bootstrap against exact enumeration, Student-t intervals and simulated nulls."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from s2ssl.stats.bootstrap import (
    Estimate,
    contrast_bootstrap,
    minimum_detectable_effect,
    paired_difference,
)
from s2ssl.stats.confusion import score_from_confusion
from s2ssl.stats.verdicts import verdict_from_interval

# four test samples of two models (rows = truth, columns = prediction)
A4 = np.array([[[3, 1], [0, 4]], [[2, 0], [1, 5]], [[4, 2], [1, 1]], [[1, 0], [3, 4]]])
B4 = np.array([[[2, 2], [1, 3]], [[2, 0], [2, 4]], [[5, 1], [0, 2]], [[1, 0], [4, 3]]])


def exact_resampling(a, b, metric):
    """Every one of the n^n equally likely resamples: the distribution of score(a) − score(b)."""
    n = a.shape[0]
    values = []
    for index in itertools.product(range(n), repeat=n):
        idx = list(index)
        values.append(
            float(score_from_confusion(a[idx].sum(0), metric))
            - float(score_from_confusion(b[idx].sum(0), metric))
        )
    return np.array(values)


def exact_quantile(values, q):
    """Inverted-CDF quantile of an equally weighted discrete distribution."""
    return float(np.quantile(values, q, method="inverted_cdf"))


def assert_matches_exact(draws, exact):
    b = draws.size
    assert draws.mean() == pytest.approx(exact.mean(), abs=4 * exact.std() / math.sqrt(b))
    assert draws.var() == pytest.approx(exact.var(), rel=0.08)
    lo, hi = np.quantile(draws, [0.025, 0.975])
    assert exact_quantile(exact, 0.01) <= lo <= exact_quantile(exact, 0.04)
    assert exact_quantile(exact, 0.96) <= hi <= exact_quantile(exact, 0.99)


def test_test_sample_level_matches_exact_enumeration_of_all_resamples() -> None:
    # three identical replicates: the replicate term vanishes (sd = 0), so the draws are the
    # test-sample bootstrap alone; one resample shared by all replicates keeps them identical
    exact = exact_resampling(A4, B4, "miou")
    arms = [np.repeat(A4[None], 3, axis=0), np.repeat(B4[None], 3, axis=0)]
    estimate = contrast_bootstrap(arms, [1.0, -1.0], "miou", n_boot=20000, seed=4)
    full = float(score_from_confusion(A4.sum(0), "miou") - score_from_confusion(B4.sum(0), "miou"))
    assert estimate.value == pytest.approx(full)
    assert estimate.per_replicate == pytest.approx((full, full, full))
    assert estimate.n_replicates == 3 and estimate.n_samples == 4
    assert_matches_exact(estimate.draws, exact)
    assert (estimate.lo, estimate.hi) == estimate.interval(0.95)


def test_replicate_level_is_the_student_t_interval() -> None:
    # every test sample of a replicate has the same matrix: resampling them changes nothing,
    # and the interval is the t interval of the per-replicate contrasts
    rng = np.random.default_rng(0)
    per_rep = [rng.integers(1, 20, (2, 2)) for _ in range(4)]
    a = np.stack([np.repeat(c[None], 6, axis=0) for c in per_rep])
    b = np.repeat(np.array([[10, 5], [5, 10]])[None, None], 6, axis=1).repeat(4, axis=0)
    estimate = contrast_bootstrap([a, b], [1, -1], "overall_accuracy", n_boot=40000, seed=1)
    d = np.array([score_from_confusion(c, "overall_accuracy") - 2 / 3 for c in per_rep])
    assert estimate.per_replicate == pytest.approx(tuple(d))
    lo, hi = stats.t.interval(0.95, 3, loc=d.mean(), scale=d.std(ddof=1) / 2)
    half = (hi - lo) / 2
    assert estimate.lo == pytest.approx(lo, abs=0.06 * half)
    assert estimate.hi == pytest.approx(hi, abs=0.06 * half)
    assert estimate.iqm == pytest.approx(stats.trim_mean(d, 0.25))


K, N, PIXELS = 2, 20, 100


def simulated_arm(rng, accuracy):
    """(R, N, K, K): per replicate ``r`` every pixel is right with probability accuracy[r]."""
    r = accuracy.size
    truth = rng.integers(0, K, (r, N, PIXELS))
    pred = np.where(rng.random(truth.shape) < accuracy[:, None, None], truth, 1 - truth)
    out = np.zeros((r, N, K, K), dtype=np.int64)
    rows, samples = np.arange(r)[:, None, None], np.arange(N)[None, :, None]
    np.add.at(out, (rows, samples, truth, pred), 1)
    return out


def simulated_gain(seed, effect, replicates=3, noise=0.04):
    rng = np.random.default_rng(seed)
    init = simulated_arm(rng, 0.75 + effect + rng.normal(0, noise, replicates))
    random = simulated_arm(rng, 0.75 + rng.normal(0, noise, replicates))
    return [init, random]


def test_null_effects_are_rarely_called_unlike_a_percentile_bootstrap_over_replicates() -> None:
    called = naive_called = 0
    for seed in range(200):
        estimate = contrast_bootstrap(
            simulated_gain(seed, 0.0), [1, -1], "overall_accuracy", n_boot=200, seed=seed
        )
        called += verdict_from_interval(estimate.lo, estimate.hi) != "inconclusive"
        # documentation: resampling the 3 replicates puts the interval at their [min, max]
        d = np.array(estimate.per_replicate)
        means = d[np.random.default_rng(seed).integers(0, 3, (200, 3))].mean(axis=1)
        lo, hi = np.quantile(means, [0.025, 0.975])
        naive_called += verdict_from_interval(lo, hi) != "inconclusive"
    assert 0.01 <= called / 200 <= 0.10
    assert naive_called / 200 >= 0.18


def test_a_real_effect_holds_and_the_opposite_is_refuted() -> None:
    arms = simulated_gain(7, 0.12, noise=0.01)
    gain = contrast_bootstrap(arms, [1, -1], "miou", n_boot=500)
    assert verdict_from_interval(gain.lo, gain.hi) == "holds"
    beyond = min(np.count_nonzero(gain.draws <= 0), np.count_nonzero(gain.draws >= 0))
    assert gain.p_value == pytest.approx(2 * (1 + beyond) / (gain.draws.size + 1))
    assert gain.p_value < 0.02
    loss = contrast_bootstrap(arms, [-1, 1], "miou", n_boot=500)
    assert verdict_from_interval(loss.lo, loss.hi) == "refuted"
    assert loss.value == pytest.approx(-gain.value)


def test_pairing_by_replicate_cancels_a_shared_replicate_effect() -> None:
    rng = np.random.default_rng(3)
    shared = rng.normal(0, 0.1, 5)  # seed effects common to both arms of a replicate
    init = simulated_arm(rng, 0.7 + 0.03 + shared + rng.normal(0, 0.005, 5))
    random = simulated_arm(rng, 0.7 + shared + rng.normal(0, 0.005, 5))
    paired = contrast_bootstrap([init, random], [1, -1], "overall_accuracy", n_boot=1000)
    unpaired = contrast_bootstrap(
        [init, random[[1, 2, 3, 4, 0]]], [1, -1], "overall_accuracy", n_boot=1000
    )
    assert paired.value == pytest.approx(unpaired.value)
    assert verdict_from_interval(paired.lo, paired.hi) == "holds"
    assert (unpaired.hi - unpaired.lo) > 3 * (paired.hi - paired.lo)


def test_a_difference_of_gains_weights_four_arms() -> None:
    arms = simulated_gain(1, 0.1) + simulated_gain(2, 0.02)
    estimate = contrast_bootstrap(arms, [1, -1, -1, 1], "miou", n_boot=200)
    scores = [score_from_confusion(arm.sum(axis=1), "miou") for arm in arms]
    d = scores[0] - scores[1] - scores[2] + scores[3]
    assert estimate.per_replicate == pytest.approx(tuple(d))
    assert estimate.value == pytest.approx(d.mean())


def test_one_replicate_is_never_a_finding() -> None:
    arms = [arm[:1] for arm in simulated_gain(0, 0.2)]
    estimate = contrast_bootstrap(arms, [1, -1], "miou", n_boot=200)
    assert (estimate.lo, estimate.hi, estimate.p_value) == (-math.inf, math.inf, 1.0)
    assert estimate.value == estimate.per_replicate[0] > 0.1
    assert minimum_detectable_effect(estimate) == math.inf
    assert estimate.as_dict()["lo"] is None


def test_same_seed_same_draws_and_the_record_is_json() -> None:
    arms = simulated_gain(5, 0.05)
    first = contrast_bootstrap(arms, [1, -1], "kappa", n_boot=300, seed=9)
    again = contrast_bootstrap(arms, [1, -1], "kappa", n_boot=300, seed=9)
    np.testing.assert_array_equal(first.draws, again.draws)
    assert first == again
    record = json.loads(json.dumps(first.as_dict()))
    assert "draws" not in record and "draws" not in repr(first)
    assert record["mean"] == record["value"] == first.mean
    lo90, hi90 = first.interval(0.9)
    assert first.lo <= lo90 <= hi90 <= first.hi


def test_mostly_undefined_resamples_are_an_error_naming_the_metric() -> None:
    # nine samples that only ever show class 0: a resample without the tenth has kappa 0 / 0
    samples = np.zeros((10, 2, 2), dtype=np.int64)
    samples[:9, 0, 0] = 1
    samples[9, 1, 1] = 1
    arm = np.repeat(samples[None], 2, axis=0)
    with pytest.raises(ValueError, match="kappa is undefined"):
        contrast_bootstrap([arm, arm], [1, -1], "kappa", n_boot=200)


def arms_of(shape, dtype=np.int64):
    return np.ones(shape, dtype=dtype)


@pytest.mark.parametrize(
    ("arms", "weights", "kwargs", "error", "match"),
    [
        ([arms_of((2, 3, 2, 2)), arms_of((3, 3, 2, 2))], [1, -1], {}, ValueError, "shape"),
        ([arms_of((2, 3, 2, 2)), arms_of((2, 4, 2, 2))], [1, -1], {}, ValueError, "shape"),
        ([arms_of((2, 3, 2, 2)), arms_of((2, 3, 3, 3))], [1, -1], {}, ValueError, "shape"),
        ([arms_of((3, 2, 2))], [1], {}, ValueError, r"\(R, n, K, K\)"),
        ([arms_of((2, 3, 2, 2))], [1, -1], {}, ValueError, "one per arm"),
        ([arms_of((2, 3, 2, 2), np.float64)], [1], {}, TypeError, "integer"),
        ([arms_of((2, 3, 2, 2))], [1], {"confidence": 1.0}, ValueError, "confidence"),
        ([arms_of((2, 3, 2, 2))], [1], {"n_boot": 50}, ValueError, "n_boot"),
        ([arms_of((2, 3, 2, 2))], [1], {"metric": "auc"}, ValueError, "metric"),
        (arms_of((2, 3, 2, 2)), [1], {}, TypeError, "sequence"),
    ],
)
def test_contrast_bootstrap_rejects_bad_input(arms, weights, kwargs, error, match) -> None:
    kwargs = {"metric": "miou", **kwargs}
    with pytest.raises(error, match=match):
        contrast_bootstrap(arms, weights, **kwargs)


def test_paired_difference_matches_exact_enumeration() -> None:
    exact = exact_resampling(A4, B4, "overall_accuracy")
    estimate = paired_difference(A4, B4, "overall_accuracy", n_boot=20000, seed=2)
    # hand: a is right on 7 + 7 + 5 + 5 = 24 of 32 entries, b on 5 + 6 + 7 + 4 = 22 of 32
    assert estimate.value == pytest.approx(24 / 32 - 22 / 32)
    assert estimate.per_replicate == (estimate.value,)
    assert estimate.n_replicates == 1 and estimate.n_samples == 4
    assert_matches_exact(estimate.draws, exact)
    assert (estimate.lo, estimate.hi) == pytest.approx(
        tuple(np.quantile(estimate.draws, [0.025, 0.975]))
    )


def test_paired_difference_of_a_model_with_itself_is_exactly_zero() -> None:
    estimate = paired_difference(A4, A4, "miou", n_boot=100)
    assert (estimate.value, estimate.lo, estimate.hi, estimate.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_difference_rejects_unmatched_samples() -> None:
    with pytest.raises(ValueError, match="same test samples"):
        paired_difference(A4, B4[:3], "miou")
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference(A4[:1], B4[:1], "miou")


def test_minimum_detectable_effect_by_hand() -> None:
    estimate = Estimate(
        metric="miou",
        value=0.02,
        lo=0.0,
        hi=0.04,
        confidence=0.95,
        p_value=0.05,
        se=0.01,
        iqm=0.02,
        per_replicate=(0.01, 0.02, 0.03),
        n_replicates=3,
        n_samples=10,
        draws=np.array([0.0, 0.04]),
    )
    # half-width 0.02 = t_{0.975, 2} · SE with t_{0.975, 2} = 4.3027, t_{0.8, 2} = 1.0607
    assert minimum_detectable_effect(estimate) == pytest.approx(0.02 * (1 + 1.060660 / 4.302653))
    unbounded = replace(estimate, lo=-math.inf, hi=math.inf)
    assert minimum_detectable_effect(unbounded) == math.inf
    with pytest.raises(ValueError, match="power"):
        minimum_detectable_effect(estimate, power=1.0)
