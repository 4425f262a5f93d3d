"""The MoCo machinery shared by the momentum-contrast pre-training methods.

He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020:
:class:`KeyQueue`, a ring buffer of L2-normalised negative keys per embedding sub-space, and
:func:`momentum_update`, the momentum (EMA) key encoder.

Every function validates its inputs and raises :class:`ValueError` / :class:`TypeError` with the
expected and the received value; nothing here relies on ``assert``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2ssl.ssl.checks import check_int, check_real, check_tensor

__all__ = ["KeyQueue", "momentum_update"]


class KeyQueue(nn.Module):
    """One ring buffer of negative keys per embedding sub-space (MoCo, He et al. 2020, §3.2).

    ``keys`` [num_heads, size, dim] starts as random normal vectors L2-normalised along ``dim``
    (as in the MoCo and SeCo code); ``ptr`` [num_heads] is the next write position of each
    queue. Both are buffers, so they are saved in ``state_dict`` (checkpoints resume with the
    same queue) and follow ``.to(device)``.
    """

    keys: Tensor
    ptr: Tensor

    def __init__(
        self, num_heads: int, dim: int, size: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.num_heads = check_int("num_heads", num_heads, 1)
        self.dim = check_int("dim", dim, 1)
        self.size = check_int("size", size, 1)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got {type(generator).__name__}"
            )
        keys = torch.randn(num_heads, size, dim, generator=generator)
        self.register_buffer("keys", F.normalize(keys, dim=-1))
        self.register_buffer("ptr", torch.zeros(num_heads, dtype=torch.long))

    def _check_head(self, head: object) -> int:
        if isinstance(head, bool) or not isinstance(head, int):
            raise TypeError(f"head must be an int, got {type(head).__name__} ({head!r})")
        if not 0 <= head < self.num_heads:
            raise ValueError(f"head must be in [0, {self.num_heads - 1}], got {head}")
        return head

    @torch.no_grad()
    def enqueue(self, head: int, keys: Tensor) -> None:
        """Write ``keys`` [B, dim] into queue ``head`` at its pointer, wrapping around.

        The keys must already be L2-normalised (they are stored as given, detached). ``B`` need
        not divide ``size``; the result is that of writing the keys one by one into a ring
        buffer, so when ``B > size`` only the last ``size`` keys remain. The pointer advances by
        ``B`` modulo ``size``.
        """
        head = self._check_head(head)
        keys = check_tensor("keys", keys, 2)
        if keys.shape[1] != self.dim:
            raise ValueError(
                f"keys must have shape [B, {self.dim}], got {tuple(keys.shape)} "
                f"(last dimension {keys.shape[1]} != queue dim {self.dim})"
            )
        batch = keys.shape[0]
        if batch == 0:
            return
        start = int(self.ptr[head])
        positions = (start + torch.arange(batch, device=self.keys.device)) % self.size
        if batch > self.size:  # earlier keys would be overwritten by later ones
            positions = positions[batch - self.size :]
            keys = keys[batch - self.size :]
        self.keys[head, positions] = keys.detach().to(
            device=self.keys.device, dtype=self.keys.dtype
        )
        self.ptr[head] = (start + batch) % self.size

    def get(self, head: int) -> Tensor:
        """A detached copy of queue ``head``, [size, dim]."""
        head = self._check_head(head)
        return self.keys[head].detach().clone()

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, dim={self.dim}, size={self.size}"


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """Exponential moving average of the online (query) encoder into the target (key) encoder.

    MoCo (He et al. 2020), eq. 2: ``θ_k ← m·θ_k + (1 − m)·θ_q`` for every pair of parameters
    with the same name. Buffers (e.g. BatchNorm running statistics) are left alone: the key
    encoder keeps its own statistics, as in the MoCo and SeCo code.

    Raises:
        ValueError: ``momentum`` outside [0, 1], or the two modules' parameter names / shapes
            differ.
    """
    m = check_real("momentum", momentum)
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {m}")
    for name, module in (("online", online), ("target", target)):
        if not isinstance(module, nn.Module):
            raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
    online_params = dict(online.named_parameters())
    target_params = dict(target.named_parameters())
    if online_params.keys() != target_params.keys():
        only_online = sorted(online_params.keys() - target_params.keys())
        only_target = sorted(target_params.keys() - online_params.keys())
        raise ValueError(
            "online and target must have the same parameter names; "
            f"only in online: {only_online[:5]}, only in target: {only_target[:5]}"
        )
    for name, p_online in online_params.items():
        p_target = target_params[name]
        if p_online.shape != p_target.shape:
            raise ValueError(
                f"parameter {name!r}: expected the target shape to equal the online shape "
                f"{tuple(p_online.shape)}, got {tuple(p_target.shape)}"
            )
    for name, p_online in online_params.items():
        p_target = target_params[name]
        if m == 0.0:
            p_target.copy_(p_online.detach())
        elif m != 1.0:
            p_target.mul_(m).add_(p_online.detach().to(p_target.dtype), alpha=1.0 - m)
