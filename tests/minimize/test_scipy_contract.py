"""optkit.minimize called the way SciPy's tutorial and reference call scipy.optimize.minimize.

Each test makes the same call to both libraries (NumPy functions, as a SciPy user writes them)
and checks optkit's result against SciPy's in the same test: the solution, the status, the
result's form (a dict with attribute access, NumPy out), and the evaluation counts where the two
algorithms are the same. Sources: the SciPy tutorial "Optimization (scipy.optimize)",
unconstrained and bound-constrained minimization, and the ``scipy.optimize.minimize`` reference
examples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize as so
import torch
from scipy.optimize import Bounds, rosen, rosen_der, rosen_hess, rosen_hess_prod

import optkit
from optkit.minimization import METHODS, Status

X0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])  # the tutorial's start
SCIPY_BFGS_KEYS = {"x", "fun", "jac", "hess_inv", "nit", "nfev", "njev", "status", "success"}


def assert_like_scipy(res, ref, atol=1e-5, fun_atol=1e-8):
    """Same solution, status and result form as SciPy's."""
    assert isinstance(res, dict) and isinstance(res.x, np.ndarray)
    assert res.x.shape == ref.x.shape and res.x.dtype == ref.x.dtype
    np.testing.assert_allclose(res.x, ref.x, atol=atol, rtol=0)
    assert abs(res.fun - float(ref.fun)) <= fun_atol + 1e-8 * abs(float(ref.fun))
    assert int(res.status) == int(ref.status) and res.success == ref.success
    assert res["x"] is res.x and {"x", "fun", "status", "success", "message", "nit"} <= set(res)


def both(*args, **kwargs):
    return optkit.minimize(*args, **kwargs), so.minimize(*args, **kwargs)


# --- the tutorial: unconstrained minimization ----------------------------------------------------
def test_bfgs_with_gradient_and_disp(capsys):
    res, ref = both(rosen, X0, method="BFGS", jac=rosen_der, options={"disp": True})
    assert_like_scipy(res, ref)
    assert res.nfev <= ref.nfev and res.njev <= ref.njev
    ours, theirs = capsys.readouterr().out.split("Optimization terminated successfully.")[1:]
    assert ours.split()[:3] == theirs.split()[:3] == ["Current", "function", "value:"]
    assert "Gradient evaluations" in ours


def test_bfgs_without_gradient_uses_scipys_finite_differences():
    res, ref = both(rosen, X0, method="BFGS")
    assert_like_scipy(res, ref, atol=1e-4)
    assert res.nfev <= 1.1 * ref.nfev  # each gradient costs n + 1 calls of fun in both
    assert res.njev > 0


def test_bfgs_with_fun_returning_value_and_gradient():
    def f(x):
        return rosen(x), rosen_der(x)

    res, ref = both(f, X0, jac=True, method="BFGS")
    assert_like_scipy(res, ref)
    assert res.nfev == res.njev and res.nfev <= ref.nfev


def test_newton_cg_with_full_hessian():
    kw = {"method": "Newton-CG", "jac": rosen_der, "hess": rosen_hess}
    res, ref = both(rosen, X0, options={"xtol": 1e-8}, **kw)
    assert_like_scipy(res, ref, atol=1e-7)
    assert res.nhev > 0 and ref.nhev > 0


def test_newton_cg_with_hessian_vector_product():
    kw = {"method": "Newton-CG", "jac": rosen_der, "hessp": rosen_hess_prod}
    res, ref = both(rosen, X0, options={"xtol": 1e-8}, **kw)
    assert_like_scipy(res, ref, atol=1e-7)


def test_newton_cg_with_gradient_only():  # H·p by differences of the gradient, in both
    res, ref = both(rosen, X0, method="Newton-CG", jac=rosen_der)
    assert_like_scipy(res, ref, atol=1e-3, fun_atol=1e-7)  # SciPy stops on xtol, optkit on gtol
    np.testing.assert_allclose(res.x, np.ones(5), atol=1e-5)


def test_args_are_passed_to_every_callable():
    a, b = 2.0, np.array([1.0, -2.0, 3.0])

    def f(x, a, b):
        return a * np.sum((x - b) ** 2) + np.sum(x**4)

    def g(x, a, b):
        return 2 * a * (x - b) + 4 * x**3

    def hp(x, p, a, b):
        return (2 * a + 12 * x**2) * p

    for kw in ({"method": "BFGS", "jac": g}, {"method": "Newton-CG", "jac": g, "hessp": hp}):
        res, ref = both(f, np.zeros(3), args=(a, b), **kw)
        assert_like_scipy(res, ref, atol=1e-6)
    res, ref = both(lambda x, c: np.sum((x - c) ** 2), np.zeros(2), args=5.0)  # a non-tuple
    assert_like_scipy(res, ref, atol=1e-6)


# --- the reference: options, tol, results --------------------------------------------------------
def test_reference_example_bfgs_gtol_and_hess_inv():
    res, ref = both(rosen, X0, method="BFGS", jac=rosen_der, options={"gtol": 1e-6})
    assert_like_scipy(res, ref, atol=1e-6)
    assert SCIPY_BFGS_KEYS <= set(res)
    assert res.message == ref.message.rstrip() or res.message.startswith(ref.message)
    H, H_ref = res.hess_inv, ref.hess_inv
    assert isinstance(H, np.ndarray) and H.shape == H_ref.shape == (5, 5)
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    assert np.linalg.eigvalsh(H)[0] > 0
    # both approximate the inverse Hessian at the minimizer along its stiff directions
    exact = np.linalg.inv(rosen_hess(ref.x))
    top = np.linalg.eigh(exact)[1][:, -1]
    assert abs(top @ H @ top / (top @ exact @ top) - 1) < 0.5
    assert abs(top @ H_ref @ top / (top @ exact @ top) - 1) < 0.5


def test_tol_sets_the_methods_tolerances_as_scipy():
    for method in ("BFGS", "L-BFGS-B", "Newton-CG"):
        jac = rosen_der
        hess = rosen_hess if method == "Newton-CG" else None
        res, ref = both(rosen, X0, method=method, jac=jac, hess=hess, tol=1e-10)
        assert_like_scipy(res, ref, atol=1e-7)
    loose, _ = both(rosen, X0, method="L-BFGS-B", jac=rosen_der, tol=1e-2)
    assert loose.nit < res.nit


def test_maxiter_status_and_message():
    for method in ("BFGS", "L-BFGS-B", "Newton-CG"):
        res, ref = both(rosen, X0, method=method, jac=rosen_der, options={"maxiter": 3})
        assert res.status == ref.status == 1 and not res.success and res.nit == ref.nit == 3
        assert res.message.startswith(ref.message.removeprefix("Warning: "))


def test_lbfgsb_options_and_inverse_hessian_operator():
    opts = {"maxcor": 5, "ftol": 1e-12, "gtol": 1e-8, "maxls": 30, "maxfun": 1000}
    res, ref = both(rosen, X0, method="L-BFGS-B", jac=rosen_der, options=opts)
    assert_like_scipy(res, ref, atol=1e-6)
    assert res.message == ref.message
    H = res.hess_inv
    assert H.shape == ref.hess_inv.shape == (5, 5) and H.sk.shape[0] <= 5
    v = np.arange(1.0, 6.0)
    np.testing.assert_allclose(H @ v, H.todense() @ v, rtol=1e-12)
    np.testing.assert_allclose(H.matvec(v), H.dot(v), rtol=0)
    np.testing.assert_allclose(H.todense(), H.todense().T, atol=1e-12)


def test_lbfgsb_maxfun_stops_like_scipy():
    res, ref = both(rosen, X0, method="L-BFGS-B", jac=rosen_der, options={"maxfun": 10})
    assert res.status == ref.status == 1 and res.message == ref.message
    assert ref.nfev - 2 <= res.nfev <= ref.nfev + 2


def test_unbounded_lbfgsb_agrees_with_scipy_on_a_small_logistic_regression():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 10))
    y = (X @ rng.standard_normal(10) + 0.5 * rng.standard_normal(200) > 0) * 2.0 - 1.0

    def loss(w):
        z = y * (X @ w)
        return np.sum(np.logaddexp(0.0, -z)) + 0.5 * w @ w

    def grad(w):
        z = y * (X @ w)
        return -X.T @ (y / (1.0 + np.exp(z))) + w

    res, ref = both(loss, np.zeros(10), method="L-BFGS-B", jac=grad)
    assert_like_scipy(res, ref, atol=1e-4, fun_atol=1e-7)
    assert res.nfev <= ref.nfev + 2


def test_finite_difference_schemes():
    for scheme in ("2-point", "3-point", "cs"):
        res, ref = both(rosen, X0, method="BFGS", jac=scheme)
        assert_like_scipy(res, ref, atol=1e-4)
    res, ref = both(rosen, X0, method="BFGS", jac="3-point", options={"finite_diff_rel_step": 1e-4})
    assert_like_scipy(res, ref, atol=1e-3)


def test_bfgs_norm_xrtol_c1_c2_and_hess_inv0():
    for opts in (
        {"norm": 2},
        {"xrtol": 1e-6},
        {"c1": 1e-3, "c2": 0.5},
        {"hess_inv0": 0.01 * np.eye(5)},
    ):
        res, ref = both(rosen, X0, method="BFGS", jac=rosen_der, options=opts)
        assert_like_scipy(res, ref, atol=1e-4)


def test_return_all():
    res, ref = both(rosen, X0, method="BFGS", jac=rosen_der, options={"return_all": True})
    assert len(res.allvecs) == res.nit + 1 and len(ref.allvecs) == ref.nit + 1
    np.testing.assert_array_equal(res.allvecs[0], X0)
    np.testing.assert_array_equal(res.allvecs[-1], res.x)


def test_default_method_is_bfgs_and_results_are_dicts():
    res, ref = both(rosen, X0, jac=rosen_der)
    assert_like_scipy(res, ref)
    assert res.method == "bfgs"
    assert set(ref.keys()) <= set(res.keys())
    assert res["nit"] == res.nit and res.get("nope") is None
    with pytest.raises(AttributeError):
        res.nope  # noqa: B018


# --- callbacks -----------------------------------------------------------------------------------
def test_legacy_callback_receives_xk():
    seen, seen_ref = [], []
    res = optkit.minimize(rosen, X0, jac=rosen_der, callback=lambda xk: seen.append(xk))
    ref = so.minimize(rosen, X0, jac=rosen_der, callback=lambda xk: seen_ref.append(xk))
    assert all(isinstance(x, np.ndarray) and x.shape == (5,) for x in seen)
    assert len(seen) == res.nit and len(seen_ref) == ref.nit
    np.testing.assert_array_equal(seen[-1], res.x)
    np.testing.assert_allclose(seen[0], seen_ref[0], rtol=1e-10)  # the same first step


def test_intermediate_result_callback_and_stop_iteration():
    def make():
        calls = []

        def callback(intermediate_result):
            calls.append(intermediate_result.fun)
            assert isinstance(intermediate_result.x, np.ndarray)
            if len(calls) == 3:
                raise StopIteration

        return callback, calls

    for method in ("BFGS", "L-BFGS-B", "Newton-CG"):
        (cb, calls), (cb_ref, calls_ref) = make(), make()
        res = optkit.minimize(rosen, X0, method=method, jac=rosen_der, callback=cb)
        ref = so.minimize(rosen, X0, method=method, jac=rosen_der, callback=cb_ref)
        assert res.status == ref.status == 99 and res.success is ref.success is False
        assert res.message == ref.message
        assert res.nit == 3 and len(calls) == len(calls_ref) == 3
        assert res.fun == calls[-1]


# --- bounds (L-BFGS-B) --------------------------------------------------------------------------
def lbfgsb_available():
    try:
        import optkit.minimization.lbfgsb  # noqa: F401
    except ImportError:
        return False
    return True


needs_lbfgsb = pytest.mark.skipif(not lbfgsb_available(), reason="optkit.minimization.lbfgsb")


@needs_lbfgsb
def test_reference_example_bounds_as_pairs():
    fun = lambda x: (x[0] - 1) ** 2 + (x[1] - 2.5) ** 2  # noqa: E731
    bnds = ((0, None), (0, 2.0))
    res, ref = both(fun, (2, 0), method="L-BFGS-B", bounds=bnds)
    assert_like_scipy(res, ref, atol=1e-6)
    np.testing.assert_allclose(res.x, [1.0, 2.0], atol=1e-6)


@needs_lbfgsb
def test_bounds_object_default_method_and_x0_outside():
    bounds = Bounds([-np.inf, 0.5, -1.0, -np.inf, 1.5], [np.inf, np.inf, 0.5, 2.0, 3.0])
    res, ref = both(rosen, np.full(5, 4.0), jac=rosen_der, bounds=bounds)
    assert res.method == "l-bfgs-b"
    assert_like_scipy(res, ref, atol=1e-5)
    assert np.all(res.x >= bounds.lb) and np.all(res.x <= bounds.ub)


@needs_lbfgsb
def test_bounded_finite_differences_and_callback():
    seen = []
    bnds = [(None, 0.5)] * 5
    res = optkit.minimize(rosen, X0, method="L-BFGS-B", bounds=bnds, callback=seen.append)
    ref = so.minimize(rosen, X0, method="L-BFGS-B", bounds=bnds)
    assert_like_scipy(res, ref, atol=1e-4)
    assert len(seen) == res.nit and all(np.all(x <= 0.5) for x in seen)


def test_bounds_are_validated():
    with pytest.raises(ValueError, match=r"one \(min, max\) pair per variable"):
        optkit.minimize(rosen, X0, method="L-BFGS-B", bounds=[(0, 1)] * 4)
    with pytest.raises(ValueError, match=r"bounds\[1\]: the lower bound 2.0 exceeds"):
        optkit.minimize(rosen, X0[:2], method="L-BFGS-B", bounds=[(0, 1), (2, 1)])
    with pytest.raises(ValueError, match=r"bounds\[0\] must be a \(min, max\) pair"):
        optkit.minimize(rosen, X0[:2], method="L-BFGS-B", bounds=[0, 1])


def test_infinite_bounds_run_unbounded_and_other_methods_warn_like_scipy():
    bnds = [(None, None)] * 5
    res, ref = both(rosen, X0, method="L-BFGS-B", jac=rosen_der, bounds=bnds)
    assert_like_scipy(res, ref, atol=1e-5)
    with pytest.warns(RuntimeWarning, match="cannot handle"):
        res = optkit.minimize(rosen, X0, method="BFGS", jac=rosen_der, bounds=bnds)
    with pytest.warns(RuntimeWarning, match="cannot handle"):
        ref = so.minimize(rosen, X0, method="BFGS", jac=rosen_der, bounds=bnds)
    assert_like_scipy(res, ref)


# --- names and kinds -----------------------------------------------------------------------------
def test_method_names_scipy_and_optkit_spellings():
    ref = so.minimize(rosen, X0, method="L-BFGS-B", jac=rosen_der)
    for name in ("L-BFGS-B", "l-bfgs-b", "L_BFGS_B"):
        assert_like_scipy(optkit.minimize(rosen, X0, method=name, jac=rosen_der), ref)
    assert optkit.minimize(rosen, X0, method="lbfgs", jac=rosen_der).method == "lbfgs"
    assert optkit.minimize(rosen, X0, method="bfgs", jac=rosen_der).method == "bfgs"
    assert optkit.minimize.METHODS is METHODS and "l-bfgs-b" in optkit.minimize.METHODS
    with pytest.raises(ValueError, match=r"valid methods: .*L-BFGS-B"):
        optkit.minimize(rosen, X0, method="Nelder-Mead")
    with pytest.raises(ValueError, match="constraints"):
        optkit.minimize(rosen, X0, constraints=[{"type": "eq", "fun": np.sum}])


def test_optkit_option_aliases():
    a = optkit.minimize(rosen, X0, jac=rosen_der, method="lbfgs", options={"history": 3})
    b = optkit.minimize(rosen, X0, jac=rosen_der, method="lbfgs", options={"maxcor": 3})
    assert a.nfev == b.nfev and np.array_equal(a.x, b.x)
    assert optkit.minimize(rosen, X0, jac=rosen_der, options={"max_iter": 2}).nit == 2
    with pytest.raises(ValueError, match="another name of 'maxiter'"):
        optkit.minimize(rosen, X0, jac=rosen_der, options={"max_iter": 2, "maxiter": 3})


def test_list_and_integer_x0_give_float_numpy_results():
    res, ref = both(rosen, [1, 1, 0, 2, 1], method="BFGS", jac=rosen_der)
    assert_like_scipy(res, ref, atol=1e-5)
    assert res.x.dtype == np.float64 and isinstance(res.jac, np.ndarray)


def test_torch_function_keeps_tensors_and_dtype_with_scipy_method_names():
    def trosen(x):
        return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()

    ref = so.minimize(rosen, X0, method="L-BFGS-B", jac=rosen_der)
    for dtype in (torch.float64, torch.float32):
        res = optkit.minimize(trosen, torch.tensor(X0, dtype=dtype), method="L-BFGS-B")
        assert isinstance(res.x, torch.Tensor) and res.x.dtype == dtype
        assert res.jac.dtype == dtype and res.status == ref.status
        tol = 1e-5 if dtype == torch.float64 else 2e-3
        np.testing.assert_allclose(res.x.double().numpy(), ref.x, atol=tol)
        H = res.hess_inv
        assert isinstance(H.sk, torch.Tensor) and (H @ res.jac).dtype == dtype
    res = optkit.minimize(trosen, torch.tensor(X0), method="BFGS", tol=1e-8)
    assert isinstance(res.hess_inv, torch.Tensor) and res.hess_inv.shape == (5, 5)


def test_nan_objective_is_a_status_as_in_scipy():
    def f(x):
        return math.nan if x[0] > 2.0 else rosen(x)

    res = optkit.minimize(f, np.array([3.0, 1.0]), jac=rosen_der, method="BFGS")
    assert res.status == Status.NONFINITE and not res.success
