"""Prefect pieces the three flows share: the one task that runs DVC, its retry rule, and the
concurrency limits that keep two runs out of one DVC workspace and off one GPU.

Concurrency: Prefect *global concurrency limits* (server-side slots with leases, so a crashed
run frees its slot when the lease expires). :func:`workspace_lock` holds the
``s2ssl-dvc-workspace`` slot around every ``dvc`` command of a flow run; the task holds
``s2ssl-gpu`` around training stages (:data:`flows._dvc.GPU_STAGES`). A limit that does not
exist yet is created with one slot (``prefect gcl create`` / the UI can raise it, e.g. to the
number of GPUs; an existing limit is never changed), and slots are then taken with
``strict=True``: without a limit Prefect would otherwise run unguarded and only warn.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.concurrency.sync import concurrency
from prefect.runtime import task_run as current_task_run
from prefect.states import State

from flows import _dvc

WORKSPACE_LIMIT: Final[str] = "s2ssl-dvc-workspace"
"""Global concurrency limit held while a flow runs dvc in the workspace (one slot)."""

GPU_LIMIT: Final[str] = "s2ssl-gpu"
"""Global concurrency limit held by training stages (slots = GPUs the machine can share)."""

DEFAULT_RETRY_DELAYS_S: Final[tuple[float, ...]] = (60.0, 300.0, 900.0)
"""Back-off between attempts of a transiently failing dvc command (1, 5, 15 minutes; jittered)."""


def ensure_limit(name: str, slots: int = 1) -> bool:
    """Create global concurrency limit ``name`` with ``slots`` if it does not exist yet.

    Returns True when it was created. An existing limit is left as it is (an operator may have
    set more slots). Two runs creating it at once is fine: the loser sees a conflict and uses
    the winner's limit.
    """
    import httpx
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return False
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=slots)
            )
        except httpx.HTTPStatusError as e:
            if e.response.status_code != 409:
                raise
            return False
    return True


@contextmanager
def held(limit: str | None, timeout_s: float | None = None, *, what: str = "") -> Iterator[None]:
    """Hold one slot of global concurrency limit ``limit`` (created if missing); no-op when
    ``limit`` is None or empty. Raises :class:`TimeoutError` naming the limit after
    ``timeout_s`` seconds without a free slot (None: wait as long as it takes)."""
    if not limit:
        yield
        return
    ensure_limit(limit)
    try:
        with concurrency(limit, occupy=1, timeout_seconds=timeout_s, strict=True):
            yield
    except TimeoutError:
        raise TimeoutError(
            f"{what or 'this run'}: no free slot of concurrency limit {limit!r} after "
            f"{timeout_s} s (another run holds it; see `prefect gcl inspect {limit}`)"
        ) from None


@contextmanager
def workspace_lock(limit: str | None, timeout_s: float | None, project: Path) -> Iterator[None]:
    """Hold the DVC workspace slot: no other flow run uses dvc in the workspace meanwhile."""
    with held(limit, timeout_s, what=f"dvc workspace {project}"):
        yield


def retry_if_transient(task: Any, task_run: TaskRun, state: State) -> bool:
    """``retry_condition_fn``: retry only a :class:`flows._dvc.DvcCommandError` that is
    transient (stage exit code 75, DVC lock busy, a network error of ``dvc push``). Validation
    failures, code errors and anything unexpected end the task at once."""
    try:
        state.result()
    except _dvc.DvcCommandError as e:
        return e.transient
    except BaseException:
        return False
    return False


@task(
    name="dvc",
    task_run_name="dvc {args}",
    retries=len(DEFAULT_RETRY_DELAYS_S),
    retry_delay_seconds=list(DEFAULT_RETRY_DELAYS_S),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def dvc(project_dir: str, args: list[str], gpu_limit: str | None = None) -> _dvc.DvcCall:
    """Run ``dvc <args>`` in ``project_dir`` (holding the GPU slot when ``gpu_limit`` is set);
    raise :class:`flows._dvc.DvcCommandError` when it fails."""
    logger = get_run_logger()
    with held(gpu_limit, what=" ".join(args)):
        call = _dvc.RUNNER(args, Path(project_dir))
    call.attempts = int(current_task_run.run_count or 1)
    for o in call.outcomes:
        logger.info("%s: %s (%.1f s)", o.name, o.status, o.seconds)
    if call.returncode != 0:
        logger.warning("`%s` failed:\n%s", call.command, call.tail())
    return _dvc.raise_for_failure(call)


def dvc_with_retries(delays_s: Sequence[float]) -> Any:
    """The :func:`dvc` task with its back-off replaced (one retry per delay; [] for none)."""
    delays = [float(d) for d in delays_s]
    return dvc.with_options(retries=len(delays), retry_delay_seconds=delays or 0)


def needs_gpu(stage_or_args: str | Sequence[str]) -> bool:
    """Whether a stage (or any target of a dvc command) trains."""
    names = [stage_or_args] if isinstance(stage_or_args, str) else list(stage_or_args)
    return any(_dvc.stage_group(n) in _dvc.GPU_STAGES for n in names)
