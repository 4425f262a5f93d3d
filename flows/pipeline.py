"""The pipeline flow: every DVC stage in dvc.yaml order, then registration and promotion.

Each stage runs as ``dvc repro <stage>`` (a foreach group with all its items), so DVC skips what
is up to date; the flow reports which stages ran and which were unchanged, with durations, key
metrics and the promotion decision per task in a markdown artifact (key ``s2ssl-pipeline``).

``set_params`` maps onto DVC's own overrides: the selected stages then run as *one*
``dvc exp run -S key=value ... <stages>`` — a DVC experiment that writes the values into
params.yaml (validated by the stages like any params.yaml) and keeps its results in the
workspace, so hyperparameters never live in Prefect. Without overrides the flow is plain
``dvc repro``, stage by stage.

Retries: only transient failures (a stage command exiting 75 — network, rate limits —, a busy
DVC lock, a network error of ``dvc push``), with back-off; a failed validation or a code error
fails the run at once. ``push=True`` ends a successful run with ``dvc push`` (a DVC remote shared
by several workers).
Concurrency: the run holds the ``s2ssl-dvc-workspace`` slot; training stages also hold
``s2ssl-gpu`` (see :mod:`flows._tasks`).

Run it locally with ``python -m flows.pipeline`` (temporary Prefect server) or through the
deployments in prefect.yaml (``make serve``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows import _dvc, _markdown
from flows._tasks import (
    DEFAULT_RETRY_DELAYS_S,
    GPU_LIMIT,
    WORKSPACE_LIMIT,
    dvc_with_retries,
    needs_gpu,
    workspace_lock,
)

ARTIFACT_KEY = "s2ssl-pipeline"


@flow(name="pipeline", description="dvc repro every stage (skips unchanged), register, promote")
def pipeline(
    project_dir: str = ".",
    stages: list[str] | None = None,
    set_params: dict[str, Any] | None = None,
    experiment_name: str | None = None,
    push: bool = False,
    retry_delays_s: list[float] = list(DEFAULT_RETRY_DELAYS_S),  # noqa: B006 (Prefect parameter)
    workspace_limit: str = WORKSPACE_LIMIT,
    gpu_limit: str = GPU_LIMIT,
    lock_timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run the pipeline in the DVC project at ``project_dir``.

    Args:
        project_dir: The repository root (dvc.yaml, params.yaml).
        stages: Stages to run (dvc.yaml names, in dvc.yaml order); default: every stage of
            dvc.yaml except targeted-only ones (``tune``). ``register`` / ``promote`` run when
            dvc.yaml has them, and are reported as absent otherwise.
        set_params: ``{"dotted.key": "value"}`` overrides → one ``dvc exp run -S`` over the
            stages (values are YAML: ``"0.001"`` is a number, ``"[seco, dense]"`` a list).
        experiment_name: Name of that DVC experiment (``--name``; default: DVC picks one).
        push: ``dvc push`` the outputs to the DVC remote afterwards (workers sharing a remote).
        retry_delays_s: Back-off before each retry of a transiently failing stage; its length
            is the number of retries ([] for none).
        workspace_limit: Global concurrency limit guarding the DVC workspace ("" disables).
        gpu_limit: Global concurrency limit held by training stages ("" disables).
        lock_timeout_s: Give up after this long waiting for the workspace (None: wait).

    Returns:
        ``{"state", "mode", "stages": [{"step", "name", "status", "seconds", "attempts"}],
        "ran", "skipped", "missing", "artifact_key"}``.
    """
    logger = get_run_logger()
    project = Path(project_dir).resolve()
    plan = _dvc.check_stages(project, stages) if stages else _dvc.pipeline_stages(project)
    missing = [s for s in _dvc.REGISTRY_STAGES if s not in plan] if not stages else []
    if missing:
        logger.warning(
            "dvc.yaml has no %s stage: the run registers / promotes nothing", " / ".join(missing)
        )
    run_dvc = dvc_with_retries(retry_delays_s)
    mode = f"`dvc exp run -S` × {len(set_params)}" if set_params else "`dvc repro` per stage"
    calls: list[tuple[str, _dvc.DvcCall | None, str]] = []
    start = time.monotonic()
    error: BaseException | None = None
    try:
        with workspace_lock(workspace_limit, lock_timeout_s, project):
            if set_params:
                args = _dvc.exp_run_args(plan, set_params, experiment_name)
                gpu = gpu_limit if needs_gpu(plan) else None
                calls.append(("exp run", _step("exp run", run_dvc, project, args, gpu, calls), ""))
            else:
                for stage in plan:
                    gpu = gpu_limit if needs_gpu(stage) else None
                    call = _step(stage, run_dvc, project, _dvc.repro_args(stage), gpu, calls)
                    calls.append((stage, _dvc.own_outcomes(call, stage), ""))
            if push:
                calls.append(("push", _step("push", run_dvc, project, ["push"], None, calls), ""))
    except BaseException as e:
        error = e
    calls += [(s, None, "not in dvc.yaml") for s in missing]
    seconds = time.monotonic() - start
    state = "failed" if error is not None else "completed"
    markdown = _markdown.render_pipeline_report(
        project,
        calls,
        state=state,
        mode=mode,
        seconds=seconds,
        error=str(error) if error is not None else None,
    )
    create_markdown_artifact(markdown, key=ARTIFACT_KEY, description=f"s2ssl pipeline ({state})")
    if error is not None:
        raise error
    outcomes = [(step, c, o) for step, c, _ in calls if c for o in c.outcomes]
    return {
        "state": state,
        "mode": "exp run" if set_params else "repro",
        "stages": [
            {
                "step": step,
                "name": o.name,
                "status": o.status,
                "seconds": o.seconds,
                "attempts": c.attempts,
            }
            for step, c, o in outcomes
        ],
        "ran": [o.name for _, _, o in outcomes if o.status == "ran"],
        "skipped": [o.name for _, _, o in outcomes if o.status in ("skipped", "restored")],
        "missing": missing,
        "artifact_key": ARTIFACT_KEY,
    }


def _step(
    step: str,
    run_dvc: Any,
    project: Path,
    args: list[str],
    gpu_limit: str | None,
    calls: list[tuple[str, _dvc.DvcCall | None, str]],
) -> _dvc.DvcCall:
    """Run one dvc command as a task; a failure is recorded in ``calls`` before it propagates."""
    try:
        return run_dvc(str(project), args, gpu_limit)
    except _dvc.DvcCommandError as e:
        note = "transient, retries exhausted" if e.transient else "permanent: not retried"
        calls.append((step, e.call, note))
        raise


if __name__ == "__main__":  # python -m flows.pipeline [project_dir]
    import sys

    print(pipeline(sys.argv[1] if len(sys.argv) > 1 else "."))
