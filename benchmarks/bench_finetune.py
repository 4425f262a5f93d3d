"""Benchmark a fine-tuning step and where its time goes, per downstream task.

Prints ONE JSON object on stdout; progress on stderr. Usage::

    python benchmarks/bench_finetune.py                          # every task, params.yaml settings
    python benchmarks/bench_finetune.py --tasks landcover --batch-size 16 --crop-size 32
    python benchmarks/bench_finetune.py --threads 1              # torch intra-op threads

For each task, on random data of the real shapes and the random-init network of the task (the
same classes the ``finetune`` stage builds), three timings, each the median of individually
timed steps after warm-up:

* ``model_step_s``: forward, cross-entropy, backward and AdamW step on a batch already cut and
  augmented — the network's own cost;
* ``task_step_s``: the same through ``FinetuneTask.training_step`` (reflectance scaling, random
  crop, flips and 90° rotations, forward, loss) — adds the augmentation;
* ``fit_step_s``: ``finetune.train.fit`` wall time / steps for ``--fit-steps`` steps validated
  twice on ``--val-size`` samples — adds Lightning, data loading, validation and best-state copies.

``augmentation_share`` = 1 - model / task and ``loop_share`` = 1 - task / fit are ratios of times
measured in this one process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
TASKS = ("landcover", "croptype", "scene")


def log(message: str) -> None:
    print(f"[bench_finetune] {message}", file=sys.stderr, flush=True)


def _shapes(task: str, params: Any) -> tuple[int, int]:
    """``(dates, patch edge)`` of the task's samples in the synthetic world."""
    fetch = params.fetch.synthetic
    if task == "croptype":
        return fetch.croptype.n_dates, fetch.croptype.patch_size
    if task == "scene":
        return 1, params.finetune.scene.tile_size
    return 1, fetch.landcover.patch_size


def _classes(task: str) -> Any:
    from s2ssl.synthetic_vocabulary import SYNTHETIC_CLASS_SETS
    from s2ssl.taskspec import task_spec

    return SYNTHETIC_CLASS_SETS[task_spec(task).labels]


def _split(task: str, n: int, dates: int, size: int, seed: int, bands: tuple[str, ...]) -> Any:
    from s2ssl.finetune.data import TaskSplit
    from s2ssl.taskspec import task_spec

    g = torch.Generator().manual_seed(seed)
    image = torch.randint(1, 5000, (n, dates, len(bands), size, size), generator=g)
    image = image.to(torch.int16)
    k = len(_classes(task))
    shape = (n,) if task_spec(task).is_scene_level else (n, size, size)
    label = torch.randint(0, k, shape, generator=g)
    doy = torch.sort(torch.randint(1, 366, (n, dates), generator=g), dim=1).values
    ids = tuple(f"s{i}" for i in range(n))
    return TaskSplit(image, doy, label, ids, np.zeros(n, np.int64), bands)


def _model(task: str, params: Any, split: Any) -> Any:
    from s2ssl.data.stats import NormStats
    from s2ssl.finetune.data import TaskData
    from s2ssl.finetune.inits import initial_model

    bands = split.bands
    n = len(bands)
    stats = NormStats(bands, (0.2,) * n, (0.1,) * n, (0.02, 0.98), (0.0,) * n, (0.5,) * n, 1)
    data = TaskData(
        task=task, setting="in_domain", class_set=_classes(task), train=split,
        val=split, test=split, norm_stats=stats, manifest={}, dataset_path=Path("."),
    )  # fmt: skip
    model, _ = initial_model(task, "random", params, data, REPO_ROOT / "models" / "pretrain")
    return model


def _median_step(fn: Any, steps: int, warmup: int) -> tuple[float, list[float]]:
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times), [min(times), max(times)]


def bench_task(task: str, args: argparse.Namespace, params: Any) -> dict[str, Any]:
    from s2ssl.finetune.train import FinetuneTask, fit, flip_rot90

    cfg = params.finetune.task_config(task)
    update: dict[str, Any] = {}
    if args.batch_size:
        update["batch_size"] = args.batch_size
    if args.crop_size is not None and task != "scene":
        update["crop_size"] = args.crop_size or None
    cfg = cfg.model_copy(update=update)
    dates, size = _shapes(task, params)
    torch.manual_seed(0)
    split = _split(task, max(cfg.batch_size, 8), dates, size, seed=0, bands=params.band_names)
    model = _model(task, params, split)
    bands = split.band_indices(model.bands)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    batch = {"image": split.image[: cfg.batch_size], "doy": split.doy[: cfg.batch_size],
             "label": split.label[: cfg.batch_size]}  # fmt: skip
    crop = cfg.crop_size if cfg.crop_size and task != "scene" else size
    g = torch.Generator().manual_seed(1)
    x = batch["image"][:, :, bands].float() * 1e-4
    x, y = x[..., :crop, :crop], batch["label"]
    if y.ndim == 3:
        y = y[..., :crop, :crop]
    x, y = flip_rot90(x, y, g, flip=True, rot90=True)

    def forward(inp: torch.Tensor) -> torch.Tensor:
        return model(inp, batch["doy"]) if task == "croptype" else model(inp[:, 0])

    def model_step() -> None:
        loss = F.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    module = FinetuneTask(model, cfg, steps=10**6, seed=0, band_indices=bands)

    def task_step() -> None:
        loss = module.training_step(batch, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    log(f"{task}: model step")
    model_s, model_range = _median_step(model_step, args.steps, args.warmup)
    log(f"{task}: task step")
    task_s, task_range = _median_step(task_step, args.steps, args.warmup)
    log(f"{task}: fit ({args.fit_steps} steps)")
    fit_cfg = cfg.model_copy(update={"steps": args.fit_steps, "val_every": args.fit_steps // 2})
    train = _split(task, max(4 * cfg.batch_size, 16), dates, size, seed=2, bands=params.band_names)
    val = _split(task, args.val_size, dates, size, seed=3, bands=params.band_names)
    fit_model = _model(task, params, train)
    started = time.perf_counter()
    fit(fit_model, train, val, fit_cfg, seed=0, trainer_kwargs={"accelerator": "cpu"})
    fit_s = (time.perf_counter() - started) / args.fit_steps
    return {
        "batch_size": cfg.batch_size,
        "input": [dates, len(bands), crop, crop],
        "eval_size": [args.val_size, dates, len(bands), size, size],
        "model_step_s": round(model_s, 5),
        "model_step_s_min_max": [round(v, 5) for v in model_range],
        "task_step_s": round(task_s, 5),
        "task_step_s_min_max": [round(v, 5) for v in task_range],
        "fit_step_s": round(fit_s, 5),
        "augmentation_share": round(1.0 - model_s / task_s, 4),
        "loop_share": round(1.0 - task_s / fit_s, 4),
        "samples_per_s": round(cfg.batch_size / task_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(REPO_ROOT / "params.yaml"))
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--steps", type=int, default=15, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--fit-steps", type=int, default=40, help="steps of the timed fit()")
    parser.add_argument("--val-size", type=int, default=32, help="validation samples in fit()")
    parser.add_argument("--batch-size", type=int, default=0, help="0: finetune.<task>.batch_size")
    parser.add_argument(
        "--crop-size",
        type=int,
        default=None,
        help="training crop (0: whole patch; default: finetune.<task>.crop_size)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)
    if args.fit_steps < 2:
        parser.error("--fit-steps must be at least 2 (validated at its middle and end)")
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO_ROOT / "src"))
    from s2ssl.config import load_params
    from s2ssl.training.runtime import quiet_lightning

    params = load_params(args.params)
    with quiet_lightning():
        results = {task: bench_task(task, args, params) for task in args.tasks}
    print(json.dumps({
        "benchmark": "finetune",
        "device": "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "tasks": results,
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
