"""The markdown of the flows' Prefect artifacts — plain Python, no Prefect, no torch: the stages
table of the dvc commands a flow ran, key metrics from ``reports/evaluate/metrics.json`` and
promotion decisions from ``reports/promote/decisions.json``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows._dvc import DvcCall


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when the file is missing or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


_HEADLINE = re.compile(
    r"^(?P<task>[^.]+)\.in_domain\.(?P<init>[^.]+)\.(?P<protocol>[^.]+)\.f(?P<pct>\d+)"
    r"\.(?P<metric>miou|balanced_accuracy)$"
)


@dataclass(frozen=True)
class MetricRow:
    task: str
    init: str
    protocol: str
    labels_pct: int
    metric: str
    value: float
    gain: float | None


def key_metrics(metrics: Mapping[str, Any]) -> list[MetricRow]:
    """The headline of each task: in-domain mIoU (segmentation) or balanced accuracy (scenes) of
    every init and protocol at the task's largest label fraction, with the gain over random
    init."""
    rows: list[MetricRow] = []
    for key, value in metrics.items():
        m = _HEADLINE.match(key)
        if m and isinstance(value, int | float):
            gain = metrics.get(f"{key}.gain")
            rows.append(
                MetricRow(
                    m["task"],
                    m["init"],
                    m["protocol"],
                    int(m["pct"]),
                    m["metric"],
                    float(value),
                    float(gain) if isinstance(gain, int | float) else None,
                )
            )
    largest = {}
    for r in rows:
        largest[r.task] = max(largest.get(r.task, 0), r.labels_pct)
    keep = [r for r in rows if r.labels_pct == largest[r.task]]
    return sorted(keep, key=lambda r: (r.task, r.init != "random", r.init, r.protocol))


def _cell(value: Any) -> str:
    text = "–" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_outcomes(calls: Sequence[tuple[str, DvcCall | None, str]]) -> str:
    """The stages table: one row per DVC stage, grouped by the flow step that ran it.

    ``calls``: (flow step, its dvc call or None when it did not run, a note)."""
    rows: list[list[Any]] = []
    for step, call, note in calls:
        if call is None:
            rows.append([step, "–", "not run", "–", "–", note])
            continue
        if not call.outcomes:
            rows.append([step, "–", "done", f"{call.seconds:.1f}", call.attempts, note])
        for o in call.outcomes:
            seconds = f"{o.seconds:.1f}" if o.status in ("ran", "failed") else "–"
            rows.append([step, f"`{o.name}`", o.status, seconds, call.attempts, note])
    return _table(["step", "DVC stage", "status", "seconds", "attempts", "note"], rows)


def render_metrics(project: Path) -> str:
    """Key metrics from ``reports/evaluate/metrics.json`` (a line saying so when absent)."""
    path = project / "reports" / "evaluate" / "metrics.json"
    metrics = read_json(path)
    if metrics is None:
        return "_No `reports/evaluate/metrics.json` yet._"
    rows = key_metrics(metrics)
    if not rows:
        return "_`reports/evaluate/metrics.json` has no in-domain headline metrics._"
    return _table(
        ["task", "init", "protocol", "labels", "metric", "test", "vs random init"],
        [
            [
                r.task,
                r.init,
                r.protocol,
                f"{r.labels_pct} %",
                r.metric,
                f"{r.value:.3f}",
                f"{r.gain:+.3f}" if r.gain is not None else "–",
            ]
            for r in rows
        ],
    )


_VERSIONS = ("candidate_version", "previous_champion_version", "champion_version")


def render_decisions(project: Path) -> str:
    """Promotion decision and reason per task from ``reports/promote/decisions.json``."""
    path = project / "reports" / "promote" / "decisions.json"
    decisions = read_json(path)
    tasks = (decisions or {}).get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        return "_No `reports/promote/decisions.json`: nothing was promoted._"
    rows = []
    for task, d in sorted(tasks.items()):
        d = d if isinstance(d, dict) else {}
        version = {k: f"v{d[k]}" if d.get(k) is not None else None for k in _VERSIONS}
        rows.append(
            [
                task,
                d.get("model"),
                version["candidate_version"],
                version["previous_champion_version"],
                version["champion_version"],
                "**promoted**" if d.get("promoted") else "kept champion",
                d.get("reason"),
            ]
        )
    return _table(
        ["task", "model", "candidate", "champion before", "champion now", "decision", "reason"],
        rows,
    )


def render_pipeline_report(
    project: Path,
    calls: Sequence[tuple[str, DvcCall | None, str]],
    *,
    state: str,
    mode: str,
    seconds: float,
    error: str | None = None,
) -> str:
    """The pipeline flow's markdown artifact."""
    ran = [o.name for _, c, _ in calls if c for o in c.outcomes if o.status == "ran"]
    skipped = [o.name for _, c, _ in calls if c for o in c.outcomes if o.status == "skipped"]
    parts = [
        f"# s2ssl pipeline: {state}",
        f"`{project}` · {mode} · {seconds:.1f} s · {len(ran)} stage(s) ran, "
        f"{len(skipped)} unchanged (skipped)",
        "## Stages",
        render_outcomes(calls),
    ]
    if error:
        parts += ["## Error", f"```\n{error.strip()[-4000:]}\n```"]
    groups = {o.group for _, c, _ in calls if c for o in c.outcomes if o.status == "ran"}

    def earlier(stage: str) -> list[str]:
        return [] if stage in groups else [f"_`{stage}` did not run in this run: earlier results._"]

    parts += [
        "## Key metrics (`reports/evaluate/metrics.json`)",
        *earlier("evaluate"),
        render_metrics(project),
        "## Promotion (`reports/promote/decisions.json`)",
        *earlier("promote"),
        render_decisions(project),
    ]
    return "\n\n".join(parts) + "\n"
