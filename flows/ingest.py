"""The ingest flow: fetch and validate imagery for the configured area, then run the pipeline
only when the validated data changed.

``dvc repro --force --single-item fetch`` re-runs the fetch command even though its params did
not change (new acquisitions may exist; the Sentinel Hub source caches what it already has, so
only new scenes download), then ``dvc repro validate``. The validated datasets' hashes in
dvc.lock before and after decide: same data → nothing else runs (DVC skipped validate); new data
→ the pipeline flow runs as a sub-flow (after this flow released the workspace). Transient
fetch failures (exit 75) are retried with back-off; a failed validation is not.

A markdown artifact (key ``s2ssl-ingest``) records what ran and whether the data changed.
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
    workspace_lock,
)
from flows.pipeline import pipeline

ARTIFACT_KEY = "s2ssl-ingest"


@flow(name="ingest", description="fetch + validate; run the pipeline when the data changed")
def ingest(
    project_dir: str = ".",
    force_fetch: bool = True,
    trigger_pipeline: bool = True,
    retry_delays_s: list[float] = list(DEFAULT_RETRY_DELAYS_S),  # noqa: B006 (Prefect parameter)
    workspace_limit: str = WORKSPACE_LIMIT,
    gpu_limit: str = GPU_LIMIT,
    lock_timeout_s: float | None = None,
) -> dict[str, Any]:
    """Fetch and validate; trigger :func:`flows.pipeline.pipeline` when the data changed.

    Args:
        project_dir: The repository root (dvc.yaml, params.yaml).
        force_fetch: Re-run fetch even when DVC finds it up to date (look for new imagery);
            False: only when its params or code changed.
        trigger_pipeline: Run the pipeline flow when the validated data changed.
        retry_delays_s, workspace_limit, gpu_limit, lock_timeout_s: as for the pipeline flow.

    Returns:
        ``{"changed", "before", "after", "stages", "pipeline"}`` (``pipeline``: the pipeline
        flow's result when it ran, else None).
    """
    logger = get_run_logger()
    project = Path(project_dir).resolve()
    for stage in ("fetch", "validate"):
        if not _dvc.has_stage(project, stage):
            raise _dvc.DvcPlanError(f"dvc.yaml in {project} has no {stage!r} stage")
    run_dvc = dvc_with_retries(retry_delays_s)
    fetch_args = _dvc.repro_args("fetch", force=force_fetch)
    before = _dvc.stage_out_hashes(project, "validate")
    calls: list[tuple[str, _dvc.DvcCall | None, str]] = []
    start = time.monotonic()
    error: BaseException | None = None
    try:
        with workspace_lock(workspace_limit, lock_timeout_s, project):
            for step, args in (("fetch", fetch_args), ("validate", _dvc.repro_args("validate"))):
                try:
                    calls.append((step, _dvc.own_outcomes(run_dvc(str(project), args), step), ""))
                except _dvc.DvcCommandError as e:
                    calls.append((step, e.call, "transient" if e.transient else "permanent"))
                    raise
    except BaseException as e:
        error = e
    after = _dvc.stage_out_hashes(project, "validate")
    changed = error is None and before != after
    will_trigger = changed and trigger_pipeline
    if error is not None:
        verdict = "failed"
    elif not changed:
        verdict = "data unchanged, pipeline not triggered"
    elif will_trigger:
        verdict = "data changed, pipeline triggered"
    else:
        verdict = "data changed (trigger_pipeline is off)"
    markdown = "\n\n".join(
        [
            f"# s2ssl ingest: {verdict}",
            f"`{project}` · {time.monotonic() - start:.1f} s · fetch "
            f"{'forced' if force_fetch else 'only if changed'}",
            "## Stages",
            _markdown.render_outcomes(calls),
            "## Validated data (dvc.lock)",
            _hash_table(before, after),
            *(["## Error", f"```\n{str(error)[-4000:]}\n```"] if error is not None else []),
        ]
    )
    create_markdown_artifact(markdown + "\n", key=ARTIFACT_KEY, description=f"ingest: {verdict}")
    if error is not None:
        raise error
    result: dict[str, Any] = {
        "changed": changed,
        "before": before,
        "after": after,
        "stages": [
            {"step": step, "name": o.name, "status": o.status, "seconds": o.seconds}
            for step, c, _ in calls
            if c
            for o in c.outcomes
        ],
        "pipeline": None,
    }
    if will_trigger:
        logger.info("validated data changed: running the pipeline")
        result["pipeline"] = pipeline(
            project_dir=str(project),
            retry_delays_s=retry_delays_s,
            workspace_limit=workspace_limit,
            gpu_limit=gpu_limit,
            lock_timeout_s=lock_timeout_s,
        )
    else:
        logger.info("validated data unchanged: the pipeline is not triggered")
    return result


def _hash_table(before: dict[str, str], after: dict[str, str]) -> str:
    if not before and not after:
        return "_validate has not produced data yet._"
    rows = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path, ""), after.get(path, "")
        rows.append(
            f"| `{path}` | {old[:12] or '–'} | {new[:12] or '–'} | "
            f"{'changed' if old != new else 'same'} |"
        )
    return "\n".join(["| output | before | after | |", "|---|---|---|---|", *rows])


if __name__ == "__main__":  # python -m flows.ingest [project_dir]
    import sys

    print(ingest(sys.argv[1] if len(sys.argv) > 1 else "."))
