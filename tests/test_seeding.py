"""Derived seeds (s2ssl.seeding)."""

from __future__ import annotations

import numpy as np

from s2ssl.seeding import derive_seed


def test_derive_seed_is_a_deterministic_63_bit_mix_of_its_parts() -> None:
    seed = derive_seed(42, 3, 0x5A3D)
    assert seed == derive_seed(42, 3, 0x5A3D)
    assert 0 <= seed < 2**63
    state = np.random.SeedSequence([42, 3, 0x5A3D]).generate_state(2)
    assert seed == ((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF
    assert len({derive_seed(42, e, 0x5A3D) for e in range(100)}) == 100
    assert derive_seed(42, 3) != derive_seed(3, 42)
