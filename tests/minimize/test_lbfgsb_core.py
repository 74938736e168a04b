"""The C engine of L-BFGS-B (optkit/minimization/_lbfgsb_core.c) against the NumPy engine.

Both run the same algorithm; they differ only in rounding (C loops against BLAS/LAPACK), so on
runs of a few dozen iterations they take the same iterations and evaluations and stop at the
same point to rounding. Also: the engine is built, its errors, and it holds no reference to the
arrays it handed out or received once a run is over."""

import gc
import math
import os
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import optkit
from optkit.minimization import Status
from optkit.minimization.lbfgsb import HAVE_CORE, minimize_lbfgsb
from optkit.minimization.objective import CallableObjective

PROPS = settings(max_examples=40, deadline=None, derandomize=True)
needs_core = pytest.mark.skipif(not HAVE_CORE, reason="the C engine is not built")


def test_the_c_engine_is_built():
    # `make install` compiles it (setup.py); without a C compiler the install goes on with the
    # NumPy engine only. OPTKIT_ALLOW_NO_CORE=1 accepts that (a machine without a compiler).
    if os.environ.get("OPTKIT_ALLOW_NO_CORE") == "1":
        pytest.skip("OPTKIT_ALLOW_NO_CORE=1")
    from optkit.minimization import lbfgsb

    assert HAVE_CORE, f"optkit.minimization._lbfgsb_core failed to import: {lbfgsb._CORE_ERROR}"


def numpy_objective(f, g, n):
    return CallableObjective(
        f, g, None, None, lambda v: v.copy(), n, torch.float64, "cpu", numpy_flat=True
    )


def run(engine, f, g, x0, lo, hi, **options):
    seen = []
    res = minimize_lbfgsb(
        numpy_objective(f, g, x0.size),
        x0,
        lo,
        hi,
        engine=engine,
        callback=lambda intermediate_result: seen.append(intermediate_result.x),
        **options,
    )
    return res, seen


def assert_same_run(a, b, xtol=1e-9):
    (ra, seen_a), (rb, seen_b) = a, b
    assert (ra.nit, ra.nfev, ra.njev, int(ra.status)) == (rb.nit, rb.nfev, rb.njev, int(rb.status))
    assert ra.message == rb.message
    scale = max(1.0, float(np.abs(ra.x).max()))
    for u, v in zip(seen_a, seen_b):
        np.testing.assert_allclose(u, v, rtol=0, atol=xtol * scale)
    np.testing.assert_allclose(ra.x, rb.x, rtol=0, atol=xtol * scale)
    assert ra.fun == pytest.approx(rb.fun, rel=1e-10, abs=1e-12)
    Ha, Hb = ra.hess_inv.todense(), rb.hess_inv.todense()
    np.testing.assert_allclose(Ha, Hb, rtol=1e-6, atol=1e-9 * max(1.0, float(np.abs(Hb).max())))


def random_box(rng, n, kind):
    """Bounds of one of four kinds: none, a box, mixed one-sided / infinite, some fixed."""
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    if kind == "box":
        lo, hi = rng.uniform(-1.0, -0.1, n), rng.uniform(0.1, 1.0, n)
    elif kind == "mixed":
        side = rng.integers(0, 4, n)  # 0 none, 1 lower, 2 upper, 3 both
        lo[side % 2 == 1] = rng.uniform(-1.0, 0.0, int((side % 2 == 1).sum()))
        hi[side >= 2] = rng.uniform(0.0, 1.0, int((side >= 2).sum()))
        hi = np.maximum(hi, lo)
    elif kind == "fixed":
        lo, hi = rng.uniform(-1.0, -0.1, n), rng.uniform(0.1, 1.0, n)
        fixed = rng.random(n) < 0.3
        lo[fixed] = hi[fixed] = rng.uniform(-0.5, 0.5, int(fixed.sum()))
    return lo, hi


@needs_core
@PROPS
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 40),
    m=st.integers(1, 12),
    kind=st.sampled_from(["none", "box", "mixed", "fixed"]),
    outside=st.booleans(),
)
def test_engines_agree_on_box_constrained_quadratics(seed, n, m, kind, outside):
    # a convex quadratic whose unconstrained minimizer lies outside most boxes (active bounds);
    # small m wraps the memory's window many times. Rounding differences grow along a run
    # (with m = 1 and κ = 300 from 1e-16 at the 2nd iterate to 1e-8 at the 25th), so the
    # iterates are compared over 20 iterations, the whole runs at their end point
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * np.geomspace(1.0, 300.0, n)) @ Q.T
    A = 0.5 * (A + A.T)
    b = rng.standard_normal(n) * 3.0
    f = lambda x: 0.5 * x @ A @ x - b @ x  # noqa: E731
    g = lambda x: A @ x - b  # noqa: E731
    lo, hi = random_box(rng, n, kind)
    x0 = rng.uniform(-3.0, 3.0, n) if outside else np.zeros(n)
    a = run("c", f, g, x0, lo, hi, maxcor=m, maxiter=20)
    c = run("numpy", f, g, x0, lo, hi, maxcor=m, maxiter=20)
    assert_same_run(a, c, xtol=1e-9)
    (ra, _), (rc, _) = (
        run("c", f, g, x0, lo, hi, maxcor=m),
        run("numpy", f, g, x0, lo, hi, maxcor=m),
    )
    assert ra.success and rc.success
    np.testing.assert_allclose(ra.x, rc.x, rtol=0, atol=1e-3 * max(1.0, float(np.abs(rc.x).max())))
    assert ra.fun == pytest.approx(rc.fun, rel=1e-6, abs=1e-9)
    assert np.all(ra.x >= lo) and np.all(ra.x <= hi)


@needs_core
@PROPS
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 12),
    kind=st.sampled_from(["none", "box", "mixed", "fixed"]),
)
def test_engines_agree_on_bounded_rosenbrock(seed, n, kind):
    # nonconvex: skipped pairs, line searches that bracket, Cauchy points past breakpoints;
    # stopped after 25 iterations, before rounding can tell the two apart
    from scipy.optimize import rosen, rosen_der

    rng = np.random.default_rng(seed)
    lo, hi = random_box(rng, n, kind)
    lo, hi = 1.5 * lo, 1.5 * hi
    x0 = rng.uniform(-2.0, 2.0, n)
    a = run("c", rosen, rosen_der, x0, lo, hi, maxiter=25)
    c = run("numpy", rosen, rosen_der, x0, lo, hi, maxiter=25)
    assert_same_run(a, c, xtol=1e-7)


@needs_core
def test_engines_agree_where_the_line_search_meets_nan():
    # log is NaN below 0: the search shrinks back (outside the Moré–Thuente interval logic)
    f = lambda x: float(np.sum(x - np.log(x)) + 30 * np.sum(x))  # noqa: E731
    g = lambda x: 1.0 - 1.0 / x + 30.0  # noqa: E731
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = run("c", f, g, np.full(3, 0.9), lo, hi)
        c = run("numpy", f, g, np.full(3, 0.9), lo, hi)
    assert_same_run(a, c)
    np.testing.assert_allclose(a[0].x, np.full(3, 1 / 31), rtol=1e-4)
    # a function NaN everywhere but x0's neighbourhood: the search fails from steepest descent
    nan_off = lambda x: float(np.sum(x**2)) if np.all(np.abs(x - 0.5) < 1e-9) else math.nan  # noqa: E731
    with np.errstate(invalid="ignore"):
        res, _ = run("c", nan_off, lambda x: 2 * x, np.full(2, 0.5), lo[:2], hi[:2])
    assert res.status == Status.NONFINITE and res.nit == 0


@needs_core
def test_c_engine_releases_every_array():
    # every trial point it created and every gradient it received is freed after the run
    from scipy.optimize import rosen, rosen_der

    refs = []

    def f(x):
        return rosen(x)

    def g(x):
        out = rosen_der(x)
        refs.append(weakref.ref(out))
        return out

    obj = numpy_objective(f, g, 6)
    xs = []
    inner = obj._to_user

    def to_user(v):
        xs.append(weakref.ref(v))
        return inner(v)

    obj._to_user = to_user
    lo, hi = np.full(6, -0.5), np.full(6, 0.8)
    res = minimize_lbfgsb(obj, np.zeros(6), lo, hi, engine="c")
    assert res.success and res.nfev > 10
    del res, obj
    gc.collect()
    assert xs and refs
    assert all(r() is None for r in xs), "a trial point outlived the run"
    assert all(r() is None for r in refs), "a gradient outlived the run"


@needs_core
def test_c_engine_converts_a_float32_gradient_and_rejects_a_wrong_size():
    A = np.diag([1.0, 4.0, 9.0])
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    f = lambda x: float(0.5 * x @ A @ x - x.sum())  # noqa: E731
    g32 = lambda x: (A @ x - 1.0).astype(np.float32)  # noqa: E731
    obj = CallableObjective(
        f, g32, None, None, lambda v: v.copy(), 3, torch.float64, "cpu", numpy_flat=False
    )
    obj.numpy_flat = True  # g reaches the engine as float32: converted there
    res = minimize_lbfgsb(obj, np.zeros(3), lo, hi, engine="c")
    assert res.success
    np.testing.assert_allclose(res.x, [1.0, 0.25, 1 / 9], rtol=1e-5)
    bad = numpy_objective(f, lambda x: np.zeros(4), 3)
    bad._plain = False  # past the objective's own size check: the engine's
    with pytest.raises(ValueError, match="3 values"):
        minimize_lbfgsb(bad, np.full(3, 0.3), lo, hi, engine="c")


@needs_core
def test_an_exception_in_the_objective_propagates_from_the_c_engine():
    calls = []

    def f(x):
        calls.append(1)
        if len(calls) == 3:
            raise KeyError("from the objective")
        return float(x @ x)

    lo, hi = np.full(2, -1.0), np.full(2, 1.0)
    with pytest.raises(KeyError, match="from the objective"):
        minimize_lbfgsb(numpy_objective(f, lambda x: 2 * x + 1, 2), np.full(2, 0.5), lo, hi)


def test_engine_choice_is_checked():
    lo, hi = np.full(2, -1.0), np.full(2, 1.0)
    obj = numpy_objective(lambda x: float(x @ x), lambda x: 2 * x, 2)
    with pytest.raises(ValueError, match="engine must be"):
        minimize_lbfgsb(obj, np.zeros(2), lo, hi, engine="fortran")
    x32 = torch.zeros(2, dtype=torch.float32)
    obj32 = optkit.minimization.objective.AutogradObjective.from_function(
        lambda x: (x**2).sum(), (2,), torch.float32, "cpu"
    )
    with pytest.raises(ValueError, match="float64 only"):
        minimize_lbfgsb(obj32, x32, lo.astype(np.float32), hi.astype(np.float32), engine="c")
    res = minimize_lbfgsb(obj32, x32 + 0.5, lo.astype(np.float32), hi.astype(np.float32))
    assert res.success and res.x.dtype == torch.float32  # auto: the NumPy engine for float32


def test_l_bfgs_b_records_its_trajectory_with_and_without_bounds():
    from scipy.optimize import rosen, rosen_der

    x0 = np.array([-1.2, 1.0, -1.2])
    for bounds in (None, [(-2.0, 0.9)] * 3):
        seen = []
        res = optkit.minimize(
            rosen,
            x0,
            method="L-BFGS-B",
            jac=rosen_der,
            bounds=bounds,
            callback=lambda xk, seen=seen: seen.append(xk),
            options={"record": True},
        )
        xs, fs = res.trajectory.x, res.trajectory.fun
        assert len(xs) == len(fs) == res.nit + 1 == len(seen) + 1
        start = x0 if bounds is None else np.clip(x0, -2.0, 0.9)  # projected on the box (SciPy)
        np.testing.assert_array_equal(xs[0], start)
        np.testing.assert_array_equal(xs[-1], res.x)
        for a, b in zip(xs[1:], seen):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(fs, [rosen(x) for x in xs], rtol=1e-12)


@needs_core
def test_engine_object_checks_its_arguments_and_state():
    import functools

    from optkit.minimization import _lbfgsb_core

    Engine = _lbfgsb_core.Engine
    empty, as_f64 = functools.partial(np.empty, 2), np.ascontiguousarray
    fresh = Engine.__new__(Engine)  # no __init__: no buffers
    with pytest.raises(RuntimeError, match="not initialized"):
        fresh.pgnorm(np.zeros(2), np.zeros(2))
    eng = Engine(np.zeros(2), np.ones(2), 3, empty, as_f64)
    with pytest.raises(RuntimeError, match="already initialized"):
        eng.__init__(np.zeros(2), np.ones(2), 3, empty, as_f64)
    for lo, hi, m, match in (
        (np.zeros(2, np.float32), np.ones(2), 3, "float64"),
        (np.zeros(2), np.ones(3), 3, "upper must be a float64 array of 2 values"),
        (np.zeros(2), np.ones(2), 0, "m >= 1"),
        (np.zeros(0), np.ones(0), 2, "non-empty"),
    ):
        with pytest.raises(ValueError, match=match):
            Engine(lo, hi, m, empty, as_f64)
    with pytest.raises(TypeError, match="callable"):
        Engine(np.zeros(2), np.ones(2), 3, None, as_f64)
    # proj g = clip(g, x − u, x − l): 1 → clip(1, −0.5, 0.5) = 0.5, −2 → −0.5
    assert eng.pgnorm(np.array([0.5, 0.5]), np.array([1.0, -2.0])) == 0.5
    assert eng.k == 0 and eng.theta == 1.0
    with pytest.raises(ValueError, match="x must be a float64 array of 2 values"):
        eng.pgnorm(np.zeros(3), np.zeros(3))


@needs_core
def test_minimize_passes_the_engine_option_and_checks_it():
    from scipy.optimize import minimize as scipy_minimize
    from scipy.optimize import rosen, rosen_der

    x0, bounds = np.zeros(5), [(-1.0, 0.7)] * 5
    ref = scipy_minimize(rosen, x0, method="L-BFGS-B", jac=rosen_der, bounds=bounds)
    for engine in ("c", "numpy", "auto"):
        res = optkit.minimize(
            rosen, x0, method="L-BFGS-B", jac=rosen_der, bounds=bounds, options={"engine": engine}
        )
        assert (res.nit, res.nfev, res.message) == (ref.nit, ref.nfev, ref.message)
        np.testing.assert_allclose(res.x, ref.x, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="engine"):
        optkit.minimize(rosen, x0, method="L-BFGS-B", jac=rosen_der, options={"engine": "f77"})


@pytest.mark.parametrize("which", ["c", "numpy"])
def test_engine_update_uses_each_accepted_step_once(which):
    from optkit.minimization.lbfgsb import _Box, _engine

    if which == "c" and not HAVE_CORE:
        pytest.skip("the C engine is not built")
    n = 3
    A = np.diag([1.0, 2.0, 3.0])
    ev = lambda x: (float(0.5 * x @ A @ x), A @ x)  # noqa: E731
    eng = _engine(which, _Box(np.full(n, -np.inf), np.full(n, np.inf)), 5, np.dtype(np.float64))
    assert eng.c == (which == "c")
    x = np.ones(n)
    f, g = ev(x)
    eng.pgnorm(x, g)
    assert eng.update(g, g) is False  # nothing accepted yet
    xt, ft, gt = eng.iterate(ev, x, f, g, True, 20)
    assert ft < f and ft == ev(xt)[0] and eng.k == 0
    assert eng.update(g, gt) is True and eng.k == 1
    assert eng.update(g, gt) is False and eng.k == 1  # the same step again: ignored


@needs_core
@PROPS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 60), k=st.integers(0, 12))
def test_c_two_loop_equals_the_blas_two_loop(seed, n, k):
    # optkit's lbfgs on the NumPy path (float64): the C kernel against directions.two_loop
    from optkit.minimization import _lbfgsb_core
    from optkit.minimization._cpu_blas import level1
    from optkit.minimization.directions import two_loop

    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(k):
        s = rng.standard_normal(n)
        y = s * rng.uniform(0.5, 3.0) + 0.3 * rng.standard_normal(n)
        if s @ y > 0:
            pairs.append((s, y, 1.0 / (s @ y)))
    g, gamma = rng.standard_normal(n), float(rng.uniform(0.1, 2.0))
    ref = two_loop(g, pairs, gamma, level1(np.dtype(np.float64)))
    q = g.copy()
    out = _lbfgsb_core.two_loop(q, pairs, gamma)
    assert out is q  # in place
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(q, ref, rtol=0, atol=1e-12 * scale)


@needs_core
def test_c_two_loop_checks_its_arguments():
    from optkit.minimization import _lbfgsb_core

    s = np.ones(3)
    with pytest.raises(ValueError, match="writable float64"):
        _lbfgsb_core.two_loop(np.ones(3, np.float32), [], 1.0)
    with pytest.raises(TypeError, match=r"\(s, y, rho\)"):
        _lbfgsb_core.two_loop(np.ones(3), [(s, s)], 1.0)
    with pytest.raises(ValueError, match="y must be a float64 array of 3 values"):
        _lbfgsb_core.two_loop(np.ones(3), [(s, np.ones(4), 1.0)], 1.0)
    with pytest.raises(TypeError, match="sequence"):
        _lbfgsb_core.two_loop(np.ones(3), 5, 1.0)


@needs_core
def test_lbfgs_numpy_path_uses_the_c_two_loop_and_keeps_its_iterates():
    # the NumPy path of method="lbfgs" (float64) with the C kernel against the BLAS recursion:
    # the same iterations and evaluations on Rosenbrock n = 10
    from scipy.optimize import rosen, rosen_der

    import optkit.minimization.directions as directions

    x0 = np.resize([-1.2, 1.0], 10)
    with_c = optkit.minimize(rosen, x0, method="lbfgs", jac=rosen_der)
    kernel = directions._c_two_loop
    try:
        directions._c_two_loop = None
        blas = optkit.minimize(rosen, x0, method="lbfgs", jac=rosen_der)
    finally:
        directions._c_two_loop = kernel
    assert kernel is not None
    assert (with_c.nit, with_c.nfev, with_c.status) == (blas.nit, blas.nfev, blas.status)
    np.testing.assert_allclose(with_c.x, blas.x, rtol=0, atol=1e-8)
