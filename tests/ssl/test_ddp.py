"""Distributed pre-training: a real 2-process gloo run of the CLI (the batch split itself is
tested in tests/data/test_tensors.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from s2ssl.config import load_params
from s2ssl.models.saved import load_encoder
from s2ssl.ssl.datamodule import PretrainDataModule
from s2ssl.ssl.pretrain import LAST_CHECKPOINT

# ----------------------------------------------------------------------- a real DDP run

DDP_PRETRAIN = {
    "accelerator": "cpu",
    "devices": 2,
    "strategy": "ddp",
    "limit_train_batches": None,
    "torch_threads": 1,
}


def _ddp_params(tiny_validated: Path, tmp_path: Path, queue: int, batch: int) -> Path:
    raw = yaml.safe_load((tiny_validated.parent / "params.yaml").read_text())
    pre = raw["pretrain"]
    pre.update(DDP_PRETRAIN)
    pre["probe"].update(
        k=5, bank_size=16, query_size=8, pixel_bank_images=4, pixel_query_images=2,
        pixels_per_image=8, batch_size=8,
    )  # fmt: skip
    pre["seco"].update(max_epochs=2, batch_size=batch, crop_size=32, queue_size=queue)
    raw["evaluate"]["replicates"] = 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.slow
def test_seco_pretrains_with_two_gloo_processes(tiny_validated: Path, tmp_path: Path) -> None:
    """``devices: 2, strategy: ddp`` on CPU: Lightning re-launches the CLI as a second rank; the
    batch is split between the ranks (half the optimiser steps), every rank's keys are
    enqueued (all_gather: the queue advances as in one process), rank 0 alone exports and logs."""
    queue, batch = 12, 2
    params_path = _ddp_params(tiny_validated, tmp_path, queue, batch)
    params = load_params(params_path)
    dm = PretrainDataModule("seco", params.pretrain, tiny_validated, params.seed)
    dm.setup("fit")
    assert dm.train is not None
    n = len(dm.train)
    steps_per_epoch = (n // 2) // batch  # per rank, drop_last
    assert steps_per_epoch >= 1

    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",
    }
    (tmp_path / "mlruns").mkdir()
    command = [
        str(Path(sys.executable).with_name("s2ssl")), "pretrain", "--method", "seco",
        "--params", str(params_path), "--data", str(tiny_validated),
        "--out", "models", "--reports", "reports",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "GLOBAL_RANK: 1" in output and "Starting with 2 processes" in output

    state = torch.load(
        tmp_path / "models" / "seco" / "checkpoints" / "r0" / LAST_CHECKPOINT,
        map_location="cpu",
        weights_only=True,
    )
    assert state["global_step"] == 2 * steps_per_epoch
    keys_enqueued = state["global_step"] * 2 * batch  # both ranks' keys, every step
    ptr = state["state_dict"]["queue.ptr"]
    assert ptr.tolist() == [keys_enqueued % queue] * 3  # one ring buffer per SeCo head

    metrics = json.loads((tmp_path / "reports" / "seco" / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    module, meta = load_encoder(tmp_path / "models" / "seco" / "encoders" / "r0")
    assert meta["architecture"]["kind"] == "resnet"
    assert all(torch.isfinite(p).all() for p in module.parameters())

    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("pretrain")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"]  # rank 1 logs nothing
    assert runs[0].data.params["pretrain.devices"] == "2"
