"""Crop-type fine-tuning on time series of different lengths (padded store, ``n_dates``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from finetunekit import N_BANDS, task_split

from s2ssl.config import CroptypeFinetune, load_params, set_dotted
from s2ssl.data.temporal import TEMPORAL_RULE
from s2ssl.finetune.data import TaskSplit, load_task_data
from s2ssl.finetune.inits import initial_model
from s2ssl.finetune.run import run_finetune
from s2ssl.finetune.train import FinetuneTask, fit, predict
from s2ssl.models.downstream import TimeSeriesSegmentationNet, load_model
from s2ssl.models.unet3d import UNet3D
from serieskit import BANDS, DN_STEP, DOY_STEP, T_MAX, padded_croptype
from testkit import TINY_SIZES, read_repo_params, write_params


@pytest.fixture(scope="module")
def padded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return padded_croptype(tmp_path_factory.mktemp("series"))


def _params(tmp_path: Path, n_dates: int | None) -> Path:
    raw = read_repo_params()
    overrides = {
        **TINY_SIZES,
        "bands": list(BANDS),
        "evaluate.replicates": 1,
        "finetune.fractions": [1.0],
        "finetune.region_transfer.enabled": False,
        "finetune.croptype.inits": ["random"],
        "finetune.croptype.batch_size": 2,
        "finetune.croptype.n_dates": n_dates,
    }
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    return write_params(tmp_path / "params.yaml", raw)


def _net(t: int) -> TimeSeriesSegmentationNet:
    torch.manual_seed(0)
    return TimeSeriesSegmentationNet(UNet3D(len(BANDS) + 1, t, 8, 2), BANDS, ["a", "b", "c"])


def test_the_padded_store_loads_with_its_lengths(padded: Path) -> None:
    data = load_task_data("croptype", padded, "in_domain", None)
    assert data.train.image.shape[1] == T_MAX
    assert data.train.n_dates is not None and data.train.n_dates.tolist() == [3, 5] * 3
    assert data.train.subset([1, 2]).n_dates.tolist() == [5, 3]
    assert data.series_length(4, "finetune.croptype.n_dates") == 4
    with pytest.raises(ValueError, match=r"set finetune\.croptype\.n_dates"):
        data.series_length(None, "finetune.croptype.n_dates")


def test_training_batches_take_real_dates_with_their_doy(padded: Path) -> None:
    data = load_task_data("croptype", padded, "in_domain", None)
    params = load_params(_params(padded.parent, 4))
    task = FinetuneTask(
        _net(4),
        params.finetune.croptype,
        steps=2,
        seed=0,
        band_indices=list(range(len(BANDS))),
    )
    batch = {
        "image": data.train.image,
        "doy": data.train.doy,
        "n_dates": data.train.n_dates,
    }
    draws = []
    for step in range(8):
        g = torch.Generator().manual_seed(step)
        x, doy = task._inputs(batch, g)
        assert x.shape == (6, 4, len(BANDS), 8, 8) and doy.shape == (6, 4)
        # the frame of each picked date is that date's (DN / DN_STEP == doy / DOY_STEP)
        assert torch.equal(torch.round(x[:, :, 0, 0, 0] * 1e4 / DN_STEP).long(), doy // DOY_STEP)
        assert doy[0].tolist() == [10, 20, 20, 30]  # 3 real dates: even spread, one repeated
        assert bool((doy[1::2] > 0).all()) and bool((doy[:, 1:] >= doy[:, :-1]).all())
        draws.append(tuple(doy[1].tolist()))
    assert len(set(draws)) > 1  # 4 of 5 dates redrawn per step
    x, doy = task._inputs(batch)  # evaluation: the even spread, the same every time
    assert doy[:2].tolist() == [[10, 20, 20, 30], [10, 20, 40, 50]]


def test_the_default_path_is_unchanged() -> None:
    """Series of the model's length without a length column: the tensors the model sees are
    those of the stored series, bit for bit, in training and evaluation."""
    torch.manual_seed(1)
    image = torch.randint(0, 3000, (4, 4, N_BANDS, 8, 8), dtype=torch.int16)
    label = torch.randint(0, 3, (4, 8, 8))
    split = task_split(image, label)
    split = TaskSplit(
        split.image, torch.arange(16).view(4, 4) * 20, label, split.ids, split.strata, split.bands
    )
    net = TimeSeriesSegmentationNet(UNet3D(N_BANDS + 1, 4, 8, 2), split.bands, ["a", "b", "c"])
    cfg = CroptypeFinetune.model_validate(read_repo_params()["finetune"]["croptype"])
    assert cfg.n_dates is None
    task = FinetuneTask(net, cfg, steps=1, seed=0, band_indices=list(range(N_BANDS)))
    batch = {"image": split.image, "doy": split.doy}
    x, doy = task._inputs(batch, torch.Generator().manual_seed(5))
    assert torch.equal(x, split.image.float() * 1e-4) and doy is split.doy
    x, doy = task._inputs(batch)
    assert torch.equal(x, split.image.float() * 1e-4) and doy is split.doy
    net.eval()
    expected = net(split.image.float() * 1e-4, split.doy).argmax(1)
    assert torch.equal(predict(net, split), expected)


def test_lengths_equal_to_the_store_train_as_without_them() -> None:
    torch.manual_seed(2)
    image = torch.randint(0, 3000, (4, 4, N_BANDS, 8, 8), dtype=torch.int16)
    label = torch.randint(0, 3, (4, 8, 8))
    plain = task_split(image, label)
    full = TaskSplit(
        plain.image, plain.doy, plain.label, plain.ids, plain.strata, plain.bands,
        torch.full((4,), 4),
    )  # fmt: skip
    cfg_raw = read_repo_params()["finetune"]["croptype"]
    cfg = CroptypeFinetune.model_validate(
        {**cfg_raw, "steps": 2, "val_every": 1, "batch_size": 2, "crop_size": None}
    )
    kwargs = {"accelerator": "cpu", "deterministic": True}
    results = []
    for split in (plain, full):
        torch.manual_seed(0)
        net = TimeSeriesSegmentationNet(UNet3D(N_BANDS + 1, 4, 8, 2), split.bands, ["a", "b", "c"])
        fit(net, split, split, cfg, seed=0, trainer_kwargs=kwargs)
        results.append({k: v.clone() for k, v in net.state_dict().items()})
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_initial_model_takes_n_dates(padded: Path) -> None:
    data = load_task_data("croptype", padded, "in_domain", None)
    params = load_params(_params(padded.parent, 4))
    model, _ = initial_model("croptype", "random", params, data, padded.parent / "none")
    assert isinstance(model, TimeSeriesSegmentationNet) and model.timesteps == 4
    with pytest.raises(ValueError, match=r"set finetune\.croptype\.n_dates"):
        initial_model("croptype", "random", load_params(_params(padded.parent, None)), data, Path())


def test_n_dates_must_fit_the_3d_unet(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        load_params(_params(tmp_path, 6))


def test_fine_tuning_end_to_end_on_padded_series(padded: Path, tmp_path: Path) -> None:
    params = load_params(_params(tmp_path, 4))
    out, reports = tmp_path / "models", tmp_path / "reports"
    result = run_finetune(params, "croptype", padded, tmp_path / "none", out, reports, track=False)
    key = "r0.in_domain.random.finetune.f100"
    assert result.executed == [key] and result.selected == key
    record = json.loads((reports / f"croptype/runs/{key}.json").read_text())
    assert record["dates"]["n_dates"] == 4 and record["dates"]["rule"] == TEMPORAL_RULE
    assert 0.0 <= record["test"]["miou"] <= 1.0
    model, meta = load_model(out / "croptype/model")
    assert isinstance(model, TimeSeriesSegmentationNet) and model.timesteps == 4
    assert meta["dates"] == record["dates"]
    assert meta["architecture"]["backbone"]["timesteps"] == 4
    # the same settings give the same run (seeded date draws)
    again = run_finetune(
        params, "croptype", padded, tmp_path / "none", tmp_path / "m2", tmp_path / "r2", track=False
    )
    assert again.results[key]["val_score"] == result.results[key]["val_score"]
    assert again.results[key]["test"]["miou"] == result.results[key]["test"]["miou"]
