"""Derived seeds (s2ssl.seeding)."""

from __future__ import annotations

import numpy as np
import pytest

from s2ssl.seeding import derive_seed, replicate_seed


def test_derive_seed_is_a_deterministic_63_bit_mix_of_its_parts() -> None:
    seed = derive_seed(42, 3, 0x5A3D)
    assert seed == derive_seed(42, 3, 0x5A3D)
    assert 0 <= seed < 2**63
    state = np.random.SeedSequence([42, 3, 0x5A3D]).generate_state(2)
    assert seed == ((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF
    assert len({derive_seed(42, e, 0x5A3D) for e in range(100)}) == 100
    assert derive_seed(42, 3) != derive_seed(3, 42)


def test_replicate_seeds_are_32_bit_distinct_and_reproducible() -> None:
    seeds = [replicate_seed(0, r) for r in range(10)]
    assert len(set(seeds)) == 10 and all(0 <= s < 2**32 for s in seeds)
    assert seeds == [replicate_seed(0, r) for r in range(10)]
    assert replicate_seed(1, 0) != seeds[0]  # another base: other replicates
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="replicate must be an int >= 0"):
            replicate_seed(0, bad)  # type: ignore[arg-type]
