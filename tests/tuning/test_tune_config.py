"""The `tune` section: validation of the search space and its mapping onto params overrides."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from s2ssl.config import ConfigError, load_params, override_params
from s2ssl.tuning.space import current_values, in_space, overrides, suggest
from testkit import REPO_PARAMS


def _load(tune: dict[str, Any]) -> Any:
    return load_params(REPO_PARAMS, {f"tune.{k}": v for k, v in tune.items()})


def test_repo_tune_section_is_valid() -> None:
    cfg = load_params(REPO_PARAMS).tune
    assert cfg.task == "landcover" and cfg.n_trials >= 1
    assert set(cfg.space) >= {"lr", "weight_decay"}
    assert cfg.fixed == {"val_every": 15}


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        (
            {"space": {"lrx": {"type": "float", "low": 0.001, "high": 0.1}}},
            r"tune\.space\.lrx: finetune\.landcover\.lrx is not a setting; keys of "
            r"finetune\.landcover: .*\blr\b",
        ),
        (
            {"space": {"finetune.landcover.lr": {"type": "float", "low": 0.001, "high": 0.1}}},
            r"tune\.space\.finetune\.landcover\.lr: keys are relative to finetune\.landcover; "
            r"write 'lr'",
        ),
        (
            {"space": {"lr": {"type": "float", "low": 0.001, "high": 20}}},
            r"tune\.space\.lr: 20\.0 is not a valid finetune\.landcover\.lr \(Input should be "
            r"less than or equal to 10\)",
        ),
        (
            {"space": {"lr": {"type": "float", "low": 0.1, "high": 0.001}}},
            r"tune\.space\.lr: .*low \(0\.1\) must be < high \(0\.001\)",
        ),
        (
            {"space": {"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}},
            r"tune\.space\.lr: .*log: true needs low > 0",
        ),
        (
            {"space": {"batch_size": {"type": "float", "low": 2, "high": 16}}},
            r"tune\.space\.batch_size: finetune\.landcover\.batch_size is a whole number; "
            r"use type: int",
        ),
        (
            {"space": {"batch_size": {"type": "categorical", "choices": [8, 0]}}},
            r"tune\.space\.batch_size: 0 is not a valid finetune\.landcover\.batch_size",
        ),
        (
            {"space": {"batch_size": {"type": "categorical"}}},
            r"tune\.space\.batch_size: .*needs choices",
        ),
        (
            {"space": {"inits": {"type": "categorical", "choices": ["random", "dense"]}}},
            r"tune\.space\.inits: finetune\.landcover\.inits is a list / mapping",
        ),
        (
            {"space": {"linear": {"type": "categorical", "choices": [1, 2]}}},
            r"tune\.space\.linear: finetune\.landcover\.linear is not a setting",
        ),
        (
            {
                "init": "random",
                "space": {"encoder_lr_scale": {"type": "float", "low": 0.1, "high": 1}},
            },
            r"tune\.space\.encoder_lr_scale: encoder_lr_scale only scales pre-trained weights",
        ),
        ({"task": "croptype", "init": "dense"}, r"tune\.init: 'dense' cannot initialise task"),
        ({"fixed": {"val_every": 0}}, r"tune\.fixed\.val_every: 0 is not a valid"),
        (
            {"fixed": {"lr": 0.01}},
            r"tune\.fixed: \['lr'\] are also in tune\.space",
        ),
        ({"space": {}}, r"tune\.space: .*at least 1 item"),
        ({"n_trials": 0}, r"tune\.n_trials: Input should be greater than 0"),
    ],
)
def test_bad_tune_sections_name_the_key(tune: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tune)


def test_nested_keys_and_int_dimensions() -> None:
    params = _load(
        {
            "task": "scene",
            "init": "random",
            "space": {
                "linear.lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
                "batch_size": {"type": "int", "low": 8, "high": 32, "step": 8},
                "rot90": {"type": "categorical", "choices": [True, False]},
            },
        }
    )
    trial = optuna.trial.FixedTrial({"linear.lr": 0.2, "batch_size": 24, "rot90": False})
    values = suggest(trial, params.tune.space)
    assert values == {"linear.lr": 0.2, "batch_size": 24, "rot90": False}
    keys = overrides(params.tune, values)
    assert keys == {
        "finetune.scene.val_every": 15,  # tune.fixed (the repo's) comes first
        "finetune.scene.linear.lr": 0.2,
        "finetune.scene.batch_size": 24,
        "finetune.scene.rot90": False,
    }
    applied = override_params(params, keys)
    assert applied.finetune.scene.linear.lr == 0.2 and applied.finetune.scene.batch_size == 24
    assert applied.finetune.scene.rot90 is False
    assert params.finetune.scene.rot90 is True  # the original is untouched
    assert applied.finetune.landcover == params.finetune.landcover


def test_sampled_values_stay_in_the_space_and_override_the_right_keys() -> None:
    params = load_params(REPO_PARAMS)
    cfg = params.tune
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        values = suggest(trial, cfg.space)
        assert list(values) == list(cfg.space)
        assert all(in_space(values[k], cfg.space[k]) for k in cfg.space)
        keys = overrides(cfg, values)
        assert keys["finetune.landcover.val_every"] == 15  # tune.fixed applies to every trial
        applied = override_params(params, keys)
        for key, value in values.items():
            assert getattr(applied.finetune.landcover, key) == value
        study.tell(trial, 0.0)
    assert isinstance(values["batch_size"], int)


def test_current_values_are_the_baseline() -> None:
    params = load_params(REPO_PARAMS)
    baseline = current_values(params)
    assert baseline == {key: getattr(params.finetune.landcover, key) for key in params.tune.space}
    assert all(in_space(baseline[k], params.tune.space[k]) for k in baseline)
    small = _load({"space": {"batch_size": {"type": "categorical", "choices": [2, 4]}}})
    assert not in_space(current_values(small)["batch_size"], small.tune.space["batch_size"])
