"""CPU-only speed path of the foreach rules: blocks of about 2^20 elements.

A foreach op over a whole 23M-parameter model allocates its temporaries (e.g. √s) at full
size: fresh pages from the OS on every step, and every op sweeps memory far larger than the
caches. Cut into blocks of ~2^20 elements the same ops reuse small heap buffers and run ~2x
faster on CPU (``benchmarks/step_time.py``). The rules call :func:`cpu_blocks` only for eager
CPU steps (see :func:`optkit.optim._base.plan_step`); GPUs and compiled steps keep one foreach
call per op (fewest kernel launches; inductor fuses the ops itself).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from torch import Tensor

__all__ = ["CPU_BLOCK_NUMEL", "cpu_blocks"]

CPU_BLOCK_NUMEL = 1 << 20


def cpu_blocks(
    lists: Sequence[Sequence[Any]], block_numel: int | None = None
) -> Iterator[list[list[Any]]]:
    """Yield the parallel lists cut into blocks of about ``block_numel`` elements.

    ``block_numel`` defaults to ``CPU_BLOCK_NUMEL``. ``lists[0]`` holds tensors; every other
    list is empty (an unused state), holds tensors aligned element for element with
    ``lists[0]``, or holds per-tensor scalars (copied to each piece). A contiguous tensor
    longer than a block is cut into flat views, so updating a block updates the tensor in place.

    Example:
        >>> import torch
        >>> a, b = torch.zeros(5), torch.zeros(3)
        >>> [[t.numel() for t in blk[0]] for blk in cpu_blocks([[a, b], [1.0, 2.0]], 4)]
        [[4], [1, 3]]
        >>> [blk[1] for blk in cpu_blocks([[a, b], [1.0, 2.0]], 4)]
        [[1.0], [1.0, 2.0]]
    """
    lead = lists[0]
    block_numel = block_numel or CPU_BLOCK_NUMEL
    out: list[list[Any]] = [[] for _ in lists]
    count = 0
    for i, t in enumerate(lead):
        items = [lst[i] if len(lst) else None for lst in lists]
        n = t.numel()
        split = n > block_numel and all(
            not isinstance(x, Tensor) or x.ndim == 0 or x.is_contiguous() for x in items
        )
        for a in range(0, n, block_numel) if split else (0,):
            b = min(n, a + block_numel) if split else n
            for j, x in enumerate(items):
                if x is not None:
                    cut = split and isinstance(x, Tensor) and x.ndim > 0
                    out[j].append(x.view(-1)[a:b] if cut else x)
            count += b - a
            if count >= block_numel:
                yield out
                out, count = [[] for _ in lists], 0
    if out[0]:
        yield out
