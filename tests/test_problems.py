"""optkit.problems: the registry is consistent and every function is differentiable."""

import math

import pytest
import torch

from optkit import problems
from optkit.problems import PROBLEMS


def test_registry_names_match():
    assert len(PROBLEMS) >= 25
    for name, p in PROBLEMS.items():
        assert p.name == name and p.dim == p.x0.numel() and p.description


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_known_minimizers_attain_f_star(name):
    p = PROBLEMS[name]
    if p.x_star is None:
        pytest.skip("minimizer not known in closed form")
    x = p.x_star.clone().requires_grad_(True)
    f = p.fun(x)
    (g,) = torch.autograd.grad(f, x)
    assert abs(float(f.detach()) - p.f_star) <= 1e-10 * max(1.0, abs(p.f_star))
    assert float(g.abs().max()) <= 1e-6


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scalar_finite_at_x0_in_both_dtypes(name, dtype):
    p = PROBLEMS[name]
    x = p.start(dtype).requires_grad_(True)
    f = p.fun(x)
    (g,) = torch.autograd.grad(f, x)
    f = f.detach()
    assert f.shape == () and f.dtype == dtype and math.isfinite(float(f))
    assert bool(torch.isfinite(g).all()) and float(f) >= p.f_star - 1e-9


def test_start_returns_a_fresh_copy():
    p = PROBLEMS["rosenbrock"]
    x = p.start()
    x += 1
    assert p.x0.tolist() == [-1.2, 1.0]


def test_factories():
    assert problems.rosenbrock(6).dim == 6
    assert problems.extended_rosenbrock(8).f_star == 0.0
    with pytest.raises(ValueError, match="even"):
        problems.extended_rosenbrock(3)
    q = problems.quadratic(5, 1e3)
    assert abs(float(q.fun(q.x_star)) - q.f_star) < 1e-12
    lr = problems.logistic_regression(200, 4, seed=1)
    assert set(lr.data) == {"X", "y", "l2"}
    x = lr.x_star.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(lr.fun(x), x)
    assert float(g.abs().max()) < 1e-12


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_loss_analytic_gradient_matches_autograd(n_classes):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    y = torch.arange(40) % n_classes
    loss = problems.LogisticLoss(X.numpy(), y, C=0.5)
    assert loss.X.stride(0) == 1 and loss.shape == ((6,) if n_classes == 2 else (6, n_classes))
    x = 0.3 * torch.randn(loss.shape, generator=gen, dtype=torch.float64)
    f, g = loss.value_and_grad(x)
    xg = x.clone().requires_grad_(True)
    fa = loss(xg)
    (ga,) = torch.autograd.grad(fa, xg)
    assert abs(f - float(fa.detach())) <= 1e-14 and torch.allclose(g, ga, rtol=1e-12, atol=1e-14)
    v = torch.randn(loss.shape, generator=gen, dtype=torch.float64)
    for at in (x, x + 0.1):  # P cached from value_and_grad at x; recomputed at x + 0.1
        hv = torch.func.jvp(torch.func.grad(loss), (at,), (v,))[1]
        assert torch.allclose(loss.hessp(at, v), hv, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="C must be > 0"):
        problems.LogisticLoss(X, y, C=0.0)
