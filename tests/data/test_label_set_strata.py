"""Label-set strata of multi-label samples and the nested label fractions they stratify."""

from __future__ import annotations

import numpy as np
import pytest

from s2ssl.data.subsets import label_fraction_subset, label_set_strata


def test_frequent_label_sets_are_strata_rare_ones_pooled() -> None:
    labels = np.array([[1, 0]] * 3 + [[0, 1]] * 3 + [[1, 1]] * 1 + [[0, 0]] * 1)
    strata = label_set_strata(labels, min_count=3)
    # frequent sets numbered in lexicographic row order: [0, 1] -> 1, [1, 0] -> 2; rare -> 0
    assert strata.tolist() == [2, 2, 2, 1, 1, 1, 0, 0]
    shuffled = np.random.default_rng(0).permutation(len(labels))
    assert label_set_strata(labels[shuffled], min_count=3).tolist() == strata[shuffled].tolist()


def test_stratified_fractions_keep_label_set_shares_and_nest() -> None:
    rng = np.random.default_rng(0)
    sets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    labels = sets[rng.choice(4, size=2000, p=[0.6, 0.3, 0.08, 0.02])]
    strata = label_set_strata(labels, min_count=100)
    ids = [f"s{i}" for i in range(len(labels))]
    subsets = {
        f: set(label_fraction_subset(ids, f, 7, stratify=strata.tolist()).tolist())
        for f in (0.01, 0.1, 1.0)
    }
    assert subsets[0.01] <= subsets[0.1] <= subsets[1.0]
    small = labels[sorted(subsets[0.1])]
    for row in sets[:3]:  # the three frequent label sets keep their share (± one rounding)
        share = (labels == row).all(1).mean()
        assert abs((small == row).all(1).mean() - share) < 0.01
    assert (small == sets[3]).all(1).any()  # the pooled rare set still has a sample


def test_rejects_non_multi_hot() -> None:
    with pytest.raises(ValueError, match="multi-hot"):
        label_set_strata(np.array([[2, 0]]))
    with pytest.raises(ValueError, match=r"\[n, K\]"):
        label_set_strata(np.array([1, 0]))
