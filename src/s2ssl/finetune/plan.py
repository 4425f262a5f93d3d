"""The runs of one fine-tuning task: every replicate × init × protocol × label fraction ×
setting, their seeds, and which of them are candidates for the exported model.

Replicate ``r`` (``evaluate.replicates``) fixes every random choice of its runs with one seed
(:meth:`s2ssl.config.EvaluateConfig.seeds`): the label subset, the encoder (pre-trained in the
same replicate) and the fine-tuning seed, which all inits of the replicate share — so the
difference between an init and random init within a replicate is paired. ``random_b`` (the
A/A control) is random init with its own, independent fine-tuning seed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from s2ssl.config import RANDOM_INITS, Params
from s2ssl.data.subsets import fraction_label, pretrain_unit
from s2ssl.seeding import derive_seed
from s2ssl.taskspec import task_spec

__all__ = [
    "RunSpec",
    "encoder_unit",
    "fraction_label",
    "is_candidate",
    "plan_runs",
    "replicate_seed_of",
    "run_seed",
]


@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning / evaluation run."""

    task: str
    setting: str
    init: str
    protocol: str
    fraction: float
    replicate: int = 0

    @property
    def key(self) -> str:
        """File-name key, e.g. ``r0.in_domain.dense.finetune.f10``."""
        return f"r{self.replicate}.{self.arm}"

    @property
    def arm(self) -> str:
        """The key without the replicate: what replicates of one setting share."""
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
        transferring = [i for i in cfg.inits if _transfers(params, i)]
        if not set(transferring) - set(RANDOM_INITS):
            across = []  # random init alone on the held-out region compares with nothing
        for r in range(params.evaluate.replicates):
            for init in cfg.inits:
                runs += [
                    RunSpec(task, "in_domain", init, protocol, f, r) for f in sorted(in_domain)
                ]
                if _transfers(params, init):
                    runs += [
                        RunSpec(task, "transfer", init, protocol, f, r) for f in sorted(across)
                    ]
    return runs


def _transfers(params: Params, init: str) -> bool:
    inits = params.finetune.region_transfer.inits
    return inits is None or init in inits


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def replicate_seed_of(params: Params, replicate: int) -> int:
    """The seed of replicate ``replicate`` (:meth:`s2ssl.config.EvaluateConfig.seeds`)."""
    seeds = params.evaluate.seeds()
    if not 0 <= replicate < len(seeds):
        raise ValueError(f"replicate {replicate} is outside evaluate.replicates ({len(seeds)})")
    return seeds[replicate]


def run_seed(params: Params, spec: RunSpec) -> int:
    """The fine-tuning seed of one run: derived from its replicate's seed and what the run is
    (task, setting, protocol, fraction) but **not** its init, so every init of a replicate
    trains with the same seed (paired); ``random_b`` mixes in its own name (an independent
    stream: the A/A control). A run's randomness does not depend on which runs came before."""
    what = f"{spec.task}.{spec.setting}.{spec.protocol}.f{fraction_label(spec.fraction)}"
    if spec.init == "random_b":
        what += ".random_b"
    digest = int(_sha256(what)[:8], 16)
    base = replicate_seed_of(params, spec.replicate)
    return derive_seed(base, digest) & 0xFFFF_FFFF  # numpy / Lightning take 32-bit seeds


def encoder_unit(spec: RunSpec) -> str:
    """The pre-training unit whose encoder initialises ``spec``: the same replicate, and for CSCL
    stage 1 the same label subset (setting and fraction)."""
    if spec.init == "cscl":
        return pretrain_unit(spec.replicate, spec.setting, spec.fraction)
    return pretrain_unit(spec.replicate)


def _candidate_protocols(params: Params, task: str) -> tuple[str, ...]:
    if not task_spec(task).is_scene_level:
        return ("finetune",)
    protocols = list(getattr(params.finetune.task_config(task), "protocols", ["finetune"]))
    if "finetune" in protocols:
        return ("finetune",)
    return ("linear",) if "linear" in protocols else ()


def is_candidate(params: Params, spec: RunSpec) -> bool:
    """Whether ``spec`` may be exported: an in-domain run of the candidate protocol at its
    largest label fraction, in replicate 0."""
    if spec.setting != "in_domain" or spec.protocol not in _candidate_protocols(params, spec.task):
        return False
    if spec.replicate != 0:
        return False  # one replicate's networks are kept: the others only bring statistics
    fractions = [
        r.fraction
        for r in plan_runs(params, spec.task)
        if r.setting == "in_domain" and r.protocol == spec.protocol
    ]
    return bool(fractions) and spec.fraction == max(fractions)
