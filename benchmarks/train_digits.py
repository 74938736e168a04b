"""Thin wrapper: `python benchmarks/train_digits.py [--seeds N] [--quick] [--out DIR]`.

Same as `optkit bench digits`; see :mod:`optkit.bench.digits` for what it measures.

Results, with the machine and date they were measured on: docs/benchmarks/digits.md.
"""

import sys

from optkit.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["digits", *sys.argv[1:]]))
