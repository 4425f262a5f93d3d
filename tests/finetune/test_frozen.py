"""Frozen-encoder protocols: the linear probe, the kNN ``k`` and the probe's weight decay chosen
on val."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from s2ssl.config import LinearProbeConfig
from s2ssl.finetune import frozen
from s2ssl.finetune.frozen import (
    fit_linear_probe,
    fit_linear_probe_selected,
    select_knn_k,
    selection_score,
)


@pytest.mark.slow
def test_linear_probe_folds_standardisation_into_the_layer() -> None:
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([1.0, 10, 0.1, 3, 5])
    z = torch.randn(90, 5, generator=g)
    labels = (z @ torch.randn(5, 3, generator=g)).argmax(1)  # linearly separable in z
    feats = z * scale + 4  # ... and in the raw, badly scaled features
    probe = LinearProbeConfig(epochs=300, lr=0.1, weight_decay_choices=[1e-3])
    layer = fit_linear_probe(feats, labels, 3, probe, seed=1, weight_decay=1e-3)
    acc = float((layer(feats).argmax(1) == labels).float().mean())
    assert acc > 0.9


def test_linear_probe_rejects_a_negative_weight_decay() -> None:
    probe = LinearProbeConfig(epochs=1, lr=0.1, weight_decay_choices=[0.0])
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        fit_linear_probe(torch.zeros(2, 1), torch.tensor([0, 1]), 2, probe, 0, weight_decay=-1.0)


def test_selection_score_is_balanced_accuracy() -> None:
    # truth [0, 0, 0, 1], always 0: top-1 3/4, recalls 1 and 0 -> 1/2
    assert selection_score(torch.zeros(4, dtype=torch.long), torch.tensor([0, 0, 0, 1]), 3) == 0.5


# ---------------------------------------------------------------------------------------- kNN


def _unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


# bank: class 0 at 0° and 180°, class 1 at 30° and 40°
BANK = torch.tensor([_unit(0), _unit(30), _unit(40), _unit(180)])
BANK_LABELS = torch.tensor([0, 1, 1, 0])
# val queries at 5°, 185° and 35°. With T = 10 the vote weights exp(cos / T) are nearly equal:
# k = 1 and k = 2: the nearest neighbour's class wins -> predictions [0, 0, 1];
# k = 3: 5° sees 0°, 30°, 40° (class 1 twice) and 185° sees 180°, 40°, 30° -> [1, 1, 1]
VAL = torch.tensor([_unit(5), _unit(185), _unit(35)])


def test_knn_k_is_chosen_by_val_balanced_accuracy_ties_to_the_smaller_k() -> None:
    choice = select_knn_k(
        BANK, BANK_LABELS, VAL, torch.tensor([0, 0, 1]), 2, k_choices=[3, 2, 1], temperature=10.0
    )
    # k 1, 2: all right (1.0); k 3: recall 0 for class 0, 1 for class 1 -> 0.5
    assert dict(choice.val_scores) == {1: 1.0, 2: 1.0, 3: 0.5}
    assert (choice.k, choice.val_score) == (1, 1.0)


def test_a_larger_k_wins_when_it_scores_better_on_val() -> None:
    # all three val queries labelled 1: k 1 gets 1 of 3, k 3 gets all 3
    choice = select_knn_k(
        BANK, BANK_LABELS, VAL, torch.tensor([1, 1, 1]), 2, k_choices=[1, 3], temperature=10.0
    )
    assert dict(choice.val_scores) == pytest.approx({1: 1 / 3, 3: 1.0})
    assert (choice.k, choice.val_score) == (3, 1.0)


def test_a_k_larger_than_the_bank_is_skipped_and_none_fitting_means_the_bank_size() -> None:
    labels = torch.tensor([0, 0, 1])
    capped = select_knn_k(BANK, BANK_LABELS, VAL, labels, 2, k_choices=[1, 5, 20], temperature=10.0)
    assert set(capped.val_scores) == {1} and capped.k == 1
    whole = select_knn_k(BANK, BANK_LABELS, VAL, labels, 2, k_choices=[5, 20], temperature=10.0)
    # k = 4 = the bank, weights exp(cos / 10). 5°: class 0 (0°, 180°) e^0.0996 + e^-0.0996 = 2.010
    # < class 1 (30°, 40°) e^0.0906 + e^0.0819 = 2.180 -> 1. 185°: class 0 2.010 > class 1
    # e^-0.0906 + e^-0.0819 = 1.834 -> 0. 35° -> 1. Recalls 1/2 and 1 -> 3/4
    assert set(whole.val_scores) == {4} and whole.k == 4
    assert whole.val_score == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("k_choices", "message"),
    [([], "at least one"), ([3, 3], "repeat"), ([0, 2], "positive ints"), ([True], "positive")],
)
def test_bad_k_choices_are_rejected(k_choices: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        select_knn_k(
            BANK, BANK_LABELS, VAL, torch.tensor([0, 0, 1]), 2, k_choices=k_choices, temperature=1
        )


def test_knn_selection_needs_val_samples_and_matching_features() -> None:
    with pytest.raises(ValueError, match="val split is empty"):
        select_knn_k(
            BANK, BANK_LABELS, torch.zeros(0, 2), torch.zeros(0), 2, k_choices=[1], temperature=1
        )
    with pytest.raises(ValueError, match="one D"):
        select_knn_k(
            BANK, BANK_LABELS, torch.zeros(1, 3), torch.zeros(1), 2, k_choices=[1], temperature=1
        )


# ------------------------------------------------------------------------- linear weight decay


def _threshold_probe(threshold: float) -> nn.Linear:
    """Two classes on 1-D features: class 1 where ``x > threshold``."""
    layer = nn.Linear(1, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0], [1.0]]))
        layer.bias.copy_(torch.tensor([0.0, -threshold]))
    return layer


VAL_X = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]])
VAL_Y = torch.tensor([0, 0, 0, 1])


def _fake_fits(monkeypatch: pytest.MonkeyPatch, thresholds: dict[float, float]) -> list[float]:
    """Replace the probe fit by one whose threshold depends on the weight decay only."""
    seen: list[float] = []

    def fake(*args: object, weight_decay: float, multilabel: bool = False) -> nn.Linear:
        seen.append(weight_decay)
        return _threshold_probe(thresholds[weight_decay])

    monkeypatch.setattr(frozen, "fit_linear_probe", fake)
    return seen


def test_the_weight_decay_with_the_best_val_score_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # thresholds 1.5 -> [0, 0, 0, 1] (1.0); 0.5 -> [0, 0, 1, 1]: recalls 2/3, 1 (5/6);
    # -3 -> all 1: recalls 0, 1 (1/2)
    seen = _fake_fits(monkeypatch, {0.0: 1.5, 0.01: 0.5, 0.1: -3.0})
    cfg = LinearProbeConfig(epochs=1, lr=0.1, weight_decay_choices=[0.1, 0.0, 0.01])
    choice = fit_linear_probe_selected(VAL_X, VAL_Y, VAL_X, VAL_Y, 2, cfg, seed=0)
    assert sorted(seen) == [0.0, 0.01, 0.1]
    assert dict(choice.val_scores) == pytest.approx({0.0: 1.0, 0.01: 5 / 6, 0.1: 0.5})
    assert (choice.weight_decay, choice.val_score) == (0.0, 1.0)
    assert float(choice.layer.bias.detach()[1]) == -1.5


def test_weight_decay_ties_go_to_the_larger(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_fits(monkeypatch, {0.0: 1.5, 0.001: 1.5, 0.01: 0.5})
    cfg = LinearProbeConfig(epochs=1, lr=0.1, weight_decay_choices=[0.0, 0.001, 0.01])
    choice = fit_linear_probe_selected(VAL_X, VAL_Y, VAL_X, VAL_Y, 2, cfg, seed=0)
    assert (choice.weight_decay, choice.val_score) == (0.001, 1.0)


@pytest.mark.slow
def test_the_selected_probe_is_the_probe_fitted_with_the_chosen_weight_decay() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, -4.0]])
    labels = torch.arange(3).repeat(20)
    feats = centres[labels] + 0.3 * torch.randn(60, 2, generator=g)
    val = centres + 0.1
    cfg = LinearProbeConfig(epochs=100, lr=0.1, weight_decay_choices=[0.0, 0.01, 0.1])
    choice = fit_linear_probe_selected(feats, labels, val, torch.arange(3), 3, cfg, seed=3)
    # well separated clusters: every weight decay is perfect on val, the tie goes to 0.1
    assert dict(choice.val_scores) == {0.0: 1.0, 0.01: 1.0, 0.1: 1.0}
    assert choice.weight_decay == 0.1
    direct = fit_linear_probe(feats, labels, 3, cfg, 3, weight_decay=0.1)
    assert torch.equal(choice.layer.weight, direct.weight)
    assert torch.equal(choice.layer.bias, direct.bias)


@pytest.mark.parametrize(
    ("choices", "message"), [([], "at least 1"), ([0.1, 0.1], "unique"), ([-0.1], r"\[0, 10\]")]
)
def test_weight_decay_choices_are_validated_by_the_config(
    choices: list[float], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        LinearProbeConfig(epochs=1, lr=0.1, weight_decay_choices=choices)


def test_weight_decay_choices_are_sorted() -> None:
    cfg = LinearProbeConfig(epochs=1, lr=0.1, weight_decay_choices=[0.1, 0.0, 0.001])
    assert cfg.weight_decay_choices == [0.0, 0.001, 0.1]
