"""The sweep's outputs, each written atomically into ``reports/tune``:

- ``best_params.yaml`` — the best completed trial: its values under full dotted ``params.yaml``
  keys (what ``s2ssl tune apply`` writes into params.yaml), its score, number and the study;
- ``metrics.json`` — flat numbers for ``dvc metrics`` (best / baseline score, gain, trial counts,
  the best numeric values);
- ``trials.csv`` — one row per finished trial (``dvc plots``: score by trial number);
- ``history.png`` / ``importance.png`` — Optuna's optimisation history and fANOVA parameter
  importances (matplotlib), and the same as interactive plotly pages in ``html/`` (plotly.js
  stored once beside them, so they open offline).
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from s2ssl.config import Params
from s2ssl.io import atomic_dir, atomic_path, write_json_atomic, write_text_atomic
from s2ssl.tuning.space import overrides
from s2ssl.tuning.trials import is_finished, sampler_seed, summarize

if TYPE_CHECKING:
    import optuna

__all__ = ["BEST_PARAMS", "REPORT_FILES", "write_reports"]

BEST_PARAMS: Final[str] = "best_params.yaml"
REPORT_FILES: Final[dict[str, str]] = {
    "best_params": BEST_PARAMS,
    "metrics": "metrics.json",
    "trials": "trials.csv",
    "history_png": "history.png",
    "importance_png": "importance.png",
    "html": "html",
}
"""Report name -> file (or directory) name inside the reports directory."""


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _trials_csv(trials: list[optuna.trial.FrozenTrial], params: Params) -> str:
    cfg = params.tune
    keys = list(overrides(cfg, dict.fromkeys(cfg.space), fixed=False))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["number", "state", "value", "last_step", "best_step", "seconds", "note", *keys]
    )
    for t in trials:
        s = summarize(t, params)
        writer.writerow(
            [
                s.number,
                s.state,
                "" if s.value is None else repr(s.value),
                "" if s.last_step is None else s.last_step,
                t.user_attrs.get("best_step", ""),
                "" if s.seconds is None else f"{s.seconds:.2f}",
                s.note,
                *("" if s.params.get(k) is None else s.params[k] for k in keys),
            ]
        )
    return buf.getvalue()


@contextmanager
def _plotting() -> Iterator[None]:
    """Optuna's matplotlib plots change global styles and warn that they are experimental."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _importance_evaluator(seed: int) -> Any:
    from optuna.importance import FanovaImportanceEvaluator

    return FanovaImportanceEvaluator(seed=seed)


def _placeholder_png(path: Path, title: str, message: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    _save_png(fig, path)


def _save_png(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def _plots(study: optuna.Study, metric: str, seed: int, reports: Path) -> None:
    import optuna
    import plotly.graph_objects as go
    from optuna.visualization import matplotlib as vis_mpl

    n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    with _plotting():
        ax = vis_mpl.plot_optimization_history(study, target_name=metric)
        _save_png(ax.figure, reports / REPORT_FILES["history_png"])
        history_html = optuna.visualization.plot_optimization_history(study, target_name=metric)
        importance_message = None
        if n_complete >= 2:
            try:
                ax = vis_mpl.plot_param_importances(
                    study, evaluator=_importance_evaluator(seed), target_name=metric
                )
                _save_png(ax.figure, reports / REPORT_FILES["importance_png"])
                importance_html = optuna.visualization.plot_param_importances(
                    study, evaluator=_importance_evaluator(seed), target_name=metric
                )
            except (ValueError, RuntimeError, ImportError) as e:  # ImportError: no sklearn
                importance_message = f"parameter importances unavailable: {e}"
        else:
            importance_message = (
                f"parameter importances need at least 2 completed trials (have {n_complete})"
            )
        if importance_message is not None:
            _placeholder_png(
                reports / REPORT_FILES["importance_png"],
                "Hyperparameter importances",
                importance_message,
            )
            importance_html = go.Figure()
            importance_html.add_annotation(text=importance_message, showarrow=False)
    with atomic_dir(reports / REPORT_FILES["html"]) as tmp:
        history_html.write_html(tmp / "history.html", include_plotlyjs="directory")
        importance_html.write_html(tmp / "importance.html", include_plotlyjs="directory")


def write_reports(study: optuna.Study, params: Params, reports_dir: str | Path) -> dict[str, Path]:
    """Write the sweep's reports (module docstring) from the study's finished trials.

    ``best_params.yaml`` is written only when a trial completed; the other files always.
    Returns report name -> path of what was written.

    Raises:
        ValueError: no trial of the study completed (after writing the other reports).
    """
    from optuna.trial import TrialState

    cfg = params.tune
    reports = Path(reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    metric = str(study.user_attrs.get("metric", "value"))
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    finished = [t for t in trials if is_finished(t)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    baseline = next((t for t in finished if t.user_attrs.get("baseline")), None)
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None

    written = {"trials": write_text_atomic(reports / "trials.csv", _trials_csv(trials, params))}
    metrics: dict[str, Any] = {
        "n_finished": len(finished),
        "n_complete": len(complete),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_failed": sum(t.state == TrialState.FAIL for t in finished),
        "n_interrupted": sum(bool(t.user_attrs.get("interrupted")) for t in trials),
    }
    if best is not None:
        metrics["best_value"] = float(best.value)  # type: ignore[arg-type]
        metrics["best_trial"] = best.number
        for key, value in best.params.items():
            if _finite(value) is not None and not isinstance(value, bool):
                metrics[f"best.{key}"] = value
    if baseline is not None and _finite(baseline.value) is not None:
        metrics["baseline_value"] = float(baseline.value)  # type: ignore[arg-type]
        if best is not None:
            metrics["gain_over_baseline"] = float(best.value) - float(baseline.value)  # type: ignore[arg-type]
    written["metrics"] = write_json_atomic(reports / REPORT_FILES["metrics"], metrics)
    _plots(study, metric, sampler_seed(params), reports)
    for key in ("history_png", "importance_png", "html"):
        written[key] = reports / REPORT_FILES[key]
    if best is None:
        raise ValueError(
            f"no trial of study {study.study_name} completed ({len(trials)} finished: "
            f"{', '.join(f'{t.number} {t.state.name}' for t in trials) or 'none'}); see "
            f"{reports / 'trials.csv'}"
        )
    document = {
        "study": study.study_name,
        "task": cfg.task,
        "init": cfg.init,
        "fraction": cfg.fraction,
        "metric": metric,
        "trial": best.number,
        "value": float(best.value),  # type: ignore[arg-type]
        "baseline_value": metrics.get("baseline_value"),
        "params": overrides(cfg, best.params, fixed=False),
    }
    text = "# Best trial of the Optuna sweep; `s2ssl tune apply` writes `params` into params.yaml\n"
    text += yaml.safe_dump(document, sort_keys=False)
    written["best_params"] = write_text_atomic(reports / BEST_PARAMS, text)
    return written
