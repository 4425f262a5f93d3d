"""The MLflow ``python_function`` face of a fine-tuned s2ssl model.

A registered model is the directory written by ``s2ssl finetune`` (plain ``state_dict`` +
``meta.json``, loaded with ``torch.load(weights_only=True)`` by
:func:`s2ssl.models.downstream.load_model`) wrapped by :class:`S2SSLPyfuncModel`, with the
``s2ssl`` package itself shipped as the model's code (``code_paths``) so that

    mlflow.pyfunc.load_model("models:/s2ssl-landcover@champion").predict(x)

works in a fresh process that has only the pip requirements (torch, numpy, pydantic, pyyaml).

Inputs are **reflectance** (``DN_after_offset × 1e-4``) in the model's band order:

- segmentation / scene models: ``float32 [N, C, H, W]``;
- crop-type (time-series) models: ``{"x": float32 [N, T, C, H, W], "doy": float32 [N, T]}``.

Outputs (``params={"output": ...}``): ``"probabilities"`` (default, softmax over classes,
``[N, K, H, W]`` or ``[N, K]``), ``"logits"``, or ``"labels"`` (argmax, int64).

Why not ``mlflow.pytorch``: its default ``pt2`` format loads back as a ``GraphModule`` with the
input example's spatial size baked in, and ``pickle`` needs unsafe unpickling; a state dict plus
our own architecture record loads safely and accepts any tile size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import mlflow.pyfunc
import numpy as np

from s2ssl.models.downstream import TimeSeriesSegmentationNet, load_model

__all__ = ["MODEL_ARTIFACT", "OUTPUTS", "S2SSLPyfuncModel", "predict_array"]

MODEL_ARTIFACT: Final[str] = "model"
"""Key (and directory name) of the fine-tuned model directory among the pyfunc artifacts."""

OUTPUTS: Final[tuple[str, ...]] = ("probabilities", "logits", "labels")

_BATCH: Final[int] = 16


def predict_array(
    model: Any, model_input: Any, output: str = "probabilities", batch_size: int = _BATCH
) -> np.ndarray:
    """Run a downstream model on numpy input (see the module docstring for shapes).

    Raises:
        ValueError: unknown ``output``, wrong input type or shape for the model.
    """
    import torch

    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {list(OUTPUTS)}, got {output!r}")
    if isinstance(model, TimeSeriesSegmentationNet):
        if not isinstance(model_input, Mapping) or not {"x", "doy"} <= set(model_input):
            raise ValueError(
                "a crop-type model takes {'x': float32 [N, T, C, H, W], 'doy': [N, T]}, got "
                f"{type(model_input).__name__}"
            )
        x = np.asarray(model_input["x"], dtype=np.float32)
        doy = np.asarray(model_input["doy"], dtype=np.float32)
        if x.ndim != 5 or doy.shape != x.shape[:2]:
            raise ValueError(
                f"x must be [N, T, C, H, W] and doy [N, T]; got {x.shape} and {doy.shape}"
            )
        arrays = (x, doy)
    else:
        if isinstance(model_input, Mapping):
            raise ValueError("this model takes one float32 [N, C, H, W] array, not a mapping")
        x = np.asarray(model_input, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(f"input must be [N, C, H, W] reflectance, got shape {x.shape}")
        arrays = (x,)
    channels = x.shape[-3]
    if channels != len(model.bands):
        raise ValueError(
            f"input has {channels} bands, the model takes {len(model.bands)}: {list(model.bands)}"
        )
    device = next(model.parameters()).device
    outs: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            batch = [torch.from_numpy(a[start : start + batch_size]).to(device) for a in arrays]
            logits = model(*batch).float()
            if output == "probabilities":
                outs.append(torch.softmax(logits, dim=1).cpu().numpy())
            elif output == "labels":
                outs.append(logits.argmax(dim=1).cpu().numpy())
            else:
                outs.append(logits.cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), dtype=np.float32)


class S2SSLPyfuncModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """``python_function`` wrapper: loads the state dict safely, predicts on numpy input."""

    def load_context(self, context: Any) -> None:
        """Rebuild the network from the ``model`` artifact (``weights_only=True``)."""

        self.model, self.meta = load_model(context.artifacts[MODEL_ARTIFACT])

    def predict(
        self,
        context: Any,
        model_input: np.ndarray,  # or {"x", "doy"} for crop type: see the module docstring
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Class probabilities (default), logits or labels of ``model_input``.

        ``np.ndarray`` is one of the hints MLflow 3 derives no signature from, so the explicit
        tensor signature the model is logged with (which also admits the crop-type mapping)
        stays in force.
        """
        output = str((params or {}).get("output", "probabilities"))
        return predict_array(self.model, model_input, output)
