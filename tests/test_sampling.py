"""aecourse.sampling: draws that do not depend on the device or the torch version."""

import numpy as np
import pytest
import torch

from aecourse import sampling


def test_categorical_matches_an_independent_inverse_cdf():
    # the same uniforms, inverted by numpy: the stream is torch.rand's
    probs = torch.softmax(torch.randn(500, 7, generator=torch.Generator().manual_seed(0)), 1)
    drawn = sampling.categorical(probs, torch.Generator().manual_seed(1))
    u = torch.rand((500, 1), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    cdf = np.cumsum(probs.double().numpy(), axis=1)
    expected = [np.searchsorted(c, v * c[-1], side="right") for c, v in zip(cdf, u[:, 0].numpy())]
    assert drawn.dtype == torch.int64 and drawn.shape == (500,)
    assert drawn.tolist() == expected


def test_categorical_frequencies_follow_the_probabilities():
    p = torch.tensor([0.0, 0.5, 0.0, 0.3, 0.2, 0.0])
    n = 200_000
    drawn = sampling.categorical(p.expand(n, -1), torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn, minlength=len(p)).double()
    assert counts[p == 0].sum() == 0  # impossible categories never come
    # binomial standard error of each frequency is below 0.0012; allow 5 of them
    assert torch.allclose(counts / n, p.double(), atol=0.006)


def test_categorical_takes_unnormalised_rows_and_rejects_bad_shapes():
    drawn = sampling.categorical(torch.tensor([[0.0, 3.0], [5.0, 0.0]]))
    assert drawn.tolist() == [1, 0]
    with pytest.raises(ValueError, match="shape"):
        sampling.categorical(torch.ones(5))
    for bad in ([[0.5, -0.1, 0.6]], [[0.0, 0.0], [1.0, 0.0]]):  # a negative, an empty row
        with pytest.raises(ValueError, match="non-negative probabilities with a positive sum"):
            sampling.categorical(torch.tensor(bad))
    with pytest.raises(ValueError, match="n >= 1"):
        sampling.categorical(torch.ones(1, 3), n=0)


def test_n_draws_per_row_are_the_single_draws_of_repeated_rows():
    # (B, n) draws use the uniforms in the order of (B * n) single draws of each row repeated
    probs = torch.softmax(torch.randn(3, 5, generator=torch.Generator().manual_seed(2)), 1)
    many = sampling.categorical(probs, torch.Generator().manual_seed(4), n=50)  # (3, 50)
    single = sampling.categorical(probs.repeat_interleave(50, 0), torch.Generator().manual_seed(4))
    assert many.shape == (3, 50) and torch.equal(many.flatten(), single)


def test_draws_are_made_on_the_generator_device_and_moved():
    # a CPU generator gives the same numbers whatever the target device: here the
    # target is a different dtype path on the CPU, the draws equal torch's own
    generator = torch.Generator().manual_seed(3)
    z = sampling.randn((4, 2), generator, "cpu")
    assert torch.equal(z, torch.randn((4, 2), generator=torch.Generator().manual_seed(3)))
    u = sampling.rand((4, 2), None, "cpu")
    assert u.min() >= 0 and u.max() < 1 and u.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_cpu_generator_gives_the_same_draws_on_the_gpu():
    z_cpu = sampling.randn((8, 3), torch.Generator().manual_seed(5), "cpu")
    z_gpu = sampling.randn((8, 3), torch.Generator().manual_seed(5), "cuda")
    assert z_gpu.device.type == "cuda" and torch.equal(z_gpu.cpu(), z_cpu)
