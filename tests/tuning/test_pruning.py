"""Pruning: the median pruner stops a trial from the validation scores reported per step."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from tunekit import write_tune_params

from s2ssl.bands import BAND_NAMES
from s2ssl.config import load_params
from s2ssl.finetune.data import TaskSplit, load_task_data
from s2ssl.tuning.objective import make_objective


def _easy(n: int, seed: int) -> TaskSplit:
    """Label 1 where the red band is bright: learnt in a few steps at a sane learning rate."""
    g = torch.Generator().manual_seed(seed)
    bright = (
        (torch.rand(n, 4, 4, generator=g) > 0.5).repeat_interleave(8, 1).repeat_interleave(8, 2)
    )
    image = torch.full((n, 1, len(BAND_NAMES), 32, 32), 800, dtype=torch.int16)
    image[:, 0, BAND_NAMES.index("B04")] = torch.where(bright, 3000, 500).to(torch.int16)
    image += torch.randint(0, 100, image.shape, generator=g).to(torch.int16)
    ids = tuple(f"p{i}" for i in range(n))
    return TaskSplit(
        image, torch.full((n, 1), 100), bright.long(), ids, np.zeros(n, np.int64), BAND_NAMES
    )


@pytest.mark.slow
def test_the_median_pruner_stops_a_trial_far_below_the_median(
    tiny_validated: Path, tmp_path: Path
) -> None:
    params = load_params(
        write_tune_params(
            tmp_path / "params.yaml",
            task="landcover",
            space={"lr": {"type": "float", "low": 1e-9, "high": 1e-2, "log": True}},
        ),
        {
            "finetune.landcover.feature_dim": 8,
            "finetune.landcover.steps": 8,
            "finetune.landcover.val_every": 4,
            "finetune.landcover.batch_size": 4,
        },
    )
    data = load_task_data("landcover", tiny_validated, "in_domain", None)
    data = dataclasses.replace(data, train=_easy(16, 1), val=_easy(4, 2))
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    for lr in (3e-3, 2e-3, 1e-9):  # two that learn, then one that cannot
        study.enqueue_trial({"lr": lr})
    study.optimize(make_objective(params, data, tmp_path), n_trials=3)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED"], [
        t.intermediate_values for t in study.trials
    ]
    pruned = study.trials[2]
    assert pruned.last_step == 4  # stopped at its first report after the warm-up, not at step 8
    assert list(study.trials[0].intermediate_values) == [4, 8]  # reported per optimiser step
