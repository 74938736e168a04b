r"""Newton–Schulz on CUDA (and any other non-CPU device): batched stacks, Gram form with
restarts where it needs fewer FLOPs, one compiled graph per stack, symmetric Triton products.

:mod:`optkit.optim.newton_schulz` sends every stack that is not on the CPU here; none of the
CPU's speed paths (:mod:`optkit.optim._ns_cpu`: 2×2 symmetric blocks, the ``/proc/cpuinfo``
probe, buffer reuse) runs on this path.

- **Compute dtype**: bfloat16 on CUDA (every tensor-core generation since Ampere multiplies it
  at the full rate; accumulation is float32 inside the GEMM), float32 on other devices.
- **Gram form with restarts** (Zhang, Amsel, Chen & Dao, "Gram Newton-Schulz", 2026,
  https://dao-ailab.github.io/blog/2026/gram-newton-schulz/): the polynomial steps run on the
  m×m Gram matrix and X is rebuilt ("restarted") between groups, here after step
  ``FIRST_GROUP`` = 3 and then every ``RESTART_EVERY`` = 3 steps (5 steps: one restart, groups
  of 3 and 2). That paper restarts after step 2 in float16; in bfloat16 that placement rounds
  worse: polar error on 512×2048 matrices with singular values from 1 to 1e-3 (5 steps,
  float64 SVD reference) 0.447 plain, 0.449 restart after 3, 0.465 after 2 (quintic); 0.329,
  0.329 and 0.408 (Polar Express); in float16 all three were 0.4445 ± 0.0002 (quintic). The
  form is chosen where its FLOPs, counted with this device's cost of a symmetric product
  (:func:`product_cost`), are fewer than the plain form's.
- **Symmetric products** (:mod:`optkit.optim._ns_triton`): where triton is importable and
  m ≥ ``TRITON_MIN``, the Gram matrix and every m×m product compute one triangle (about half
  the FLOPs); elsewhere cuBLAS ``bmm``/``baddbmm``.
- **Compiled** (``torch.compile``, ``fullgraph=True``, ``dynamic=False``): one graph per stack
  shape, dtype and schedule, so the elementwise work between the GEMMs (normalization, the
  a·I added to h, scaling) fuses and launches are fewer. Each key gets its own code object, so
  a model with many shapes never hits dynamo's per-function recompile limit, and a Muon step
  with fixed shapes never recompiles. Inside an outer ``torch.compile`` (a compiled training
  step) the plain function is traced into the caller's graph instead. A key whose compilation
  fails runs eagerly from then on, with one warning.

Switches (module attributes, for benchmarks and tests): ``COMPILE`` (default True unless
``OPTKIT_NS_COMPILE=0``), ``TRITON`` (default True unless ``OPTKIT_NS_TRITON=0``).
"""

from __future__ import annotations

import os
import types
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _ns_dense, _ns_triton

__all__ = ["COMPILE", "RESTART_EVERY", "TRITON", "TRITON_MIN", "groups", "iterate", "kernels"]

COMPILE = os.environ.get("OPTKIT_NS_COMPILE", "1") != "0"
TRITON = os.environ.get("OPTKIT_NS_TRITON", "1") != "0"
# Below this m the symmetric kernel's 128-wide tiles are mostly padding: cuBLAS instead.
TRITON_MIN = 256
# The first restart comes after step FIRST_GROUP, then one every RESTART_EVERY steps.
FIRST_GROUP = 3
RESTART_EVERY = 3


def compute_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA, float32 on other devices (float64 is kept upstream)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def restart_groups(steps: int) -> tuple[int, ...]:
    """Group sizes of the Gram form with restarts: ``FIRST_GROUP`` steps, then groups of
    ``RESTART_EVERY``.

    Example:
        >>> restart_groups(5), restart_groups(8), restart_groups(1)
        ((3, 2), (3, 3, 2), (1,))
    """
    out, done = [], 0
    while done < steps:
        size = min(FIRST_GROUP if not out else RESTART_EVERY, steps - done)
        out.append(size)
        done += size
    return tuple(out)


def uses_triton(m: int, device: torch.device) -> bool:
    """Whether m×m products on ``device`` use the symmetric Triton kernel."""
    return TRITON and m >= TRITON_MIN and _ns_triton.available(device)


def product_cost(m: int, device: torch.device) -> float:
    """FLOPs of a symmetric m×m product (and of a Gram matrix) relative to a full GEMM: about
    1/2 with the Triton kernel ((t² + t)/2 of t² tiles), else 1."""
    if not uses_triton(m, device):
        return 1.0
    t = -(-m // _ns_triton.BLOCK)
    return (t * t + t) / 2 / (t * t)


def group_flops(m: int, n: int, size: int, k: float) -> float:
    """Multiply-add FLOPs of one group of ``size`` steps on an m×n matrix (m ≤ n) with
    symmetric products at relative cost k; ``size`` = 1 is a plain step, whose product
    B = b·A + c·A² is symmetric too."""
    return k * 2 * m * m * n + k * (8 * size - 6) * m**3 + 2 * m * m * n


def groups(m: int, n: int, steps: int, gram: bool | None, device: torch.device) -> tuple[int, ...]:
    """Step groups for an m×n matrix (m ≤ n): the Gram form with restarts when ``gram`` is
    True, or when ``gram`` is None and its FLOPs are fewer than the plain form's."""
    gram_groups, plain = restart_groups(steps), (1,) * steps
    if gram is None:
        k = product_cost(m, device)
        gram = sum(group_flops(m, n, g, k) for g in gram_groups) < steps * group_flops(m, n, 1, k)
    return gram_groups if gram else plain


DenseKernels = _ns_dense.DenseKernels  # full cuBLAS products


class TriangleKernels(DenseKernels):
    """Symmetric-matrix operations with :func:`optkit.optim._ns_triton.sym_matmul`."""

    @staticmethod
    def gram(X: Tensor, tall: bool) -> Tensor:
        return _ns_triton.sym_matmul(X.mT, X) if tall else _ns_triton.sym_matmul(X, X.mT)

    @staticmethod
    def product(P: Tensor, R: Tensor, *, add: Any = None, beta: float = 1.0, alpha: float = 1.0):
        return _ns_triton.sym_matmul(P, R, add, alpha=alpha, beta=beta)

    @staticmethod
    def square(A: Tensor, b: float, c: float) -> Tensor:
        return _ns_triton.sym_matmul(A, A, A, alpha=c, beta=b)


def kernels(m: int, device: torch.device) -> type[DenseKernels]:
    """The symmetric-matrix operations for m×m work on ``device``."""
    return TriangleKernels if uses_triton(m, device) else DenseKernels


# Results stay in freshly allocated tensors (no out= buffers): the compiled graph plans its own
# memory, and CUDA graphs replay it.
REUSE_BUFFERS = False

_COMPILED: dict[tuple[Any, ...], Callable[..., Tensor]] = {}
_EAGER: set[tuple[Any, ...]] = set()


def iterate(run: Callable[..., Tensor], X: Tensor, *args: Any) -> Tensor:
    """``run(X, *args)`` (the iteration of :mod:`optkit.optim.newton_schulz`), compiled per
    stack shape on CUDA when ``COMPILE`` is set; eager elsewhere and inside an outer compile."""
    if not (COMPILE and X.device.type == "cuda") or torch.compiler.is_compiling():
        return run(X, *args)
    return compiled_call(run, X, *args)


def compiled_call(
    run: Callable[..., Tensor], X: Tensor, *args: Any, backend: str = "inductor"
) -> Tensor:
    """``run(X, *args)`` through a ``torch.compile`` graph of its own for this key: the shape,
    dtype and device of X and the (hashable) other arguments. ``backend``: torch.compile's
    (the CPU tests use it with ``"aot_eager"`` or ``"inductor"``)."""
    key = (run, tuple(X.shape), X.dtype, X.device, backend, *args)
    if key in _EAGER:
        return run(X, *args)
    fn = _COMPILED.get(key)
    if fn is None:
        # a fresh code object per key: dynamo's recompile limit counts per code object
        code = run.__code__.replace()
        fresh = types.FunctionType(code, run.__globals__, run.__name__, run.__defaults__,
                                   run.__closure__)  # fmt: skip
        fn = torch.compile(fresh, fullgraph=True, dynamic=False, backend=backend)
        _COMPILED[key] = fn
    try:
        return fn(X, *args)
    except Exception as error:  # any compiler failure: run eagerly instead
        warnings.warn(
            f"optkit: torch.compile of Newton–Schulz failed for a {tuple(X.shape)} "
            f"{X.dtype} stack ({type(error).__name__}: {error}); running it eagerly",
            RuntimeWarning,
            stacklevel=2,
        )
        _EAGER.add(key)
        _COMPILED.pop(key, None)
        return run(X, *args)
