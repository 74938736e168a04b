"""Thin wrapper: `python benchmarks/train_grokking.py [--seeds N] [--quick] [--out DIR]`.

Same as `optkit bench grokking`; see :mod:`optkit.bench.grokking` for what it measures.

Results, with the machine and date they were measured on: docs/benchmarks/grokking.md.
"""

import sys

from optkit.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["grokking", *sys.argv[1:]]))
