"""Serve the deployments of prefect.yaml locally, with their schedules (``make serve``).

prefect.yaml is the one source of truth: this reads its ``deployments`` (name, entrypoint,
description, tags, parameters, schedules, concurrency_limit) and serves them from this process
(``prefect.serve``: no work pool; runs execute as subprocesses in this directory). With
``--start-server`` it first starts ``prefect server start --host 127.0.0.1`` (or reuses one
already answering there) and points ``PREFECT_API_URL`` at it; the UI is then at
http://127.0.0.1:4200.

    python -m flows.serve --start-server          # what `make serve` runs
    python -m flows.serve --list                  # the deployments and schedules it would serve
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ScheduleSpec:
    cron: str
    timezone: str | None = None
    active: bool = True


@dataclass(frozen=True)
class DeploymentSpec:
    """One entry of prefect.yaml's ``deployments``."""

    name: str
    entrypoint: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[ScheduleSpec] = field(default_factory=list)
    concurrency_limit: int | None = None

    @property
    def flow_name(self) -> str:
        return self.entrypoint.rsplit(":", 1)[1]


def read_deployments(path: Path = PROJECT_ROOT / "prefect.yaml") -> list[DeploymentSpec]:
    """The deployments of a prefect.yaml (cron schedules only: the ones this project uses)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs = []
    for d in raw.get("deployments") or []:
        if ":" not in str(d.get("entrypoint", "")):
            raise ValueError(f"{path}: deployment {d.get('name')!r} needs entrypoint FILE:FLOW")
        schedules = []
        for s in d.get("schedules") or []:
            if "cron" not in s:
                raise ValueError(f"{path}: deployment {d['name']!r}: only cron schedules here")
            schedules.append(ScheduleSpec(str(s["cron"]), s.get("timezone"), s.get("active", True)))
        specs.append(
            DeploymentSpec(
                name=str(d["name"]),
                entrypoint=str(d["entrypoint"]),
                description=d.get("description"),
                tags=list(d.get("tags") or []),
                parameters=dict(d.get("parameters") or {}),
                schedules=schedules,
                concurrency_limit=d.get("concurrency_limit"),
            )
        )
    if not specs:
        raise ValueError(f"{path} defines no deployments")
    return specs


def load_flow(entrypoint: str) -> Any:
    """The flow object of ``flows/pipeline.py:pipeline`` (imported as ``flows.pipeline``)."""
    file, name = entrypoint.rsplit(":", 1)
    module = ".".join(Path(file).with_suffix("").parts)
    return getattr(importlib.import_module(module), name)


def to_deployment(spec: DeploymentSpec) -> RunnerDeployment:
    """A served deployment of ``spec`` (schedules with their timezone and active flag)."""
    from prefect.schedules import Cron

    return load_flow(spec.entrypoint).to_deployment(
        name=spec.name,
        description=spec.description,
        tags=spec.tags,
        parameters=spec.parameters,
        schedules=[Cron(s.cron, timezone=s.timezone, active=s.active) for s in spec.schedules],
        concurrency_limit=spec.concurrency_limit,
    )


def server_healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(host: str, port: int, timeout_s: float = 120.0) -> subprocess.Popen[bytes] | None:
    """Start ``prefect server start`` on host:port unless one answers there already; wait until
    it is healthy. Returns the process (None when an existing server is reused)."""
    api_url = f"http://{host}:{port}/api"
    if server_healthy(api_url):
        print(f"using the Prefect server already running at {api_url}")
        return None
    prefect = Path(sys.executable).parent / "prefect"
    cmd = [str(prefect) if prefect.is_file() else "prefect", "server", "start"]
    proc = subprocess.Popen([*cmd, "--host", host, "--port", str(port)])
    deadline = time.monotonic() + timeout_s
    while not server_healthy(api_url):
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise TimeoutError(f"prefect server not healthy at {api_url} after {timeout_s} s")
        time.sleep(0.5)
    print(f"Prefect server at {api_url} (UI http://{host}:{port})")
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__)
    parser.add_argument("--prefect-yaml", type=Path, default=PROJECT_ROOT / "prefect.yaml")
    parser.add_argument("--start-server", action="store_true", help="start a local server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--list", action="store_true", help="print the deployments and exit")
    args = parser.parse_args(argv)

    specs = read_deployments(args.prefect_yaml)
    if args.list:
        for s in specs:
            crons = ", ".join(
                f"{c.cron} {c.timezone or ''}{'' if c.active else ' (paused)'}".strip()
                for c in s.schedules
            )
            print(f"{s.flow_name}/{s.name}: {s.entrypoint}  [{crons or 'manual'}]")
        return 0
    server = None
    if args.start_server:
        server = start_server(args.host, args.port)
        os.environ["PREFECT_API_URL"] = f"http://{args.host}:{args.port}/api"
    os.chdir(PROJECT_ROOT)  # flow runs use project_dir "." and entrypoints relative to here
    try:
        from prefect import serve

        serve(*(to_deployment(s) for s in specs))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
