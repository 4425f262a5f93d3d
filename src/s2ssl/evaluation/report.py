"""The ``evaluate`` stage: what each pre-training method buys over random initialisation, and how
sure we are.

Reads the per-run results of the ``finetune`` stage (one run per replicate, each with its
per-test-sample confusion matrices), then writes to ``reports/evaluate/``:

* ``report.md`` — first the pre-registered rules (:data:`s2ssl.evaluation.claims.RULES`), then
  the verdict of every claim with its contrasts, intervals and minimum detectable effects, the
  A/A control, and per task a forest plot of every paired gain, a table of scores and gains with
  intervals, per-class gains and the usual figures;
* ``metrics.json``, ``verdicts.json`` and ``plots/<task>.csv`` (:mod:`s2ssl.evaluation.summary`);
* ``figures/`` (:mod:`s2ssl.evaluation.figures`).

Nothing here is tuned or edited by hand: every number comes from the run files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from s2ssl.config import Params
from s2ssl.evaluation import claims as claim_tests
from s2ssl.evaluation.claims import ClaimResult, Contrast
from s2ssl.evaluation.comparisons import BASELINE, Gain, class_gains, gains
from s2ssl.evaluation.figures import (
    class_gains_png,
    confusion_png,
    curves_png,
    forest_png,
    strip_png,
)
from s2ssl.evaluation.records import (
    Arm,
    ArmResults,
    collect_runs,
    load_arms,
    majority_baselines,
    mean_scores,
    record_classes,
)
from s2ssl.evaluation.summary import (
    PLOT_FIELDS,
    flat_metrics,
    plot_rows,
    verdicts_json,
    write_csv,
)
from s2ssl.io import atomic_path, write_json_atomic
from s2ssl.taskspec import TaskKind, task_spec

__all__ = ["EvaluationResult", "write_evaluation"]

TASK_TITLES: Final[dict[str, str]] = {
    "landcover": "Land-cover segmentation (ResNet U-Net)",
    "croptype": "Crop-type segmentation from time series (3-D U-Net, CSCL stage 2)",
    "scene": "Scene classification (EuroSAT-like tiles)",
    "multilabel": "Multi-label scene classification (BigEarthNet-style)",
}


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`write_evaluation` wrote."""

    tasks: list[str]
    n_runs: int
    metrics: Path
    report: Path
    figures: list[Path]
    claims: list[ClaimResult]


def _pts(x: float, sign: bool = True) -> str:
    if not math.isfinite(x):
        return "∞" if x > 0 else "−∞" if x < 0 else "–"
    return f"{x * 100:+.1f}" if sign else f"{x * 100:.1f}"


def _interval(lo: float, hi: float) -> str:
    return f"[{_pts(lo)}, {_pts(hi)}]"


def _contrast_row(claim: str, c: Contrast) -> str:
    mde = "∞" if not math.isfinite(c.mde) else f"{c.mde * 100:.1f}"
    reps = ", ".join(_pts(v) for v in c.estimate.per_replicate)
    return (
        f"| {claim} | {c.label} | {_pts(c.estimate.value)} | {_interval(c.lo, c.hi)} "
        f"({c.confidence:.1%}) | {reps} | {mde} | **{c.verdict}** |"
    )


def _verdict_section(results: Sequence[ClaimResult], replicates: int) -> list[str]:
    out = [
        "## Verdicts",
        "",
        "| claim | contrast | mean (points) | interval (level) | per replicate | MDE | verdict |",
        "|---|---|---:|---|---|---:|---|",
    ]
    for claim in results:
        for c in claim.contrasts:
            out.append(_contrast_row(claim.name, c))
    out += ["", "| claim | verdict | |", "|---|---|---|"]
    for claim in results:
        out.append(f"| {claim.name} | **{claim.verdict or 'not evaluated'}** | {claim.note} |")
    out += [
        "",
        f"Points = metric × 100. MDE: the smallest true effect this design (R = {replicates}) "
        "would detect with the configured power at the interval's level; an inconclusive "
        "verdict with a large MDE says the experiment was too small, not that there is no effect.",
        "",
    ]
    return out


def _rules_section(params: Params) -> list[str]:
    ev = params.evaluate
    source, benchmark = params.fetch.source, params.fetch.benchmark
    data = (
        f"the data are the world of `seed` = {params.seed}"
        if source == "synthetic"
        else f"the data are {benchmark.format} imported from `{benchmark.path}`"
        if source == "benchmark" and benchmark is not None
        else f"the data come from the {source} source"
    )
    out = [
        "## Rules (fixed before any number below was computed)",
        "",
        f"Every setting is run **R = {ev.replicates}** times (replicate seeds from "
        f"`evaluate.replicate_seed` = {ev.replicate_seed}; {data}). "
        "Replicate r fixes the pre-training seed of every method, the label "
        "subset and the fine-tuning seed, shared by every init, so `init − random` is a paired "
        "difference. Pre-training never sees a label its downstream run may not use: CSCL stage "
        "1 trains on the run's own label subset, self-supervised encoders are the last epoch "
        "(the kNN probe is only a monitor).",
        "",
        f"Intervals ({ev.confidence:.0%}): two-level bootstrap ({ev.bootstrap_samples} draws) — "
        "test samples resampled with replacement, one draw shared by every replicate and arm "
        "(all are scored on the same test images), then the replicate mean with a Student-t "
        "term (R − 1 degrees of freedom; a percentile bootstrap over three replicates would "
        "call an effect 25 % of the time when there is none). A contrast **holds** when its "
        "whole interval is above 0, is **refuted** when it is below 0, else it is "
        "**inconclusive**.",
        "",
    ]
    out += [f"- **{name}** — {rule}" for name, rule in claim_tests.RULES.items()]
    return [*out, ""]


def _task_table(task: str, arms: Mapping[Arm, ArmResults], task_gains: Sequence[Gain]) -> list[str]:
    spec = task_spec(task)
    metric = spec.headline
    by_arm = {g.arm: g for g in task_gains if g.part == "all"}
    out = [
        f"| setting | protocol | init | fraction | {spec.headline_label} (mean ± sd) | "
        "gain [interval] |",
        "|---|---|---|---:|---:|---|",
    ]
    for arm, results in sorted(arms.items()):
        mean, sd = mean_scores(results, metric)
        spread = f" ± {sd * 100:.1f}" if math.isfinite(sd) else ""
        g = by_arm.get(arm)
        gain = f"{_pts(g.estimate.value)} {_interval(g.estimate.lo, g.estimate.hi)}" if g else "–"
        out.append(
            f"| {arm.setting} | {arm.protocol} | {arm.init} | {arm.fraction * 100:.6g} % | "
            f"{_pts(mean, sign=False)}{spread} | {gain} |"
        )
    n_train = sorted(
        {(a.setting, a.fraction, int(r.records[0]["n_train"])) for a, r in arms.items()}
    )
    out += [
        "",
        "Training samples: " + ", ".join(f"{s} {f * 100:.6g} %: {n}" for s, f, n in n_train) + ".",
    ]
    published = _published_inits(arms)
    if published:
        out += ["", "Published encoders (compared with random init like ours): " + published + "."]
    return out


def _published_inits(arms: Mapping[Arm, ArmResults]) -> str:
    """``name (source, layout, sha256 prefix)`` of every published init among ``arms``."""
    seen: dict[str, str] = {}
    for arm, results in sorted(arms.items()):
        record = results.records[0]
        if not record.get("published") or arm.init in seen:
            continue
        report = record.get("load_report") or {}
        layout = report.get("layout", "?")
        sha = str(record.get("encoder_sha256") or "")[:12]
        adapted = "; first convolution adapted" if report.get("adapted") else ""
        seen[arm.init] = f"`{arm.init}` ({record.get('encoder')}, {layout}, sha256 {sha}{adapted})"
    return ", ".join(seen.values())


def _class_rows(task: str, arms: Mapping[Arm, ArmResults]) -> list[tuple[str, object]]:
    rows = []
    for arm, results in sorted(arms.items()):
        control = arms.get(arm.with_init(BASELINE))
        if arm.init == BASELINE or control is None or arm.setting != "in_domain":
            continue
        label = f"{arm.init} · {arm.protocol} · {arm.fraction * 100:.6g} %"
        rows.append((label, class_gains(task, results, control)))
    return rows


def report_markdown(
    params: Params,
    arms_by_task: Mapping[str, Mapping[Arm, ArmResults]],
    gains_by_task: Mapping[str, Sequence[Gain]],
    results: Sequence[ClaimResult],
    figures: Mapping[str, Sequence[Path]],
) -> str:
    """``report.md`` (see the module docstring)."""
    out = [
        "# s2ssl evaluation report",
        "",
        "What pre-training buys over random initialisation on this data, and how sure we are.",
        "",
        *_rules_section(params),
        *_verdict_section(results, params.evaluate.replicates),
    ]
    aa = next((c for c in results if c.name == "A/A control"), None)
    if aa is not None:
        out += [f"**A/A control (the protocol's false-positive check):** {aa.note}.", ""]
    out += [
        f"Region transfer: `{params.holdout_region}` is never seen in pre-training nor in the "
        "in-domain fine-tuning; *transfer* rows fine-tune and test there."
        if params.holdout_region
        else "No region-transfer evaluation (params.holdout_region is null).",
        "",
    ]
    for task, arms in arms_by_task.items():
        out += [f"## {TASK_TITLES.get(task, task)}", ""]
        for path in figures.get(task, ()):
            out.append(f"![{task} {path.stem}](figures/{path.name})")
        out += ["", *_task_table(task, arms, gains_by_task.get(task, ())), ""]
        parts = [g for g in gains_by_task.get(task, ()) if g.part != "all"]
        if parts:
            out += ["Boundary / interior pixels (CSCL's evaluation), gain [interval]:", ""]
            out += [
                f"- {g.arm.init} {g.arm.setting} {g.arm.fraction * 100:.6g} % {g.part}: "
                f"{_pts(g.estimate.value)} {_interval(g.estimate.lo, g.estimate.hi)}"
                for g in parts
            ]
            out.append("")
        if task_spec(task).kind is TaskKind.SCENE and arms:
            base = majority_baselines(next(iter(arms.values())).records[0])
            out += [
                f"Majority-class baseline: {base['top1'] * 100:.1f} % top-1, "
                f"{base['balanced_accuracy'] * 100:.1f} % balanced accuracy.",
                "",
            ]
        walls = sum(float(r["wall_s"]) for a in arms.values() for r in a.records)
        n = sum(len(a.records) for a in arms.values())
        out += [
            f"{n} runs, {walls:.0f} s of training and scoring. Every run's numbers: "
            f"`plots/{task}.csv` (`dvc plots show`).",
            "",
        ]
    return "\n".join(out)


def write_evaluation(
    params: Params, runs_dir: str | Path, data_dir: str | Path, out_dir: str | Path
) -> EvaluationResult:
    """Write ``report.md``, ``metrics.json``, ``verdicts.json``, ``plots/`` and ``figures/``."""
    runs_dir, data_dir, out = Path(runs_dir), Path(data_dir), Path(out_dir)
    tasks = list(params.finetune.tasks)
    cfg = params.evaluate
    runs = collect_runs(runs_dir, tasks)
    arms_by_task = {task: load_arms(runs_dir, task, records) for task, records in runs.items()}
    gains_by_task = {task: gains(task, arms, cfg) for task, arms in arms_by_task.items()}
    results: list[ClaimResult] = []
    if "landcover" in arms_by_task:
        results.append(claim_tests.embedding_earth(arms_by_task["landcover"], cfg))
    if "croptype" in arms_by_task:
        results.append(claim_tests.cscl(arms_by_task["croptype"], cfg))
    results.append(claim_tests.seco(arms_by_task, cfg))
    results.append(claim_tests.aa_control(arms_by_task, cfg))

    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, list[Path]] = {}
    for task, records in runs.items():
        arms = arms_by_task[task]
        write_csv(out / "plots" / f"{task}.csv", plot_rows(task, arms), PLOT_FIELDS)
        drawn = [
            forest_png(task, gains_by_task[task], fig_dir / f"{task}_gains.png"),
            class_gains_png(
                task,
                _class_rows(task, arms),
                record_classes(records).names,
                fig_dir / f"{task}_class_gains.png",
            ),
            curves_png(task, records, fig_dir / f"{task}_fractions.png"),
            confusion_png(task, records, fig_dir / f"{task}_confusion.png"),
            strip_png(
                task,
                records,
                runs_dir,
                data_dir,
                params.holdout_region,
                cfg.strip_samples,
                fig_dir / f"{task}_strip.png",
                scene_tile=params.finetune.scene.tile_size
                if task_spec(task).is_scene_level
                else None,
            ),
        ]
        figures[task] = [p for p in drawn if p is not None]
    metrics_path = out / "metrics.json"
    write_json_atomic(
        metrics_path, flat_metrics(arms_by_task, gains_by_task, results, cfg.replicates)
    )
    write_json_atomic(out / "verdicts.json", verdicts_json(results))
    report = out / "report.md"
    text = report_markdown(params, arms_by_task, gains_by_task, results, figures)
    with atomic_path(report) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return EvaluationResult(
        tasks,
        sum(map(len, runs.values())),
        metrics_path,
        report,
        [p for paths in figures.values() for p in paths],
        results,
    )
