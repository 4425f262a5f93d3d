"""Date selection of time series of any length (s2ssl.data.temporal), hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from s2ssl.data.store import StoreError, open_dataset
from s2ssl.data.temporal import (
    TEMPORAL_RULE,
    even_positions,
    random_positions,
    resolve_n_dates,
    select_dates,
    series_lengths,
    temporal_sampling,
)
from serieskit import DN_STEP, DOY_STEP, T_MAX, padded_croptype


def test_even_spread_hand_computed() -> None:
    assert even_positions(5, 3).tolist() == [0, 2, 4]
    # 61 dates to 16: step 60 / 15 = 4 exactly
    assert even_positions(61, 16).tolist() == list(range(0, 61, 4))
    # 33 dates to 16: i * 32 / 15 = 0, 2.13, 4.27, 6.4, 8.53, 10.67, 12.8, 14.93, 17.07, ...
    assert even_positions(33, 16).tolist() == [
        0, 2, 4, 6, 9, 11, 13, 15, 17, 19, 21, 23, 26, 28, 30, 32
    ]  # fmt: skip
    # 61 to 12: i * 60 / 11 = 0, 5.45, 10.9, 16.36, 21.8, 27.27, 32.7, 38.18, 43.6, 49.09, 54.5, 60
    assert even_positions(61, 12).tolist() == [0, 5, 11, 16, 22, 27, 33, 38, 44, 49, 55, 60]
    assert even_positions(16, 16).tolist() == list(range(16))
    assert even_positions(7, 1).tolist() == [0]


def test_even_spread_rounds_halves_up() -> None:
    assert even_positions(2, 3).tolist() == [0, 1, 1]  # 0, 0.5, 1
    assert even_positions(4, 3).tolist() == [0, 2, 3]  # 0, 1.5, 3


def test_short_series_repeat_real_dates() -> None:
    assert even_positions(2, 4).tolist() == [0, 0, 1, 1]  # 0, 0.33, 0.67, 1
    assert even_positions(3, 4).tolist() == [0, 1, 1, 2]  # 0, 0.67, 1.33, 2
    assert even_positions(1, 4).tolist() == [0, 0, 0, 0]
    g = torch.Generator().manual_seed(0)
    assert random_positions(2, 4, g).tolist() == [0, 0, 1, 1]


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one date"):
        even_positions(0, 4)
    with pytest.raises(ValueError, match="at least one date"):
        random_positions(4, 0, torch.Generator())


def test_random_subset_sorted_distinct_reproducible_and_varied() -> None:
    draws = []
    for step in range(20):
        g = torch.Generator().manual_seed(1000 + step)
        pos = random_positions(61, 16, g)
        assert pos.tolist() == sorted(set(pos.tolist())) and len(pos) == 16
        assert pos.min() >= 0 and pos.max() <= 60
        again = random_positions(61, 16, torch.Generator().manual_seed(1000 + step))
        assert np.array_equal(pos, again)
        draws.append(tuple(pos.tolist()))
    assert len(set(draws)) == 20


def test_random_subset_of_a_full_series_draws_nothing() -> None:
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    assert random_positions(16, 16, g).tolist() == list(range(16))
    assert torch.equal(g.get_state(), state)


def _batch(lengths: list[int], t_max: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = len(lengths)
    image = torch.zeros(n, t_max, 2, 4, 4, dtype=torch.int16)
    doy = torch.zeros(n, t_max, dtype=torch.int64)
    for k, length in enumerate(lengths):
        for j in range(length):
            image[k, j] = DN_STEP * (j + 1)
            doy[k, j] = DOY_STEP * (j + 1)
    return image, doy, torch.tensor(lengths)


def test_training_draw_never_picks_a_padded_date_and_doy_follows() -> None:
    image, doy, lengths = _batch([3, 5, 9, 2], 9)
    seen = set()
    for step in range(30):
        g = torch.Generator().manual_seed(step)
        x, d = select_dates(image, doy, lengths, 4, g)
        assert x.shape == (4, 4, 2, 4, 4) and d.shape == (4, 4)
        assert bool((d > 0).all()) and bool((x > 0).all())  # padded frames are 0
        for k in range(4):
            assert torch.all(d[k, 1:] >= d[k, :-1])  # time order
            assert torch.equal(x[k, :, 0, 0, 0].long() // DN_STEP, d[k] // DOY_STEP)
        seen.add(tuple(d[2].tolist()))
        assert d[0].tolist() == [10, 20, 20, 30]  # 3 dates: even spread, repeats
        assert d[3].tolist() == [10, 10, 20, 20]
    assert len(seen) > 10  # a new subset of the 9-date series at every step


def test_evaluation_is_the_even_spread() -> None:
    image, doy, lengths = _batch([5, 3, 9], 9)
    x, d = select_dates(image, doy, lengths, 3)
    assert d.tolist() == [[10, 30, 50], [10, 20, 30], [10, 50, 90]]
    x2, d2 = select_dates(image, doy, lengths, 3)
    assert torch.equal(x, x2) and torch.equal(d, d2)


def test_full_series_pass_unchanged() -> None:
    image, doy, _ = _batch([6, 6], 6)
    x, d = select_dates(image, doy, None, 6)
    assert x is image and d is doy
    x, d = select_dates(image, doy, torch.tensor([6, 6]), 6, torch.Generator())
    assert x is image and d is doy
    # fewer dates than stored without a length column: the whole stored series is real
    x, d = select_dates(image, doy, None, 3)
    assert d.tolist() == [[10, 40, 60]] * 2  # 0, 2.5 (half up: 3), 5


def test_select_dates_checks_its_inputs() -> None:
    image, doy, _ = _batch([3], 5)
    with pytest.raises(ValueError, match="lengths must be 1 values in 1 … 5"):
        select_dates(image, doy, torch.tensor([6]), 4)
    with pytest.raises(ValueError, match="doy"):
        select_dates(image, doy[:, :3], None, 4)


def test_resolve_n_dates() -> None:
    assert resolve_n_dates(8, [np.array([3, 5])], 5, "k") == 8
    assert resolve_n_dates(None, [None, np.array([5, 5])], 5, "k") == 5
    with pytest.raises(ValueError, match=r"3 to 5 dates\) and finetune.croptype.n_dates is null"):
        resolve_n_dates(None, [np.array([5]), np.array([3, 5])], 5, "finetune.croptype.n_dates")


def test_series_lengths_read_from_the_index(tmp_path: Path) -> None:
    store = open_dataset(padded_croptype(tmp_path / "a").parent / "raw" / "croptype")
    assert series_lengths(store, np.arange(4)).tolist() == [3, 5, 3, 5]
    plain = open_dataset(
        padded_croptype(tmp_path / "b", with_lengths=False).parent / "raw" / "croptype"
    )
    assert series_lengths(plain, np.arange(4)) is None


def test_series_lengths_out_of_range_are_refused(tmp_path: Path) -> None:
    store = open_dataset(padded_croptype(tmp_path).parent / "raw" / "croptype")
    store.index.loc[0, "n_dates"] = T_MAX + 1
    with pytest.raises(StoreError, match=r"must lie in 1 … 5"):
        series_lengths(store, np.arange(2))


def test_the_rule_is_described() -> None:
    record = temporal_sampling(16)
    assert record["n_dates"] == 16 and record["rule"] == TEMPORAL_RULE
