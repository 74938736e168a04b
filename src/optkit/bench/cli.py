"""``optkit bench grokking|digits|second-order|boosting [--seeds N] [--quick] [--out DIR]``.

:func:`add_parser` registers the ``bench`` subcommand on the ``optkit`` parser (``func(args) ->
exit code`` as its default); :func:`main` runs it on its own (``python -m optkit.bench.cli``,
the ``benchmarks/train_*.py`` wrappers). This module prints (rich progress bars and the results
table); the task modules do not.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import TASKS

__all__ = [
    "REQUIRES",
    "add_parser",
    "main",
    "markdown_summary",
    "missing_requirements",
    "results_table",
    "run_task",
]

DESCRIPTION = """\
Training benchmarks that show when each optimization method wins:
  grokking      a+b mod 97, small transformer: steps to 99% val. acc. (AdamW, Muon, MuonClip)
  digits        sklearn's 8x8 digits, MLP and CNN: SGD, RMSprop, Adam, Adam+L2, AdamW, Muon
  second-order  full-batch newton-cg / lbfgs (optkit.minimize_module) vs Adam, model-size sweep
  boosting      gradient boosting with Newton (sum g / sum h) vs gradient leaf values
Writes results.json and PNG figures into --out (default bench-output/<task>).
digits, second-order and boosting need scikit-learn: pip install "optkit[bench]"."""

#: What each task needs beyond optkit's own dependencies: (import name, pip package).
REQUIRES = {
    "grokking": (),
    "digits": (("sklearn", "scikit-learn"),),
    "second-order": (("sklearn", "scikit-learn"),),
    "boosting": (("sklearn", "scikit-learn"),),
}


def missing_requirements(task: str) -> list[str]:
    """The pip packages ``task`` needs that this environment lacks (empty when none).

    Example:
        >>> missing_requirements("grokking")
        []
    """
    import importlib.util

    return [pip for name, pip in REQUIRES[task] if importlib.util.find_spec(name) is None]


def _module(task: str):
    import importlib

    return importlib.import_module(f"optkit.bench.{task.replace('-', '_')}")


def _config(task: str, quick: bool, seeds: int | None):
    mod = _module(task)
    cls = next(getattr(mod, n) for n in dir(mod) if n.endswith("Config") and n != "Config")
    kwargs = {} if seeds is None else {"seeds": seeds}
    return cls.quick(**kwargs) if quick else cls.full(**kwargs)


def check_optimizers(task: str, optimizers: Sequence[str]) -> tuple[str, ...]:
    """``optimizers`` as a tuple, if ``task`` has an optimizer choice and knows them all."""
    mod = _module(task)
    known = (*getattr(mod, "OPTIMIZERS", ()), *getattr(mod, "MUON_VARIANTS", ()))
    if not known or any(o not in known for o in optimizers):
        raise ValueError(f"optimizers: {task} knows {list(known)}, got {list(optimizers)}")
    return tuple(optimizers)


def run_task(
    task: str,
    *,
    quick: bool = False,
    seeds: int | None = None,
    out: str | Path | None = None,
    config: Any = None,
    progress: Any = None,
    cached_only: bool = False,
    optimizers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run one task (its ``quick()`` or ``full()`` config unless ``config`` is given).

    ``cached_only`` (grokking): assemble the runs saved in ``out/runs`` without training.
    ``optimizers`` (grokking, digits): run these instead of the config's.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    missing = missing_requirements(task)
    if missing:
        raise ModuleNotFoundError(
            f"optkit bench {task} needs {', '.join(missing)}: "
            f'pip install "optkit[bench]" (or pip install {" ".join(missing)})'
        )
    cfg = config if config is not None else _config(task, quick, seeds)
    if optimizers is not None:
        cfg = dataclasses.replace(cfg, optimizers=check_optimizers(task, optimizers))
    if cached_only:
        if task != "grokking":
            raise ValueError("cached_only is only available for grokking")
        return _module(task).run(cfg, out, progress, train=False)
    return _module(task).run(cfg, out, progress)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "not reached"
        if math.isnan(v):
            return "-"
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return "-" if v is None else str(v)


def results_table(results: dict[str, Any]):
    """The ``rows`` of a task's results as a rich Table."""
    from rich.table import Table

    rows = results["rows"]
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    table = Table(title=f"optkit bench {results['task']}")
    for c in columns:
        table.add_column(c.replace("_", " "), justify="left" if c in rows[0] and isinstance(
            rows[0][c], str) else "right")  # fmt: skip
    for r in rows:
        table.add_row(*[_fmt(r.get(c)) for c in columns])
    return table


def markdown_summary(results: dict[str, Any], command: str | None = None) -> str:
    """The results table as Markdown, with the command, CPU and versions that produced it."""
    rows = results["rows"]
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    m = results["machine"]
    lines = [
        f"# optkit bench {results['task']}",
        "",
        f"- command: `{command or m['command']}`",
        f"- CPU: {m['cpu']} ({m['cpu_count']} cores, shared), torch {m['torch']}, "
        f"Python {m['python']}, NumPy {m['numpy']}",
        "",
        "| " + " | ".join(c.replace("_", " ") for c in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console()
    if not console.is_terminal:  # logs, pipes: 120 columns, as the other optkit commands
        console = Console(width=120)
    if args.seeds is not None and args.seeds < 1:
        print("optkit bench: error: --seeds must be an integer >= 1", file=sys.stderr)
        return 2
    if args.cached_only and args.task != "grokking":
        print("optkit bench: error: --cached-only applies to grokking only", file=sys.stderr)
        return 2
    missing = missing_requirements(args.task)
    if missing:
        print(
            f"optkit bench: error: {args.task} needs {', '.join(missing)}, which is not "
            f'installed: pip install "optkit[bench]" (or pip install {" ".join(missing)})',
            file=sys.stderr,
        )
        return 2
    out = Path(args.out) if args.out else Path("bench-output") / args.task
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        results = run_task(
            args.task,
            quick=args.quick,
            seeds=args.seeds,
            out=out,
            progress=progress,
            cached_only=args.cached_only,
            optimizers=args.optimizers.split(",") if args.optimizers else None,
        )
    console.print(results_table(results))
    argv = ["optkit bench", args.task, *(["--quick"] if args.quick else [])]
    argv += [f"--seeds {args.seeds}"] if args.seeds is not None else []
    argv += [f"--out {args.out}"] if args.out else []
    argv += ["--cached-only"] if args.cached_only else []
    argv += [f"--optimizers {args.optimizers}"] if args.optimizers else []
    (out / "summary.md").write_text(markdown_summary(results, " ".join(argv)))
    m = results["machine"]
    console.print(
        f"{args.task}: {time.perf_counter() - started:.1f} s on {m['cpu']} "
        f"({m['cpu_count']} cores), torch {m['torch']}; results in {out}/"
    )
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``bench`` on an argparse subparsers object; returns the new parser."""
    p = subparsers.add_parser(
        "bench",
        help="training benchmarks: grokking, digits, second-order, boosting",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", choices=TASKS)
    p.add_argument("--seeds", type=int, default=None, help="seeds per setting (task default)")
    p.add_argument("--quick", action="store_true", help="small smoke-test version (< 2 min)")
    p.add_argument("--out", default=None, help="output folder (default bench-output/<task>)")
    p.add_argument(
        "--cached-only",
        action="store_true",
        help="grokking: assemble the runs saved under OUT/runs without training more",
    )
    p.add_argument(
        "--optimizers",
        default=None,
        help="grokking, digits: comma-separated optimizers to run, e.g. adamw,muon,muon_normuon",
    )
    p.set_defaults(func=_command, command="bench")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``optkit bench`` on its own: ``main(["digits", "--quick"])``."""
    parser = argparse.ArgumentParser(prog="optkit")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
