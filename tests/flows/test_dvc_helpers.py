"""flows._dvc without Prefect: stage order from dvc.yaml, parsing dvc output (ran / skipped /
restored / failed, durations), what counts as transient, set_params → dvc exp run -S and dvc.lock
hashes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from flowkit import PIPELINE, dvc_lines, write_dvc_yaml

from flows import _dvc
from flows._dvc import DvcCall, StageOutcome
from testkit import REPO_ROOT


def test_pipeline_stages_follow_dvc_yaml_without_targeted_only_stages(tmp_path: Path) -> None:
    repo = _dvc.pipeline_stages(REPO_ROOT)
    assert repo[:6] == ["fetch", "validate", "pretrain", "pretrain_cscl", "finetune", "evaluate"]
    assert "tune" not in repo and "calibrate" not in repo
    assert [s for s in repo if s in _dvc.REGISTRY_STAGES] == [
        s for s in ("register", "promote") if _dvc.has_stage(REPO_ROOT, s)
    ]
    write_dvc_yaml(tmp_path, [*PIPELINE, "tuning"])
    assert _dvc.pipeline_stages(tmp_path) == [*PIPELINE, "tuning"]  # added stages join
    raw = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    raw["stages"]["tune"] = {"cmd": "s2ssl tune"}  # tune in the root dvc.yaml: still left out
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert "tune" not in _dvc.pipeline_stages(tmp_path)
    raw["stages"]["finetune"]["frozen"] = True
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert "finetune" not in _dvc.pipeline_stages(tmp_path)


def test_find_stage_gives_the_dvc_target_of_tune_in_its_own_dvc_yaml(tmp_path: Path) -> None:
    assert _dvc.find_stage(REPO_ROOT, "evaluate") == "evaluate"
    if (REPO_ROOT / "tune" / "dvc.yaml").is_file():
        assert _dvc.find_stage(REPO_ROOT, "tune") == "tune/dvc.yaml:tune"
    assert _dvc.find_stage(REPO_ROOT, "calibrate") == "calibrate/dvc.yaml:calibrate"
    write_dvc_yaml(tmp_path, [*PIPELINE, "tune"])
    assert _dvc.find_stage(tmp_path, "tune") == "tune/dvc.yaml:tune"
    assert "tune" not in _dvc.pipeline_stages(tmp_path)
    assert _dvc.find_stage(tmp_path, "nope") is None
    assert _dvc.stage_group("tune/dvc.yaml:tune") == _dvc.stage_group("tune") == "tune"
    assert _dvc.stage_group("pretrain@seco") == "pretrain"
    from flows._tasks import needs_gpu

    assert needs_gpu("tune/dvc.yaml:tune") and needs_gpu(["fetch", "pretrain@seco"])
    assert needs_gpu("calibrate/dvc.yaml:calibrate")
    assert not needs_gpu(["fetch", "validate", "evaluate", "register", "promote"])


def test_check_stages_orders_and_rejects_unknown(tmp_path: Path) -> None:
    write_dvc_yaml(tmp_path, PIPELINE)
    assert _dvc.check_stages(tmp_path, ["evaluate", "fetch", "pretrain@seco"]) == [
        "fetch",
        "pretrain@seco",
        "evaluate",
    ]
    with pytest.raises(_dvc.DvcPlanError, match=r"trian not in dvc\.yaml; its stages: fetch"):
        _dvc.check_stages(tmp_path, ["trian"])
    with pytest.raises(_dvc.DvcPlanError, match=r"no dvc\.yaml"):
        _dvc.pipeline_stages(tmp_path / "nowhere")


REAL_OUTPUT = """\
Stage 'fetch' didn't change, skipping
Stage 'validate' is cached - skipping run, checking out outputs
Updating lock file 'dvc.lock'
Running stage 'pretrain@seco':
> s2ssl pretrain --method seco --params params.yaml
epoch 1/1 ...
Updating lock file 'dvc.lock'

Running stage 'pretrain@dense':
> s2ssl pretrain --method dense --params params.yaml
ERROR: failed to reproduce 'pretrain@dense': failed to run: s2ssl pretrain --method dense, exited with 1
"""  # noqa: E501


def test_parse_outcomes_reads_ran_skipped_restored_failed_with_durations() -> None:
    lines = [(float(i), text) for i, text in enumerate(REAL_OUTPUT.splitlines())]
    outcomes = _dvc.parse_outcomes(lines, end=20.0)
    assert outcomes == [
        StageOutcome("fetch", "skipped"),
        StageOutcome("validate", "restored"),
        StageOutcome("pretrain@seco", "ran", 3.0),  # Running (line 3) → lock update (line 6)
        StageOutcome("pretrain@dense", "failed", 2.0),
    ]
    assert outcomes[2].group == "pretrain"


@pytest.mark.parametrize(
    ("exit_code", "transient"),
    [(75, True), (1, False), (2, False), (137, False)],
)
def test_only_exit_75_of_a_stage_command_is_transient(exit_code: int, transient: bool) -> None:
    code, lines = dvc_lines("fetch", exit_code)
    call = DvcCall(["repro", "fetch"], code, 1.0, lines, [])
    assert _dvc.classify_failure(call) == (exit_code, transient)
    with pytest.raises(_dvc.DvcCommandError) as info:
        _dvc.raise_for_failure(call)
    assert info.value.transient is transient and info.value.exit_code == exit_code
    assert "exited with" in str(info.value)  # the output tail travels with the error


def test_a_busy_dvc_lock_is_transient_a_broken_dvc_yaml_is_not() -> None:
    busy = DvcCall(["repro", "fetch"], 255, 0.1, [(0.0, "ERROR: Unable to acquire lock. Most")])
    assert _dvc.classify_failure(busy) == (None, True)
    broken = DvcCall(["repro", "fetch"], 255, 0.1, [(0.0, "'./dvc.yaml' is invalid.")])
    assert _dvc.classify_failure(broken) == (None, False)
    ok = DvcCall(["repro", "fetch"], 0, 0.1, [])
    assert _dvc.raise_for_failure(ok) is ok


def test_network_errors_of_dvc_push_are_transient_other_push_errors_are_not() -> None:
    def push(*lines: str) -> DvcCall:
        return DvcCall(["push"], 255, 0.1, [(0.0, line) for line in lines])

    down = push("ERROR: failed to push data to the cloud - ConnectionError: Connection refused")
    assert _dvc.classify_failure(down) == (None, True)
    assert _dvc.classify_failure(push("ERROR: ... 503 Service Unavailable")) == (None, True)
    denied = push("ERROR: failed to push data to the cloud - Access Denied")
    assert _dvc.classify_failure(denied) == (None, False)
    repro = DvcCall(["repro", "x"], 255, 0.1, [(0.0, "ERROR: ConnectionError in my code")])
    assert _dvc.classify_failure(repro) == (None, False)  # only remote commands


def test_dvc_command_error_survives_pickling() -> None:
    import pickle

    code, lines = dvc_lines("fetch", 75)
    error = _dvc.DvcCommandError(DvcCall(["repro", "fetch"], code, 1.0, lines), 75, True)
    again = pickle.loads(pickle.dumps(error))
    assert again.transient and again.exit_code == 75 and str(again) == str(error)


def test_set_params_map_onto_dvc_exp_run_set_param() -> None:
    args = _dvc.exp_run_args(
        ["fetch", "pretrain"],
        {"pretrain.dense.lr": "0.01", "finetune.fractions": [0.1, 1.0], "seed": 7},
        name="lr-try",
    )
    assert args == [
        "exp", "run",
        "-S", "pretrain.dense.lr=0.01",
        "-S", "finetune.fractions=[0.1, 1.0]",
        "-S", "seed=7",
        "--name", "lr-try",
        "fetch", "pretrain",
    ]  # fmt: skip
    with pytest.raises(_dvc.DvcPlanError, match="bad parameter name"):
        _dvc.exp_run_args(["fetch"], {"a b": "1"})
    assert _dvc.repro_args("fetch", force=True) == ["repro", "--force", "--single-item", "fetch"]


def test_stage_out_hashes_read_dvc_lock(tmp_path: Path) -> None:
    assert _dvc.stage_out_hashes(tmp_path, "validate") == {}
    lock = {
        "schema": "2.0",
        "stages": {
            "validate": {
                "cmd": "s2ssl validate",
                "outs": [
                    {"path": "data/validated/landcover", "hash": "md5", "md5": "aa.dir"},
                    {"path": "reports/validate/quarantine.csv", "hash": "md5", "md5": "bb"},
                ],
            }
        },
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert _dvc.stage_out_hashes(tmp_path, "validate") == {"data/validated/landcover": "aa.dir"}
    assert _dvc.stage_out_hashes(tmp_path, "validate", prefix="none/") == {
        "data/validated/landcover": "aa.dir",
        "reports/validate/quarantine.csv": "bb",
    }
    assert _dvc.stage_out_hashes(tmp_path, "fetch") == {}


def test_flow_modules_never_import_torch() -> None:
    code = (
        "import sys, flows.pipeline, flows.ingest, flows.sweep, flows.serve; "
        "heavy = [m for m in ('torch', 'lightning', 'mlflow', 'great_expectations') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
