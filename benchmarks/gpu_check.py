"""One short check of a lent GPU machine: matmul peak, pre-training throughput and MFU of every
method, DDP scaling, predict throughput. Prints ONE JSON object on stdout; progress on stderr.

Usage (``benchmarks/gpu_check.sh`` runs it under ``timeout 480`` and keeps the JSON in
``reports/benchmarks/gpu_check.json``)::

    python benchmarks/gpu_check.py                       # CUDA if present, else the CPU fallback
    python benchmarks/gpu_check.py --steps 100 --batch-size 128 --methods seco dense
    python benchmarks/gpu_check.py --device cpu          # the CPU fallback on any machine

On CUDA: bf16 (``torch.autocast``), batch 256, 10 warm-up + 200 timed steps per method, an 8192³
matmul, a 2048 x 2048 px raster (not yet timed on a GPU: each method's timed steps stop after
``--method-seconds`` 40 and no section starts after ``--budget-s`` 360, so the whole stays inside
the shell script's 480 s). Without CUDA (or with ``--device cpu``) the same code runs in fp32 with
tiny settings (3 steps of batch 4, a 1024³ matmul, a 256 x 256 px raster): 10-15 s on an idle
2-core CPU, and the JSON says ``"fallback": true``.

What the numbers mean:

* ``peak.flops_per_s``: the best of several timed ``n x n @ n x n`` matmuls (2 n³ FLOPs each) in
  the training dtype (bf16 on CUDA, fp32 on CPU), measured before and after the methods in this
  process (the better of the two). It is what this device achieves, not the datasheet figure,
  and it is the MFU denominator.
* ``methods.<m>``: one full training step of the Lightning task as ``build_task`` makes it
  (views and augmentations on the device, forward of query and keys, loss, backward, optimiser
  step, momentum update, enqueue), driven directly (no Trainer: no logging, no probe) on random
  data of the shapes of ``params.yaml`` (``benchmarks/bench_pretrain.py`` builds it), 2-D nets in
  channels-last when ``pretrain.channels_last`` says so (the stage's rule; never the 3-D U-Net).
  ``step_s`` = wall time of ``steps`` back-to-back steps (one synchronisation at the end) / steps;
  ``samples_per_s`` = batch_size / step_s; ``flops_per_step`` = matmul and convolution FLOPs
  (forward + backward) of one step counted by ``torch.utils.flop_counter.FlopCounterMode``;
  ``achieved_flops_per_s`` = flops_per_step / step_s; ``peak_memory_gib`` (CUDA) = the most
  memory the caching allocator held.
* ``mfu`` = achieved_flops_per_s / peak.flops_per_s. Elementwise work (augmentations,
  normalisation, activations, the optimiser) and data movement count for time but not for FLOPs,
  so MFU is the share of the step's time the device spent at its matmul rate. Small networks
  (ResNet-18 on 48 px crops, a 4-feature 3-D U-Net) are launch- and memory-bound: a few per
  cent is normal there; a larger batch raises it until memory runs out. Above 1 means the
  FLOPs were over-counted or the peak under-measured (look at ``peak``).
* ``ddp`` (only with more than one GPU, else ``{"skipped": ...}``): seco through the project's
  own Lightning Trainer (``s2ssl.ssl.pretrain.build_trainer``: ``strategy="ddp"``, its precision
  and determinism settings), the same per-GPU batch on 1 and on all N GPUs, each a fresh process;
  ``scaling_efficiency`` = samples_per_s(N) / (N x samples_per_s(1)) (1.0 = linear).
* ``predict``: :func:`s2ssl.inference.predict.predict_raster` (windowed reads, DN to reflectance,
  tiled inference with blending, COG class map, areas) of a random-init ResNet-18 U-Net over a
  synthetic 13-band 10 m GeoTIFF (``benchmarks/bench_predict.py``); ``km2_per_s`` = area / wall
  seconds (one 10 m pixel = 1e-4 km²), ``model_fraction`` = the share spent in the forward pass.
  On CUDA a small raster is predicted first (warm-up, not reported).

``ok`` is false (and the exit status 1) when a section failed; its error is in ``errors`` and
the other sections still report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pretrain import build_method_step, fake_batch, matmul_peak, step_flops, sync

REPO_ROOT = Path(__file__).resolve().parents[1]
METHODS = ("seco", "moco", "moco_tp", "dense", "cscl")
GIB = 2**30


def log(message: str) -> None:
    print(f"[gpu_check] {message}", file=sys.stderr, flush=True)


def versions() -> dict[str, Any]:
    import lightning

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "lightning": lightning.__version__,
    }


def device_info(device: torch.device) -> dict[str, Any]:
    if device.type != "cuda":
        return {"device_name": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    props = torch.cuda.get_device_properties(device)
    return {
        "device_name": torch.cuda.get_device_name(device),
        "gpu_count": torch.cuda.device_count(),
        "gpu_memory_gib": round(props.total_memory / GIB, 1),
        "capability": f"{props.major}.{props.minor}",
        "cpus": os.cpu_count(),
    }


# ---------------------------------------------------------------------------------- methods
def bench_method(method: str, args: argparse.Namespace, params: Any, device: torch.device) -> dict:
    """Warm-up, one counted step, then ``args.steps`` back-to-back timed steps of ``method``."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ms = build_method_step(
        method,
        params,
        device,
        batch_size=args.batch_size or None,
        precision=args.precision,
    )
    t = time.perf_counter()
    for i in range(args.warmup):
        ms.step(i)
    sync(device)
    warmup_s = time.perf_counter() - t
    flops = step_flops(ms.step)
    sync(device)
    steps = 0
    t = time.perf_counter()
    while steps < args.steps:  # no synchronisation inside: the device never waits for Python
        ms.step(20_000 + steps)
        steps += 1
        if time.perf_counter() - t > args.method_seconds:
            break
    sync(device)
    step_s = (time.perf_counter() - t) / steps
    out = {
        "batch_size": ms.batch_size,
        "input": ms.input,
        "channels_last": ms.channels_last,
        "trainable_params_m": round(ms.trainable_params_m, 2),
        "warmup_steps": args.warmup,
        "warmup_s": round(warmup_s, 3),
        "steps": steps,
        "step_s": step_s,
        "samples_per_s": ms.batch_size / step_s,
        "flops_per_step": flops,
        "achieved_flops_per_s": int(flops / step_s),
    }
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 2)
    del ms
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


# ---------------------------------------------------------------------------------- DDP
def tiny_scene_probe(n_bands: int, size: int = 32, n: int = 16) -> Any:
    """A small random scene-level kNN probe: the stage runs one per epoch (cheap here)."""
    from s2ssl.ssl.probe import ProbeData, ProbeSplit

    g = torch.Generator().manual_seed(1)

    def split() -> ProbeSplit:
        image = torch.randint(1, 5000, (n, n_bands, size, size), generator=g).to(torch.int16)
        return ProbeSplit(image=image, labels=torch.randint(0, 4, (n,), generator=g))

    return ProbeData(bank=split(), queries=split(), num_classes=4, level="scene")


def ddp_worker(args: argparse.Namespace) -> int:
    """One ``trainer.fit`` of ``args.ddp_method`` on ``args.ddp_devices`` devices (run by
    :func:`bench_ddp` in a fresh process; Lightning's launcher re-runs this command per rank).
    Global rank 0 writes ``{"samples_per_s", ...}`` to ``args.ddp_out``."""
    import lightning as L
    from torch.utils.data import DataLoader, Dataset

    from s2ssl.config import load_params
    from s2ssl.ssl.pretrain import build_trainer
    from s2ssl.training.runtime import quiet_lightning, resolve_precision

    params = load_params(args.params)
    cfg = params.pretrain
    method = args.ddp_method
    cuda = args.device == "cuda"
    ms = build_method_step(method, params, torch.device("cpu"), batch_size=args.batch_size or None)
    task = ms.task
    task.probe_data = tiny_scene_probe(ms.input[1])
    batch = fake_batch(method, None, ms.batch_size, *ms.input[:3], torch.device("cpu"))
    total = args.warmup + args.steps

    class Repeat(Dataset):  # the same in-memory batch every step (the stage's batches are too)
        def __len__(self) -> int:
            return total

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return batch

    class StepTimer(L.Callback):
        t0 = t1 = math.nan

        def on_train_batch_start(self, trainer: Any, module: Any, b: Any, idx: int) -> None:
            if idx == args.warmup:
                sync(module.device)
                self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, module: Any, o: Any, b: Any, idx: int) -> None:
            if idx == total - 1:
                sync(module.device)
                self.t1 = time.perf_counter()

    timer = StepTimer()
    loader = DataLoader(Repeat(), batch_size=None, shuffle=False, pin_memory=cuda)
    accelerator = "cuda" if cuda else "cpu"
    with tempfile.TemporaryDirectory(prefix="gpu_check_ddp_") as tmp, quiet_lightning():
        trainer, _ = build_trainer(
            cfg,
            method,
            tmp,
            overrides={
                "accelerator": accelerator,
                "devices": args.ddp_devices,
                "strategy": "ddp" if args.ddp_devices > 1 else "auto",
                "num_nodes": 1,
                "precision": resolve_precision(cfg.precision, accelerator),
                "max_epochs": 1,
                "max_steps": total,
                "callbacks": [timer],
                "enable_checkpointing": False,
                "log_every_n_steps": max(total, 1),
            },
        )
        trainer.fit(task, train_dataloaders=loader)
        if trainer.global_rank == 0:
            seconds = timer.t1 - timer.t0
            world = trainer.world_size
            result = {
                "devices": world,
                "batch_size_per_device": ms.batch_size,
                "precision": str(trainer.precision),
                "steps": args.steps,
                "step_s": seconds / args.steps,
                "samples_per_s": args.steps * ms.batch_size * world / seconds,
            }
            Path(args.ddp_out).write_text(json.dumps(result))
    return 0


def run_ddp_worker(args: argparse.Namespace, devices: int, out: Path) -> dict[str, Any]:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--ddp-worker", "--device", args.device,
        "--ddp-devices", str(devices), "--ddp-method", args.ddp_method, "--ddp-out", str(out),
        "--params", str(args.params), "--steps", str(args.ddp_steps),
        "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
    ]  # fmt: skip
    log(f"ddp: {args.ddp_method} on {devices} device(s) ...")
    done = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"DDP worker on {devices} device(s) exited with {done.returncode}")
    return json.loads(out.read_text())


def bench_ddp(args: argparse.Namespace) -> dict[str, Any]:
    n = args.ddp_devices or (torch.cuda.device_count() if args.device == "cuda" else 0)
    if args.ddp == "off":
        return {"skipped": "--ddp off"}
    if n < 2:
        return {"skipped": "1 GPU" if n == 1 else "no GPU (CPU fallback)"}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        one = run_ddp_worker(args, 1, Path(tmp) / "one.json")
        many = run_ddp_worker(args, n, Path(tmp) / "many.json")
    return {
        "method": args.ddp_method,
        "devices": n,
        "batch_size_per_device": many["batch_size_per_device"],
        "precision": many["precision"],
        "steps": args.ddp_steps,
        "samples_per_s_1": round(one["samples_per_s"], 2),
        "samples_per_s": round(many["samples_per_s"], 2),
        "step_s_1": round(one["step_s"], 5),
        "step_s": round(many["step_s"], 5),
        "scaling_efficiency": round(many["samples_per_s"] / (n * one["samples_per_s"]), 3),
    }


# ---------------------------------------------------------------------------------- predict
def bench_predict(args: argparse.Namespace) -> dict[str, Any]:
    from bench_predict import landcover_segmenter, predict_once, write_scene

    segmenter = landcover_segmenter(args.predict_tile)
    with tempfile.TemporaryDirectory(prefix="gpu_check_predict_") as tmp:
        if args.device == "cuda":  # cuDNN's first convolutions, the allocator's first blocks
            small = write_scene(Path(tmp) / "warmup.tif", 2 * args.predict_tile, seed=1)
            predict_once(segmenter, small, Path(tmp) / "w", "cuda", args.predict_overlap, 4)
        t = time.perf_counter()
        scene = write_scene(Path(tmp) / "scene.tif", args.predict_size)
        log(f"predict: wrote a {args.predict_size}² raster in {time.perf_counter() - t:.1f} s")
        result = predict_once(
            segmenter,
            scene,
            Path(tmp) / "out",
            args.device,
            args.predict_overlap,
            args.predict_batch,
        )
    pixel_km2 = args.predict_size**2 * 1e-4  # 10 m pixels
    return {
        "raster": [13, args.predict_size, args.predict_size],
        "tile_size": args.predict_tile,
        "overlap": args.predict_overlap,
        "batch_size": args.predict_batch,
        "pixel_area_km2": round(pixel_km2, 4),
        **{k: v for k, v in result.items() if k not in ("device", "device_name")},
    }


# ---------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--steps", type=int, help="timed steps per method (CUDA 200, CPU 3)")
    parser.add_argument("--warmup", type=int, help="warm-up steps per method (CUDA 10, CPU 1)")
    parser.add_argument(
        "--batch-size", type=int, help="per device (CUDA 256, CPU 4; 0: pretrain.<method>)"
    )
    parser.add_argument(
        "--method-seconds", type=float, default=40.0, help="cap on a method's timed steps"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=360.0,
        help="no section starts after this many seconds (gpu_check.sh kills at 480)",
    )
    parser.add_argument("--matmul-size", type=int, help="peak matmul edge (CUDA 8192, CPU 1024)")
    parser.add_argument("--ddp", choices=["auto", "off"], default="auto")
    parser.add_argument("--ddp-method", choices=["seco", "moco", "moco_tp"], default="seco")
    parser.add_argument(
        "--ddp-devices", type=int, default=0, help="0: every GPU; > 1 on CPU: gloo processes"
    )
    parser.add_argument("--ddp-steps", type=int, help="timed DDP steps (CUDA 100, CPU 3)")
    parser.add_argument("--predict-size", type=int, help="raster edge, px (CUDA 2048, CPU 256)")
    parser.add_argument("--predict-batch", type=int, help="tiles per forward (CUDA 32, CPU 8)")
    parser.add_argument("--predict-tile", type=int, default=256)
    parser.add_argument("--predict-overlap", type=int, default=64)
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device")
    defaults = {
        "steps": (200, 3),
        "warmup": (10, 1),
        "batch_size": (256, 4),
        "matmul_size": (8192, 1024),
        "predict_size": (2048, 256),
        "predict_batch": (32, 8),
        "ddp_steps": (100, 3),
    }
    for name, (on_cuda, on_cpu) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, on_cuda if cuda else on_cpu)
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 0:
        parser.error("--steps must be >= 1, --warmup and --batch-size >= 0")
    args.precision = "bf16" if cuda else "fp32"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ddp_worker:
        return ddp_worker(args)
    started = time.perf_counter()
    from s2ssl.config import load_params

    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    params = load_params(args.params)
    errors: list[dict[str, str]] = []
    skipped: list[str] = []
    report: dict[str, Any] = {
        "benchmark": "gpu_check",
        "device": device.type,
        "fallback": device.type != "cuda",
        **device_info(device),
        "versions": versions(),
        "precision": args.precision,
        "settings": {
            "steps": args.steps,
            "warmup": args.warmup,
            "batch_size": args.batch_size or "pretrain.<method>.batch_size",
            "method_seconds": args.method_seconds,
            "budget_s": args.budget_s,
            "torch_threads": torch.get_num_threads(),
        },
    }

    def section(name: str, fn: Any) -> Any:
        """``fn()``, or ``{"skipped" | "error": ...}`` past the budget or when it raises."""
        if time.perf_counter() - started > args.budget_s:
            log(f"{name}: skipped (past --budget-s {args.budget_s:g})")
            skipped.append(name)
            return {"skipped": "time budget"}
        try:
            return fn()
        except Exception as e:  # the other sections still report; ok = false
            log(f"{name}: FAILED {e!r}")
            errors.append({"section": name, "error": repr(e)[:2000]})
            if device.type == "cuda":
                torch.cuda.empty_cache()
            return {"error": repr(e)[:2000]}

    log(f"peak: {args.matmul_size}³ {dtype} matmul on {device}")
    peak_before = matmul_peak(args.matmul_size, dtype, device)
    methods: dict[str, Any] = {}
    for method in args.methods:
        log(f"{method}: {args.warmup} warm-up + {args.steps} steps, batch {args.batch_size}")
        methods[method] = r = section(
            f"methods.{method}", lambda m=method: bench_method(m, args, params, device)
        )
        if "samples_per_s" in r:
            log(f"{method}: {r['samples_per_s']:.1f} samples/s")
    # once more after the methods: the better of the two resists a clock / a neighbour's burst
    peak_after = matmul_peak(args.matmul_size, dtype, device)
    peak = max(peak_before, peak_after)
    report["peak"] = {
        "matmul": [args.matmul_size] * 3,
        "dtype": str(dtype).removeprefix("torch."),
        "flops_per_s": int(peak),
        "tflops_per_s": round(peak / 1e12, 3),
        "before_after_tflops_per_s": [round(peak_before / 1e12, 3), round(peak_after / 1e12, 3)],
    }
    for r in methods.values():
        if "achieved_flops_per_s" in r:
            r["mfu"] = round(r["achieved_flops_per_s"] / peak, 4)
            r["achieved_tflops_per_s"] = round(r["achieved_flops_per_s"] / 1e12, 4)
            r["step_s"] = round(r["step_s"], 5)
            r["samples_per_s"] = round(r["samples_per_s"], 2)
    report["methods"] = methods
    report["ddp"] = section("ddp", lambda: bench_ddp(args))
    if args.skip_predict:
        report["predict"] = {"skipped": "--skip-predict"}
    else:
        log(f"predict: {args.predict_size}² px on {device}")
        report["predict"] = r = section("predict", lambda: bench_predict(args))
        if "km2_per_s" in r:
            log(f"predict: {r['km2_per_s']} km²/s")
    report["errors"] = errors
    report["skipped"] = skipped
    report["ok"] = not errors
    report["complete"] = not errors and not skipped
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
