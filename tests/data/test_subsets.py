"""s2ssl.data.subsets: deterministic, nested label fractions and the region-transfer split."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from s2ssl.data.subsets import hash_rank, label_fraction_subset, region_transfer_split

IDS = [f"patch-{i:04d}" for i in range(1000)]
FRACTIONS = [0.01, 0.1, 0.5, 1.0]


def chosen_ids(ids: list[str], positions: np.ndarray) -> set[str]:
    return {ids[p] for p in positions}


def test_sizes_are_ceil_of_fraction() -> None:
    for fraction, size in zip(FRACTIONS, [10, 100, 500, 1000], strict=True):
        subset = label_fraction_subset(IDS, fraction, seed=0)
        assert len(subset) == size == math.ceil(fraction * len(IDS))
        assert subset.dtype == np.int64
        assert np.all(np.diff(subset) > 0)  # sorted, no repeats
    # ceil rounds up: 1 % of 150 ids is 1.5 -> 2; float noise does not add one (0.07·100 -> 7)
    assert len(label_fraction_subset(IDS[:150], 0.01, seed=0)) == 2
    assert len(label_fraction_subset(IDS[:100], 0.07, seed=0)) == 7
    assert len(label_fraction_subset(IDS[:100], 0.29, seed=0)) == 29


def test_deterministic_and_seed_dependent() -> None:
    a = label_fraction_subset(IDS, 0.1, seed=3)
    b = label_fraction_subset(IDS, 0.1, seed=3)
    np.testing.assert_array_equal(a, b)
    c = label_fraction_subset(IDS, 0.1, seed=4)
    assert set(a.tolist()) != set(c.tolist())
    # not simply the first rows of the list
    assert set(a.tolist()) != set(range(100))


def test_nested_across_fractions() -> None:
    for seed in (0, 1):
        subsets = [set(label_fraction_subset(IDS, f, seed=seed).tolist()) for f in FRACTIONS]
        for small, large in itertools.pairwise(subsets):
            assert small < large
    # also for fractions whose sizes differ by one sample only
    sizes = [set(label_fraction_subset(IDS, k / 1000, seed=0).tolist()) for k in range(1, 30)]
    for small, large in itertools.pairwise(sizes):
        assert small < large and len(large - small) == 1


def test_independent_of_id_order() -> None:
    shuffled = IDS.copy()
    random.Random(0).shuffle(shuffled)
    for fraction in FRACTIONS:
        original = chosen_ids(IDS, label_fraction_subset(IDS, fraction, seed=7))
        permuted = chosen_ids(shuffled, label_fraction_subset(shuffled, fraction, seed=7))
        assert original == permuted
    # the ranking of an id depends on the set of ids only
    ranks = dict(zip(IDS, hash_rank(IDS, 7).tolist(), strict=True))
    assert ranks == dict(zip(shuffled, hash_rank(shuffled, 7).tolist(), strict=True))
    assert sorted(ranks.values()) == list(range(len(IDS)))


def test_min_samples() -> None:
    ids = IDS[:100]
    assert len(label_fraction_subset(ids, 0.001, seed=0)) == 1  # ceil(0.1) = 1
    assert len(label_fraction_subset(ids, 0.001, seed=0, min_samples=5)) == 5
    assert len(label_fraction_subset(ids, 0.5, seed=0, min_samples=5)) == 50
    assert len(label_fraction_subset(ids, 0.01, seed=0, min_samples=500)) == 100  # capped
    # still a prefix of the same ranking: nested with the plain subsets
    five = set(label_fraction_subset(ids, 0.001, seed=0, min_samples=5).tolist())
    assert five < set(label_fraction_subset(ids, 0.1, seed=0).tolist())


def test_stratified_keeps_every_class_and_is_nested() -> None:
    # classes of 900, 95 and 5 samples, interleaved
    classes = [0] * 900 + [1] * 95 + [2] * 5
    random.Random(1).shuffle(classes)
    per_fraction = []
    for fraction in FRACTIONS:
        subset = label_fraction_subset(IDS, fraction, seed=0, stratify=classes)
        chosen = np.asarray(classes)[subset]
        counts = [int((chosen == c).sum()) for c in range(3)]
        # ceil(f · n_c) per class
        assert counts == [math.ceil(fraction * n - 1e-9) for n in (900, 95, 5)]
        assert min(counts) >= 1
        per_fraction.append(set(subset.tolist()))
    # 1 %: 9 + 1 + 1 = 11 samples, more than ceil(0.01 · 1000) = 10 (one rounding per class)
    assert len(per_fraction[0]) == 11
    for small, large in itertools.pairwise(per_fraction):
        assert small < large
    # order-independent with the classes permuted alongside the ids
    order = list(range(len(IDS)))
    random.Random(2).shuffle(order)
    ids_p = [IDS[i] for i in order]
    classes_p = [classes[i] for i in order]
    assert chosen_ids(IDS, label_fraction_subset(IDS, 0.1, 5, stratify=classes)) == chosen_ids(
        ids_p, label_fraction_subset(ids_p, 0.1, 5, stratify=classes_p)
    )


def test_stratified_min_samples_is_per_class() -> None:
    classes = [0] * 50 + [1] * 50
    subset = label_fraction_subset(IDS[:100], 0.01, seed=0, min_samples=3, stratify=classes)
    chosen = np.asarray(classes)[subset]
    assert [int((chosen == c).sum()) for c in (0, 1)] == [3, 3]


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_bad_fraction_raises_value_error(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        label_fraction_subset(IDS, fraction, seed=0)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        label_fraction_subset(IDS, True, seed=0)
    with pytest.raises(ValueError, match="unique"):
        label_fraction_subset(["a", "b", "a"], 0.5, seed=0)
    with pytest.raises(TypeError):
        label_fraction_subset([1, 2, 3], 0.5, seed=0)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="min_samples"):
        label_fraction_subset(IDS, 0.5, seed=0, min_samples=0)
    with pytest.raises(ValueError, match="one class per id"):
        label_fraction_subset(IDS, 0.5, seed=0, stratify=[0, 1])
    with pytest.raises(TypeError):
        label_fraction_subset(IDS, 0.5, seed="0")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# region_transfer_split
# ----------------------------------------------------------------------------------------------


def test_region_transfer_split_positions() -> None:
    regions = ["alps", "po", "alps", "danube", "po", "po"]
    source, target = region_transfer_split(regions, "po")
    assert source.tolist() == [0, 2, 3]
    assert target.tolist() == [1, 4, 5]
    assert source.dtype == target.dtype == np.int64
    source, target = region_transfer_split(regions, "danube")
    assert source.tolist() == [0, 1, 2, 4, 5]
    assert target.tolist() == [3]


def test_region_transfer_split_errors() -> None:
    with pytest.raises(ValueError, match=r"available regions: \['alps', 'po'\]"):
        region_transfer_split(["alps", "po"], "rhine")
    with pytest.raises(ValueError, match="nothing would be left"):
        region_transfer_split(["po", "po"], "po")
    with pytest.raises(ValueError, match="available regions"):
        region_transfer_split([], "po")
    with pytest.raises(TypeError):
        region_transfer_split("alps", "alps")
