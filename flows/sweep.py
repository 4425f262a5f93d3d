"""The sweep flow: the Optuna study as ``dvc repro tune/dvc.yaml:tune`` (the ``tune`` stage
lives in its own dvc.yaml so that it runs only when targeted, never in the pipeline flow).

The study itself lives in the library (RDB storage, so a killed sweep resumes); the flow adds
the schedule, the workspace and GPU slots, transient-only retries and a markdown artifact (key
``s2ssl-sweep``) summarising ``reports/tune/best_params.yaml``. Best parameters are *not*
applied: ``s2ssl tune apply`` writes them into params.yaml deliberately (or pass them as the
pipeline flow's ``set_params``) and the pipeline runs them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows import _dvc, _markdown
from flows._tasks import (
    DEFAULT_RETRY_DELAYS_S,
    GPU_LIMIT,
    WORKSPACE_LIMIT,
    dvc_with_retries,
    workspace_lock,
)

ARTIFACT_KEY = "s2ssl-sweep"
TUNE_STAGE = "tune"
BEST_PARAMS = Path("reports") / "tune" / "best_params.yaml"


@flow(name="sweep", description="dvc repro tune/dvc.yaml: the Optuna study, best_params.yaml")
def sweep(
    project_dir: str = ".",
    set_params: dict[str, Any] | None = None,
    experiment_name: str | None = None,
    retry_delays_s: list[float] = list(DEFAULT_RETRY_DELAYS_S),  # noqa: B006 (Prefect parameter)
    workspace_limit: str = WORKSPACE_LIMIT,
    gpu_limit: str = GPU_LIMIT,
    lock_timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run the ``tune`` stage (``dvc repro tune/dvc.yaml:tune``, or ``dvc exp run -S ...`` of
    it with ``set_params``, e.g. ``{"tune.n_trials": 50}``) and summarise its best parameters.

    Returns:
        ``{"stages": [...], "best_params": <best_params.yaml content or None>}``.
    """
    project = Path(project_dir).resolve()
    target = _dvc.find_stage(project, TUNE_STAGE)
    if target is None:
        raise _dvc.DvcPlanError(
            f"no {TUNE_STAGE!r} stage in {project}/dvc.yaml nor in */dvc.yaml: the sweep needs it"
        )
    args = (
        _dvc.exp_run_args([target], set_params, experiment_name)
        if set_params
        else _dvc.repro_args(target)
    )
    start = time.monotonic()
    calls: list[tuple[str, _dvc.DvcCall | None, str]] = []
    error: BaseException | None = None
    try:
        with workspace_lock(workspace_limit, lock_timeout_s, project):
            try:
                call = dvc_with_retries(retry_delays_s)(str(project), args, gpu_limit or None)
                calls.append((TUNE_STAGE, _dvc.own_outcomes(call, TUNE_STAGE), ""))
            except _dvc.DvcCommandError as e:
                calls.append((TUNE_STAGE, e.call, "transient" if e.transient else "permanent"))
                raise
    except BaseException as e:
        error = e
    best = _read_best(project / BEST_PARAMS)
    parts = [
        f"# s2ssl sweep: {'failed' if error is not None else 'completed'}",
        f"`{project}` · `dvc {' '.join(args)}` · {time.monotonic() - start:.1f} s",
        "## Stages",
        _markdown.render_outcomes(calls),
        f"## Best parameters (`{BEST_PARAMS.as_posix()}`)",
        _render_best(best),
    ]
    if error is not None:
        parts += ["## Error", f"```\n{str(error)[-4000:]}\n```"]
    create_markdown_artifact(
        "\n\n".join(parts) + "\n",
        key=ARTIFACT_KEY,
        description="s2ssl sweep" + (" (failed)" if error is not None else ""),
    )
    if error is not None:
        raise error
    return {
        "stages": [
            {"name": o.name, "status": o.status, "seconds": o.seconds}
            for _, c, _ in calls
            if c
            for o in c.outcomes
        ],
        "best_params": best,
    }


def _read_best(path: Path) -> dict[str, Any] | None:
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return value if isinstance(value, dict) else None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _render_best(best: dict[str, Any] | None) -> str:
    """The best trial: its facts (study, task, metric, score vs baseline) on one line, then the
    parameter values (the ``params`` mapping of ``s2ssl tune``'s file; any other YAML as a flat
    table)."""
    if best is None:
        return f"_No `{BEST_PARAMS.as_posix()}` (yet)._"
    params = best.get("params")
    if isinstance(params, dict):
        facts = {k: v for k, v in best.items() if k != "params" and not isinstance(v, dict | list)}
        head = [" · ".join(f"{k} `{_fmt(v)}`" for k, v in facts.items()), ""]
    else:
        params, head = best, []
    rows = [f"| `{k}` | `{_fmt(v)}` |" for k, v in _flatten(params).items()]
    return "\n".join(
        [
            *head,
            "| parameter | value |",
            "|---|---|",
            *rows,
            "",
            "Not applied automatically: `s2ssl tune apply --dry-run` shows what would change, "
            "`s2ssl tune apply` writes it into params.yaml; or try them as a DVC experiment "
            "through the pipeline flow's `set_params`.",
        ]
    )


if __name__ == "__main__":  # python -m flows.sweep [project_dir]
    import sys

    print(sweep(sys.argv[1] if len(sys.argv) > 1 else "."))
