"""Distributed pre-training: the DDP batch split and a real 2-process gloo run of the CLI."""

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
from s2ssl.ssl import datamodule
from s2ssl.ssl.datamodule import EpochBatchSampler, PretrainDataModule
from s2ssl.ssl.pretrain import LAST_CHECKPOINT, load_encoder

# ----------------------------------------------------------------------- the batch split


def _rank_batches(
    monkeypatch: pytest.MonkeyPatch, n: int, batch: int, world: int, epoch: int
) -> list[list[list[int]]]:
    per_rank = []
    for rank in range(world):
        monkeypatch.setattr(datamodule, "_dist_rank_world", lambda r=rank: (r, world))
        sampler = EpochBatchSampler(n, batch, seed=7)
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        per_rank.append(batches)
    return per_rank


def test_each_rank_gets_a_disjoint_share_of_the_same_permutation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n, batch, world = 23, 4, 2
    ranks = _rank_batches(monkeypatch, n, batch, world, epoch=3)
    seen = [sorted(i for b in batches for i in b) for batches in ranks]
    assert not set(seen[0]) & set(seen[1])
    # 23 → 22 usable (a multiple of the world), 11 per rank → 2 full batches of 4 each
    assert [len(batches) for batches in ranks] == [2, 2]
    assert all(len(b) == batch for batches in ranks for b in batches)

    monkeypatch.setattr(datamodule, "_dist_rank_world", lambda: (0, 1))
    single = EpochBatchSampler(n, batch, seed=7)
    single.set_epoch(3)
    perm = single._indices()
    # rank r takes every world-th index of the single-process permutation, in order
    for rank in range(world):
        assert [i for b in ranks[rank] for i in b] == perm[: (n // world) * world][rank::world][:8]

    other_epoch = _rank_batches(monkeypatch, n, batch, world, epoch=4)
    assert other_epoch != ranks  # a new permutation every epoch, the same one on every rank
    assert _rank_batches(monkeypatch, n, batch, world, epoch=3) == ranks


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
        tmp_path / "models" / "seco" / "checkpoints" / LAST_CHECKPOINT,
        map_location="cpu",
        weights_only=True,
    )
    assert state["global_step"] == 2 * steps_per_epoch
    keys_enqueued = state["global_step"] * 2 * batch  # both ranks' keys, every step
    ptr = state["state_dict"]["queue.ptr"]
    assert ptr.tolist() == [keys_enqueued % queue] * 3  # one ring buffer per SeCo head

    metrics = json.loads((tmp_path / "reports" / "seco" / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    module, meta = load_encoder(tmp_path / "models" / "seco" / "encoder")
    assert meta["architecture"]["kind"] == "resnet"
    assert all(torch.isfinite(p).all() for p in module.parameters())

    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("pretrain")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"]  # rank 1 logs nothing
    assert runs[0].data.params["pretrain.devices"] == "2"
