"""Seeds derived from several integers, so every random stream has its own reproducible seed."""

from __future__ import annotations

import numpy as np

__all__ = ["derive_seed"]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixing ``parts`` (numpy ``SeedSequence``), e.g. (seed, epoch, batch)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF
