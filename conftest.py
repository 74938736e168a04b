"""Test-session settings shared by tests/ and the doctests in src/optkit.

One torch thread: the tests use small tensors, for which a second thread only adds
synchronization, and on a loaded 2-core machine spinning OpenMP threads slow everything down
several-fold. Tests check correctness, never speed.
"""

import torch

torch.set_num_threads(1)
