"""Lightning tasks of the pre-training methods: steps, momentum / queue, resume, learning."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from s2ssl.bands import BAND_NAMES
from s2ssl.config import PretrainConfig, parse_params, set_dotted
from s2ssl.data.stats import NormStats, band_histograms, stats_from_histograms
from s2ssl.data.store import open_dataset
from s2ssl.data.tensors import EpochBatchSampler, TensorDictDataset
from s2ssl.data.validated import write_validated
from s2ssl.ssl.datamodule import PretrainDataModule
from s2ssl.ssl.methods import build_task
from s2ssl.ssl.methods.base import PretrainTask
from s2ssl.ssl.methods.dense import DenseTask
from s2ssl.ssl.methods.seco import MocoTask
from s2ssl.ssl.pretrain import LAST_CHECKPOINT, build_trainer
from s2ssl.ssl.probe import ProbeData, ProbeSplit
from testkit import read_repo_params

METHODS = ("seco", "moco", "moco_tp", "dense", "cscl")

TINY: dict[str, Any] = {
    "probe": {
        "k": 5,
        "bank_size": 16,
        "query_size": 8,
        "pixel_bank_images": 4,
        "pixel_query_images": 2,
        "pixels_per_image": 8,
        "batch_size": 8,
    },
    "seco": {"max_epochs": 1, "batch_size": 4, "crop_size": 32, "queue_size": 8, "bands": "rgb"},
    "moco": {"max_epochs": 1, "batch_size": 4, "crop_size": 32, "queue_size": 8, "bands": "rgb"},
    "moco_tp": {"max_epochs": 1, "batch_size": 4, "crop_size": 32, "queue_size": 8, "bands": "rgb"},
    "dense": {"max_epochs": 1, "batch_size": 2, "crop_size": 32, "points_per_image": 8},
    "cscl": {"max_epochs": 1, "batch_size": 2, "features": 4, "crop_size": 8},
}


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def config(overrides: dict[str, Any] | None = None) -> PretrainConfig:
    """The repo's ``pretrain`` section with :data:`TINY` and ``overrides`` applied."""
    raw: dict[str, Any] = read_repo_params()["pretrain"]
    for section, values in TINY.items():
        raw[section].update(values)
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    return PretrainConfig.model_validate(raw)


def setup(
    method: str, data_dir: Path, cfg: PretrainConfig | None = None, seed: int = 0
) -> tuple[PretrainDataModule, PretrainTask]:
    cfg = cfg or config()
    L.seed_everything(seed, verbose=False)
    dm = PretrainDataModule(method, cfg, data_dir, seed)
    dm.setup("fit")
    assert dm.norm_stats is not None
    task = build_task(
        method, cfg, seed=seed, bands=dm.bands, norm_stats=dm.norm_stats, num_dates=dm.num_dates
    )
    task.probe_data = dm.probe
    return dm, task


def trainer(max_epochs: int, **kwargs: Any) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        deterministic=True,
        **kwargs,
    )


# ------------------------------------------------------------------------------- one step


@pytest.mark.parametrize("method", METHODS)
def test_one_step_gives_a_finite_loss_and_gradients(method: str, tiny_validated: Path) -> None:
    dm, task = setup(method, tiny_validated)
    batch = next(iter(dm.train_dataloader()))
    out = task.shared_step(batch, task.batch_generator(0))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in task.encoder_module().parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert out.embeddings.ndim == 2 and out.embeddings.shape[0] >= 2


def _step_loss_and_grads(
    task: PretrainTask, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    out = task.shared_step(batch, task.batch_generator(0))
    out.loss.backward()
    grads = {
        n: p.grad.detach().clone()
        for n, p in task.encoder_module().named_parameters()
        if p.grad is not None
    }
    return out.loss.detach().float(), grads


@pytest.mark.slow
@pytest.mark.parametrize("method", ["seco", "dense"])
def test_channels_last_step_matches_contiguous(method: str, tiny_validated: Path) -> None:
    """The channels-last memory layout (pretrain.channels_last) only reorders sums: the same loss
    and gradients as the contiguous layout, on CPU, for a ResNet (SeCo) and a U-Net (dense)."""
    dm, task = setup(method, tiny_validated)
    batch = next(iter(dm.train_dataloader()))
    loss, grads = _step_loss_and_grads(task, batch)

    _, task_cl = setup(method, tiny_validated)  # same seed: identical initial weights
    assert task_cl.use_channels_last()
    conv = [p for p in task_cl.parameters() if p.dim() == 4]
    assert conv and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv)
    assert not all(p.is_contiguous() for p in conv if p.shape[-1] > 1)
    loss_cl, grads_cl = _step_loss_and_grads(task_cl, batch)

    assert loss_cl == pytest.approx(float(loss), rel=1e-5)
    assert grads_cl.keys() == grads.keys()
    total = torch.cat([g.flatten() for g in grads.values()]).norm()
    for name, g in grads.items():  # summation order differs: relative to the gradient's norm
        error = float((grads_cl[name] - g).norm() / torch.maximum(g.norm(), 1e-3 * total))
        assert error < 1e-3, f"{name}: relative gradient difference {error:.2e}"


def test_channels_last_is_refused_quietly_by_the_3d_unet(tiny_validated: Path) -> None:
    _, task = setup("cscl", tiny_validated)
    assert not task.use_channels_last()
    assert all(p.is_contiguous() for p in task.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_bf16_mixed_precision_trains_on_cpu(method: str, tiny_validated: Path) -> None:
    """bf16 mixed precision (the CUDA default) exercised through Lightning on CPU: autocast
    reaches every op of the step (bf16 convolutions) yet the loss is within a few per cent of
    fp32 on the same weights and batch, the weights stay fp32, and an epoch with its probe runs."""
    losses = []
    for autocast in (False, True):  # a step updates the queue: a fresh task (same seed) each
        dm, task = setup(method, tiny_validated)
        batch = next(iter(dm.train_dataloader()))
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            losses.append(task.shared_step(batch, task.batch_generator(0)).loss)
    loss, loss_bf16 = losses
    assert loss_bf16.dtype == torch.float32  # the softmax / similarity is upcast
    assert loss_bf16 != loss  # autocast really ran in bf16
    # dense: InfoNCE at T = 0.1 on pixel embeddings of a whole U-Net in bf16; measured over six
    # seeds: 0.6-3.1 % off with 13 bands, 0.9-5.6 % with the 12 l2a bands (seed 0: 5.6 %)
    rel = 0.08 if method == "dense" else 0.05
    assert float(loss_bf16) == pytest.approx(float(loss), rel=rel, abs=0.01)  # 0.01 nats

    dm, task = setup(method, tiny_validated)
    trainer(1, precision="bf16-mixed", limit_train_batches=2).fit(task, datamodule=dm)
    assert task.history and all(np.isfinite(row["loss"]) for row in task.history)
    assert 0.0 <= task.history[-1]["knn_acc"] <= 1.0
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in task.parameters())


def test_dense_momentum_key_encoder_option_steps(tiny_validated: Path) -> None:
    cfg = config({"dense.key_encoder": True})
    dm, task = setup("dense", tiny_validated, cfg)
    batch = next(iter(dm.train_dataloader()))
    out = task.shared_step(batch, task.batch_generator(0))
    assert torch.isfinite(out.loss)
    optimiser = task.configure_optimizers()["optimizer"]
    optimised = {id(p) for group in optimiser.param_groups for p in group["params"]}
    assert isinstance(task, DenseTask) and task.unet_k is not None
    assert not any(id(p) in optimised for p in task.unet_k.parameters())


def test_cscl_landcover_option_steps(tiny_validated: Path) -> None:
    cfg = config({"cscl.labels": "landcover", "cscl.crop_size": 32})
    dm, task = setup("cscl", tiny_validated, cfg)
    assert dm.data.train_dataset == "landcover"
    batch = next(iter(dm.train_dataloader()))
    out = task.shared_step(batch, task.batch_generator(0))
    assert torch.isfinite(out.loss)
    assert task.architecture()["kind"] == "unet"


def test_probe_runs_for_every_method(tiny_validated: Path) -> None:
    for method in ("seco", "dense", "cscl"):
        _, task = setup(method, tiny_validated)
        result = task.run_probe()
        assert 0.0 <= result.knn_acc <= 1.0
        assert result.n_bank > 0 and result.n_queries > 0
        assert task.training  # the probe restores train mode


# --------------------------------------------------------------------- momentum and queue


def test_momentum_encoder_and_queue_after_one_step(tiny_validated: Path) -> None:
    dm, task = setup("seco", tiny_validated)
    assert isinstance(task, MocoTask)
    assert all(
        torch.equal(a, b)
        for a, b in zip(task.encoder_q.parameters(), task.encoder_k.parameters(), strict=True)
    )
    trainer(1, limit_train_batches=1).fit(task, datamodule=dm)
    q_params = dict(task.encoder_q.named_parameters())
    k_params = dict(task.encoder_k.named_parameters())
    assert any(not torch.equal(q_params[n], k_params[n]) for n in q_params)
    assert all(not p.requires_grad for p in k_params.values())
    optimiser = task.trainer.optimizers[0]
    optimised = {id(p) for group in optimiser.param_groups for p in group["params"]}
    frozen = [*task.encoder_k.parameters(), *task.heads_k.parameters()]
    assert not any(id(p) in optimised for p in frozen)
    assert {id(p) for p in task.encoder_q.parameters()} <= optimised
    assert task.queue.ptr.tolist() == [dm.batch_size % task.queue.size] * 3
    assert task.history and task.random_init_probe is not None


def test_momentum_update_follows_the_query_encoder_exactly(tiny_validated: Path) -> None:
    """θ_k ← m θ_k + (1 − m) θ_q before the step's keys are computed (MoCo eq. 2)."""
    dm, task = setup("moco", tiny_validated, config({"moco.key_momentum": 0.9}))
    assert isinstance(task, MocoTask)
    batches = iter(dm.train_dataloader())
    optimiser = task.configure_optimizers()["optimizer"]
    for step in range(2):
        before_k = {n: p.clone() for n, p in task.encoder_k.named_parameters()}
        before_q = {n: p.clone() for n, p in task.encoder_q.named_parameters()}
        out = task.shared_step(next(batches), task.batch_generator(step))
        for name, p in task.encoder_k.named_parameters():
            expected = 0.9 * before_k[name] + 0.1 * before_q[name]
            torch.testing.assert_close(p, expected)
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()


# ------------------------------------------------------------------------------- resume


def _state(task: PretrainTask) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in task.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["seco", "cscl"])
def test_resume_from_last_checkpoint_gives_identical_weights(
    method: str, tiny_validated: Path, tmp_path: Path
) -> None:
    cfg = config({f"{method}.max_epochs": 2})
    quiet = {"enable_progress_bar": False}

    dm, task = setup(method, tiny_validated, cfg)
    full, _ = build_trainer(cfg, method, tmp_path / "full", overrides=quiet)
    full.fit(task, datamodule=dm)
    uninterrupted = _state(task)
    history = list(task.history)

    dm, task = setup(method, tiny_validated, cfg)
    first, _ = build_trainer(cfg, method, tmp_path / "killed", overrides={**quiet, "max_epochs": 1})
    first.fit(task, datamodule=dm)  # "killed" after epoch 1
    last = tmp_path / "killed" / LAST_CHECKPOINT
    assert last.is_file()
    dm, task = setup(method, tiny_validated, cfg)  # a new process: fresh module and data
    second, _ = build_trainer(cfg, method, tmp_path / "killed", overrides=quiet)
    second.fit(task, datamodule=dm, ckpt_path=str(last))
    resumed = _state(task)

    assert resumed.keys() == uninterrupted.keys()
    different = [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])]
    assert not different, f"tensors differ after resuming: {different[:5]}"

    def timeless(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [
            {k: v for k, v in row.items() if k not in ("samples_per_s", "epoch_s")} for row in rows
        ]

    assert timeless(task.history) == timeless(history)
    # each epoch keeps the wall of the process that trained it (first: the "killed" one)
    assert len(task.history) == 2 and all(row["epoch_s"] > 0 for row in task.history)
    assert last.is_file() and not list((tmp_path / "killed").glob("best-*.ckpt"))


# ----------------------------------------------------------------------- learning checks

SMALL_SIZES: dict[str, int] = {
    "fetch.synthetic.unlabelled.locations_per_region": 8,
    "fetch.synthetic.landcover.patches_per_region": 80,
    "fetch.synthetic.croptype.patches_per_region": 8,
}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic world (32 locations, 160 land-cover patches, 32 time series), generated
    straight from the synthetic source and "validated" as a whole (no quarantine) — larger than
    the tiny world so the scene-level probe has enough queries to show learning."""
    from s2ssl.data.fetch import dataset_writer
    from s2ssl.data.sources.synthetic import source as synthetic_source

    raw = read_repo_params()
    for key, value in SMALL_SIZES.items():
        set_dotted(raw, key, value)
    params = parse_params(raw)
    root = tmp_path_factory.mktemp("small_world")
    for name in ("unlabelled", "landcover", "croptype"):
        with dataset_writer(params, name, root / "raw") as writer:
            for chunk in synthetic_source.generate(
                params.fetch.synthetic,
                name,
                params.seed,
                params.fetch.start_date,
                params.fetch.end_date,
                bands=params.band_names,
            ):
                writer.append(chunk.arrays, chunk.rows)
        store = open_dataset(root / "raw" / name)
        stats = stats_from_histograms(band_histograms(store), store.bands, (0.02, 0.98))
        empty = pd.DataFrame({"position": [], "sample_id": [], "split": [], "reasons": []})
        write_validated(
            root / "validated" / name,
            store,
            np.arange(len(store)),
            empty,
            pd.DataFrame({"position": np.arange(len(store))}),
            stats,
            {},
        )
    return root / "validated"


def _losses(task: PretrainTask) -> list[float]:
    return [row["loss"] for row in task.history]


def _accuracies(task: PretrainTask) -> list[float]:
    return [row["knn_acc"] for row in task.history]


# Chance level of the InfoNCE with queue K = 16 and batch N = 16 (every logit equal):
#   moco / moco_tp: one head, 1 positive + K negatives           -> ln 17 = 2.833
#   seco: head 0 as moco (ln 17); heads 1 and 2 add the 2 other keys of every batch item,
#         1 + 16 + 2 x 16 = 49 logits each                       -> ln 17 + 2 ln 49 = 10.617
SCENE_CHANCE_LOSS: dict[str, float] = {"seco": 10.617, "moco": 2.833, "moco_tp": 2.833}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["seco", "moco", "moco_tp"])
def test_scene_methods_keep_their_embeddings_spread_under_the_default_optimiser(
    method: str, small_world: Path
) -> None:
    """The params.yaml optimiser of seco / moco / moco_tp (SGD lr 0.00375, momentum 0.9, wd 1e-4,
    x0.1 at 60 % / 80 %, tau 0.07, key momentum 0.99) trains without collapse or divergence.

    This is not a test that the methods learn: in this budget (6 epochs x 2 steps of 16 of the
    small world's 32 locations) they do not measurably. Measured (seed 0): top-1 retrieval of
    the positive among the batch's 32 keys, on fixed views of the training locations, moved by
    4-7 of 128 trials from random init (RGB input; noise), and the kNN probe cannot resolve a
    gain (32 queries, so one query is 0.03, and random init is already at 0.81). It checks:

    * the queue mechanics: in epoch 1 the queue holds random unit vectors, easy negatives, so
      the loss is well below the chance level; from epoch 2 on (real keys) it is near chance
      and never diverges above it. Measured (seeds 0 / 1), epoch 1 / highest later epoch over
      chance: seco 0.81 / 1.00 and 0.78 / 1.01, moco 0.47 / 0.94 and 0.44 / 0.95, moco_tp
      0.48 / 1.02 and 0.53 / 1.06;
    * no collapse: the training embeddings' spread (``embedding_std``) of the last epoch keeps
      at least half of the first epoch's. Measured, last / first (seeds 0 / 1): seco 1.03 /
      0.68, moco 1.17 / 1.02, moco_tp 0.84 / 0.65. With the paper's lr 0.03 (no linear scaling;
      seed 0) seco falls to 0.36 and moco_tp to 0.35, both still falling, so this check fails
      there; moco keeps 0.75 (its loss, on two crops of one image, is the easiest).
    """
    section = dict(read_repo_params()["pretrain"][method])
    section.update({"max_epochs": 6, "batch_size": 16, "crop_size": 48, "queue_size": 16})
    cfg = config(
        {
            method: section,
            "probe.bank_size": 64,
            "probe.query_size": 32,
            "probe.scene_tile": 64,
        }
    )
    dm, task = setup(method, small_world, cfg)
    # the measurements in the docstring were made with these params.yaml values
    assert isinstance(task, MocoTask) and (task.cfg.lr, task.cfg.key_momentum) == (0.00375, 0.99)
    trainer(6).fit(task, datamodule=dm)
    losses, spread = _losses(task), [row["embedding_std"] for row in task.history]
    chance = SCENE_CHANCE_LOSS[method]
    assert len(losses) == 6 and all(np.isfinite(losses)), losses
    assert losses[0] < 0.9 * chance, (losses, chance)
    assert max(losses[1:]) < 1.2 * chance, (losses, chance)
    assert spread[-1] > 0.5 * spread[0], spread


def _pixel_retrieval_world(
    n: int = 16, t: int = 4, size: int = 32, points: int = 16
) -> tuple[dict[str, torch.Tensor], ProbeData, NormStats]:
    """Locations with their own smooth texture; each date rescales every band by a random gain.

    Probe: pixel retrieval across dates — bank = pixels of date 0, queries = the same ground
    pixels at date t - 1, label = (location, pixel). What dense contrast optimises.
    """
    g = torch.Generator().manual_seed(0)
    texture = F.interpolate(
        torch.rand(n, 3, 4, 4, generator=g), size=(size, size), mode="bilinear", align_corners=False
    )
    gains = 0.5 + torch.rand(n, t, 3, 1, 1, generator=g)
    offsets = 0.1 * (torch.rand(n, t, 3, 1, 1, generator=g) - 0.5)
    reflectance = 0.05 + 0.3 * texture[:, None] * gains + offsets
    image = (reflectance * 1e4).round().to(torch.int16)
    pixels = torch.stack([torch.randperm(size * size, generator=g)[:points] for _ in range(n)])
    labels = torch.arange(n * points).reshape(n, points)
    valid = torch.ones(n, points, dtype=torch.bool)
    probe = ProbeData(
        ProbeSplit(image[:, 0], labels, pixels, valid),
        ProbeSplit(image[:, t - 1], labels, pixels, valid),
        n * points,
        "pixel",
    )
    flat = reflectance.transpose(0, 2).reshape(3, -1)
    mean, std = flat.mean(dim=1).tolist(), flat.std(dim=1).tolist()
    stats = NormStats(
        tuple(BAND_NAMES[:3]), tuple(mean), tuple(std), (0.02, 0.98), tuple(mean), tuple(mean), 1
    )
    return {"image": image}, probe, stats


@pytest.mark.slow
def test_dense_learns_pixel_correspondence() -> None:
    """Cross-date pixel retrieval of the final encoder (the one a fixed budget exports) beats
    random init, under the default dense optimiser (SGD lr 0.03, step schedule).

    Measured over seeds 0, 1, 2 (this world, 5 epochs): random init 0.31 / 0.31 / 0.35, final
    epoch 0.72 / 0.46 / 0.62 (+0.41 / +0.15 / +0.27; the peak, epoch 3, is 0.85-0.89 and is not
    what is tested); the loss fell from 6.54 / 6.62 / 6.77 to 5.53 / 5.53 / 5.58. With 256
    sampled points per batch a chance-level InfoNCE is ln 256 = 5.55: the loss shows the first
    epoch's embeddings are worse than chance, not that the last ones are good; the probe does.
    """
    data, probe, stats = _pixel_retrieval_world()
    cfg = config(
        {"dense.max_epochs": 5, "dense.batch_size": 8, "dense.points_per_image": 32, "probe.k": 1}
    )
    L.seed_everything(0, verbose=False)
    task = build_task("dense", cfg, seed=0, bands=stats.bands, norm_stats=stats, num_dates=4)
    task.probe_data = probe
    loader = DataLoader(
        TensorDictDataset(data), sampler=EpochBatchSampler(16, 8, 0), batch_size=None
    )
    trainer(5).fit(task, loader)
    losses, accs = _losses(task), _accuracies(task)
    assert task.random_init_probe is not None
    assert len(accs) == 5 and task.random_init_probe.n_queries == 256
    assert losses[-1] < losses[0] - 0.5, losses
    assert accs[-1] > task.random_init_probe.knn_acc + 0.1, (task.random_init_probe, accs)


@pytest.mark.slow
def test_cscl_fits_its_affinity_objective_under_the_default_optimiser(small_world: Path) -> None:
    """CSCL stage 1 with the params.yaml optimiser (Adam lr 1e-4, x0.975 per epoch) lowers its
    loss in every epoch, and the backbone's pixel embeddings keep their spread.

    Measured (seeds 0 / 1, this world, 5 epochs of 4 steps): loss 0.0078 -> -0.0026 -> -0.0111
    -> -0.0168 -> -0.0302 and -0.0173 -> -0.0205 -> -0.0272 -> -0.0319 -> -0.0414 (every epoch
    lower, by at least 0.003); embedding spread last / first 1.02 and 0.93. The online kNN probe
    is not asserted: with 160 query pixels its gain over random init, +0.07 and +0.02, is
    within its noise (binomial standard error about 0.035).
    """
    cfg = config(
        {
            "cscl.max_epochs": 5,
            "cscl.batch_size": 8,
            "probe.pixel_bank_images": 32,
            "probe.pixel_query_images": 16,
            "probe.pixels_per_image": 32,
        }
    )
    dm, task = setup("cscl", small_world, cfg)
    # the optimiser is params.yaml's, the one the docstring's measurements used
    repo = read_repo_params()["pretrain"]["cscl"]
    assert (cfg.cscl.lr, cfg.cscl.lr_decay) == (repo["lr"], repo["lr_decay"]) == (1e-4, 0.975)
    trainer(5).fit(task, datamodule=dm)
    losses, spread = _losses(task), [row["embedding_std"] for row in task.history]
    assert len(losses) == 5
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < losses[0] - 0.02, losses
    assert spread[-1] > 0.8 * spread[0], spread
