"""Fine-tuning on the downstream tasks: sample selection for label fractions and the
region-transfer split (:mod:`s2ssl.finetune.splits`)."""

from __future__ import annotations

from s2ssl.finetune.splits import hash_rank, label_fraction_subset, region_transfer_split

__all__ = ["hash_rank", "label_fraction_subset", "region_transfer_split"]
