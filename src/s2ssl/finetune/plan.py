"""The runs of one fine-tuning task: every init × protocol × label fraction × setting, their
seeds, and which of them are candidates for the exported model."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from s2ssl.config import Params
from s2ssl.seeding import derive_seed
from s2ssl.taskspec import task_spec

__all__ = ["RunSpec", "fraction_label", "is_candidate", "plan_runs", "run_seed"]


def fraction_label(fraction: float) -> str:
    """``0.01 -> "1"``, ``0.1 -> "10"``, ``1.0 -> "100"`` (percent, as short as exact)."""
    return f"{fraction * 100:.6g}"


@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning / evaluation run."""

    task: str
    setting: str
    init: str
    protocol: str
    fraction: float

    @property
    def key(self) -> str:
        """File-name key, e.g. ``in_domain.dense.finetune.f10``."""
        return f"{self.setting}.{self.init}.{self.protocol}.f{fraction_label(self.fraction)}"


def plan_runs(params: Params, task: str) -> list[RunSpec]:
    """Every run of ``task`` in execution order (see :mod:`s2ssl.finetune.run`)."""
    ft = params.finetune
    cfg = ft.task_config(task)
    transfer = ft.region_transfer.enabled and params.holdout_region is not None
    runs: list[RunSpec] = []
    protocols = getattr(cfg, "protocols", ["finetune"])
    for protocol in protocols:
        if task_spec(task).is_scene_level and protocol == "finetune":
            in_domain = list(getattr(cfg, "finetune_fractions", []))
            across: list[float] = []
        else:
            in_domain = list(ft.fractions)
            across = list(ft.region_transfer.fractions) if transfer else []
        for init in cfg.inits:
            runs += [RunSpec(task, "in_domain", init, protocol, f) for f in sorted(in_domain)]
            runs += [RunSpec(task, "transfer", init, protocol, f) for f in sorted(across)]
    return runs


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_seed(seed: int, spec: RunSpec) -> int:
    """The seed of one run: derived from the top-level seed and the run's key only, so a run's
    randomness does not depend on which other runs (or trials) came before it."""
    digest = int(_sha256(spec.key)[:8], 16)
    return derive_seed(seed, digest) & 0xFFFF_FFFF  # numpy / Lightning take 32-bit seeds


def _candidate_protocols(params: Params, task: str) -> tuple[str, ...]:
    if not task_spec(task).is_scene_level:
        return ("finetune",)
    protocols = params.finetune.scene.protocols
    if "finetune" in protocols:
        return ("finetune",)
    return ("linear",) if "linear" in protocols else ()


def is_candidate(params: Params, spec: RunSpec) -> bool:
    """Whether ``spec`` may be exported: an in-domain run of the candidate protocol at its
    largest label fraction."""
    if spec.setting != "in_domain" or spec.protocol not in _candidate_protocols(params, spec.task):
        return False
    fractions = [
        r.fraction
        for r in plan_runs(params, spec.task)
        if r.setting == "in_domain" and r.protocol == spec.protocol
    ]
    return bool(fractions) and spec.fraction == max(fractions)
