"""minimize / minimize_module: arguments, statuses, bridges, dtypes."""

import math

import numpy as np
import pytest
import torch

import optkit
from optkit.minimization import METHODS, Status

SECOND_ORDER = ["newton", "newton-cg", "bfgs", "lbfgs"]


def rosen(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def rosen_np(x):
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def rosen_der_np(x):
    g = np.zeros_like(x)
    g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200 * (x[1:] - x[:-1] ** 2)
    return g


X0 = [-1.2, 1.0]


# --- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"method": "sgd"}, ValueError, "unknown method 'sgd'; valid methods: gd, momentum"),
        ({"method": 3}, TypeError, "method must be a string"),
        (
            {"options": {"foo": 1, "lr": 0.1}},
            ValueError,
            r"unknown option\(s\) for method "
            r"'bfgs': 'foo', 'lr'",
        ),
        ({"options": [("gtol", 1)]}, TypeError, "options must be a dict"),
        ({"options": {"gtol": -1.0}}, ValueError, r"options\['gtol'\] must be .*>= 0, got -1.0"),
        ({"options": {"max_iter": 2.5}}, ValueError, "max_iter.*integer"),
        ({"options": {"c1": 0.5, "c2": 0.1}}, ValueError, "c1 < c2"),
        ({"options": {"line_search": "exact"}}, ValueError, "line_search.*strong-wolfe"),
        ({"method": "lbfgs", "options": {"history": 0}}, ValueError, "history"),
        (
            {"method": "adam", "options": {"betas": (1.0, 0.9)}},
            ValueError,
            r"betas'\]\[0\] must be in \[0, 1\), got 1.0",
        ),
        ({"x0": [float("nan"), 1.0]}, ValueError, "x0 must be finite"),
        ({"x0": torch.tensor([math.inf, 1.0])}, ValueError, "x0 must be finite"),
        ({"x0": []}, ValueError, "at least one element"),
        ({"x0": ["a", "b"]}, TypeError, "real numbers"),
        ({"x0": torch.tensor([1 + 1j])}, TypeError, "complex"),
        (
            {"fun": lambda x: x * 2},
            ValueError,
            r"fun must return a scalar, got a tensor of "
            r"shape \(2,\)",
        ),
        ({"fun": 3}, TypeError, "fun must be callable"),
        ({"fun": lambda x: 1.0}, TypeError, "fun must return a torch tensor when jac=None"),
        ({"jac": "4-point"}, TypeError, "jac must be None"),
        ({"callback": 5}, TypeError, "callback must be callable"),
        ({"tol": -1}, ValueError, "tol must be .*>= 0"),
    ],
)
def test_bad_arguments_raise(kwargs, exc, match):
    args = {"fun": rosen, "x0": torch.tensor(X0, dtype=torch.float64), **kwargs}
    with pytest.raises(exc, match=match):
        optkit.minimize(args.pop("fun"), args.pop("x0"), **args)


def test_numpy_fun_returning_vector_is_rejected():
    with pytest.raises(ValueError, match="fun must return a scalar"):
        optkit.minimize(lambda x: x, np.array(X0), jac=lambda x: x)


def test_method_names_are_case_and_underscore_insensitive():
    res = optkit.minimize(rosen, torch.tensor(X0, dtype=torch.float64), method="Newton_CG")
    assert res.method == "newton-cg" and res.success


def test_registry_lists_every_method_with_its_needs():
    assert list(METHODS) == [
        "gd",
        "momentum",
        "nesterov",
        "rmsprop",
        "adam",
        "adamw",
        "newton",
        "newton-cg",
        "bfgs",
        "lbfgs",
        "l-bfgs-b",
    ]
    assert {m.needs for m in METHODS.values()} == {"grad", "hess", "hessp"}
    assert METHODS["lbfgs"].options["maxcor"] == 10
    assert METHODS["bfgs"].options["gtol"] == 1e-5


# --- statuses: trouble is returned, never raised ---------------------------------------
def nan_after(k):
    """rosen, but every evaluation after the k-th returns NaN."""
    calls = {"n": 0}

    def fun(x):
        calls["n"] += 1
        f = rosen(x)
        return f * math.nan if calls["n"] > k else f

    return fun


@pytest.mark.parametrize("method", [*SECOND_ORDER, "gd", "adam"])
def test_nan_mid_run_is_a_status(method):
    opts = {"lr": 1e-3} if method in ("gd", "adam") else {}
    res = optkit.minimize(
        nan_after(6), torch.tensor(X0, dtype=torch.float64), method=method, options=opts
    )
    assert res.status == Status.NONFINITE and not res.success
    assert "non-finite" in res.message
    assert torch.isfinite(res.x).all() and math.isfinite(res.fun)
    assert res.fun <= 24.2 + 1e-12  # never worse than f(x0)


def test_nonfinite_at_x0_is_a_status():
    res = optkit.minimize(lambda x: torch.log(x).sum(), torch.tensor([-1.0]))
    assert res.status == Status.NONFINITE and res.nit == 0


def test_max_iter_status():
    res = optkit.minimize(rosen, torch.tensor(X0, dtype=torch.float64), options={"max_iter": 3})
    assert res.status == Status.MAX_ITER and res.nit == 3 and not res.success
    assert res.message == Status.MAX_ITER.message


def test_line_search_failure_is_a_status():
    # a gradient of the wrong sign: no step along "descent" decreases f
    res = optkit.minimize(lambda x: float(x @ x), np.array([1.0, 2.0]), jac=lambda x: -2 * x)
    assert res.status == Status.LINE_SEARCH and not res.success and res.nit == 0
    assert res.message.startswith("Desired error not necessarily achieved")
    np.testing.assert_array_equal(res.x, [1.0, 2.0])


def test_unbounded_below_ends_without_exception():
    res = optkit.minimize(
        lambda x: -(x**2).sum(),
        torch.tensor([1.0], dtype=torch.float64),
        method="lbfgs",
        options={"max_iter": 20},
    )
    # f = −x² has no minimum: the line search keeps extrapolating and stops on its own
    # precision limit, having driven f far down, with a finite iterate (never an exception)
    assert res.status == Status.LINE_SEARCH and not res.success
    assert res.fun < -1e12 and torch.isfinite(res.x).all()
    assert res.fun == pytest.approx(-float(res.x @ res.x), rel=1e-12)


def test_callback_sees_each_iterate_and_can_stop():
    seen = []

    def cb(intermediate_result):
        r = intermediate_result
        seen.append((r.nit, r.fun))
        return r.nit == 4

    res = optkit.minimize(rosen, torch.tensor(X0, dtype=torch.float64), callback=cb)
    assert [k for k, _ in seen] == [1, 2, 3, 4]
    assert res.status == Status.CALLBACK and res.nit == 4 and res.fun == seen[-1][1]

    def stop(r):
        raise StopIteration

    assert optkit.minimize(rosen, torch.tensor(X0), callback=stop).status == Status.CALLBACK


def test_record_trajectory():
    res = optkit.minimize(rosen, torch.tensor(X0, dtype=torch.float64), options={"record": True})
    traj = res.trajectory
    assert traj.x.shape == (res.nit + 1, 2) and traj.fun.shape == (res.nit + 1,)
    assert traj.x[0].tolist() == X0 and float(traj.fun[-1]) == res.fun
    assert bool((traj.fun[1:] <= traj.fun[:-1]).all())  # line-search methods descend


# --- shapes, dtypes, bridges -----------------------------------------------------------------
@pytest.mark.parametrize("method", SECOND_ORDER)
def test_float32(method):
    x0 = torch.tensor(X0, dtype=torch.float32)
    res = optkit.minimize(rosen, x0, method=method)
    assert res.x.dtype == torch.float32 and res.jac.dtype == torch.float32
    assert res.status in (Status.SUCCESS, Status.LINE_SEARCH)
    assert torch.allclose(res.x, torch.ones(2), atol=1e-3)


def test_any_shape_and_x0_untouched():
    target = torch.arange(6.0, dtype=torch.float64).reshape(2, 3)
    x0 = torch.zeros(2, 3, dtype=torch.float64)
    res = optkit.minimize(lambda x: ((x - target) ** 4).sum() + ((x - target) ** 2).sum(), x0)
    assert res.x.shape == (2, 3) and res.jac.shape == (2, 3)
    assert torch.allclose(res.x, target, atol=1e-6)
    assert bool((x0 == 0).all())


def test_numpy_bridge_jac_callable_and_jac_true():
    a = optkit.minimize(rosen_np, np.array(X0), jac=rosen_der_np, method="bfgs")
    b = optkit.minimize(lambda x: (rosen_np(x), rosen_der_np(x)), X0, jac=True, method="bfgs")
    for r in (a, b):
        assert r.success and isinstance(r.x, np.ndarray) and r.x.dtype == np.float64
        assert isinstance(r.jac, np.ndarray) and r.x.shape == (2,)
        np.testing.assert_allclose(r.x, [1.0, 1.0], atol=1e-5)
    assert a.nfev == b.nfev and np.array_equal(a.x, b.x)


def test_numpy_bridge_second_order_with_and_without_hessian():
    from scipy.optimize import rosen_hess, rosen_hess_prod

    for kw in ({"hess": rosen_hess}, {"hessp": rosen_hess_prod}, {}):
        for method in ("newton", "newton-cg"):
            r = optkit.minimize(rosen_np, np.array(X0), jac=rosen_der_np, method=method, **kw)
            assert r.success, (method, kw, r.message)
            np.testing.assert_allclose(r.x, [1.0, 1.0], atol=1e-5)
            assert r.nhev > 0


def test_autograd_fun_with_numpy_x0_returns_numpy():
    r = optkit.minimize(rosen, np.array(X0))
    assert isinstance(r.x, np.ndarray) and r.success


def test_user_hessian_with_autograd_gradient():
    calls = {"n": 0}

    def hessp(x, v):
        calls["n"] += 1
        return torch.autograd.functional.hvp(rosen, x, v)[1]

    r = optkit.minimize(
        rosen, torch.tensor(X0, dtype=torch.float64), method="newton-cg", hessp=hessp
    )
    assert r.success and calls["n"] == r.nhev > 0


def test_tol_sets_gtol():
    loose = optkit.minimize(rosen, torch.tensor(X0, dtype=torch.float64), tol=1e-2)
    tight = optkit.minimize(rosen, torch.tensor(X0, dtype=torch.float64), tol=1e-9)
    assert loose.nit < tight.nit and float(tight.jac.abs().max()) <= 1e-9


def test_gd_with_line_search_and_first_order_fixed_step():
    q = lambda x: ((x - 2.0) ** 2).sum()  # noqa: E731
    x0 = torch.zeros(3, dtype=torch.float64)
    for ls in ("armijo", "strong-wolfe"):
        r = optkit.minimize(q, x0, method="gd", options={"line_search": ls})
        assert r.success and torch.allclose(r.x, torch.full((3,), 2.0, dtype=torch.float64))
    r = optkit.minimize(q, x0, method="gd", options={"lr": 0.25, "max_iter": 200})
    assert r.success and r.nit < 50


# --- minimize_module ----------------------------------------------------------------------------
def test_module_bridge_matches_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + 0.3 + rng.standard_normal(300) > 0) * 1.0
    C = 0.5
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    model = torch.nn.Linear(5, 1).double()

    def closure():
        logits = model(Xt).squeeze(1)
        data = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt, reduction="sum")
        return C * data + 0.5 * (model.weight**2).sum()

    for method in ("newton", "newton-cg", "lbfgs", "bfgs"):
        with torch.no_grad():
            model.weight.zero_()
            model.bias.zero_()
        res = optkit.minimize_module(model, closure, method=method, options={"gtol": 1e-9})
        assert res.success, (method, res.message)
        np.testing.assert_allclose(model.weight.detach().numpy()[0], ref.coef_[0], atol=1e-5)
        np.testing.assert_allclose(model.bias.detach().numpy(), ref.intercept_, atol=1e-5)
        assert torch.equal(res.x, torch.cat([model.weight.reshape(-1), model.bias]).detach())


def test_module_bridge_errors():
    model = torch.nn.Linear(2, 1)

    def torch_style_closure():
        loss = model(torch.ones(1, 2)).sum() ** 2
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="without calling backward"):
        optkit.minimize_module(model, torch_style_closure)
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        optkit.minimize_module(object(), lambda: None)
    with pytest.raises(TypeError, match="closure must be callable"):
        optkit.minimize_module(model, None)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameters"):
        optkit.minimize_module(model, lambda: model.weight.sum())


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "newton", "newton-cg"])
def test_armijo_line_search_option(method):
    res = optkit.minimize(
        rosen,
        torch.tensor(X0, dtype=torch.float64),
        method=method,
        options={"line_search": "armijo", "max_iter": 5000},
    )
    assert res.success, res.message
    torch.testing.assert_close(res.x, torch.ones(2, dtype=torch.float64), atol=1e-4, rtol=0)
