"""The fast softmax index kernel's branches (issue 14), each against the float64 reference.

The kernel takes exp(x) unshifted where the logits' range allows it and the row max otherwise
(:func:`focal_ref._torch_kernels._exp_shift`); it takes log p_t from log1p(-u_t) near p_t = 1, from p_t in
between, and from the logits where p_t is subnormal. Each test puts rows in one of those branches.
"""

import numpy as np
import pytest
import torch

import focal_ref as ref
import focal_ref._torch_kernels as kern
import focal_ref.torch as ft

RTOL = {torch.float32: 2e-5, torch.float64: 1e-12}


def _check(x: torch.Tensor, index: torch.Tensor, gamma: float, dim: int = 1, **kwargs) -> None:
    """Loss per sample and its gradient against the reference, relative to each row's magnitude."""
    leaf = x.detach().clone().requires_grad_(True)
    loss = ft.softmax_focal_loss(leaf, index, gamma=gamma, dim=dim, reduction="none", **kwargs)
    loss.sum().backward()
    x64, t64 = x.double().numpy(), index.numpy()
    want = ref.softmax_focal_loss(x64, t64, gamma=gamma, axis=dim, **kwargs)
    want_grad = ref.softmax_focal_loss_grad(x64, t64, gamma=gamma, axis=dim, **kwargs)
    rtol = RTOL[x.dtype]
    tiny = float(torch.finfo(x.dtype).tiny)
    got = loss.detach().double().numpy()
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(leaf.grad.double().numpy()))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=tiny)
    scale = np.abs(want_grad).max(axis=dim, keepdims=True)
    assert np.all(np.abs(leaf.grad.double().numpy() - want_grad) <= rtol * scale + tiny)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_shift_only_where_the_range_needs_it(dtype):
    x = torch.randn(6, 5, dtype=dtype)
    assert kern._exp_shift(x, 1).ndim == 0
    big = x.clone()
    big[2, 3] = 1e3
    assert kern._exp_shift(big, 1).shape == (6, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("spread", [3.0, 60.0, 900.0])
def test_index_kernel_against_reference(dtype, gamma, spread):
    g = torch.Generator().manual_seed(int(spread) + int(10 * gamma))
    x = (torch.randn(64, 7, 3, generator=g, dtype=torch.float64) * spread).to(dtype)
    index = torch.randint(0, 7, (64, 3), generator=g)
    _check(x, index, gamma)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_dominant_target_exact_as_p_t_goes_to_1(dtype, gamma):
    # u_t = 4 e^-z: the loss is ~ u_t^(gamma+1), far below 1 - p_t's rounding if taken as 1 - p_t
    z = torch.tensor([5.0, 12.0, 20.0, 30.0, 60.0], dtype=dtype)
    x = torch.zeros(5, 5, dtype=dtype)
    x[:, 2] = z
    index = torch.full((5,), 2)
    _check(x, index, gamma)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_subnormal_and_zero_p_t_stay_finite(dtype):
    # p_t = e^-100 (float32: subnormal), e^-1000 (0 in both): log p_t from the logits
    x = torch.zeros(3, 4, dtype=dtype)
    x[0, 1], x[1, 1], x[2, 1] = -100.0, -1000.0, -80.0
    index = torch.tensor([1, 1, 1])
    _check(x, index, 2.0)
    _check(x, index, 0.5)


def test_alpha_and_ignore_index_on_both_shift_paths():
    g = torch.Generator().manual_seed(3)
    for spread in (2.0, 500.0):
        x = torch.randn(40, 4, generator=g) * spread
        index = torch.randint(0, 4, (40,), generator=g)
        index[::7] = -100
        _check(x, index, 2.0, alpha=[0.1, 0.2, 0.3, 0.4], ignore_index=-100)


def test_class_axis_not_first_nor_last():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, 6, 5, generator=g) * 4
    index = torch.randint(0, 6, (3, 4, 5), generator=g)
    _check(x, index, 2.0, dim=2)
