r"""Figures for comparing methods and smoothers (matplotlib, Agg; nothing here prints or shows).

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (no global
state, no display needed); :func:`save` writes one to a PNG. What each draws:

- :func:`contour_figure`: level sets of f with every method's trajectory — the lecture's
  "GD vs RMSProp" picture. For n > 2 the trajectories are projected on the plane of the two
  main directions of travel (:func:`travel_plane`) and the contours are f on that plane.
- :func:`loss_figure`: f − f* against iteration and against wall time, log scale.
- :func:`smoothing_figure`: a noisy series with its EWMA variants and SMA — the lecture's
  "EWMA vs Windowed-Average" picture — with a zoom on the start, where a_0 matters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

__all__ = [
    "METHOD_COLORS",
    "contour_figure",
    "loss_figure",
    "save",
    "smoothing_figure",
    "travel_plane",
]

#: One colour per method, stable across figures (tab10 order, first-order methods first).
METHOD_COLORS = {
    "gd": "#1f77b4",
    "momentum": "#ff7f0e",
    "nesterov": "#8c564b",
    "rmsprop": "#2ca02c",
    "adam": "#d62728",
    "adamw": "#e377c2",
    "newton": "#9467bd",
    "newton-cg": "#bcbd22",
    "bfgs": "#17becf",
    "lbfgs": "#7f7f7f",
}


def _color(name: str, i: int) -> str:
    return METHOD_COLORS.get(name, f"C{i % 10}")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG (parent directories created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def travel_plane(paths: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The plane of the two main directions of travel of some trajectories.

    The displacements x_k − x_0 of every path (rows, flattened) are stacked; their two leading
    right singular vectors (PCA without centring: directions from the start) span the plane.
    For n = 2 the plane is the coordinate plane itself. A degenerate case (all motion on one
    line, or none) is completed with coordinate directions.

    Args:
        paths: Arrays of shape (k_i, n), each starting at the same x_0 (the first row of the
            first path is used as origin).

    Returns:
        ``(origin, basis)``: origin of shape (n,), orthonormal basis of shape (2, n).
        A point x has plane coordinates ``basis @ (x − origin)``.

    Example:
        >>> path = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.1], [2.0, 1.0, 0.0]])
        >>> origin, basis = travel_plane([path])
        >>> basis.shape, bool(np.allclose(basis @ basis.T, np.eye(2)))
        ((2, 3), True)
    """
    first = np.asarray(paths[0], dtype=np.float64)
    origin = first[0].reshape(-1)
    n = origin.size
    if n == 1:
        raise ValueError("a one-dimensional problem has no plane to draw")
    if n == 2:
        return np.zeros(2), np.eye(2)
    moves = np.concatenate(
        [np.asarray(p, dtype=np.float64).reshape(len(p), -1) - origin for p in paths]
    )
    _, sv, vt = np.linalg.svd(moves, full_matrices=False)
    keep = [v for v, s in zip(vt, sv, strict=False) if s > 1e-12 * max(sv[0], 1e-300)][:2]
    for e in np.eye(n):  # complete a degenerate plane with coordinate directions
        if len(keep) == 2:
            break
        r = e - sum((e @ v) * v for v in keep)
        if np.linalg.norm(r) > 1e-6:
            keep.append(r / np.linalg.norm(r))
    return origin, np.stack(keep)


def _values_on(fun: Callable, points: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    """f at each row of ``points``; batched with ``torch.func.vmap`` when fun allows it."""
    batch = points.reshape(len(points), *shape)
    with torch.no_grad():
        try:
            values = torch.func.vmap(fun)(batch).reshape(-1)
        except Exception:  # not vmappable (data-dependent control flow, NumPy, ...): one by one
            values = torch.stack([torch.as_tensor(fun(p)).reshape(()) for p in batch])
    return values.detach().cpu().to(torch.float64).numpy()


def contour_figure(
    fun: Callable,
    paths: Mapping[str, np.ndarray],
    *,
    x_star: Any = None,
    f_star: float | None = None,
    title: str = "",
    resolution: int = 90,
    dtype: torch.dtype = torch.float64,
) -> Figure:
    """Level sets of ``fun`` with each method's trajectory drawn on top.

    Args:
        fun: ``fun(x) -> scalar`` on a torch tensor of the problem's shape.
        paths: Method name → iterates, shape ``(k, *x0.shape)`` (``OptimizeResult.trajectory.x``).
        x_star: The known minimizer, marked with a star (optional).
        f_star: The known minimum; contours are drawn of f − f* (else of f − min on the grid).
        title: Figure title.
        resolution: Grid points per axis.
        dtype: dtype of the grid handed to ``fun``.

    Returns:
        The figure. For n > 2 the axes are coordinates on :func:`travel_plane` and the
        contours are f restricted to that plane through x_0, so they are a slice, not the
        level sets the iterates actually crossed.
    """
    names = list(paths)
    arrays = [np.asarray(paths[m], dtype=np.float64) for m in names]
    shape = arrays[0].shape[1:]
    flat = [a.reshape(len(a), -1) for a in arrays]
    origin, basis = travel_plane(flat)
    coords = [(p - origin) @ basis.T for p in flat]
    star = None
    if x_star is not None:
        star = (np.asarray(x_star, dtype=np.float64).reshape(-1) - origin) @ basis.T
    lo, hi = _view_box(coords, star)
    a = np.linspace(lo[0], hi[0], resolution)
    b = np.linspace(lo[1], hi[1], resolution)
    aa, bb = np.meshgrid(a, b)
    grid = origin + aa.reshape(-1, 1) * basis[0] + bb.reshape(-1, 1) * basis[1]
    z = _values_on(fun, torch.as_tensor(grid, dtype=dtype), shape).reshape(aa.shape)
    base = f_star if f_star is not None and math.isfinite(f_star) else np.nanmin(z)
    gap = np.where(np.isfinite(z), z - base, np.nan)
    floor = max(np.nanmax(gap), 1e-300) * 1e-12
    gap = np.maximum(gap, floor)

    fig = _figure(7.5, 6.0)
    ax = fig.add_subplot()
    top, bottom = np.nanmax(gap), max(np.nanmin(gap), floor)
    levels = np.logspace(np.log10(bottom), np.log10(top), 25) if top > bottom else 10
    cs = ax.contourf(aa, bb, gap, levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.55)
    ax.contour(aa, bb, gap, levels=levels, norm=LogNorm(), colors="k", linewidths=0.3, alpha=0.5)
    fig.colorbar(
        cs, ax=ax, label="f − f*" if f_star is not None else "f − min f on grid", format="%.0e"
    )
    for i, (name, c) in enumerate(zip(names, coords, strict=False)):
        color = _color(name, i)
        ax.plot(c[:, 0], c[:, 1], "-", color=color, lw=1.4, label=f"{name} ({len(c) - 1} it.)")
        ax.plot(c[-1, 0], c[-1, 1], "o", color=color, ms=5)
    ax.plot(coords[0][0, 0], coords[0][0, 1], "ks", ms=6, label="x₀")
    if star is not None:
        ax.plot(star[0], star[1], "*", color="gold", mec="k", ms=14, label="x*")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    if basis.shape[1] == 2:
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
    else:
        ax.set_xlabel("1st direction of travel (PCA of x_k − x₀)")
        ax.set_ylabel("2nd direction of travel")
    ax.set_title(title or "trajectories", fontsize=10)
    fig.legend(loc="outside lower center", ncols=min(5, len(names) + 2), fontsize=8)
    return fig


def _view_box(coords: Sequence[np.ndarray], star: np.ndarray | None):
    """Bounds holding every finite iterate (and x*), with a margin; robust to a blow-up."""
    pts = np.concatenate([c[np.all(np.isfinite(c), axis=1)] for c in coords])
    if star is not None:
        pts = np.vstack([pts, star])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    # a diverging run should not squash everyone else's path: clip to a robust range
    q_lo, q_hi = np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)
    span = np.maximum(q_hi - q_lo, 1e-3)
    lo, hi = np.maximum(lo, q_lo - 0.5 * span), np.minimum(hi, q_hi + 0.5 * span)
    span = np.maximum(hi - lo, 1e-3)
    return lo - 0.15 * span, hi + 0.15 * span


def loss_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    f_star: float,
    f_star_label: str = "f*",
    title: str = "",
) -> Figure:
    """f − f* of each method against iteration (left) and wall time (right), log scale.

    Args:
        curves: Method name → ``(f values per iterate, seconds since start per iterate)``.
        f_star: The reference minimum (known, or the best value any method found).
        f_star_label: How to call it on the axis (``"f*"`` or ``"best f found"``).
        title: Figure title.

    Returns:
        The figure; gaps below ``1e-16·max(1, |f*|)`` are drawn at that floor (log scale).

    Example:
        >>> fs = np.array([1.0, 0.1, 0.01]); ts = np.array([0.0, 0.5, 1.0])
        >>> fig = loss_figure({"gd": (fs, ts)}, f_star=0.0)
        >>> [ax.get_yscale() for ax in fig.axes]
        ['log', 'log']
    """
    floor = 1e-16 * max(1.0, abs(f_star))
    fig = _figure(11.0, 4.5)
    by_iter, by_time = fig.subplots(1, 2)
    for i, (name, (fs, ts)) in enumerate(curves.items()):
        gap = np.maximum(np.asarray(fs, dtype=np.float64) - f_star, floor)
        color = _color(name, i)
        by_iter.plot(np.arange(len(gap)), gap, color=color, lw=1.3, label=name)
        ts = np.asarray(ts, dtype=np.float64)
        by_time.plot(ts[1:], gap[1:], color=color, lw=1.3, label=name)  # log axis: skip t = 0
    ylabel = f"f − {f_star_label}"
    by_iter.set(yscale="log", xlabel="iteration", ylabel=ylabel, title="against iterations")
    by_iter.set_xscale("symlog", linthresh=10)
    by_iter.set_xlim(left=0)
    by_time.set(
        yscale="log", xscale="log", xlabel="wall time [s]", ylabel=ylabel, title="against wall time"
    )
    for ax in (by_iter, by_time):
        ax.grid(True, which="major", alpha=0.3)
    by_iter.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def smoothing_figure(
    series: np.ndarray,
    smoothed: Mapping[str, np.ndarray],
    *,
    clean: np.ndarray | None = None,
    zoom: int | None = None,
    title: str = "",
    label: str = "x",
) -> Figure:
    """A noisy series with its smoothed versions; right panel: the first ``zoom`` points.

    Args:
        series: The raw series x_1..x_n.
        smoothed: Label → smoothed series (same length), e.g. EWMA variants and SMA.
        clean: The noise-free signal, when known (generated data).
        zoom: Points shown in the right panel (the start, where a_0 and the SMA warm-up show);
            default min(n, 60).
        title: Figure title.
        label: Name of the series (y axis).

    Returns:
        The figure.
    """
    x = np.asarray(series, dtype=np.float64)
    t = np.arange(1, len(x) + 1)
    zoom = min(len(x), zoom or 60)
    fig = _figure(12.0, 4.8)
    full, start = fig.subplots(1, 2, width_ratios=[2.2, 1])
    for ax, stop in ((full, len(x)), (start, zoom)):
        ax.plot(t[:stop], x[:stop], ".", color="0.6", ms=2.5, label=label)
        if clean is not None:
            ax.plot(t[:stop], np.asarray(clean)[:stop], "k--", lw=1.0, label="clean signal")
        for i, (name, s) in enumerate(smoothed.items()):
            ax.plot(t[:stop], np.asarray(s)[:stop], lw=1.4, color=f"C{i}", label=name)
        ax.set_xlabel("t")
        ax.grid(True, alpha=0.3)
    full.set_ylabel(label)
    full.set_title("whole series")
    start.set_title(f"first {zoom} points: the start value a₀ matters")
    full.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return fig
