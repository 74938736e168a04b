"""A user's comparison: L2-regularized logistic regression, optkit.minimize vs scikit-learn.

For each data set, scikit-learn's ``LogisticRegression`` (solver lbfgs, then newton-cg; default
tol, C = 1) is fitted and timed; its solution's objective value F_sk is the bar. Each optkit
method then minimizes the same objective (float64, torch autograd, started at 0)::

    f(W, b) = (1/N) Σᵢ CE(softmax(xᵢW + b), yᵢ) + ‖W‖² / (2·C·N)     (binary: the logistic loss)

which has the same minimizer as scikit-learn's C·Σ CE + ½‖W‖². Reported: time for optkit to
first reach f <= F_sk (measured by a callback that only reads the clock), its ratio to
scikit-learn's fit time, and the optkit time to its own default stopping test.
Target: time-to-F_sk <= 1.0x scikit-learn's.

Data: synthetic 50 000 x 200 (binary, NumPy PCG64 seed 0) and sklearn's digits (1797 x 64,
10 classes, multinomial).

    python benchmarks/minimize_logreg.py [--repeat 3] [--small]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

import optkit

C = 1.0
METHODS = ["lbfgs", "newton-cg", "bfgs", "newton"]


def synthetic(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d) / np.sqrt(d)
    y = (X @ w + 0.5 * rng.standard_normal(n) > 0).astype(np.int64)
    return X, y


def make_objective(X, y, n_classes):
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    N = X.shape[0]
    if n_classes == 2:
        yf = yt.double()

        def f(x):  # x = [w (d), b]
            z = Xt @ x[:-1] + x[-1]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yf)
            return loss + (x[:-1] @ x[:-1]) / (2 * C * N)

        shape = (X.shape[1] + 1,)

        def pack(clf):
            return torch.from_numpy(np.concatenate([clf.coef_[0], clf.intercept_]))
    else:

        def f(x):  # x = [[W], [b]], shape (d + 1, K)
            z = Xt @ x[:-1] + x[-1]
            loss = torch.nn.functional.cross_entropy(z, yt)
            return loss + (x[:-1] ** 2).sum() / (2 * C * N)

        shape = (X.shape[1] + 1, n_classes)

        def pack(clf):
            return torch.from_numpy(np.vstack([clf.coef_.T, clf.intercept_[None, :]]))

    return f, shape, pack


def time_sklearn(X, y, solver, repeat):
    best, clf = float("inf"), None
    for _ in range(repeat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t = time.perf_counter()
            clf = LogisticRegression(C=C, solver=solver, max_iter=10_000).fit(X, y)
            best = min(best, time.perf_counter() - t)
    return best, clf


def time_optkit(f, shape, method, bar, repeat):
    best_reach, best_total, res = float("inf"), float("inf"), None
    for _ in range(repeat):
        reached = []
        t0 = time.perf_counter()

        def cb(r, t0=t0, reached=reached):
            if not reached and r.fun <= bar:
                reached.append(time.perf_counter() - t0)

        res = optkit.minimize(
            f, torch.zeros(shape, dtype=torch.float64), method=method, callback=cb
        )
        total = time.perf_counter() - t0
        if not reached and res.fun <= bar:
            reached.append(total)
        best_reach = min(best_reach, reached[0] if reached else float("inf"))
        best_total = min(best_total, total)
    return best_reach, best_total, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="5000 x 50 instead of 50 000 x 200")
    args = ap.parse_args()
    digits = load_digits()
    Xd = digits.data / 16.0
    datasets = {
        ("synthetic 5000x50" if args.small else "synthetic 50000x200"): (
            synthetic(5000, 50) if args.small else synthetic(50_000, 200)
        ),
        "digits 1797x64 (10 classes)": (Xd, digits.target.astype(np.int64)),
    }
    print(f"torch threads: {torch.get_num_threads()}, best of {args.repeat}\n")
    for name, (X, y) in datasets.items():
        K = len(np.unique(y))
        f, shape, pack = make_objective(X, y, K)
        print(f"== {name}: {f(torch.zeros(shape, dtype=torch.float64)).item():.4f} at 0")
        print(
            f"{'sklearn solver':>14s} {'F_sk':>12s} {'t_sk':>8s} | {'optkit':>9s} "
            f"{'t to F_sk':>9s} {'ratio':>7s} {'t total':>8s} {'f final':>12s} {'nit':>4s}"
        )
        for solver in ("lbfgs", "newton-cg"):
            t_sk, clf = time_sklearn(X, y, solver, args.repeat)
            bar = float(f(pack(clf)))
            for method in METHODS:
                if method == "newton" and shape[0] * (shape[1] if len(shape) > 1 else 1) > 700:
                    continue  # dense Hessian of (d+1)·K > 700 variables: not this method's case
                reach, total, res = time_optkit(f, shape, method, bar, args.repeat)
                print(
                    f"{solver:>14s} {bar:12.8f} {t_sk:7.3f}s | {method:>9s} {reach:8.3f}s "
                    f"{reach / t_sk:6.2f}x {total:7.3f}s {res.fun:12.8f} {res.nit:4d}",
                    flush=True,
                )
        print()


if __name__ == "__main__":
    main()
