"""Directions and line search: the textbook properties, checked directly."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import optkit
from optkit import problems
from optkit.minimization import _loop, directions
from optkit.minimization import line_search as ls
from optkit.minimization.objective import AutogradObjective

F64 = torch.float64
PROPS = settings(max_examples=25, deadline=None, derandomize=True)


def random_spd(n, seed, cond=100.0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.logspace(0, math.log10(cond), n)
    A = (Q * lam) @ Q.T
    return torch.from_numpy(0.5 * (A + A.T)), torch.from_numpy(rng.standard_normal(n))


def objective_of(fun, n):
    return AutogradObjective.from_function(fun, (n,), F64, torch.device("cpu"), keep_graph=True)


def test_newton_solves_a_quadratic_in_one_step():
    A, b = random_spd(6, 0, cond=1e6)
    res = optkit.minimize(
        lambda x: 0.5 * x @ A @ x - b @ x,
        torch.zeros(6, dtype=F64),
        method="newton",
        options={"gtol": 1e-8},
    )
    assert res.nit == 1 and res.nhev == 1 and res.success
    torch.testing.assert_close(res.x, torch.linalg.solve(A, b))


def test_newton_modifies_an_indefinite_hessian_into_a_descent_direction():
    B = torch.diag(torch.tensor([2.0, -1.0], dtype=F64))
    obj = objective_of(lambda x: 0.5 * x @ B @ x, 2)
    x, g = torch.tensor([1.0, 1.0], dtype=F64), torch.tensor([2.0, -1.0], dtype=F64)
    d = directions.Newton()(x, 0.0, g, obj)
    assert float(g @ d) < 0
    # shift τ = 2|λ_min| = 2: (B + 2I) d = -g
    torch.testing.assert_close(d, torch.tensor([-0.5, 1.0], dtype=F64))


@pytest.mark.parametrize("n", [2, 5, 12])
def test_bfgs_with_exact_line_search_ends_in_at_most_n_iterations(n):
    A, b = random_spd(n, n, cond=1e3)
    x = torch.zeros(n, dtype=F64)
    H = directions.BFGS()
    g = A @ x - b
    k = 0
    while k < n:
        k += 1
        d = H(x, None, g, None)
        t = -float(g @ d) / float(d @ A @ d)  # exact minimizer along d
        x_new = x + t * d
        g_new = A @ x_new - b
        H.update(x_new - x, g_new - g)
        x, g = x_new, g_new
        if float(g.abs().max()) < 1e-9:
            break
    assert k <= n and float(g.abs().max()) < 1e-9


@PROPS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 8))
def test_bfgs_keeps_H_spd_and_meets_the_secant_equation(seed, n):
    A, b = random_spd(n, seed, cond=1e3)
    fun = lambda x: 0.5 * x @ A @ x - b @ x + 0.1 * (x**4).sum()  # noqa: E731
    obj = objective_of(fun, n)
    x0 = torch.from_numpy(np.random.default_rng(seed).standard_normal(n))
    H = directions.BFGS()
    prev = [x0, obj.value_and_grad(x0)[1]]
    checked = []

    def check(x, f, g, k):  # called after each update: H = H_k built from (s, y) of step k
        s, y = x - prev[0], g - prev[1]
        assert float(s @ y) > 0  # guaranteed by the curvature condition
        torch.testing.assert_close(H.H, H.H.T, rtol=0, atol=1e-12 * float(H.H.abs().max()))
        assert float(torch.linalg.eigvalsh(H.H)[0]) > 0
        torch.testing.assert_close(H.H @ y, s, rtol=1e-8, atol=1e-10)
        prev[:] = [x, g]
        checked.append(k)
        return False

    _loop.descent_loop(obj, x0, H, max_iter=6, gtol=1e-10, ftol=0.0, report=check)
    assert checked


@PROPS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 10), m=st.integers(1, 6))
def test_two_loop_equals_explicit_H_times_g(seed, n, m):
    rng = np.random.default_rng(seed)
    A, _ = random_spd(n, seed, cond=50.0)
    pairs = []
    for _ in range(m):
        s = torch.from_numpy(rng.standard_normal(n))
        y = A @ s  # yᵀs > 0
        pairs.append((s, y, 1.0 / float(y @ s)))
    gamma = float(pairs[-1][0] @ pairs[-1][1]) / float(pairs[-1][1] @ pairs[-1][1])
    H = gamma * torch.eye(n, dtype=F64)
    eye = torch.eye(n, dtype=F64)
    for s, y, rho in pairs:  # H₊ = VᵀHV + ρssᵀ, V = I − ρysᵀ
        V = eye - rho * torch.outer(y, s)
        H = V.T @ H @ V + rho * torch.outer(s, s)
    g = torch.from_numpy(rng.standard_normal(n))
    torch.testing.assert_close(directions.two_loop(g, pairs, gamma), H @ g)


@PROPS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 40), m=st.integers(1, 6))
def test_lbfgs_on_the_cpu_blas_path_equals_the_torch_two_loop(seed, n, m):
    # On the CPU, LBFGS runs the recursion with SciPy BLAS (on NumPy views of tensors, or on the
    # NumPy vectors of the NumPy path); it must be the same H·g as two_loop in torch (float64 to
    # 1e-12), also after the history wrapped around
    rng = np.random.default_rng(seed)
    A, _ = random_spd(n, seed, cond=50.0)
    lbfgs, lbfgs_np = directions.LBFGS(history=m), directions.LBFGS(history=m)
    for _ in range(m + 3):
        s = torch.from_numpy(rng.standard_normal(n))
        lbfgs.update(s, A @ s)
        lbfgs_np.update(s.numpy().copy(), (A @ s).numpy())
        g = torch.from_numpy(rng.standard_normal(n))
        d = lbfgs(None, None, g, None)
        ref = -directions.two_loop(g, list(lbfgs.pairs), lbfgs.gamma)
        torch.testing.assert_close(d, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))
        d_np = lbfgs_np(None, None, g.numpy(), None)
        assert isinstance(d_np, np.ndarray)
        np.testing.assert_allclose(
            d_np, ref.numpy(), rtol=1e-12, atol=1e-12 * float(ref.abs().max())
        )
    lbfgs32 = directions.LBFGS(history=m)  # float32 goes through sdot / saxpy
    for s, y, _ in lbfgs.pairs:
        lbfgs32.update(s.float(), y.float())
    d32 = lbfgs32(None, None, g.float(), None)
    assert d32.dtype == torch.float32
    torch.testing.assert_close(d32.double(), d, rtol=1e-3, atol=1e-3 * float(d.abs().max()))


@pytest.mark.parametrize("name", ["rosenbrock", "wood", "quadratic_20", "box_3d"])
def test_lbfgs_with_full_memory_equals_bfgs_with_the_same_scaled_H0(name):
    p = problems.PROBLEMS[name]
    runs = []
    for direction in (directions.BFGS(h0="scaled"), directions.LBFGS(history=10_000, h0="first")):
        obj = objective_of(p.fun, p.dim)
        runs.append(
            _loop.descent_loop(
                obj, p.start(), direction, max_iter=40, gtol=1e-5, ftol=0.0, record=True
            )
        )
    a, b = runs
    assert a.nit == b.nit
    for xa, xb in zip(a.xs, b.xs, strict=True):
        torch.testing.assert_close(xa, xb, rtol=1e-7, atol=1e-9)


class WolfeChecker:
    """Wraps the loop's line-search step; asserts both strong Wolfe conditions on every step it
    accepts, from the step itself: t from x₊ = x + t·d, φ(t) = f₊ and φ′(t) = g₊ᵀd (the first
    trial is accepted in the loop, later ones by the search)."""

    def __init__(self):
        self.accepted = 0
        self.call = _loop._Stepper.__call__

    def __call__(self, stepper, x, f, g, d, direction, k, f_prev):
        out = self.call(stepper, x, f, g, d, direction, k, f_prev)
        x_new, f_new, g_new, accepted, _ = out
        if accepted:
            dphi0 = float(g @ d)
            t = float((x_new - x) @ d) / float(d @ d)
            f_noise = stepper.noise * abs(f)
            assert f_new <= f + stepper.c1 * t * dphi0 + f_noise + 1e-12 * abs(f), "decrease"
            assert abs(float(g_new @ d)) <= stepper.c2 * abs(dphi0) * (1 + 1e-9), "curvature"
            self.accepted += 1
        return out


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "newton", "newton-cg"])
def test_every_accepted_step_satisfies_strong_wolfe(method, monkeypatch):
    checker = WolfeChecker()
    monkeypatch.setattr(
        _loop._Stepper, "__call__", lambda self, *args: checker(self, *args), raising=True
    )
    for name in ["rosenbrock", "beale", "wood", "helical_valley", "osborne1", "watson_6"]:
        p = problems.PROBLEMS[name]
        optkit.minimize(p.fun, p.start(), method=method)
    assert checker.accepted > 50


@PROPS
@given(
    a=st.floats(0.1, 100.0), b=st.floats(0.01, 50.0), c=st.floats(0.0, 5.0), t0=st.floats(1e-4, 1e3)
)
def test_strong_wolfe_on_random_1d_functions(a, b, c, t0):
    # phi(t) = a (t - b)² + c t⁴ - decreasing at 0 whenever b > 0
    def phi(t):
        return a * (t - b) ** 2 + c * t**4, 2 * a * (t - b) + 4 * c * t**3

    f0, d0 = phi(0.0)
    if d0 >= 0:
        return
    out = ls.strong_wolfe(phi, f0, d0, t0)
    assert out.success
    assert out.f <= f0 + 1e-4 * out.t * d0 and abs(out.dphi) <= 0.9 * abs(d0)


def test_line_searches_shrink_away_from_nan():
    def phi(t):
        return (math.nan, math.nan) if t > 0.5 else ((t - 0.3) ** 2, 2 * (t - 0.3))

    for search in (ls.strong_wolfe, ls.armijo):
        out = search(phi, 0.09, -0.6, 1.0)
        assert out.success and out.nonfinite and 0 < out.t <= 0.5
    out = ls.strong_wolfe(lambda t: (math.nan, math.nan), 1.0, -1.0, 1.0)
    assert not out.success and out.nonfinite and out.t == 0.0


def test_cubic_interpolation_is_exact_on_quadratics():
    # phi = (t - 0.7)²: one zoom evaluation lands on the minimizer
    calls = []

    def phi(t):
        calls.append(t)
        return (t - 0.7) ** 2, 2 * (t - 0.7)

    out = ls.strong_wolfe(phi, 0.49, -1.4, 5.0, c2=0.01)
    assert out.success and abs(out.t - 0.7) < 1e-12 and len(calls) == 2
