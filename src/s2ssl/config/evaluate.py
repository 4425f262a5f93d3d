"""The ``evaluate`` section: replicates, the statistics of the comparison, what the report draws."""

from __future__ import annotations

from pydantic import Field

from s2ssl.config.common import PositiveInt, StrictModel
from s2ssl.seeding import replicate_seed

__all__ = ["EvaluateConfig"]


class EvaluateConfig(StrictModel):
    """``evaluate``: how many paired replicates every comparison gets and how they are judged.

    ``replicates`` independent repetitions of the whole experiment on the same data (the world is
    seeded by the top-level ``seed``): replicate ``r`` has its own seed
    (:func:`s2ssl.seeding.replicate_seed` of ``replicate_seed`` and ``r``) that fixes the
    pre-training of every method, the label-subset draw and the fine-tuning seed, shared by every
    init of the replicate, so ``init - random`` is a paired difference. The ``pretrain`` and
    ``finetune`` stages read ``replicates`` and ``replicate_seed`` too.
    """

    replicates: PositiveInt = Field(description="paired replicates of every run (R)")
    replicate_seed: int = Field(ge=0, description="base seed of the replicates")
    confidence: float = Field(gt=0.5, lt=1, description="confidence level of every interval")
    bootstrap_samples: int = Field(ge=100, le=1_000_000, description="bootstrap draws")
    power: float = Field(gt=0, lt=1, description="power of the minimum detectable effect")
    strip_samples: PositiveInt = Field(description="test images in each strip PNG")

    def seeds(self) -> list[int]:
        """The seed of every replicate, in replicate order."""
        return [replicate_seed(self.replicate_seed, r) for r in range(self.replicates)]
