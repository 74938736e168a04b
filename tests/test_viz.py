"""Figures: built without pyplot, drawn to PNG, projections that make sense."""

from __future__ import annotations

import numpy as np
import pytest

from optkit import viz
from optkit._smoother_report import compare_smoothers, matching_window, noisy_series
from optkit.problems import PROBLEMS, rosenbrock


def _path(n, k=30, seed=0):
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(k, n)) * np.linspace(1, 0.1, n)  # most motion on the first axes
    return np.vstack([np.zeros(n), np.cumsum(steps, axis=0)]) + 1.0


def test_travel_plane_is_orthonormal_and_captures_the_motion():
    path = _path(6)
    origin, basis = viz.travel_plane([path])
    np.testing.assert_allclose(origin, path[0])
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-12)
    moves = path - origin
    kept = np.linalg.norm(moves @ basis.T) ** 2 / np.linalg.norm(moves) ** 2
    assert kept > 0.5  # the two leading directions hold most of the travel


def test_travel_plane_degenerate_and_2d():
    line = np.outer(np.arange(5.0), [1.0, 0.0, 0.0])
    _, basis = viz.travel_plane([line])
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-12)
    assert abs(basis[0, 0]) == pytest.approx(1.0)
    _, basis = viz.travel_plane([np.zeros((3, 2))])
    np.testing.assert_array_equal(basis, np.eye(2))
    with pytest.raises(ValueError, match="one-dimensional"):
        viz.travel_plane([np.zeros((3, 1))])


@pytest.mark.parametrize("problem", [PROBLEMS["rosenbrock"], rosenbrock(5)])
def test_contour_figure_png(tmp_path, problem):
    n = problem.dim
    paths = {"a": _path(n, 15, 1) * 0.3 - 1.0, "b": _path(n, 8, 2) * 0.2 - 1.0}
    paths["b"][0] = paths["a"][0]
    fig = viz.contour_figure(
        problem.fun, paths, x_star=problem.x_star.numpy(), f_star=problem.f_star, resolution=30
    )
    out = viz.save(fig, tmp_path / "c.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000


def test_contour_not_vmappable_function_falls_back(tmp_path):
    def fun(x):  # data-dependent Python control flow: vmap refuses, the loop works
        return (x**2).sum() if float(x[0]) > 0 else (2 * x**2).sum()

    fig = viz.contour_figure(
        fun, {"gd": np.array([[1.0, 1.0], [0.5, 0.4], [-0.1, 0.1]])}, resolution=12
    )
    assert viz.save(fig, tmp_path / "c.png").stat().st_size > 5_000


def test_loss_and_smoothing_figures(tmp_path):
    fs = np.array([10.0, 1.0, 0.1, 0.0])
    fig = viz.loss_figure({"gd": (fs, np.array([0.0, 0.1, 0.2, 0.3]))}, f_star=0.0)
    assert viz.save(fig, tmp_path / "l.png").stat().st_size > 10_000
    x, clean = noisy_series(200)
    fig = viz.smoothing_figure(x, {"s": x}, clean=clean)
    assert viz.save(fig, tmp_path / "s.png").stat().st_size > 10_000


def test_smoothing_measurements_match_theory():
    lam = 0.9
    x, clean = noisy_series(800, noise=0.3, seed=3)
    out = {s.name: s for s in compare_smoothers(x, lam, matching_window(lam), clean)}
    ew, sm = out["EWMA a₀=0, bias-corrected"], out["SMA w=19"]
    assert abs(ew.lag - 9) <= 2 and abs(sm.lag - 9) <= 2
    assert ew.noise_ratio < 0.5 and sm.noise_ratio < 0.5
    # a₀ = 0 starts far from the signal (level 2); the bias correction fixes it (the lecture)
    assert out["EWMA a₀=0"].start_error > 5 * ew.start_error


def test_figures_use_the_agg_canvas():
    fig = viz.loss_figure({"m": (np.ones(3), np.arange(3.0))}, f_star=0.0)
    assert fig.canvas.__class__.__name__ == "FigureCanvasAgg"
