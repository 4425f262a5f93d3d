"""Contrastive losses of the pre-training methods.

- :func:`seco_loss`: Seasonal Contrast (Mañas et al., "Seasonal Contrast: Unsupervised
  Pre-Training from Uncurated Remote Sensing Data", ICCV 2021), the MoCo-v2 InfoNCE over three
  embedding sub-spaces exactly as in the official code; with one head it is plain MoCo-v2. Its
  negative-key queue and momentum key encoder are in :mod:`s2ssl.ssl.momentum`.
- :func:`dense_info_nce`: the pixel-level InfoNCE used for Embedding Earth (Tarasiou &
  Zafeiriou, "Embedding Earth: Self-supervised contrastive pre-training for dense land cover
  classification", 2022). The official code was never released; this design is ours.
- :func:`neighbour_offsets`, :func:`cscl_targets`, :class:`CSCLHead`, :func:`cscl_loss`: the
  Context-Self Contrastive Loss (Tarasiou, Guler, Zafeiriou, "Context-self contrastive
  pretraining for crop type semantic segmentation", IEEE TGRS 2022 / arXiv 2104.04310, 2021),
  stage 1 (supervised pre-training of backbone + similarity head).

Every function validates its inputs and raises :class:`ValueError` / :class:`TypeError` with the
expected and the received value; nothing here relies on ``assert``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2ssl.ssl.checks import check_int, check_real, check_temperature, check_tensor

__all__ = [
    "CSCLHead",
    "SecoLossOutput",
    "cscl_loss",
    "cscl_targets",
    "dense_info_nce",
    "neighbour_offsets",
    "seco_loss",
]

_COSINE_EPS = 1e-8
"""Norms below this are treated as this value when computing cosine similarities."""


def _at_least_float32(x: Tensor) -> Tensor:
    """Half-precision logits / similarities are upcast (as the SeCo code does); float64 stays."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


# ----------------------------------------------------------------------------------------------
# SeCo / MoCo-v2
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecoLossOutput:
    """Result of :func:`seco_loss`.

    Attributes:
        loss: the total loss, the sum of ``head_losses`` (scalar, differentiable).
        head_losses: per-head cross-entropy L_i (scalars).
        logits: per-head logits [N, 1 + negatives], the positive in column 0, already / τ.
        accuracy: per-head top-1 accuracy (fraction of rows whose positive logit is the
            largest; ties count as correct), detached scalars.
    """

    loss: Tensor
    head_losses: list[Tensor]
    logits: list[Tensor]
    accuracy: list[Tensor]


def seco_loss(
    queries: Sequence[Tensor],
    keys: Sequence[Sequence[Tensor]],
    queues: Sequence[Tensor],
    temperature: float = 0.07,
) -> SecoLossOutput:
    """Seasonal Contrast loss (Mañas et al., ICCV 2021, §3.2 and the official code).

    For each embedding sub-space (head) ``i``, with the query ``q = queries[i]`` and keys
    ``k_j = keys[i][j]`` (view ``j`` projected by the momentum head ``i``):

        l⁺ = q · k_i                           (row-wise; column 0)
        l⁻ = q · queues[i]ᵀ                    (K columns)
             ⊕ q · k_jᵀ for every j ≠ i, j ascending   (only for i > 0; N columns each)
        L_i = CE([l⁺, l⁻] / τ, target 0)       (MoCo-v2 InfoNCE, He et al. 2020, eq. 1)
        L   = Σ_i L_i

    The extra negatives of heads ``i > 0`` are the other keys of *every* batch item, the query's
    own included, exactly as in the official SeCo code. Head 0 is thus invariant to time and
    augmentation, head 1 to time only, head 2 to augmentation only. With a single
    head this is plain MoCo-v2 (the ``moco`` and ``moco_tp`` baselines).

    The function is pure: it does not modify the queues. After the optimiser step the caller
    enqueues ``keys[i][i]`` into queue ``i`` (:meth:`KeyQueue.enqueue`).

    Args:
        queries: per head, the L2-normalised query projections [N, D_i] (with gradient).
        keys: per head ``i``, per view ``j``, the L2-normalised key projections [N, D_i]
            (detached here: no gradient reaches the keys).
        queues: per head, the current queue [K, D_i] (detached here).
        temperature: τ > 0 (SeCo/MoCo-v2: 0.07).

    Raises:
        ValueError / TypeError: inconsistent numbers of heads/views, wrong shapes, τ ≤ 0.
    """
    tau = check_temperature(temperature)
    for name, seq in (("queries", queries), ("keys", keys), ("queues", queues)):
        if isinstance(seq, Tensor) or not isinstance(seq, Sequence):
            raise TypeError(
                f"{name} must be a sequence (list/tuple) with one entry per head, "
                f"got {type(seq).__name__}"
            )
    num_heads = len(queries)
    if num_heads == 0:
        raise ValueError("queries must hold at least one head, got 0")
    if len(keys) != num_heads or len(queues) != num_heads:
        raise ValueError(
            f"expected one entry per head in queries, keys and queues; got {num_heads} "
            f"queries, {len(keys)} key lists and {len(queues)} queues"
        )

    batch: int | None = None
    for i in range(num_heads):
        q = check_tensor(f"queries[{i}]", queries[i], 2)
        if batch is None:
            batch = q.shape[0]
        if q.shape[0] != batch or batch == 0:
            raise ValueError(
                f"queries[{i}] must have shape [N, D] with the same N >= 1 for every head, "
                f"expected N = {batch}, got shape {tuple(q.shape)}"
            )
        dim = q.shape[1]
        head_keys = keys[i]
        if isinstance(head_keys, Tensor) or not isinstance(head_keys, Sequence):
            raise TypeError(
                f"keys[{i}] must be a sequence with one tensor per view, "
                f"got {type(head_keys).__name__}"
            )
        if len(head_keys) != num_heads:
            raise ValueError(
                f"keys[{i}] must hold one key per view (as many views as heads, {num_heads}), "
                f"got {len(head_keys)}"
            )
        for j, k in enumerate(head_keys):
            check_tensor(f"keys[{i}][{j}]", k, 2)
            if tuple(k.shape) != (batch, dim):
                raise ValueError(
                    f"keys[{i}][{j}] must have the query shape {(batch, dim)}, got {tuple(k.shape)}"
                )
        queue = check_tensor(f"queues[{i}]", queues[i], 2)
        if queue.shape[1] != dim:
            raise ValueError(
                f"queues[{i}] must have shape [K, {dim}] (the head's dimension), "
                f"got {tuple(queue.shape)}"
            )

    head_losses: list[Tensor] = []
    all_logits: list[Tensor] = []
    accuracy: list[Tensor] = []
    for i in range(num_heads):
        q = queries[i]
        positive = keys[i][i].detach()
        negatives = [queues[i].detach()]
        if i > 0:
            negatives.extend(keys[i][j].detach() for j in range(num_heads) if j != i)
        negative_bank = torch.cat(negatives, dim=0)  # [K (+ (H-1)·N), D]
        l_pos = (q * positive).sum(dim=1, keepdim=True)  # [N, 1]
        l_neg = q @ negative_bank.T  # [N, K (+ (H-1)·N)]
        logits = torch.cat([l_pos, l_neg], dim=1) / tau
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        head_losses.append(F.cross_entropy(_at_least_float32(logits), target))
        all_logits.append(logits)
        accuracy.append((logits.detach().argmax(dim=1) == 0).float().mean())
    total = torch.stack(head_losses).sum()
    return SecoLossOutput(loss=total, head_losses=head_losses, logits=all_logits, accuracy=accuracy)


# ----------------------------------------------------------------------------------------------
# Embedding Earth: pixel InfoNCE (ours)
# ----------------------------------------------------------------------------------------------


def dense_info_nce(
    z1: Tensor, z2: Tensor, temperature: float = 0.1, symmetric: bool = True
) -> Tensor:
    """Pixel-level InfoNCE for dense contrastive pre-training (Embedding Earth, design ours).

    Row ``p`` of ``z1`` and row ``p`` of ``z2`` are the embeddings of the same ground position
    in two views (two dates, independent augmentations); every other row of the other view is a
    negative (P pixels sampled over the whole batch):

        logits = ẑ1 · ẑ2ᵀ / τ  (ẑ = L2-normalised rows),   L₁₂ = CE(logits, arange(P))
        L = (L₁₂ + L₂₁) / 2 if symmetric else L₁₂,   with L₂₁ = CE(logitsᵀ, arange(P)).

    Args:
        z1, z2: [P, D] embeddings (normalised here), P ≥ 2.
        temperature: τ > 0 (≈ 0.1 in the reference code).
        symmetric: average both directions (default) or use ``z1`` as anchors only.
    """
    tau = check_temperature(temperature)
    z1 = check_tensor("z1", z1, 2)
    z2 = check_tensor("z2", z2, 2)
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape [P, D], got {tuple(z1.shape)} and "
            f"{tuple(z2.shape)}"
        )
    if z1.shape[0] < 2:
        raise ValueError(f"need P >= 2 pixels (at least one negative), got P = {z1.shape[0]}")
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / tau
    logits = _at_least_float32(logits)
    target = torch.arange(logits.shape[0], device=logits.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, target))
    return loss


# ----------------------------------------------------------------------------------------------
# CSCL: Context-Self Contrastive Loss
# ----------------------------------------------------------------------------------------------


def neighbour_offsets(kernel_size: int = 3, dilation: int = 1) -> list[tuple[int, int]]:
    """The (dy, dx) offsets of a ``kernel_size`` × ``kernel_size`` window, row-major.

    ``[(dy·d, dx·d) for dy in -r..r for dx in -r..r]`` with ``r = kernel_size // 2`` and
    ``d = dilation``; the centre (0, 0) is at index ``kernel_size**2 // 2``.
    """
    check_int("kernel_size", kernel_size, 1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    check_int("dilation", dilation, 1)
    r = kernel_size // 2
    return [(dy * dilation, dx * dilation) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]


def _shifted(padded: Tensor, pad: int, dy: int, dx: int, height: int, width: int) -> Tensor:
    """``x[..., y + dy, x + dx]`` for every (y, x) of the unpadded image, from ``padded``."""
    return padded[..., pad + dy : pad + dy + height, pad + dx : pad + dx + width]


def cscl_targets(
    labels: Tensor,
    kernel_size: int = 3,
    dilation: int = 1,
    ignore_index: int | None = None,
) -> tuple[Tensor, Tensor]:
    """CSCL affinity targets between each pixel and its neighbours (Tarasiou et al., §III).

    Returns ``(targets, valid)``, both [N, k², H, W] with the offsets of
    :func:`neighbour_offsets` along dimension 1:

    - ``targets`` (float): 1 where ``label(p) == label(p + δ)``, 0 where they differ or
      ``p + δ`` lies outside the image (the paper pads with a pad label); the centre is 1.
    - ``valid`` (bool): False where ``label(p) == ignore_index`` (when given), True elsewhere;
      out-of-image pairs are valid (target 0).
    """
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.ndim != 3:
        raise ValueError(
            f"labels must have shape [N, H, W], got {labels.ndim} dimensions "
            f"(shape {tuple(labels.shape)})"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor (int64), got dtype {labels.dtype}")
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
    ):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")
    offsets = neighbour_offsets(kernel_size, dilation)
    height, width = labels.shape[1:]
    pad = (kernel_size // 2) * dilation
    padded = F.pad(labels, (pad, pad, pad, pad), value=0)
    inside = F.pad(torch.ones_like(labels, dtype=torch.bool), (pad, pad, pad, pad), value=False)
    same = [
        (_shifted(padded, pad, dy, dx, height, width) == labels)
        & _shifted(inside, pad, dy, dx, height, width)
        for dy, dx in offsets
    ]
    targets = torch.stack(same, dim=1).float()
    if ignore_index is None:
        valid = torch.ones_like(targets, dtype=torch.bool)
    else:
        valid = (labels != ignore_index).unsqueeze(1).expand_as(targets).clone()
    return targets, valid


class CSCLHead(nn.Module):
    """CSCL similarity head (Tarasiou, Guler, Zafeiriou 2021/2022, §III, DeepSatModels code).

    For per-pixel embeddings ``e`` [N, C, H, W], each pixel ``p`` and each offset ``δ`` of a
    ``kernel_size``² window (with ``dilation``)::

        q_p     = W_q e_p
        κ_{p,δ} = (W_k e)_{p+δ} + r_δ        ((W_k e) zero-padded outside the image)
        s_{p,δ} = cos(q_p, κ_{p,δ}) ∈ [−1, 1]

    ``W_q``, ``W_k`` are bias-free 1×1 convolutions (``w_q``, ``w_k``) and
    ``r_δ = [row_embedding[dy], col_embedding[dx]]`` a learned relative position embedding,
    half the channels for the row offset and half for the column offset.
    """

    def __init__(
        self,
        in_channels: int = 128,
        attn_channels: int = 128,
        kernel_size: int = 3,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("attn_channels", attn_channels, 2)
        if attn_channels % 2:
            raise ValueError(
                f"attn_channels must be even (half for rows, half for columns), got {attn_channels}"
            )
        self.offsets = neighbour_offsets(kernel_size, dilation)
        self.in_channels = in_channels
        self.attn_channels = attn_channels
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.w_q = nn.Conv2d(in_channels, attn_channels, kernel_size=1, bias=False)
        self.w_k = nn.Conv2d(in_channels, attn_channels, kernel_size=1, bias=False)
        self.row_embedding = nn.Parameter(torch.randn(kernel_size, attn_channels // 2))
        self.col_embedding = nn.Parameter(torch.randn(kernel_size, attn_channels // 2))

    def relative_embeddings(self) -> Tensor:
        """``r_δ`` for every offset, [k², attn_channels], in :func:`neighbour_offsets` order."""
        r = self.kernel_size // 2
        rows = [self.row_embedding[dy // self.dilation + r] for dy, _ in self.offsets]
        cols = [self.col_embedding[dx // self.dilation + r] for _, dx in self.offsets]
        return torch.cat([torch.stack(rows), torch.stack(cols)], dim=1)

    def forward(self, embeddings: Tensor) -> Tensor:
        """Cosine similarities [N, k², H, W] between each pixel and its neighbours."""
        check_tensor("embeddings", embeddings, 4)
        if embeddings.shape[1] != self.in_channels:
            raise ValueError(
                f"embeddings must have shape [N, {self.in_channels}, H, W], "
                f"got {tuple(embeddings.shape)}"
            )
        height, width = embeddings.shape[2:]
        q = F.normalize(self.w_q(embeddings), dim=1, eps=_COSINE_EPS)
        k = self.w_k(embeddings)
        pad = (self.kernel_size // 2) * self.dilation
        padded = F.pad(k, (pad, pad, pad, pad))  # zeros outside the image
        rel = self.relative_embeddings().to(k.dtype)
        sims = []
        for index, (dy, dx) in enumerate(self.offsets):
            key = _shifted(padded, pad, dy, dx, height, width) + rel[index].view(1, -1, 1, 1)
            key = F.normalize(key, dim=1, eps=_COSINE_EPS)
            sims.append((q * key).sum(dim=1))
        # unit vectors' dot products can exceed 1 by rounding; keep s within [-1, 1]
        return torch.stack(sims, dim=1).clamp(-1.0, 1.0)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, attn_channels={self.attn_channels}, "
            f"kernel_size={self.kernel_size}, dilation={self.dilation}"
        )


def cscl_loss(
    similarity: Tensor,
    targets: Tensor,
    valid: Tensor | None = None,
    pos_weight: float = 0.125,
) -> Tensor:
    """Context-Self Contrastive Loss (Tarasiou, Guler, Zafeiriou 2021/2022, eq. of §III).

    ``L = mean over valid (p, δ) of ( −w⁺·y·s + (1 − y)·s )`` with ``s`` the
    :class:`CSCLHead` similarities, ``y`` the :func:`cscl_targets` and ``w⁺ = 0.125``: same-label
    neighbours are pulled together (weighted by w⁺, they are the majority), different-label
    neighbours pushed apart. The loss is negative when similar pixels agree.

    Args:
        similarity: [N, k², H, W] cosine similarities.
        targets: same shape, 1 (same label) or 0.
        valid: optional bool mask of the same shape; only True entries enter the mean.
        pos_weight: w⁺ ≥ 0.

    Raises:
        ValueError: shapes differ, or no valid entry. TypeError: wrong dtypes.
    """
    w = check_real("pos_weight", pos_weight)
    if w < 0:
        raise ValueError(f"pos_weight must be >= 0, got {w}")
    similarity = check_tensor("similarity", similarity, 4)
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.shape != similarity.shape:
        raise ValueError(
            f"targets must have the similarity shape {tuple(similarity.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    if similarity.numel() == 0:
        raise ValueError(
            f"similarity is empty (shape {tuple(similarity.shape)}): nothing to average"
        )
    similarity = _at_least_float32(similarity)  # a bf16 sum over ~10⁵ pairs loses digits
    y = targets.to(similarity.dtype)
    per_pair = -w * y * similarity + (1.0 - y) * similarity
    if valid is None:
        return per_pair.mean()
    if not isinstance(valid, Tensor):
        raise TypeError(f"valid must be a torch.Tensor or None, got {type(valid).__name__}")
    if valid.dtype != torch.bool:
        raise TypeError(f"valid must be a bool tensor, got dtype {valid.dtype}")
    if valid.shape != similarity.shape:
        raise ValueError(
            f"valid must have the similarity shape {tuple(similarity.shape)}, "
            f"got {tuple(valid.shape)}"
        )
    count = valid.sum()
    if int(count) == 0:
        raise ValueError("valid has no True entry: the CSCL loss over an empty set is undefined")
    return torch.where(valid, per_pair, torch.zeros_like(per_pair)).sum() / count
