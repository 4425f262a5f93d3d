import math

from s2ssl.ssl.curves import curves_png, loss_plateau


def _history(losses: list[float]) -> list[dict[str, float]]:
    return [{"epoch": i, "loss": v, "knn_acc": 0.5 + 0.01 * i} for i, v in enumerate(losses)]


def test_loss_plateau_is_the_relative_drop_over_the_last_third() -> None:
    # 9 epochs: the last third is epochs 6..8, loss 4.0 -> 3.0: (4 - 3) / 4
    losses = [9.0, 8.0, 7.0, 6.0, 5.0, 4.5, 4.0, 3.5, 3.0]
    assert loss_plateau(_history(losses)) == 0.25
    assert loss_plateau(_history([5.0, 4.0, 3.0, 3.0, 3.0, 3.0])) == 0.0  # flat tail
    assert math.isnan(loss_plateau(_history([5.0, 4.0])))  # too short to tell


def test_curves_png_is_written(tmp_path) -> None:
    out = curves_png(
        "seco",
        {"r0": _history([5.0, 4.0, 3.5, 3.4]), "r1": _history([5.0, 4.5])},
        tmp_path / "c.png",
    )
    assert out.read_bytes()[:4] == b"\x89PNG"
