"""flows._markdown: key metrics of metrics.json, the pipeline report with stages, metrics and
promotion decisions."""

from __future__ import annotations

from pathlib import Path

from flowkit import dvc_lines, write_reports

from flows import _dvc, _markdown
from flows._dvc import DvcCall
from testkit import REPO_ROOT


def test_key_metrics_keep_the_headline_at_the_largest_fraction() -> None:
    from flowkit import METRICS

    rows = _markdown.key_metrics(METRICS)
    assert [(r.task, r.init, r.labels_pct, r.value, r.gain) for r in rows] == [
        ("landcover", "random", 100, 0.70, None),
        ("landcover", "dense", 100, 0.74, 0.04),
        ("scene", "seco", 100, 0.81, -0.02),
    ]
    repo_metrics = _markdown.read_json(REPO_ROOT / "reports" / "evaluate" / "metrics.json")
    if repo_metrics is not None:  # the committed default run: every task has headlines
        # scene results scored before balanced accuracy was recorded have none (top-1 only)
        scene = any(k.endswith(".balanced_accuracy") for k in repo_metrics)
        assert {r.task for r in _markdown.key_metrics(repo_metrics)} == {
            "landcover",
            "croptype",
            *(["scene"] if scene else []),
        }


def test_pipeline_report_has_stages_metrics_and_decisions(tmp_path: Path) -> None:
    write_reports(tmp_path)
    code, lines = dvc_lines("fetch", "skipped")
    fetch = DvcCall(["repro", "fetch"], code, 0.4, lines, _dvc.parse_outcomes(lines, 0.4))
    code, lines = dvc_lines("pretrain@seco", "ran")
    pre = DvcCall(["repro", "pretrain"], code, 1.6, lines, _dvc.parse_outcomes(lines, 1.6), 2)
    md = _markdown.render_pipeline_report(
        tmp_path,
        [("fetch", fetch, ""), ("pretrain", pre, ""), ("register", None, "not in dvc.yaml")],
        state="completed",
        mode="`dvc repro` per stage",
        seconds=2.0,
    )
    assert "# s2ssl pipeline: completed" in md
    assert "1 stage(s) ran, 1 unchanged (skipped)" in md
    assert "| fetch | `fetch` | skipped | – | 1 |  |" in md
    assert "| pretrain | `pretrain@seco` | ran | 1.5 | 2 |  |" in md
    assert "| register | – | not run | – | – | not in dvc.yaml |" in md
    assert "| landcover | dense | finetune | 100 % | miou | 0.740 | +0.040 |" in md
    promoted = "| landcover | s2ssl-landcover | v3 | v2 | v3 | **promoted** |"
    assert f"{promoted} miou 0.334 >= 0.301 + 0.005 |" in md
    assert "| croptype | s2ssl-croptype | v1 | – | – | kept champion | candidate \\| below" in md
    assert "_`evaluate` did not run in this run: earlier results._" in md
    assert "_`promote` did not run in this run: earlier results._" in md


def test_report_says_so_when_there_are_no_metrics_or_decisions(tmp_path: Path) -> None:
    md = _markdown.render_pipeline_report(
        tmp_path, [], state="failed", mode="m", seconds=0, error="x"
    )
    assert "No `reports/evaluate/metrics.json` yet" in md
    assert "nothing was promoted" in md
    assert "## Error" in md
