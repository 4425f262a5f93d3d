"""A finished pre-training unit is reused only when its encoder exists in both formats, so
encoders exported before ``model.safetensors`` existed are exported again."""

from __future__ import annotations

import json
from pathlib import Path

from s2ssl.models.interchange import SAFETENSORS_FILE
from s2ssl.models.saved import WEIGHTS_FILE
from s2ssl.ssl.pretrain import RESULT_FILE, RUN_STATE_FILE, _finished_result


def test_a_finished_unit_without_safetensors_is_not_reused(tmp_path: Path) -> None:
    ckpt, encoder = tmp_path / "checkpoints", tmp_path / "encoder"
    ckpt.mkdir()
    encoder.mkdir()
    (ckpt / RUN_STATE_FILE).write_text(json.dumps({"fingerprint": "fp", "finished": True}))
    record = {"fingerprint": "fp", "metrics": {"final_loss": 1.0}, "history": [{"epoch": 0}]}
    (ckpt / RESULT_FILE).write_text(json.dumps(record))
    (encoder / WEIGHTS_FILE).write_bytes(b"x")
    assert _finished_result(ckpt, encoder, "fp") is None
    (encoder / SAFETENSORS_FILE).write_bytes(b"x")
    assert _finished_result(ckpt, encoder, "fp") == ({"final_loss": 1.0}, [{"epoch": 0}])
