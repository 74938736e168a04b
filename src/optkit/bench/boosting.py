"""Boosting benchmark: second order *between* trees, as GBDT libraries do (the lecture's remark).

Binary classification with the log-loss ``L(y, F) = log(1 + e^F) - y·F`` on the raw score ``F``.
With ``p = σ(F)``, per sample

    g = ∂L/∂F   = p - y
    h = ∂²L/∂F² = p·(1 - p)

Each round fits one regression tree (sklearn's ``DecisionTreeRegressor``) to the negative
gradient ``-g``; both variants share that tree *structure* and differ only in the value ``w_j``
written into each leaf ``j`` (the samples ``I_j`` falling in it), scaled by the shrinkage ``η``::

    gradient:  w_j = -Σ_{I_j} g / |I_j|          (a plain gradient step on F, the tree's own fit)
    newton:    w_j = -Σ_{I_j} g / Σ_{I_j} h      (a Newton step on F restricted to the leaf)
    F        ← F + η·w_{leaf(x)}

The Newton leaf is what XGBoost / LightGBM / sklearn's ``GradientBoostingClassifier`` use (with
``λ = 0``). sklearn's ``HistGradientBoostingClassifier`` (Newton leaves, histogram split finding)
runs beside them as the reference, with the same shrinkage, leaf count and minimum leaf size.
Because a gradient leaf moves ``F`` by at most ``η`` per round while ``1/h ≥ 4`` makes a Newton
leaf larger, the gradient variant also gets a small shrinkage sweep, so that "Newton wins" does
not just mean "Newton takes bigger steps".
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._common import NullProgress, machine_info, median, new_figure, save_figure, write_json

__all__ = ["BoostingConfig", "boost", "make_data", "run"]


@dataclass(frozen=True)
class BoostingConfig:
    """Settings of the boosting benchmark (``quick()``, ``full()`` or ``tiny()`` presets).

    Args:
        n_samples: Samples of ``make_classification`` (split 60/20/20: train/val/test).
        n_features, n_informative: Its feature counts.
        flip_y: Fraction of labels flipped (label noise, so test loss has a minimum).
        rounds: Boosting rounds (trees).
        lr: The common shrinkage ``η`` (sklearn's default 0.1), shown for all three methods.
        lrs: Shrinkages every method runs at (each method's best is picked on validation).
        max_leaf_nodes, min_samples_leaf: Tree size, identical for every method.
        seeds: Number of data / tree seeds.
    """

    n_samples: int = 10_000
    n_features: int = 20
    n_informative: int = 10
    flip_y: float = 0.05
    rounds: int = 200
    lr: float = 0.1
    lrs: tuple[float, ...] = (0.1, 0.3, 1.0)
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    seeds: int = 3

    @classmethod
    def full(cls, seeds: int = 3) -> BoostingConfig:
        return cls(seeds=seeds)

    @classmethod
    def quick(cls, seeds: int = 1) -> BoostingConfig:
        return cls(n_samples=4000, rounds=50, seeds=seeds)

    @classmethod
    def tiny(cls) -> BoostingConfig:
        return cls(n_samples=600, rounds=10, seeds=1, lrs=(0.1, 1.0))


def make_data(cfg: BoostingConfig, seed: int) -> tuple[np.ndarray, ...]:
    """Generated binary classification data: ``X, y`` for train, validation and test."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=cfg.n_samples,
        n_features=cfg.n_features,
        n_informative=cfg.n_informative,
        n_redundant=2,
        flip_y=cfg.flip_y,
        class_sep=0.8,
        random_state=seed,
    )
    y = y.astype(float)
    a, b = int(0.6 * len(y)), int(0.8 * len(y))
    return X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:]


def _log_loss(y: np.ndarray, F: np.ndarray) -> float:
    # log(1 + e^F) - y F, computed stably
    return float(np.mean(np.logaddexp(0.0, F) - y * F))


def _sigmoid(F: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * F))


def boost(
    X: np.ndarray,
    y: np.ndarray,
    X_eval: list[np.ndarray],
    y_eval: list[np.ndarray],
    *,
    leaf: str,
    rounds: int,
    lr: float,
    max_leaf_nodes: int = 31,
    min_samples_leaf: int = 20,
    seed: int = 0,
    on_round=None,
) -> dict[str, list[float]]:
    """Gradient boosting with ``leaf="newton"`` (Σg/Σh) or ``leaf="gradient"`` (mean g) leaves.

    ``X_eval`` / ``y_eval``: the validation and test sets. Returns ``train_loss``, ``val_loss``,
    ``test_loss`` after each round (index 0 is the constant model) and ``time``, the cumulative
    fit time in seconds.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(200, 3)); y = (X[:, 0] > 0).astype(float)
        >>> out = boost(X, y, [X, X], [y, y], leaf="newton", rounds=5, lr=0.5)
        >>> len(out["train_loss"]), out["train_loss"][-1] < out["train_loss"][0]
        (6, True)
    """
    from sklearn.tree import DecisionTreeRegressor

    if leaf not in ("newton", "gradient"):
        raise ValueError(f"leaf must be 'newton' or 'gradient', got {leaf!r}")
    prior = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    F = np.full(len(y), math.log(prior / (1 - prior)))
    F_eval = [np.full(len(ye), F[0]) for ye in y_eval]
    curves = {"train_loss": [_log_loss(y, F)], "time": [0.0]}
    for split, ye, Fe in zip(("val_loss", "test_loss"), y_eval, F_eval, strict=True):
        curves[split] = [_log_loss(ye, Fe)]
    elapsed = 0.0
    for r in range(rounds):
        t0 = time.perf_counter()
        p = _sigmoid(F)
        g = p - y
        h = np.maximum(p * (1 - p), 1e-12)
        tree = DecisionTreeRegressor(
            max_leaf_nodes=max_leaf_nodes, min_samples_leaf=min_samples_leaf, random_state=seed + r
        ).fit(X, -g)
        leaves = tree.apply(X)
        size = leaves.max() + 1
        sum_g = np.bincount(leaves, weights=g, minlength=size)
        if leaf == "newton":
            denom = np.bincount(leaves, weights=h, minlength=size)
        else:
            denom = np.bincount(leaves, minlength=size).astype(float)
        value = -sum_g / np.maximum(denom, 1e-12)
        F += lr * value[leaves]
        elapsed += time.perf_counter() - t0
        curves["train_loss"].append(_log_loss(y, F))
        for split, Xe, ye, Fe in zip(
            ("val_loss", "test_loss"), X_eval, y_eval, F_eval, strict=True
        ):
            Fe += lr * value[tree.apply(Xe)]
            curves[split].append(_log_loss(ye, Fe))
        curves["time"].append(elapsed)
        if on_round is not None:
            on_round()
    return curves


def _hist_reference(X, y, X_eval, y_eval, *, rounds, lr, cfg: BoostingConfig, seed, on_round=None):
    """sklearn's HistGradientBoostingClassifier, log-loss per round on each (X, y) given."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    with threadpool_limits(1):  # one thread, like the NumPy loop beside it
        clf = _fit_hist(
            HistGradientBoostingClassifier, X, y, rounds=rounds, lr=lr, cfg=cfg, seed=seed
        )
    fit_time = time.perf_counter() - t0
    prior = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))

    def losses(Xs, ys):
        out = [float(np.mean(-(ys * math.log(prior) + (1 - ys) * math.log(1 - prior))))]
        with threadpool_limits(1):
            stages = list(clf.staged_predict_proba(Xs))
        for proba in stages:
            q = np.clip(proba[:, 1], 1e-15, 1 - 1e-15)
            out.append(float(np.mean(-(ys * np.log(q) + (1 - ys) * np.log(1 - q)))))
        return out

    if on_round is not None:
        on_round(rounds)
    return {
        "train_loss": losses(X, y),
        "val_loss": losses(X_eval[0], y_eval[0]),
        "test_loss": losses(X_eval[1], y_eval[1]),
        "fit_time": fit_time,
    }


def _fit_hist(cls, X, y, *, rounds, lr, cfg, seed):
    return cls(
        max_iter=rounds,
        learning_rate=lr,
        max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=cfg.min_samples_leaf,
        l2_regularization=0.0,
        early_stopping=False,
        random_state=seed,
    ).fit(X, y)


def _rounds_to(curve: list[float], target: float) -> float:
    for i, v in enumerate(curve):
        if v <= target:
            return i
    return math.inf


def run(
    cfg: BoostingConfig | None = None,
    out_dir: str | Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the benchmark; write ``results.json`` and ``boosting.png`` into ``out_dir`` if given.

    Protocol: data split 60/20/20 into train / validation / test. Every method (Newton leaves,
    gradient leaves, sklearn's HistGradientBoosting) runs at every shrinkage of ``cfg.lrs``.
    Per method, "best" is the shrinkage with the lowest validation loss (over rounds, median
    over seeds); its test loss is read at the round of lowest validation loss (early stopping).

    Returns a dict with ``config``, ``machine``, ``runs`` (seed → method → lr → curves),
    ``rows`` (the results table: per method at the common shrinkage ``cfg.lr`` and at its best).
    """
    cfg = cfg or BoostingConfig.full()
    progress = progress or NullProgress()
    methods = ("newton", "gradient", "hist_gbdt")
    total = cfg.seeds * len(methods) * len(cfg.lrs) * cfg.rounds
    task = progress.add_task("boosting", total=total)
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    for seed in range(cfg.seeds):
        X, y, Xv, yv, Xt, yt = make_data(cfg, seed)
        per: dict[str, dict[str, Any]] = {m: {} for m in methods}
        for lr in cfg.lrs:
            for leaf in ("newton", "gradient"):
                per[leaf][f"{lr:g}"] = boost(
                    X,
                    y,
                    [Xv, Xt],
                    [yv, yt],
                    leaf=leaf,
                    rounds=cfg.rounds,
                    lr=lr,
                    max_leaf_nodes=cfg.max_leaf_nodes,
                    min_samples_leaf=cfg.min_samples_leaf,
                    seed=seed,
                    on_round=lambda: progress.advance(task),
                )
            per["hist_gbdt"][f"{lr:g}"] = _hist_reference(
                X,
                y,
                [Xv, Xt],
                [yv, yt],
                rounds=cfg.rounds,
                lr=lr,
                cfg=cfg,
                seed=seed,
                on_round=lambda n: progress.advance(task, n),
            )
        runs[str(seed)] = per
    progress.remove_task(task)

    seeds = list(runs)
    target = median(runs[s]["newton"][f"{cfg.lr:g}"]["train_loss"][-1] for s in seeds)

    def row(method: str, lr: float, label: str) -> dict[str, Any]:
        key = f"{lr:g}"
        curves = [runs[s][method][key] for s in seeds]
        stop = [int(np.argmin(c["val_loss"])) for c in curves]
        return {
            "method": label,
            "lr": lr,
            "final_train_loss": median(c["train_loss"][-1] for c in curves),
            "rounds_to_target_train": median(_rounds_to(c["train_loss"], target) for c in curves),
            "best_val_round": median(stop),
            "test_loss_at_best_val": median(
                c["test_loss"][i] for c, i in zip(curves, stop, strict=True)
            ),
            "final_test_loss": median(c["test_loss"][-1] for c in curves),
        }

    names = {"newton": "Newton leaves", "gradient": "gradient leaves", "hist_gbdt": "sklearn HGB"}
    best_lr = {
        m: min(
            cfg.lrs,
            key=lambda lr, m=m: median(min(runs[s][m][f"{lr:g}"]["val_loss"]) for s in seeds),
        )
        for m in methods
    }
    rows = [row(m, cfg.lr, f"{names[m]}, lr={cfg.lr:g}") for m in methods]
    rows += [row(m, best_lr[m], f"{names[m]}, best lr={best_lr[m]:g}") for m in methods]
    results = {
        "task": "boosting",
        "config": asdict(cfg),
        "machine": machine_info(),
        "target_train_loss": target,
        "best_lr": best_lr,
        "rows": rows,
        "runs": runs,
    }
    if out_dir is not None:
        out = Path(out_dir)
        write_json(out / "results.json", results)
        _figure(results, out / "boosting.png")
    return results


def _figure(results: dict[str, Any], path: Path) -> None:
    cfg, runs, best = results["config"], results["runs"], results["best_lr"]
    fig, axes = new_figure(1, 2, (5.5, 4.0))
    names = {"newton": "Newton leaves", "gradient": "gradient leaves", "hist_gbdt": "sklearn HGB"}
    colors = {"newton": "C0", "gradient": "C3", "hist_gbdt": "C2"}
    for m, name in names.items():
        for lr, style in ((cfg["lr"], "-"), (best[m], "--")):
            if style == "--" and lr == cfg["lr"]:
                continue
            for j, split in enumerate(("train_loss", "test_loss")):
                curves = np.array([runs[s][m][f"{lr:g}"][split] for s in runs])
                med = np.median(curves, axis=0)
                label = f"{name}, lr={lr:g}" + (" (best)" if lr == best[m] else "")
                axes[0, j].plot(np.arange(len(med)), med, style, color=colors[m], label=label)
    for j, title in enumerate(("train log-loss", "test log-loss")):
        ax = axes[0, j]
        ax.set_xlabel("boosting round (trees)")
        ax.set_ylabel(title)
        ax.set_yscale("log")
        ax.set_title(f"{title}, median over {len(runs)} seed(s)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    save_figure(fig, path)
