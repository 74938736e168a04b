"""The ``optkit`` command: ``compare``, ``ewma``, ``advise`` and ``bench``.

Only this module prints. A user's mistake (unknown problem or method, a bad ``--set``, an
unreadable CSV, an option out of range) ends with one line on stderr and exit code 2, never a
traceback.

``optkit bench`` comes from :mod:`optkit.bench.cli`: its ``add_parser(subparsers)`` registers the
``bench`` parser and sets ``func(args) -> exit code`` as a default. When that module cannot be
imported, ``optkit bench`` says so in one line and exits 2.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import importlib
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

__all__ = ["main"]


class UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``optkit compare: error: ...``), exit code 2,
    with a "did you mean" for a misspelt option, subcommand or choice."""

    def error(self, message: str) -> NoReturn:
        hint = _did_you_mean(self, message)
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")


def _did_you_mean(parser: argparse.ArgumentParser, message: str) -> str:
    """``"; did you mean --lam?"`` for the unknown option or choice in an argparse message."""
    if message.startswith("unrecognized arguments:"):
        options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
        words = [w.split("=", 1)[0] for w in message.split(":", 1)[1].split() if w[:1] == "-"]
        pairs = [(w, difflib.get_close_matches(w, options, n=1, cutoff=0.6)) for w in words]
    else:
        bad = re.search(r"invalid choice: '([^']*)'", message)
        if bad is None:
            return ""
        choices = [str(c) for a in parser._actions if a.choices for c in a.choices]
        pairs = [(bad.group(1), difflib.get_close_matches(bad.group(1), choices, n=1))]
    hints = [f"{w} -> {m[0]}" if len(pairs) > 1 else m[0] for w, m in pairs if m]
    return f"; did you mean {', '.join(hints)}?" if hints else ""


# --- the problem to work on -----------------------------------------------------------------
class _Target:
    """A problem from the registry or a user's function: fun, x0, f*, x*, a label."""

    def __init__(self, fun, x0, f_star=None, x_star=None, label="", name="custom"):
        self.fun, self.x0, self.f_star, self.x_star = fun, x0, f_star, x_star
        self.label, self.name = label, name


def _target(args: argparse.Namespace) -> _Target:
    from . import _compare
    from .problems import PROBLEMS

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be an integer >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)

    if args.fun is not None:
        if args.x0 is None:
            raise UserError("--fun needs --x0 (e.g. --x0=-1.2,1)")
        fun = _load_function(args.fun)
        x0 = torch.tensor(_floats(args.x0, "--x0"), dtype=torch.float64)
        name = args.fun.rpartition(":")[2]
        return _Target(fun, x0, args.f_star, None, f"{args.fun}, n={x0.numel()}", name)
    if args.x0 is not None:
        raise UserError("--x0 goes with --fun (a registry problem has its own start)")
    name = args.problem
    if name not in PROBLEMS:
        raise UserError(
            f"unknown problem {name!r}{_compare.did_you_mean(name, PROBLEMS)}; "
            f"valid problems: {', '.join(PROBLEMS)}"
        )
    p = PROBLEMS[name]
    f_star = p.f_star if args.f_star is None else args.f_star
    return _Target(p.fun, p.start(), f_star, p.x_star, f"{p.name}: {p.description}", p.name)


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UserError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise UserError(f"{what} must be finite comma-separated numbers, got {text!r}")
    return values


def _load_function(spec: str) -> Callable:
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise UserError(f"--fun must be module:function (e.g. mypkg.losses:rosen), got {spec!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # a module in the current directory
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UserError(f"--fun: cannot import module {module_name!r}: {exc}") from None
    fun = getattr(module, attr, None)
    if not callable(fun):
        raise UserError(f"--fun: module {module_name!r} has no function {attr!r}")
    return fun


def _add_target_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problem (a registry problem, or your own function)")
    g.add_argument(
        "--problem",
        default="rosenbrock",
        metavar="NAME",
        help="a problem of optkit.problems.PROBLEMS (default: rosenbrock)",
    )
    g.add_argument(
        "--fun",
        metavar="MODULE:FUNCTION",
        help="your objective: fun(x: torch.Tensor) -> scalar tensor (autograd)",
    )
    g.add_argument(
        "--x0",
        metavar="X0",
        help="start for --fun, comma-separated (write --x0=-1.2,1 when it starts "
        "with a minus sign)",
    )
    g.add_argument(
        "--f-star",
        type=float,
        default=None,
        metavar="F",
        help="the known minimum value (else the best value found is used)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch CPU threads (default: torch's choice; 1 is often faster for small "
        "problems on a busy machine)",
    )


# --- compare ----------------------------------------------------------------------------------
def _cmd_compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import _compare, viz
    from .advisor import _lanczos, _Probe

    target = _target(args)
    try:
        methods = _compare.check_methods(args.methods.split(","))
        sets = _compare.parse_set(args.set or [], methods)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.max_iter < 1:
        raise UserError(f"--max-iter must be an integer >= 1, got {args.max_iter}")
    out = Path(args.out)
    _writable_dir(out)

    x0 = target.x0
    n = x0.numel()
    curvature = None
    if any(m in _compare.CURVATURE_STEP and "lr" not in sets.get(m, {}) for m in methods):
        try:
            probe = _Probe(target.fun, x0)
            lo, hi = _lanczos(probe.hvp_at(x0.reshape(-1)), n, x0.reshape(-1), min(n, 30))
            curvature = max(abs(lo), abs(hi))
        except Exception:  # no second derivatives: the documented fallback lr
            curvature = None

    err = Console(stderr=True)
    console = _console()
    runs = []
    columns = (
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("f={task.fields[f]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        for m in methods:
            options = {
                "max_iter": args.max_iter,
                **_compare.default_options(m, curvature),
                **sets.get(m, {}),
            }
            task = progress.add_task(m, total=args.max_iter, f="…")
            _compare.warm_up(target.fun, x0, m)
            every = max(1, args.max_iter // 200)

            def tick(k, task=task, every=every):
                if k % every == 0:
                    progress.update(task, completed=k)

            try:
                run = _compare.run_method(target.fun, x0, m, options, on_iteration=tick)
            except (ValueError, TypeError) as exc:
                raise UserError(f"{m}: {exc}") from None
            progress.update(task, completed=args.max_iter, f=f"{run.result.fun:.3g}")
            runs.append(run)

    f_ref, ref_label = _reference(target, runs)
    _print_table(console, target, runs, f_ref, ref_label)
    figures = []
    if n >= 2:
        fig = viz.contour_figure(
            target.fun,
            {r.method: r.xs for r in runs},
            x_star=None if target.x_star is None else target.x_star.numpy(),
            f_star=f_ref,
            title=f"{target.label}" + ("" if n == 2 else "  (projection on the travel plane)"),
        )
        figures.append(viz.save(fig, out / "trajectories.png"))
    fig = viz.loss_figure(
        {r.method: (r.fs, r.times) for r in runs},
        f_star=f_ref,
        f_star_label=ref_label,
        title=target.label,
    )
    figures.append(viz.save(fig, out / "loss_curves.png"))
    results = {
        "problem": target.name,
        "label": target.label,
        "n": n,
        "f_star": target.f_star,
        "f_reference": f_ref,
        "reference": ref_label,
        "max_iter": args.max_iter,
        "curvature_at_x0": curvature,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "runs": [r.as_dict(f_ref) for r in runs],
        "figures": [str(p) for p in figures],
    }
    json_path = out / "results.json"
    json_path.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    for p in [*figures, json_path]:
        console.print(f"wrote {p}")
    return 0


def _console():
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=120)  # logs, pipes: no wrapping


def _writable_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out: cannot create directory {str(out)!r}: {exc.strerror}") from None


def _reference(target: _Target, runs) -> tuple[float, str]:
    if target.f_star is not None and math.isfinite(target.f_star):
        return float(target.f_star), "f*"
    finite = [float(np.nanmin(r.fs)) for r in runs if np.isfinite(r.fs).any()]
    return (min(finite) if finite else 0.0), "best f found"


def _print_table(console, target, runs, f_ref, ref_label) -> None:
    from rich.table import Table

    table = Table(title=target.label, title_justify="left")
    for col in (
        "method",
        "iter",
        "f evals",
        "final f",
        f"f − {ref_label}",
        "‖∇f‖∞",
        "time",
        "status",
    ):
        table.add_column(col, justify="left" if col in ("method", "status") else "right")
    for r in runs:
        res = r.result
        gap = res.fun - f_ref
        status = "converged" if res.success else res.status.name.lower().replace("_", " ")
        table.add_row(
            r.method,
            str(res.nit),
            str(res.nfev),
            f"{res.fun:.6g}",
            f"{gap:.2e}",
            f"{r.grad_norm:.2e}",
            f"{r.seconds:.3f} s",
            f"[green]{status}[/]" if res.success else f"[yellow]{status}[/]",
        )
    console.print(table)


# --- ewma -------------------------------------------------------------------------------------
def _cmd_ewma(args: argparse.Namespace) -> int:
    from rich.table import Table

    from . import _smoother_report, viz
    from ._checks import check_int, check_number

    try:
        lam = check_number("--lam", args.lam, 0.0, 1.0, low_open=True, high_open=True)
        window = (
            _smoother_report.matching_window(lam)
            if args.window is None
            else check_int("--window", args.window, 1)
        )
        check_int("--n", args.n, 10)
        check_number("--noise", args.noise, 0.0)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.csv is not None:
        if args.column is None:
            raise UserError("--csv needs --column NAME")
        x, clean = _read_column(args.csv, args.column), None
        source = f"{args.csv}, column {args.column!r}"
    else:
        if args.column is not None:
            raise UserError("--column goes with --csv")
        x, clean = _smoother_report.noisy_series(args.n, args.noise, args.seed)
        source = f"generated series (n={args.n}, noise σ={args.noise:g}, seed {args.seed})"
    out = Path(args.out)
    _writable_dir(out)

    summaries = _smoother_report.compare_smoothers(x, lam, window, clean)
    console = _console()
    table = Table(
        title=f"λ = {lam:g} EWMA against SMA (window {window}) on {source}", title_justify="left"
    )
    noise_col = "noise left" if clean is not None else "roughness"
    ref = "clean signal" if clean is not None else "raw series"
    for col in (
        "smoother",
        f"lag vs {ref}",
        "mean age of weights",
        noise_col,
        f"start error (first {math.ceil(1 / (1 - lam))})",
    ):
        table.add_column(col, justify="left" if col == "smoother" else "right")
    for s in summaries:
        table.add_row(
            s.name,
            _num(s.lag, ".1f"),
            f"{s.lag_theory:.1f}",
            _num(s.noise_ratio, ".2f"),
            f"{s.start_error:.3g}",
        )
    console.print(table)
    best = min(summaries, key=lambda s: s.start_error)
    ew = summaries[1]
    sm = summaries[-1]
    notes = [
        f"lag vs {ref}: the delay at which the smoothed series correlates best with the {ref}"
        + (
            "."
            if clean is not None
            else " (noise in the series pulls it below the mean age: the noise reaches the"
            " average only through its newest weights)."
        ),
        "mean age of weights: the theory's lag, λ/(1 − λ) for the EWMA, (w − 1)/2 for the SMA: "
        "how far behind a trend each one follows.",
        "noise left: std of the residual (delay removed) / std of the raw noise."
        if clean is not None
        else "roughness: std of first differences / the raw series'.",
    ]
    if math.isnan(ew.lag) and math.isnan(ew.noise_ratio):
        notes.append("The series is constant: lag and roughness are undefined (n/a).")
    else:
        if math.isnan(ew.noise_ratio):
            notes.append(
                f"{noise_col} n/a: the series' first differences are constant (a straight line "
                "has no roughness to remove)."
                if clean is None
                else "noise left n/a: the series has no noise."
            )
        notes.append(
            f"EWMA (λ={lam:g}): lag {_num(ew.lag, '.1f')}, {noise_col} "
            f"{_num(ew.noise_ratio, '.2f')}, O(1) memory; SMA (w={window}): lag "
            f"{_num(sm.lag, '.1f')}, {noise_col} {_num(sm.noise_ratio, '.2f')}, keeps {window} "
            f"values. Smallest start error: {best.name}."
        )
    console.print("\n".join(notes))
    fig = viz.smoothing_figure(
        x,
        {s.name: s.values for s in summaries},
        clean=clean,
        zoom=min(len(x), max(40, math.ceil(4 / (1 - lam)))),
        title=f"EWMA (λ = {lam:g}) vs SMA (window {window}) — {source}",
        label=args.column or "x",
    )
    path = viz.save(fig, out / "ewma_vs_sma.png")
    summary = {
        "source": source,
        "lam": lam,
        "window": window,
        "n": len(x),
        "smoothers": [
            {
                "name": s.name,
                "lag": _finite_or_none(s.lag),
                "lag_reference": ref,
                "lag_theory": s.lag_theory,
                "noise_ratio" if clean is not None else "roughness_ratio": _finite_or_none(
                    s.noise_ratio
                ),
                "start_error": s.start_error,
            }
            for s in summaries
        ],
        "figure": str(path),
    }
    json_path = out / "ewma.json"
    json_path.write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    console.print(f"wrote {path}\nwrote {json_path}")
    return 0


def _num(v: float, fmt: str) -> str:
    return "n/a" if math.isnan(v) else format(v, fmt)


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON has no NaN


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


def _read_column(path: str, column: str) -> np.ndarray:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise UserError(f"cannot read CSV {path!r}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read CSV {path!r}: {exc}") from None
    if not rows:
        raise UserError(f"CSV {path!r} is empty")
    header = [h.strip() for h in rows[0]]
    if column not in header:
        raise UserError(f"CSV {path!r} has no column {column!r}; columns: {', '.join(header)}")
    j = header.index(column)
    data = list(enumerate(rows[1:], start=2))
    while data and not any(c.strip() for c in data[-1][1]):
        data.pop()  # blank lines at the end of the file are not samples
    values, gaps = [], []
    for line, row in data:
        cell = row[j].strip() if j < len(row) else ""
        try:
            v = float(cell) if cell else math.nan
        except ValueError:
            raise UserError(
                f"CSV {path!r}, line {line}: column {column!r} holds {cell!r}, not a number"
            ) from None
        if not math.isfinite(v):
            gaps.append(line)
        values.append(v)
    if gaps:
        # An EWMA weighs samples by position: skipping a row would shift every later sample
        # one step back in time, so a gap is the user's to fill (or to remove on purpose).
        shown = ", ".join(map(str, gaps[:5])) + (", …" if len(gaps) > 5 else "")
        raise UserError(
            f"CSV {path!r}: column {column!r} is empty or not finite on "
            f"{_plural(len(gaps), 'row')} of {len(values)} (line{'s' if len(gaps) > 1 else ''} "
            f"{shown}); the EWMA assumes evenly spaced samples, so fill or remove "
            f"{'that row' if len(gaps) == 1 else 'those rows'} first"
        )
    if len(values) < 10:
        raise UserError(
            f"CSV {path!r}: column {column!r} has {len(values)} numbers; need at least 10"
        )
    return np.asarray(values)


# --- advise -----------------------------------------------------------------------------------
def _cmd_advise(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .advisor import _fmt_bytes, _fmt_s, advise

    target = _target(args)
    try:
        a = advise(target.fun, target.x0, minibatched=args.minibatched)
    except (ValueError, TypeError) as exc:
        raise UserError(str(exc)) from None
    console = _console()
    table = Table(title=f"measured on {target.label}", title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("n (variables)", str(a.n)),
        ("f", _fmt_s(a.time_f)),
        ("f and ∇f", _fmt_s(a.time_grad)),
        ("Hessian-vector product", "n/a" if a.time_hvp is None else _fmt_s(a.time_hvp)),
        (
            "dense Hessian" + (" (n × H·v)" if a.hess_estimated else ""),
            "n/a" if a.time_hess is None else _fmt_s(a.time_hess),
        ),
        ("fixed cost of one iteration", _fmt_s(a.time_iteration)),
        ("memory: dense Hessian / BFGS matrix", _fmt_bytes(a.memory["dense_hessian"])),
        ("memory: L-BFGS history (m = 10)", _fmt_bytes(a.memory["lbfgs_history"])),
    ]
    if a.curvature is not None:
        rows.append(("λ_min, λ_max of ∇²f(x0)", f"{a.curvature[0]:.3g}, {a.curvature[1]:.3g}"))
    rows.append(("f quadratic", "yes" if a.quadratic else "no"))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(a.summary())
    return 0


# --- bench ------------------------------------------------------------------------------------
def _add_bench(sub) -> None:
    try:
        from .bench.cli import add_parser
    except ImportError as exc:
        reason = str(exc)

        def missing(args: argparse.Namespace) -> int:
            print(f"optkit bench: not available in this install ({reason})", file=sys.stderr)
            return 2

        p = sub.add_parser("bench", help="training benchmarks (not available in this install)")
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=missing)
        return
    add_parser(sub)


# --- the parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``optkit`` argument parser (subcommands compare, ewma, advise, bench)."""
    from ._compare import DEFAULT_METHODS

    parser = _Parser(
        prog="optkit",
        description="Optimization methods of modern ML on PyTorch: compare them, smooth "
        "series, get advice.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"optkit {_version()} (torch {torch.__version__})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "compare",
        help="run methods on a problem: table, trajectories, loss curves",
        description="Run optimization methods on one problem with optkit.minimize; print a "
        "table and write trajectories.png (contours with every path; n > 2: "
        "projected on the plane of the two main directions of travel), "
        "loss_curves.png (f − f* against iteration and wall time) and results.json."
        " Default step sizes: gd/momentum/nesterov lr = 1/L (L = largest Hessian "
        "eigenvalue at x0), rmsprop lr = 0.01, adam/adamw lr = 0.05 (adamw without "
        "weight decay); newton, newton-cg, bfgs, lbfgs use a strong-Wolfe line "
        "search. Override with --set.",
    )
    _add_target_args(p)
    p.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated (default: {','.join(DEFAULT_METHODS)}); also nesterov,"
        " adamw, newton-cg",
    )
    p.add_argument(
        "--max-iter",
        type=int,
        default=2000,
        metavar="N",
        help="iteration limit for every method (default 2000)",
    )
    p.add_argument(
        "--out",
        default="optkit-compare",
        metavar="DIR",
        help="output directory (default ./optkit-compare)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="METHOD.OPTION=VALUE",
        help="override an option, e.g. --set adam.lr=0.1 --set momentum.momentum=0.95 (repeatable)",
    )
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "ewma",
        help="EWMA (a0 modes, bias correction) against SMA: figure and lag/noise summary",
        description="Smooth a noisy series (generated, or a CSV column) with the λ-EWMA (a0 = 0, "
        "bias-corrected, a0 = x1, a0 = mean) and an SMA; print lag and noise "
        "reduction of each, write ewma_vs_sma.png and ewma.json.",
    )
    p.add_argument("--lam", type=float, default=0.9, help="λ in (0, 1) (default 0.9)")
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="SMA window (default (1+λ)/(1−λ): the same lag as the EWMA; 19 for λ=0.9)",
    )
    p.add_argument("--csv", metavar="FILE", help="read the series from this CSV file…")
    p.add_argument("--column", metavar="NAME", help="…from this column (header name)")
    p.add_argument("--n", type=int, default=400, help="length of the generated series (400)")
    p.add_argument("--noise", type=float, default=0.4, help="noise σ of the generated series")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated series")
    p.add_argument(
        "--out",
        default="optkit-ewma",
        metavar="DIR",
        help="output directory (default ./optkit-ewma)",
    )
    p.set_defaults(func=_cmd_ewma)

    p = sub.add_parser(
        "advise",
        help="measure a problem and recommend a method, with reasons",
        description="Measure n, the time of f, ∇f, a Hessian-vector product and a dense "
        "Hessian, the memory of each method and the curvature at x0; recommend a "
        "method and a runner-up in the lecture's terms.",
    )
    _add_target_args(p)
    p.add_argument(
        "--minibatched",
        action="store_true",
        help="fun is a minibatch loss (stochastic): advise a training optimizer",
    )
    p.set_defaults(func=_cmd_advise)

    _add_bench(sub)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``optkit`` command; return its exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's parser, which knows its own options
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"optkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _entry() -> Any:  # pragma: no cover - python -m optkit.cli
    started = time.perf_counter()
    code = main()
    del started
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    _entry()
