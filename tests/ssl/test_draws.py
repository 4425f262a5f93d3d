"""Random draws from an explicit generator: the same numbers as torch's own samplers."""

from __future__ import annotations

import torch

from s2ssl.ssl.draws import draw_normal, draw_uniform, generator_device


def test_draws_match_torch_samplers_on_the_generator_device():
    cpu = torch.device("cpu")
    uniform = draw_uniform((3, 4), torch.Generator().manual_seed(5), cpu, torch.float64)
    assert uniform.dtype == torch.float64
    expected = torch.rand(3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.equal(uniform, expected)
    normal = draw_normal((2, 5), torch.Generator().manual_seed(6), cpu)
    assert torch.equal(normal, torch.randn(2, 5, generator=torch.Generator().manual_seed(6)))


def test_generator_device_falls_back_to_the_target_device():
    assert generator_device(None, torch.device("cpu")) == torch.device("cpu")
    assert generator_device(torch.Generator(), torch.device("meta")) == torch.device("cpu")
