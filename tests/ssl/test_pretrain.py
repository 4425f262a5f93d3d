"""The pretrain stages (s2ssl.ssl.pretrain: one unit; s2ssl.ssl.stage: every unit of a method):
config validation, encoder export / load, end to end with MLflow, replicates, resume."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from s2ssl.config import ConfigError, Params, load_params, parse_params, set_dotted
from s2ssl.models.saved import load_encoder
from s2ssl.ssl import pretrain as pretrain_module
from s2ssl.ssl.datamodule import PretrainDataModule
from s2ssl.ssl.methods import build_task
from s2ssl.ssl.methods.base import PretrainTask
from s2ssl.ssl.pretrain import LAST_CHECKPOINT, export_encoder
from s2ssl.ssl.stage import pretrain
from testkit import read_repo_params, write_params

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"

TINY_PRETRAIN: dict[str, Any] = {
    "pretrain.limit_train_batches": 2,
    "pretrain.probe.k": 5,
    "pretrain.probe.bank_size": 16,
    "pretrain.probe.query_size": 8,
    "pretrain.probe.pixel_bank_images": 4,
    "pretrain.probe.pixel_query_images": 2,
    "pretrain.probe.pixels_per_image": 8,
    "pretrain.moco.max_epochs": 2,
    "pretrain.moco.batch_size": 4,
    "pretrain.moco.crop_size": 32,
    "pretrain.moco.queue_size": 8,
    "pretrain.dense.batch_size": 2,
    "pretrain.dense.crop_size": 32,
    "pretrain.dense.points_per_image": 8,
    "pretrain.cscl.batch_size": 2,
    "pretrain.cscl.features": 4,
    "pretrain.cscl.crop_size": 8,
    "evaluate.replicates": 1,
}


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def tiny_params(**overrides: Any) -> Params:
    raw = read_repo_params()
    for key, value in {**TINY_PRETRAIN, **overrides}.items():
        set_dotted(raw, key, value)
    return parse_params(raw)


@pytest.fixture
def mlflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return uri


# ------------------------------------------------------------------------------- config


def config_error(overrides: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        load_params(REPO_PARAMS, overrides=overrides)
    return str(info.value)


def test_repo_params_have_a_valid_pretrain_section() -> None:
    p = load_params(REPO_PARAMS)
    assert p.pretrain.methods == ["seco", "moco", "moco_tp", "dense"]
    assert p.pretrain.seco.bands == "all" and p.pretrain.seco.depth == 18
    assert p.pretrain.cscl.pos_weight == 0.125


def test_params_without_pretrain_section_name_it_as_missing(tmp_path: Path) -> None:
    raw = read_repo_params()
    raw.pop("pretrain")
    with pytest.raises(ConfigError, match=r"pretrain: required key is missing"):
        load_params(write_params(tmp_path / "params.yaml", raw))
    p = load_params(REPO_PARAMS)
    assert p.pretrain.methods[0] == "seco"
    assert p.pretrain.seco.temperature == 0.07


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"pretrain.methods": ["seco", "simclr"]}, "pretrain.methods.1", "'moco_tp'"),
        ({"pretrain.methods": ["seco", "cscl"]}, "pretrain.methods.1", "'dense'"),
        ({"pretrain.methods": ["seco", "seco"]}, "pretrain.methods", "repeated"),
        ({"pretrain.seco.crop_scale": [0.9, 0.2]}, "pretrain.seco.crop_scale", "low <= high"),
        ({"pretrain.seco.lr": 0}, "pretrain.seco.lr", "greater than 0"),
        ({"pretrain.seco.bands": "nir"}, "pretrain.seco.bands", "'rgb'"),
        ({"pretrain.moco.depth": 34}, "pretrain.moco.depth", "18"),
        ({"pretrain.dense.crop_size": 48}, "pretrain.dense.crop_size", "divisible by 32"),
        ({"pretrain.cscl.kernel_size": 4}, "pretrain.cscl.kernel_size", "odd"),
        ({"pretrain.cscl.labels": "landcover"}, "pretrain.cscl", "divisible by 32"),
        ({"pretrain.seco.lr_milestones": [0.8, 0.6]}, "pretrain.seco.lr_milestones", "increasing"),
        ({"pretrain.probe.voting": "soft"}, "pretrain.probe.voting", "'weighted'"),
        ({"pretrain.seco.bogus": 1}, "pretrain.seco.bogus", "unknown key"),
        ({"pretrain.devices": 0}, "pretrain.devices", ">= 1"),
    ],
)
def test_bad_pretrain_values_name_the_dotted_key(
    overrides: dict[str, Any], key: str, words: str
) -> None:
    message = config_error(overrides)
    lines = [ln.strip() for ln in message.splitlines() if ln.strip().startswith(f"{key}:")]
    assert lines, message
    assert any(words in ln for ln in lines), message


def test_unknown_method_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown pre-training method 'simclr'"):
        pretrain(tiny_params(), "simclr", tmp_path, tmp_path / "m", tmp_path / "r")


def test_missing_data_is_a_clear_error(tmp_path: Path, mlflow_env: str) -> None:
    with pytest.raises(ValueError, match="validate"):
        pretrain(tiny_params(), "moco", tmp_path / "nowhere", tmp_path / "m", tmp_path / "r")


# ------------------------------------------------------------------------ export / load


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "kind"), [("moco", "resnet"), ("dense", "unet"), ("cscl", "unet3d")]
)
def test_export_and_load_encoder_round_trip(
    method: str, kind: str, tiny_validated: Path, tmp_path: Path
) -> None:
    params = tiny_params()
    L.seed_everything(0, verbose=False)
    dm = PretrainDataModule(method, params.pretrain, tiny_validated, 0)
    dm.setup()
    assert dm.norm_stats is not None
    task = build_task(
        method,
        params.pretrain,
        seed=0,
        bands=dm.bands,
        norm_stats=dm.norm_stats,
        num_dates=dm.num_dates,
    )
    weights, _ = export_encoder(task, tmp_path / "encoder", {"best_epoch": 3})
    module, loaded_meta = load_encoder(tmp_path / "encoder")
    assert loaded_meta == json.loads((tmp_path / "encoder" / "meta.json").read_text())
    assert loaded_meta["architecture"]["kind"] == kind
    assert loaded_meta["best_epoch"] == 3 and loaded_meta["method"] == method
    assert loaded_meta["bands"] == list(dm.bands)
    assert loaded_meta["norm_stats"]["bands"] == list(dm.bands)
    assert set(weights) == set(module.state_dict())
    reference = task.encoder_module().eval()
    if kind == "unet3d":
        x = torch.rand(2, dm.num_dates, len(dm.bands) + 1, 8, 8)  # bands + day of year
    else:
        x = torch.randn(2, len(dm.bands), 32, 32)
    with torch.no_grad():
        assert torch.equal(module(x), reference(x))
    # the weights file alone (weights.pt path) works too
    again, _ = load_encoder(tmp_path / "encoder" / "weights.pt")
    assert set(again.state_dict()) == set(weights)


# ------------------------------------------------------------------------ end to end


def _runs(uri: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("pretrain")
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.mark.slow
def test_stage_end_to_end_one_unit_per_replicate_then_a_new_run(
    tiny_validated: Path, tmp_path: Path, mlflow_env: str
) -> None:
    out, reports = tmp_path / "models", tmp_path / "reports"
    params = tiny_params(**{"evaluate.replicates": 2})
    result = pretrain(params, "moco", tiny_validated, out, reports)
    assert [u.unit for u in result.units] == ["r0", "r1"] and not result.resumed

    for unit in ("r0", "r1"):
        encoder = out / "moco" / "encoders" / unit
        assert (encoder / "weights.pt").is_file() and (encoder / "meta.json").is_file()
        assert (out / "moco" / "checkpoints" / unit / LAST_CHECKPOINT).is_file()
    assert not list((out / "moco" / "checkpoints" / "r0").glob("best-*.ckpt"))

    metrics = json.loads((reports / "moco" / "metrics.json").read_text())
    per_unit = {f"{u}.{k}" for u in ("r0", "r1") for k in ("final_loss", "final_knn_acc")}
    assert per_unit | {f"{u}.knn_acc_gain" for u in ("r0", "r1")} <= set(metrics)
    assert metrics["units"] == 2 and metrics["epochs"] == 2
    # aggregated by hand: the mean of the units, the sum of the training walls
    r0, r1 = (u.metrics for u in result.units)
    assert metrics["final_loss"] == pytest.approx((r0["final_loss"] + r1["final_loss"]) / 2)
    assert metrics["fit_wall_s"] == pytest.approx(r0["fit_wall_s"] + r1["fit_wall_s"])
    assert r0["knn_acc_gain"] == pytest.approx(r0["final_knn_acc"] - r0["random_init_knn_acc"])
    assert r0["final_knn_acc"] == result.units[0].history[-1]["knn_acc"]
    assert (reports / "moco" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = (reports / "moco" / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:4] == ["unit", "epoch", "loss", "knn_acc"]
    assert len(history) == 1 + 2 * 2 and history[1].startswith("r0,0,")

    meta = json.loads((out / "moco" / "encoders" / "r0" / "meta.json").read_text())
    assert meta["architecture"]["kind"] == "resnet" and meta["epochs"] == 2
    assert meta["selection"].startswith("last epoch") and meta["unit"]["name"] == "r0"
    assert meta["probe"]["knn_acc"] == r0["final_knn_acc"]
    # the exported encoder is the LAST epoch's query encoder (no selection by the labelled probe)
    module, _ = load_encoder(out / "moco" / "encoders" / "r0")
    state = torch.load(
        out / "moco" / "checkpoints" / "r0" / LAST_CHECKPOINT, map_location="cpu", weights_only=True
    )
    prefix = "encoder_q."
    last = {k[len(prefix) :]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    assert last and all(torch.equal(module.state_dict()[k], v) for k, v in last.items())
    # replicates are independent: different seeds, different weights
    other, _ = load_encoder(out / "moco" / "encoders" / "r1")
    assert (
        meta["seed"]
        != json.loads((out / "moco" / "encoders" / "r1" / "meta.json").read_text())["seed"]
    )
    assert not torch.equal(module.state_dict()["conv1.weight"], other.state_dict()["conv1.weight"])

    runs = _runs(mlflow_env)
    assert [r.info.run_name for r in runs] == ["moco/r0", "moco/r1"]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["dvc.stage"] == "pretrain@moco"
    assert run.data.tags["s2ssl.replicate"] == "0"
    assert run.data.params["pretrain.moco.queue_size"] == "8"
    assert "probe/knn_acc" in run.data.metrics and "final/knn_acc_gain" in run.data.metrics
    from mlflow import MlflowClient

    files = {f.path for f in MlflowClient(mlflow_env).list_artifacts(run.info.run_id, "encoder")}
    assert files == {"encoder/weights.pt", "encoder/meta.json"}
    logged = run.data.params
    assert "pretrain.moco.lr" in logged and "pretrain.probe.k" in logged
    assert not [k for k in logged if k.startswith(("pretrain.seco.", "pretrain.dense."))]

    # a finished stage is never reused (DVC runs it again only when an input changed): fewer
    # replicates train again, to the same results (deterministic on CPU), and r1 is removed
    again = pretrain(tiny_params(), "moco", tiny_validated, out, reports)
    assert not again.resumed and [u.unit for u in again.units] == ["r0"]
    assert again.metrics["final_loss"] == r0["final_loss"]
    assert not (out / "moco" / "encoders" / "r1").exists()


@pytest.mark.slow
def test_stage_resumes_an_interrupted_run_of_the_same_configuration(
    tiny_validated: Path, tmp_path: Path, mlflow_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, reports = tmp_path / "models", tmp_path / "reports"
    params = tiny_params(**{"evaluate.replicates": 2})
    reference = pretrain(params, "moco", tiny_validated, tmp_path / "ref", tmp_path / "ref_r")

    real = pretrain_module.export_encoder
    calls: list[str] = []

    def killed_on_second(task: Any, target: Any, meta: Any = None) -> Any:
        calls.append(str(target))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after training r1, before its export
        return real(task, target, meta)

    monkeypatch.setattr(pretrain_module, "export_encoder", killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        pretrain(params, "moco", tiny_validated, out, reports)
    monkeypatch.setattr(pretrain_module, "export_encoder", real)
    trained: list[str] = []
    original_fit = L.Trainer.fit

    def spy_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        trained.append(str(kwargs.get("ckpt_path")))
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "fit", spy_fit)
    resumed = pretrain(params, "moco", tiny_validated, out, reports)
    monkeypatch.setattr(L.Trainer, "fit", original_fit)
    # r0 finished before the kill: reused without training; r1 resumed from its last.ckpt
    assert len(trained) == 1 and trained[0].endswith("r1/last.ckpt")
    assert [u.resumed for u in resumed.units] == [True, True]
    assert resumed.metrics["final_loss"] == reference.metrics["final_loss"]
    assert resumed.metrics["r1.final_knn_acc"] == reference.metrics["r1.final_knn_acc"]
    assert resumed.metrics["fit_wall_s"] > 0

    # interrupted, then the configuration changes: nothing is reused
    calls.clear()
    monkeypatch.setattr(pretrain_module, "export_encoder", killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        pretrain(params, "moco", tiny_validated, out, reports)
    monkeypatch.setattr(pretrain_module, "export_encoder", real)
    changed = tiny_params(**{"evaluate.replicates": 2, "pretrain.moco.max_epochs": 1})
    third = pretrain(changed, "moco", tiny_validated, out, reports)
    assert not third.resumed and third.metrics["epochs"] == 1


@pytest.mark.slow
def test_cscl_stage_one_trains_on_exactly_the_label_subset_of_its_downstream_runs(
    tiny_validated: Path, tmp_path: Path, mlflow_env: str
) -> None:
    from s2ssl.finetune.data import load_task_data
    from s2ssl.finetune.plan import RunSpec, replicate_seed_of

    params = tiny_params(
        **{
            "finetune.fractions": [0.2, 1.0],
            "finetune.min_train_samples": 1,
            "finetune.region_transfer.enabled": False,
            "pretrain.cscl.max_epochs": 1,
        }
    )
    result = pretrain(params, "cscl", tiny_validated, tmp_path / "m", tmp_path / "r")
    assert [u.unit for u in result.units] == ["r0.in_domain.f20", "r0.in_domain.f100"]
    data = load_task_data("croptype", tiny_validated, "in_domain", params.holdout_region)
    seed = replicate_seed_of(
        params, RunSpec("croptype", "in_domain", "cscl", "finetune", 0.2).replicate
    )
    for unit, fraction in (("r0.in_domain.f20", 0.2), ("r0.in_domain.f100", 1.0)):
        meta = json.loads((tmp_path / "m" / "cscl" / "encoders" / unit / "meta.json").read_text())
        expected = data.fraction(fraction, seed, params.finetune.min_train_samples).ids
        assert meta["label_subset_ids"] == list(expected)
    half = json.loads(
        (tmp_path / "m" / "cscl" / "encoders" / "r0.in_domain.f20" / "meta.json").read_text()
    )
    assert 0 < len(half["label_subset_ids"]) < len(data.train)


@pytest.mark.slow
def test_gpu_settings_run_on_cpu_through_the_stage(
    tiny_validated: Path, tmp_path: Path, mlflow_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``channels_last: true`` (the default) + ``precision: bf16-mixed`` (what ``auto`` picks on
    CUDA) reach the task and train on CPU, so the GPU code path is exercised without a GPU;
    ``channels_last: auto`` keeps CPU training contiguous."""
    calls: list[bool] = []
    original = PretrainTask.use_channels_last

    def spy(self: PretrainTask) -> bool:
        calls.append(original(self))
        return calls[-1]

    monkeypatch.setattr(PretrainTask, "use_channels_last", spy)
    params = tiny_params(
        **{
            "pretrain.channels_last": True,
            "pretrain.precision": "bf16-mixed",
            "pretrain.moco.max_epochs": 1,
        }
    )
    result = pretrain(params, "moco", tiny_validated, tmp_path / "models", tmp_path / "reports")
    assert calls == [True]
    assert result.metrics["epochs"] == 1 and torch.isfinite(
        torch.tensor(result.metrics["final_loss"])
    )
    module, _ = load_encoder(tmp_path / "models" / "moco" / "encoders" / "r0")
    assert all(p.dtype == torch.float32 for p in module.parameters())
    run = _runs(mlflow_env)[0]
    assert run.data.params["pretrain.precision"] == "bf16-mixed"
    assert run.data.params["pretrain.channels_last"] == "True"

    calls.clear()  # auto: channels-last on CUDA only
    auto = tiny_params(**{"pretrain.moco.max_epochs": 1, "pretrain.channels_last": "auto"})
    pretrain(auto, "moco", tiny_validated, tmp_path / "models2", tmp_path / "reports2")
    assert calls == ([True] if torch.cuda.is_available() else [])
