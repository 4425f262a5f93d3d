"""Runtime settings shared by the training stages: mixed precision, the process's rank, and a
quiet Lightning."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["global_rank", "quiet_lightning", "resolve_precision"]


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` → ``bf16-mixed`` when training on CUDA, else ``32-true``; others pass through."""
    if precision != "auto":
        return "32-true" if precision == "32" else precision
    on_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if on_cuda else "32-true"


def global_rank() -> int:
    """This process's global rank from the launcher's environment (0 when not distributed)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(key)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                continue
    return 0


class _DropTips(logging.Filter):
    """Drops Lightning's advertising "Tip" lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's tips and warnings that do not apply to in-memory training."""
    loggers = [
        logging.getLogger(name)
        for name in (
            "lightning.pytorch.utilities.rank_zero",
            "lightning.fabric.utilities.rank_zero",
        )
    ]
    tip_filter = _DropTips()
    for logger in loggers:
        logger.addFilter(tip_filter)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists.*")
            warnings.filterwarnings("ignore", message=r".*sync_dist=True.*")
            warnings.filterwarnings("ignore", message=r".*all_gather is deprecated.*")
            warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(tip_filter)
