"""Which parameters Muon orthogonalizes and which go to AdamW: a table of rules, not name lists.

Muon's update is an orthogonalized matrix, which makes sense for the *hidden* weight matrices of
a network (the lecture: "para matrices (2d) en capas no extremas"). Everything else goes to
AdamW: vectors (biases, norm gains), and the two "extreme" layers — the embedding, whose rows
are looked up one token at a time, and the output head, whose rows are per-class logits.

:func:`partition` walks an ``nn.Module`` once and gives each parameter the first rule of
:data:`RULES` that applies; the rules are data (algorithm, reason, predicate), so adding a case
means adding a row. :func:`describe` prints the result.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(
    ...     nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 10)
    ... )
    >>> print(describe(partition(model)))  # doctest: +NORMALIZE_WHITESPACE
    name      shape    algorithm  reason
    0.weight  (10, 4)  adamw      embedding
    1.weight  (4, 4)   muon       hidden matrix
    1.bias    (4,)     adamw      bias
    2.weight  (4,)     adamw      normalization gain
    2.bias    (4,)     adamw      bias
    3.weight  (10, 4)  adamw      output head (last Linear: produces the logits)
    3.bias    (10,)    adamw      output head (last Linear: produces the logits)
    muon: 1 tensors, 16 values; adamw: 6 tensors, 102 values
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from torch import Tensor, nn

__all__ = ["RULES", "ParamInfo", "ParamRecord", "Rule", "describe", "partition"]

_NORMS: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
_CONVS = (nn.modules.conv._ConvNd,)
_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


@dataclass(frozen=True)
class ParamInfo:
    """What a rule may look at: one parameter and where it lives."""

    name: str
    param: Tensor
    module: nn.Module
    leaf: str  # the attribute name in its module: "weight", "bias", ...
    is_head: bool
    tied_to_embedding: bool


@dataclass(frozen=True)
class Rule:
    """``applies(info)`` true → ``algorithm``, explained by ``reason``.

    ``batch_dims(info)`` is the number of leading dimensions that index independent matrices
    (1 for stacked MoE experts ``(experts, out, in)``); 0 means rows = dim 0 and the remaining
    dimensions are flattened into columns (a conv kernel ``out × in·kh·kw``).
    """

    algorithm: str
    reason: str
    applies: Callable[[ParamInfo], bool]
    batch_dims: Callable[[ParamInfo], int] = lambda info: 0


RULES: tuple[Rule, ...] = (
    Rule("adamw", "embedding", lambda i: isinstance(i.module, _EMBEDDINGS)),
    Rule("adamw", "output head tied to an embedding", lambda i: i.tied_to_embedding),
    Rule("adamw", "output head (last Linear: produces the logits)", lambda i: i.is_head),
    Rule("adamw", "bias", lambda i: i.leaf == "bias"),
    Rule("adamw", "normalization gain", lambda i: isinstance(i.module, _NORMS)),
    Rule("adamw", "ndim < 2 (vector or scalar)", lambda i: i.param.ndim < 2),
    Rule("muon", "conv kernel (flattened to out × in·k)", lambda i: isinstance(i.module, _CONVS)),
    Rule("muon", "hidden matrix", lambda i: i.param.ndim == 2),
    Rule(
        "muon",
        "stacked matrices (e.g. MoE experts): one per leading index",
        lambda i: i.param.ndim >= 3,
        batch_dims=lambda i: i.param.ndim - 2,
    ),
)


@dataclass(frozen=True)
class ParamRecord:
    """The decision for one parameter."""

    name: str
    param: Tensor = field(repr=False)
    algorithm: str
    reason: str
    batch_dims: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.param.shape)


def partition(
    model: nn.Module,
    *,
    head: str | nn.Module | Sequence[str | nn.Module] | bool | None = None,
    rules: Sequence[Rule] = RULES,
) -> list[ParamRecord]:
    """Route every parameter of ``model`` to ``"muon"`` or ``"adamw"``, with the reason.

    Args:
        model: the network. Shared (tied) parameters appear once, under their first name.
        head: the output head module(s), by module or dotted name. None (default) takes the
            last ``nn.Linear`` in registration order — the usual place of a classifier or an
            LM head; False declares that there is none (e.g. an encoder whose last Linear is
            hidden).
        rules: the rule table, first match wins (default :data:`RULES`).

    Returns:
        One :class:`ParamRecord` per distinct parameter, in ``model.named_parameters()`` order.

    Raises:
        ValueError: a named head is not a submodule, or no rule applies to a parameter.
    """
    modules = dict(model.named_modules())
    heads = _heads(model, modules, head)
    embedding_weights = {
        id(p) for m in modules.values() if isinstance(m, _EMBEDDINGS) for p in m.parameters()
    }
    records, seen = [], set()
    for module_name, module in modules.items():
        for leaf, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            info = ParamInfo(
                name=f"{module_name}.{leaf}" if module_name else leaf,
                param=param,
                module=module,
                leaf=leaf,
                is_head=module in heads,
                tied_to_embedding=id(param) in embedding_weights,
            )
            rule = next((r for r in rules if r.applies(info)), None)
            if rule is None:
                raise ValueError(f"no partition rule applies to {info.name} {tuple(param.shape)}")
            records.append(
                ParamRecord(info.name, param, rule.algorithm, rule.reason, rule.batch_dims(info))
            )
    order = {id(p): k for k, p in enumerate(model.parameters())}
    return sorted(records, key=lambda r: order.get(id(r.param), len(order)))


def _heads(model: nn.Module, modules: dict[str, nn.Module], head) -> list[nn.Module]:
    if head is False:
        return []
    if head is None or head is True:
        linears = [m for m in modules.values() if isinstance(m, nn.Linear)]
        return linears[-1:]
    items = [head] if isinstance(head, (str, nn.Module)) else list(head)
    out = []
    for h in items:
        if isinstance(h, str):
            if h not in modules:
                raise ValueError(f"head must name a submodule of the model; no module {h!r}")
            h = modules[h]
        out.append(h)
    return out


def describe(records: Iterable[ParamRecord]) -> str:
    """A printable table of records: name, shape, algorithm, reason; then totals per algorithm."""
    records = list(records)
    rows = [("name", "shape", "algorithm", "reason")]
    rows += [(r.name, str(r.shape), r.algorithm, r.reason) for r in records]
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths)), row[3]]).rstrip()
        for row in rows
    ]
    totals = []
    for algorithm in ("muon", "adamw"):
        mine = [r for r in records if r.algorithm == algorithm]
        values = sum(r.param.numel() for r in mine)
        totals.append(f"{algorithm}: {len(mine)} tensors, {values} values")
    return "\n".join([*lines, "; ".join(totals)])
