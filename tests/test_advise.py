"""optkit.advise: measurements are sane, the advice follows the lecture."""

from __future__ import annotations

import math

import pytest
import torch

import optkit
from optkit.problems import PROBLEMS, quadratic


def rosen(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def test_measurements_and_memory():
    a = optkit.advise(rosen, torch.tensor([-1.2, 1.0], dtype=torch.float64), trial=0)
    assert a.n == 2 and a.dtype == "float64"
    assert a.memory == {"x": 16, "dense_hessian": 32, "bfgs_matrix": 32, "lbfgs_history": 320}
    for t in (a.time_f, a.time_grad, a.time_hvp, a.time_hess, a.time_iteration):
        assert t is not None and 0 < t < 5
    lo, hi = a.curvature  # exact for n = 2: the Hessian at (-1.2, 1)
    H = torch.autograd.functional.hessian(rosen, torch.tensor([-1.2, 1.0], dtype=torch.float64))
    ev = torch.linalg.eigvalsh(H)
    assert lo == pytest.approx(float(ev[0]), rel=1e-8) and hi == pytest.approx(float(ev[1]))
    assert not a.quadratic
    assert a.method in a.estimates and a.runner_up in a.estimates and a.method != a.runner_up
    assert a.reasons and "second-order methods" in a.reasons[0]
    assert a.method in a.summary() and "runner-up" in a.summary()


def test_quadratic_is_detected_and_newton_family_wins():
    p = quadratic(20, 1e4)
    a = optkit.advise(p.fun, p.start(), trial=0)
    assert a.quadratic
    assert a.condition == pytest.approx(1e4, rel=1e-6)  # Lanczos is exact for n <= 30
    assert a.method in ("newton", "newton-cg")
    assert any("quadratic" in r for r in a.reasons)


def test_minibatched_recommends_first_order():
    a = optkit.advise(rosen, [-1.2, 1.0], minibatched=True)
    assert (a.method, a.runner_up) == ("adamw", "momentum")
    assert "batch" in a.reasons[0]


def test_memory_limit_rules_out_dense_methods():
    n = 3000
    a = optkit.advise(
        lambda x: (x * x).sum() + (x[1:] * x[:-1]).sum(),
        torch.zeros(n, dtype=torch.float64),
        memory_limit=1e6,
        trial=0,
    )
    assert a.memory["dense_hessian"] == 8 * n * n
    assert "newton" not in a.estimates and "bfgs" not in a.estimates
    assert a.method in ("lbfgs", "newton-cg", "gd")
    assert "O(n²)" in a.reasons[0]


def test_trial_runs_measure_and_follow_the_fastest():
    p = PROBLEMS["beale"]
    a = optkit.advise(p.fun, p.start(), trial=0.5)
    assert a.trial and all(t["seconds"] > 0 for t in a.trial.values())
    solved = {m: t["seconds"] for m, t in a.trial.items() if t["solved"]}
    assert solved and a.method in solved
    assert a.estimates[a.method] == min(a.estimates.values())
    assert math.isfinite(a.estimates[a.method])


def test_bad_inputs():
    with pytest.raises(ValueError, match="finite"):
        optkit.advise(rosen, [float("nan"), 1.0])
    with pytest.raises(ValueError, match="at least one"):
        optkit.advise(rosen, [])


def test_fresh_process_recommends_newton_on_a_quadratic():
    # The first call of a method in a process pays one-time costs; advise warms each method up
    # before timing it, so a fresh process gives the same advice as a warm one. One torch
    # thread: on a busy machine two threads make a 20 × 20 Hessian's timing noise, not signal.
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "optkit.cli",
            "advise",
            "--problem",
            "quadratic_20",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    ).stdout
    assert "recommended: newton\n" in out.replace(" \n", "\n"), out
    assert "a Newton step is exact" in out


def test_summary_is_english_and_counts_iterations_right():
    """The advice is printed by ``optkit advise``: English only (the lecture's Spanish lives in
    the Spanish docs), "1 iteration" in the singular."""
    import re

    fun = lambda x: ((x - 1) ** 2).sum()  # noqa: E731
    x0 = torch.zeros(3, dtype=torch.float64)
    full = optkit.advise(fun, x0, trial=0.2)
    for text in (full.summary(), optkit.advise(fun, x0, minibatched=True).summary()):
        assert not re.search(r"[áéíóúñ¿¡]|\b(los|para|datasets chicos|en batch)\b", text), text
    assert "(1 iterations)" not in full.summary()
    if any(t["nit"] == 1 for t in full.trial.values()):
        assert "(1 iteration)" in full.summary()
