"""Method × problem matrix on optkit.problems: parity with SciPy, pinned evaluation counts."""

import numpy as np
import pytest
import scipy.optimize as so
import torch

import optkit
from optkit.problems import PROBLEMS

# problems with a unique minimizer (near the standard start) that SciPy's BFGS also reaches
PARITY = [
    "rosenbrock",
    "beale",
    "booth",
    "himmelblau",
    "helical_valley",
    "bard",
    "gaussian",
    "wood",
    "kowalik_osborne",
    "brown_dennis",
    "osborne1",
    "watson_6",
    "penalty1_4",
    "variably_dimensioned_10",
    "discrete_boundary_10",
    "broyden_tridiagonal_10",
    "quadratic_20",
    "logistic_regression_500x20",
]
METHODS = ["bfgs", "lbfgs", "newton-cg", "newton"]


def value_and_grad(fun):
    def fg(x):
        t = torch.tensor(x, requires_grad=True)
        f = fun(t)
        (g,) = torch.autograd.grad(f, t)
        return float(f.detach()), g.numpy()

    return fg


def hessian(fun):
    return lambda x: torch.autograd.functional.hessian(fun, torch.tensor(x)).numpy()


_SCIPY = {}


def scipy_minimizer(name):
    if name not in _SCIPY:
        p = PROBLEMS[name]
        r = so.minimize(
            value_and_grad(p.fun),
            p.x0.numpy(),
            jac=True,
            hess=hessian(p.fun),
            method="trust-exact",
            options={"gtol": 1e-10, "maxiter": 2000},
        )
        _SCIPY[name] = r.x
    return _SCIPY[name]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", PARITY)
def test_same_minimizer_as_scipy(name, method):
    p = PROBLEMS[name]
    res = optkit.minimize(p.fun, p.start(), method=method, options={"gtol": 1e-10})
    assert res.status in (0, 2), res.message  # 2: precision limit reached before gtol 1e-10
    ref = scipy_minimizer(name)
    scale = np.maximum(1.0, np.abs(ref))
    err = np.abs(res.x.numpy() - ref) / scale
    assert err.max() <= 1e-6, (name, method, err.max())
    if p.x_star is not None:
        np.testing.assert_allclose(res.x.numpy(), p.x_star.numpy(), rtol=1e-6, atol=1e-6)


# "Known good" evaluation counts (gtol 1e-5, float64, torch on x86). Do not let these grow: a
# change that needs more evaluations here is a regression unless argued otherwise. CPUs round
# differently in their BLAS kernels, and long runs drift by an evaluation or two (Wood with
# lbfgs: 103 on one x86 machine, 104 on another), so each count may be exceeded by 3 % (≥ 1).
PINNED = {
    # (problem, method): (nfev, njev, nhev)
    ("rosenbrock", "bfgs"): (39, 39, 0),
    ("rosenbrock", "lbfgs"): (45, 45, 0),
    ("rosenbrock", "newton"): (28, 28, 21),
    ("rosenbrock", "newton-cg"): (102, 102, 123),
    ("wood", "bfgs"): (95, 95, 0),
    ("wood", "lbfgs"): (103, 103, 0),
    ("beale", "bfgs"): (17, 17, 0),
    ("logistic_regression_500x20", "lbfgs"): (8, 8, 0),
    ("logistic_regression_500x20", "newton-cg"): (6, 6, 11),
    ("quadratic_20", "newton"): (2, 2, 1),
}


@pytest.mark.parametrize(("name", "method"), list(PINNED))
def test_pinned_evaluation_counts(name, method):
    p = PROBLEMS[name]
    res = optkit.minimize(p.fun, p.start(), method=method)
    assert res.success
    pinned = PINNED[name, method]
    for what, count, limit in zip(("nfev", "njev", "nhev"), (res.nfev, res.njev, res.nhev), pinned):
        assert count <= limit + max(1, round(0.03 * limit)) if limit else count == 0, (what, count)


@pytest.mark.parametrize("method", METHODS)
def test_solves_most_of_the_set(method):
    solved = []
    for name, p in PROBLEMS.items():
        res = optkit.minimize(p.fun, p.start(), method=method)
        if res.success and res.fun <= p.f_star + 1e-6 * max(1.0, abs(p.f_star)):
            solved.append(name)
    assert len(solved) >= len(PROBLEMS) - 4, sorted(set(PROBLEMS) - set(solved))
