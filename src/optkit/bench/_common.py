"""What every training benchmark shares: machine facts, JSON, progress, figures, small stats.

Library code never prints: the task functions take a ``progress`` object with the subset of
``rich.progress.Progress`` they use (``add_task``, ``advance``, ``update``, ``remove_task``) and
default to :class:`NullProgress`; the command line passes a real rich progress bar.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "NullProgress",
    "Timer",
    "cpu_model",
    "finite_decreasing",
    "machine_info",
    "median",
    "new_figure",
    "save_figure",
    "seed_everything",
    "threads",
    "write_json",
]


class NullProgress:
    """A progress sink that shows nothing (the default when no rich progress bar is given)."""

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        return 0

    def advance(self, task_id: int, advance: float = 1) -> None:
        pass

    def update(self, task_id: int, **fields: Any) -> None:
        pass

    def remove_task(self, task_id: int) -> None:
        pass


def cpu_model() -> str:
    """The CPU's model name (``lscpu`` "Model name", else ``/proc/cpuinfo``, else platform)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Facts needed to read a timing: CPU, core count, torch / Python versions, threads."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (NaN/Inf become ``null``), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(obj), indent=1, allow_nan=False) + "\n")
    return path


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, torch.Tensor):
        return _clean(obj.tolist())
    return obj


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch, NumPy and ``random``; return a torch generator seeded the same way."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (legacy global state, used by sklearn)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Temporarily set ``torch.set_num_threads(n)`` (``None``: leave it as it is)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class Timer:
    """Accumulates wall time over the ``with`` blocks it guards (training time without eval)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._t0 = 0.0

    def __enter__(self) -> Timer:
        import time

        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        import time

        self.total += time.perf_counter() - self._t0


def median(values: Iterable[float]) -> float:
    """Median of the values (``nan`` for none); infinite values count as larger than all."""
    v = sorted(values)
    if not v:
        return math.nan
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else 0.5 * (v[mid - 1] + v[mid])


def finite_decreasing(values: Sequence[float], slack: float = 0.0) -> bool:
    """True when every value is finite and the last is below the first (by more than slack)."""
    return (
        len(values) >= 2
        and all(math.isfinite(v) for v in values)
        and values[-1] < values[0] - slack
    )


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.0, 4.0)):
    """A matplotlib ``Figure`` and its axes, without pyplot (no GUI backend, no global state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a figure as PNG (Agg renderer), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
