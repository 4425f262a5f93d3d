"""prefect.yaml is the one source of the schedules: flows/serve.py reads it, the deployments it
builds carry the crons, and the server turns them into scheduled runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from flows import serve
from testkit import REPO_ROOT


def test_prefect_yaml_declares_the_three_deployments_with_cron_schedules() -> None:
    specs = {f"{s.flow_name}/{s.name}": s for s in serve.read_deployments()}
    assert set(specs) == {"pipeline/nightly", "ingest/daily", "sweep/weekly"}
    nightly, daily, weekly = specs["pipeline/nightly"], specs["ingest/daily"], specs["sweep/weekly"]
    assert [(c.cron, c.timezone, c.active) for c in nightly.schedules] == [
        ("0 2 * * *", "UTC", True)
    ]
    assert daily.schedules[0].cron == "0 6 * * *" and daily.parameters == {"force_fetch": True}
    assert weekly.schedules[0].active is False  # the sweep is manual until activated
    for spec in specs.values():
        file, name = spec.entrypoint.split(":")
        assert (REPO_ROOT / file).is_file()
        assert serve.load_flow(spec.entrypoint).name == name  # flow name = deployment prefix


def test_read_deployments_rejects_what_it_cannot_serve(tmp_path: Path) -> None:
    bad = tmp_path / "prefect.yaml"
    bad.write_text("deployments:\n  - name: x\n    entrypoint: flows/pipeline.py:pipeline\n"
                   "    schedules: [{interval: 60}]\n")  # fmt: skip
    with pytest.raises(ValueError, match="only cron schedules"):
        serve.read_deployments(bad)
    bad.write_text("deployments: []\n")
    with pytest.raises(ValueError, match="defines no deployments"):
        serve.read_deployments(bad)


@pytest.mark.usefixtures("prefect_server")
def test_served_deployments_get_scheduled_runs_at_their_cron_times() -> None:
    """Guards the SQLAlchemy < 2.1 pin: with 2.1 the server's scheduler inserts no runs."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    specs = {s.name: s for s in serve.read_deployments()}
    ids = {name: serve.to_deployment(spec).apply() for name, spec in specs.items()}
    with get_client(sync_client=True) as client:
        for deployment_id in ids.values():
            client.request(
                "POST",
                "/deployments/{id}/schedule",
                path_params={"id": deployment_id},
                json={"max_runs": 2},
            ).raise_for_status()
        deployment = client.read_deployment(ids["nightly"])
        assert [s.schedule.cron for s in deployment.schedules] == ["0 2 * * *"]
        assert deployment.global_concurrency_limit is not None
        assert deployment.global_concurrency_limit.limit == 1  # one run of it at a time
        runs = {
            name: client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            for name, deployment_id in ids.items()
        }
    nightly = sorted(r.expected_start_time for r in runs["nightly"])
    assert len(nightly) == 2 and all(r.state_type.value == "SCHEDULED" for r in runs["nightly"])
    assert all(t.astimezone(dt.UTC).hour == 2 and t.minute == 0 for t in nightly)
    assert nightly[1] - nightly[0] == dt.timedelta(days=1)
    assert {t.astimezone(dt.UTC).hour for t in (r.expected_start_time for r in runs["daily"])} == {
        6
    }
    assert runs["weekly"] == []  # paused schedule: nothing scheduled
