"""Training benchmarks that show when each method wins (``optkit bench ...``).

One module per task, each with a config dataclass (``full()``, ``quick()``, ``tiny()``
presets) and ``run(cfg, out_dir=None, progress=None) -> dict``:

- :mod:`optkit.bench.grokking`: a+b mod 97 with a small transformer; AdamW vs Muon vs MuonClip.
- :mod:`optkit.bench.digits`: sklearn's 8×8 digits, MLP and CNN; SGD, RMSprop, Adam, Adam+L2,
  AdamW, Muon.
- :mod:`optkit.bench.second_order`: full-batch newton-cg / lbfgs vs Adam, and where first order
  starts to win as the model grows.
- :mod:`optkit.bench.boosting`: gradient boosting with Newton vs gradient leaf values.

:mod:`optkit.bench.cli` registers the ``bench`` subcommand. Data is generated or ships with
scikit-learn; nothing is downloaded.
"""

TASKS = ("grokking", "digits", "second-order", "boosting")

__all__ = ["TASKS"]
