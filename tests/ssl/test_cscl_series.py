"""CSCL stage 1 on time series of different lengths (padded store, ``pretrain.cscl.n_dates``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2ssl.config import Params, parse_params, set_dotted
from s2ssl.data.temporal import TEMPORAL_RULE, select_dates
from s2ssl.ssl.datamodule import PretrainDataModule
from s2ssl.ssl.methods import build_task
from serieskit import BANDS, DOY_STEP, padded_croptype
from testkit import read_repo_params


@pytest.fixture(scope="module")
def padded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return padded_croptype(tmp_path_factory.mktemp("series"))


def _params(n_dates: int | None) -> Params:
    raw = read_repo_params()
    overrides = {
        "bands": list(BANDS),
        "holdout_region": None,
        "pretrain.cscl.n_dates": n_dates,
        "pretrain.cscl.batch_size": 6,
        "pretrain.cscl.crop_size": None,
        "pretrain.cscl.features": 2,
        "pretrain.cscl.embedding_dim": 8,
    }
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    return parse_params(raw)


def _module(padded: Path, n_dates: int | None) -> PretrainDataModule:
    params = _params(n_dates)
    dm = PretrainDataModule("cscl", params.pretrain, padded, seed=0, bands=params.band_names)
    dm.setup("fit")
    return dm


def test_null_n_dates_refuses_series_of_different_lengths(padded: Path) -> None:
    with pytest.raises(ValueError, match=r"set pretrain\.cscl\.n_dates"):
        _module(padded, None)


def test_the_data_carry_lengths_and_the_probe_takes_the_even_spread(padded: Path) -> None:
    dm = _module(padded, 4)
    assert dm.num_dates == 4 and dm.train is not None and dm.probe is not None
    assert dm.train.tensors["n_dates"].tolist() == [3, 5] * 3
    bank = dm.probe.bank
    assert bank.image.shape[1] == 4 and bank.doy is not None
    assert bank.doy.tolist()[:2] == [[10, 20, 20, 30], [10, 20, 40, 50]]


def test_each_step_draws_real_dates_and_the_encoder_records_the_rule(padded: Path) -> None:
    dm = _module(padded, 4)
    params = _params(4)
    assert dm.norm_stats is not None and dm.train is not None
    torch.manual_seed(0)
    task = build_task(
        "cscl",
        params.pretrain,
        seed=0,
        bands=dm.bands,
        norm_stats=dm.norm_stats,
        num_dates=dm.num_dates,
    )
    batch = dm.train[list(range(6))]
    out = task.shared_step(batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)
    assert task.architecture()["timesteps"] == 4
    assert task.architecture()["dates"]["rule"] == TEMPORAL_RULE
    doy = select_dates(batch["image"], batch["doy"], batch["n_dates"], 4, task.date_generator())[1]
    assert bool((doy > 0).all()) and doy[0].tolist() == [10, 20, 20, 30]
    assert set((doy[1] // DOY_STEP).tolist()) <= {1, 2, 3, 4, 5}
