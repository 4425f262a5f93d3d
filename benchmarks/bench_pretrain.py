"""Benchmark pre-training throughput: samples/s per method and achieved FLOP/s as a fraction of
the peak FLOP/s of a large matmul measured in the same process (DESIGN §8).

Prints ONE JSON object on stdout; progress on stderr. Usage::

    python benchmarks/bench_pretrain.py                        # every method, params.yaml config
    python benchmarks/bench_pretrain.py --methods seco --steps 20
    python benchmarks/bench_pretrain.py --device cuda --precision bf16   # on a GPU
    python benchmarks/bench_pretrain.py --precision bf16 --channels-last on   # CPU, bf16 path

Per method, one full training step is what the Lightning task runs (views + augmentations on
the device, query/key forward, loss, backward, optimiser step, momentum update, enqueue),
driven directly (no Trainer: no logging, no probe) on random data of the real shapes:

* ``flops_per_step``: counted once with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls
  and convolutions, forward and backward; elementwise work and data movement are not counted,
  so the ratio is the share of the step spent at the matmul rate);
* ``samples_per_s`` and ``achieved_flops_per_s`` from the median of ``--steps`` individually
  timed steps after warm-up (``step_s_min_max`` shows the spread);
* ``ratio_to_matmul_peak`` = achieved / peak, where the peak is the best of several large
  square matmuls (``--matmul-size``, fp32, or bf16 with ``--precision bf16``) in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(f"[bench_pretrain] {message}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(n: int, dtype: torch.dtype, device: torch.device, repeat: int = 5) -> float:
    """Best FLOP/s of ``n × n @ n × n`` (2 n³ FLOPs) over ``repeat`` timed runs."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    sync(device)
    best = float("inf")
    inner = 10 if device.type == "cuda" else 1
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b)
        sync(device)
        best = min(best, (time.perf_counter() - t) / inner)
    return 2 * n**3 / best


def fake_batch(
    method: str, cfg: Any, n: int, num_dates: int, n_bands: int, size: int, device: torch.device
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 5000, (n, num_dates, n_bands, size, size), generator=g)
    batch = {
        "image": image.to(torch.int16),
        "doy": torch.sort(torch.randint(1, 366, (n, num_dates), generator=g), dim=1).values,
    }
    if method == "cscl":
        batch["label"] = torch.randint(0, 9, (n, size, size), generator=g)
    return {k: v.to(device) for k, v in batch.items()}


def method_shapes(method: str, params: Any) -> tuple[int, int]:
    """``(dates, patch edge)`` of the samples ``method`` trains on in the synthetic world."""
    synthetic = params.fetch.synthetic
    if method != "cscl":
        return synthetic.unlabelled.n_dates, synthetic.unlabelled.patch_size
    if params.pretrain.cscl.labels == "croptype":
        return synthetic.croptype.n_dates, synthetic.croptype.patch_size
    return 1, synthetic.landcover.patch_size


@dataclass
class MethodStep:
    """One method's task on ``device`` with a batch of random data and its training step."""

    task: Any
    step: Callable[[int], None]  # one full optimiser step; the argument seeds the views
    batch_size: int
    channels_last: bool
    input: list[int]  # [dates, bands, height, width] of a sample

    @property
    def trainable_params_m(self) -> float:
        return sum(p.numel() for p in self.task.parameters() if p.requires_grad) / 1e6


def build_method_step(
    method: str,
    params: Any,
    device: torch.device,
    *,
    batch_size: int | None = None,
    precision: str = "fp32",
    channels_last: str | None = None,
) -> MethodStep:
    """The task of ``method`` as ``build_task`` makes it, and one training step of it.

    ``precision``: ``fp32`` or ``bf16`` (``torch.autocast``); ``channels_last``: ``on`` / ``off``
    or None for ``pretrain.channels_last`` (what the stage does); ``batch_size`` None: the
    method's configured one.
    """
    from s2ssl.data.stats import NormStats
    from s2ssl.ssl.datamodule import method_data
    from s2ssl.ssl.methods import build_task

    cfg = params.pretrain
    mcfg = cfg.method_config(method)
    data = method_data(method, mcfg, params.band_names)
    bands = data.bands or params.band_names
    stats = NormStats(
        bands, (0.2,) * len(bands), (0.1,) * len(bands), (0.02, 0.98), (0.0,) * len(bands),
        (0.5,) * len(bands), 1,
    )  # fmt: skip
    num_dates, size = method_shapes(method, params)
    torch.manual_seed(0)
    task = build_task(method, cfg, seed=0, bands=bands, norm_stats=stats, num_dates=num_dates).to(
        device
    )
    if channels_last is not None:
        task.channels_last = channels_last == "on"
    else:
        task.channels_last = cfg.channels_last
    # the stage's own decision (on_fit_start); False for the 3-D U-Net (CSCL)
    uses_channels_last = task.wants_channels_last() and task.use_channels_last()
    task.train()
    opt = task.configure_optimizers()
    if isinstance(opt, dict):
        opt = opt["optimizer"]
    elif isinstance(opt, list | tuple):
        opt = opt[0][0] if isinstance(opt[0], list | tuple) else opt[0]
    batch_size = batch_size or mcfg.batch_size
    batch = fake_batch(method, mcfg, batch_size, num_dates, len(bands), size, device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    )

    def step(i: int) -> None:
        # a generator on the training device, as PretrainTask.batch_generator
        gen = torch.Generator(device=device).manual_seed(i)
        with autocast:
            out = task.shared_step(batch, gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    return MethodStep(
        task, step, batch_size, uses_channels_last, [num_dates, len(bands), size, size]
    )


def step_flops(step: Callable[[int], None], seed: int = 10_000) -> int:
    """Matmul and convolution FLOPs (forward + backward) of one call of ``step``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(seed)
    return int(counter.get_total_flops())


def bench_method(method: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from s2ssl.config import load_params

    ms = build_method_step(
        method,
        load_params(args.params),
        device,
        batch_size=args.batch_size,
        precision=args.precision,
        channels_last=args.channels_last,
    )
    for i in range(args.warmup):
        ms.step(i)
    sync(device)
    flops = step_flops(ms.step)
    times = []
    for i in range(args.steps):  # per step: the median resists a neighbour's burst of work
        sync(device)
        t = time.perf_counter()
        ms.step(20_000 + i)
        sync(device)
        times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    achieved = flops / step_s
    return {
        "batch_size": ms.batch_size,
        "channels_last": ms.channels_last,
        "input": ms.input,
        "trainable_params_m": round(ms.trainable_params_m, 2),
        "flops_per_step": flops,
        "step_s": round(step_s, 4),
        "step_s_min_max": [round(min(times), 4), round(max(times), 4)],
        "samples_per_s": round(ms.batch_size / step_s, 1),
        "achieved_flops_per_s": achieved,
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    parser.add_argument(
        "--methods", nargs="+", default=["seco", "moco", "moco_tp", "dense", "cscl"]
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="override params batch size")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument(
        "--channels-last",
        choices=["on", "off"],
        default=None,
        help="2-D networks in channels-last memory format (default: pretrain.channels_last)",
    )
    parser.add_argument("--matmul-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    log(f"matmul peak ({size}², {dtype}) on {device}")
    peak = matmul_peak(size, dtype, device)
    results: dict[str, Any] = {}
    for method in args.methods:
        log(f"{method}: {args.warmup} warm-up + {args.steps} timed steps")
        results[method] = bench_method(method, args, device)
        r = results[method]
        log(f"{method}: {r['samples_per_s']} samples/s")
    # the peak once more after the methods: the best of both resists a neighbour's burst of work
    peak = max(peak, matmul_peak(size, dtype, device))
    for r in results.values():
        r["ratio_to_matmul_peak"] = round(r["achieved_flops_per_s"] / peak, 3)
        r["achieved_flops_per_s"] = round(r["achieved_flops_per_s"] / 1e9, 2)
        r["achieved_gflops_per_s"] = r.pop("achieved_flops_per_s")
    log("ratios: " + ", ".join(f"{m} {r['ratio_to_matmul_peak']}" for m, r in results.items()))
    return {
        "benchmark": "pretrain",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor(),
        "precision": args.precision,
        "torch_threads": torch.get_num_threads(),
        "matmul_peak_gflops_per_s": round(peak / 1e9, 1),
        "methods": results,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
