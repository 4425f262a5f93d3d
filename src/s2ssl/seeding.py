"""Seeds derived from several integers, so every random stream has its own reproducible seed."""

from __future__ import annotations

import numpy as np

__all__ = ["derive_seed", "replicate_seed"]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixing ``parts`` (numpy ``SeedSequence``), e.g. (seed, epoch, batch)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


def replicate_seed(base: int, replicate: int) -> int:
    """The 32-bit seed of replicate ``replicate`` (0, 1, ...) of an experiment seeded ``base``.

    One replicate fixes every random choice of its runs (pre-training, the label-subset draw,
    fine-tuning), so runs of the same replicate are paired and replicates are independent.
    """
    if isinstance(replicate, bool) or not isinstance(replicate, int) or replicate < 0:
        raise ValueError(f"replicate must be an int >= 0, got {replicate!r}")
    return derive_seed(base, 0x5EED_0F_2E, replicate) & 0xFFFF_FFFF
