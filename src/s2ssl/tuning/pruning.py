"""Lightning → Optuna pruning: report the validation score after every validation pass.

``optuna_integration.PyTorchLightningPruningCallback`` reports at ``step = current_epoch``. Our
fine-tuning validates every ``val_every`` optimiser steps across (and within) data epochs whose
length depends on the batch size, so epochs would collide (several validations per epoch) and
would not line up across trials with different batch sizes. This callback reports at the
optimiser step instead, which is the same for every trial, and stops training cleanly (the best
state so far stays loaded) rather than raising inside Lightning; call :meth:`check_pruned` after
``fit`` (the same protocol as the integration's callback).
"""

from __future__ import annotations

import lightning as L
import optuna

__all__ = ["PruningCallback"]


class PruningCallback(L.Callback):
    """Report ``monitor`` (e.g. ``val/miou``) to ``trial`` at each validation; prune on demand.

    Args:
        trial: the running Optuna trial.
        monitor: the logged validation metric (maximised or minimised as the study says).
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None
        self.reports: list[tuple[int, float]] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Refuse multi-process training: the trial lives in this process only."""
        if trainer.world_size > 1:
            raise ValueError(
                "an Optuna trial trains on one device in one process; set finetune.devices: 1 "
                f"for the sweep (got a world size of {trainer.world_size})"
            )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Report the score at the current optimiser step; stop training if pruned."""
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise ValueError(
                f"the validation metric {self.monitor!r} was not logged; logged: "
                f"{sorted(trainer.callback_metrics)}"
            )
        step = int(trainer.global_step)
        score = float(value)
        self.reports.append((step, score))
        self.trial.report(score, step)
        if self.trial.should_prune():
            self.pruned_at = step
            trainer.should_stop = True

    def check_pruned(self) -> None:
        """Raise :class:`optuna.TrialPruned` if the pruner stopped the trial during ``fit``."""
        if self.pruned_at is not None:
            raise optuna.TrialPruned(
                f"trial {self.trial.number} pruned at step {self.pruned_at} "
                f"({self.monitor} {self.reports[-1][1]:.4f})"
            )
