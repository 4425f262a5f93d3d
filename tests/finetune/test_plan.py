"""The runs of a fine-tuning task (s2ssl.finetune.plan)."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2ssl.config import load_params
from s2ssl.finetune.plan import (
    RunSpec,
    encoder_unit,
    fraction_label,
    is_candidate,
    plan_runs,
    replicate_seed_of,
    run_seed,
)


def test_plan_runs_keys_and_order(tiny_run_params: Path) -> None:
    params = load_params(
        tiny_run_params,
        {
            "holdout_region": "north_west",
            "finetune.region_transfer.inits": None,
            "finetune.scene.inits": ["random", "seco"],
            "finetune.scene.protocols": ["linear", "knn", "finetune"],
        },
    )
    keys = [r.key for r in plan_runs(params, "scene")]
    one = ["in_domain.{}.{}.f50", "in_domain.{}.{}.f100", "transfer.{}.{}.f10"]
    expected = [
        f"r{r}." + k.format(init, protocol)
        for protocol in ("linear", "knn")
        for r in (0, 1)
        for init in ("random", "seco")
        for k in one
    ]
    expected += [f"r{r}.in_domain.{i}.finetune.f100" for r in (0, 1) for i in ("random", "seco")]
    assert keys == expected
    assert fraction_label(0.01) == "1" and fraction_label(0.005) == "0.5"
    # random init alone on the held-out region compares with nothing: no transfer run
    only_random = load_params(
        tiny_run_params,
        {"holdout_region": "north_west", "finetune.region_transfer.inits": ["random", "dense"]},
    )
    assert not [r for r in plan_runs(only_random, "scene") if r.setting == "transfer"]


def test_runs_of_a_replicate_share_their_seed_across_inits_but_not_the_aa_control(
    tiny_run_params: Path,
) -> None:
    params = load_params(tiny_run_params, {"evaluate.replicates": 3})

    def seed(init: str, replicate: int, fraction: float = 0.5) -> int:
        return run_seed(
            params, RunSpec("landcover", "in_domain", init, "finetune", fraction, replicate)
        )

    assert seed("random", 0) == seed("dense", 0) == seed("seco", 0)  # paired within a replicate
    assert seed("random_b", 0) != seed("random", 0)  # the A/A control: an independent stream
    assert len({seed("random", r) for r in range(3)}) == 3  # replicates are independent
    assert seed("random", 0, 0.5) != seed("random", 0, 1.0)
    # the replicate seeds come from evaluate.replicate_seed, not from the world's seed
    other_world = load_params(tiny_run_params, {"evaluate.replicates": 3, "seed": 7})
    assert run_seed(
        other_world, RunSpec("landcover", "in_domain", "random", "finetune", 0.5, 1)
    ) == (seed("random", 1))
    assert replicate_seed_of(params, 2) == params.evaluate.seeds()[2]
    with pytest.raises(ValueError, match=r"outside evaluate\.replicates"):
        replicate_seed_of(params, 3)


def test_encoder_units_transfer_inits_and_candidates(tiny_run_params: Path) -> None:
    params = load_params(
        tiny_run_params,
        {
            "holdout_region": "north_west",
            "finetune.croptype.inits": ["random", "random_b", "cscl"],
            "finetune.region_transfer.inits": ["random", "cscl"],
        },
    )
    runs = plan_runs(params, "croptype")
    transfer = {(r.init, r.replicate) for r in runs if r.setting == "transfer"}
    assert transfer == {(i, r) for i in ("random", "cscl") for r in (0, 1)}
    cscl = RunSpec("croptype", "transfer", "cscl", "finetune", 0.1, 1)
    assert encoder_unit(cscl) == "r1.transfer.f10"  # CSCL stage 1 on the run's own label subset
    assert encoder_unit(RunSpec("scene", "transfer", "seco", "linear", 0.1, 1)) == "r1"
    candidates = [r.key for r in runs if is_candidate(params, r)]
    assert candidates == [
        "r0.in_domain.random.finetune.f100",
        "r0.in_domain.random_b.finetune.f100",
        "r0.in_domain.cscl.finetune.f100",
    ]
