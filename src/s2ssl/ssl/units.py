"""The runs of a pre-training stage: one per replicate, and for CSCL stage 1 one per replicate
and label subset (the subsets of the fine-tuning runs it feeds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s2ssl.config import Params
from s2ssl.data.subsets import pretrain_unit
from s2ssl.ssl.datamodule import LabelSubset

__all__ = ["PretrainUnit", "plan_units"]


@dataclass(frozen=True)
class PretrainUnit:
    """One pre-training run of a method: replicate ``replicate`` (seed ``seed``) and, for a
    supervised method, the label subset it may learn from."""

    replicate: int
    seed: int
    subset: LabelSubset | None = None

    @property
    def name(self) -> str:
        """``r<k>`` or ``r<k>.<setting>.f<pct>`` (:func:`s2ssl.data.subsets.pretrain_unit`)."""
        if self.subset is None:
            return pretrain_unit(self.replicate)
        return pretrain_unit(self.replicate, self.subset.setting, self.subset.fraction)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (fingerprints, MLflow params, meta.json)."""
        out: dict[str, Any] = {"name": self.name, "replicate": self.replicate, "seed": self.seed}
        if self.subset is not None:
            out["subset"] = {
                "setting": self.subset.setting,
                "fraction": self.subset.fraction,
                "seed": self.subset.seed,
                "min_samples": self.subset.min_samples,
            }
        return out


def plan_units(params: Params, method: str) -> list[PretrainUnit]:
    """Every run of ``method``: one per replicate (``evaluate.replicates``); CSCL stage 1 one
    per replicate and label subset of the task it feeds — each fraction of
    ``finetune.fractions`` in domain and of ``finetune.region_transfer.fractions`` on the held-out
    region (when transfer runs include ``cscl``) — drawn with the replicate's seed exactly as the
    fine-tuning runs draw theirs, so stage 1 never sees a label its stage 2 run may not use."""
    seeds = params.evaluate.seeds()
    if method != "cscl":
        return [PretrainUnit(r, seed) for r, seed in enumerate(seeds)]
    ft = params.finetune
    transfer = ft.region_transfer
    enabled, fractions, inits = transfer.enabled, sorted(transfer.fractions), transfer.inits
    subsets: list[tuple[str, float]] = [("in_domain", f) for f in ft.fractions]
    if enabled and params.holdout_region is not None and (inits is None or "cscl" in inits):
        subsets += [("transfer", f) for f in fractions]
    return [
        PretrainUnit(
            r,
            seed,
            LabelSubset(setting, fraction, seed, ft.min_train_samples),  # type: ignore[arg-type]
        )
        for r, seed in enumerate(seeds)
        for setting, fraction in subsets
    ]
