"""Which parameters Muon orthogonalizes and which go to AdamW, from how the network computes.

Muon's update is an orthogonalized matrix, which makes sense for the *hidden* weight matrices of
a network (the lecture: "para matrices (2d) en capas no extremas"). Everything else goes to
AdamW: vectors (biases, norm gains), tensors that are looked up or added rather than multiplied
(token and position embeddings, cls/mask/register tokens, relative position biases), and the
two "extreme" layers — the input layer, which consumes the ids or pixels, and the output head,
which produces the output.

Where those are is read off the network, not its registration order:

- with ``example_input`` (a batch the model accepts), one forward pass is recorded: forward
  pre-hooks name the modules that receive the input tensors (the input layer); the autograd
  graph of the output gives, for every parameter, the operation that consumes it (a matrix
  product or convolution, an embedding lookup, or an elementwise one such as an addition)
  and the matrix products nearest the output (the head — also a functional
  ``F.linear(h, embedding.weight)`` with no head module);
- without it, the model must say: ``get_input_embeddings()`` / ``get_output_embeddings()``
  (the Hugging Face convention, also on :mod:`optkit.testing`'s models), or an
  ``nn.Sequential`` (its first and last layers with parameters). Where the model does not
  say and the split needs it, :func:`partition` stops with one error that names the fix.

``head=``, ``input_layer=`` and ``exclude=`` override what is found. A 3-D tensor is stacked
expert matrices only where its module says so (an integer ``num_experts`` /
``num_local_experts`` attribute equal to its first dimension). Transformers' ``Conv1D``
(weight stored (in, out), recognized by its ``nx``/``nf`` attributes) is marked transposed so
that Muon's r(m, n) and NorMuon see its true rows.

Each parameter gets the first rule of :data:`RULES` that applies; the rules are data
(algorithm, reason, predicate), so adding a case means adding a row. :func:`describe` prints
the result.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(
    ...     nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 10)
    ... )
    >>> print(describe(partition(model)))  # doctest: +NORMALIZE_WHITESPACE
    name      shape    algorithm  reason
    0.weight  (10, 4)  adamw      embedding (looked up by index)
    1.weight  (4, 4)   muon       hidden matrix
    1.bias    (4,)     adamw      bias
    2.weight  (4,)     adamw      normalization gain
    2.bias    (4,)     adamw      bias
    3.weight  (10, 4)  adamw      output head (last layer of the nn.Sequential)
    3.bias    (10,)    adamw      output head (last layer of the nn.Sequential)
    muon: 1 tensors, 16 values; adamw: 6 tensors, 102 values
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
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
# Modules whose ≥2-D parameters are matrices by construction (no forward pass needed).
_MATRIX_LAYERS = (nn.Linear, nn.Bilinear, nn.MultiheadAttention, *_CONVS)
_EXPERT_ATTRS = ("num_experts", "num_local_experts", "n_routed_experts", "n_experts")
# autograd nodes between a parameter and the operation that consumes it (views, casts, picks)
_PASS_THROUGH = re.compile(
    r"(T|Transpose|Permute|View|UnsafeView|Reshape\w*|Expand|Select|Index|Slice|Split\w*|Unbind"
    r"|Squeeze\w*|Unsqueeze\w*|ToCopy|Clone|Alias|AsStrided|Narrow|Chunk)Backward\d*$"
)
_MATMUL = re.compile(r"(Mm|Addmm|Bmm|Baddbmm|Mv|Addmv|Matmul|Linear|Conv\w*|\w*GroupedMm)Backward")
_LOOKUP = re.compile(r"Embedding\w*Backward")


@dataclass(frozen=True)
class ParamInfo:
    """What a rule may look at: one parameter, where it lives and how it is used.

    ``use`` is what the forward pass did with it: ``"matmul"`` (a matrix product or a
    convolution), ``"lookup"`` (an embedding lookup), ``"elementwise"`` (added, concatenated,
    scaled, …), or None (no example forward, or the parameter took no part in it).
    ``head`` / ``input_layer``: None, or how the role was found (for the reason).
    """

    name: str
    param: Tensor
    module: nn.Module
    leaf: str  # the attribute name in its module: "weight", "bias", ...
    head: str | None
    input_layer: str | None
    tied_to_embedding: bool
    use: str | None = None
    experts: int | None = None
    excluded: bool = False

    @property
    def is_head(self) -> bool:
        return self.head is not None


@dataclass(frozen=True)
class Rule:
    """``applies(info)`` true → ``algorithm``, explained by ``reason`` (a string, or a function
    of the info for reasons that say how a role was found).

    ``batch_dims(info)`` is the number of leading dimensions that index independent matrices
    (1 for stacked MoE experts ``(experts, out, in)``); 0 means rows = dim 0 and the remaining
    dimensions are flattened into columns (a conv kernel ``out × in·kh·kw``).
    """

    algorithm: str
    reason: str | Callable[[ParamInfo], str]
    applies: Callable[[ParamInfo], bool]
    batch_dims: Callable[[ParamInfo], int] = lambda info: 0

    def explain(self, info: ParamInfo) -> str:
        return self.reason(info) if callable(self.reason) else self.reason


def _is_norm(module: nn.Module) -> bool:
    """torch's norms, and the RMSNorm/LayerNorm classes of model code, which carry their ε as
    ``eps`` or ``variance_epsilon`` and have no matrix."""
    if isinstance(module, _NORMS):
        return True
    eps = getattr(module, "eps", getattr(module, "variance_epsilon", None))
    return isinstance(eps, float) and all(p.ndim <= 1 for p in module.parameters(recurse=False))


def _is_transposed(module: nn.Module, param: Tensor) -> bool:
    """Transformers' ``Conv1D``: ``weight`` (nx, nf) = (in, out), used as ``x @ W``."""
    nx, nf = getattr(module, "nx", None), getattr(module, "nf", None)
    return isinstance(nx, int) and isinstance(nf, int) and tuple(param.shape) == (nx, nf)


RULES: tuple[Rule, ...] = (
    Rule("adamw", "excluded (exclude=)", lambda i: i.excluded),
    Rule(
        "adamw",
        "embedding (looked up by index)",
        lambda i: isinstance(i.module, _EMBEDDINGS) or i.use == "lookup",
    ),
    Rule("adamw", "output head tied to an embedding", lambda i: i.tied_to_embedding),
    Rule("adamw", lambda i: f"output head ({i.head})", lambda i: i.head is not None),
    Rule(
        "adamw",
        "bias",
        lambda i: i.param.ndim == 1 and (i.leaf == "bias" or i.leaf.endswith("_bias")),
    ),
    Rule("adamw", "normalization gain", lambda i: _is_norm(i.module) and i.param.ndim == 1),
    Rule("adamw", "ndim < 2 (vector or scalar)", lambda i: i.param.ndim < 2),
    Rule(
        "adamw",
        "embedding-like: added or concatenated to activations, not multiplied",
        lambda i: i.use == "elementwise",
    ),
    Rule("adamw", lambda i: f"input layer ({i.input_layer})", lambda i: i.input_layer is not None),
    Rule(
        "muon",
        lambda i: f"stacked expert matrices ({i.experts} experts): one per leading index",
        lambda i: i.experts is not None and i.param.ndim == 3,
        batch_dims=lambda i: 1,
    ),
    Rule("muon", "conv kernel (flattened to out × in·k)", lambda i: isinstance(i.module, _CONVS)),
    Rule(
        "muon",
        "hidden matrix (Conv1D: stored in × out)",
        lambda i: _is_transposed(i.module, i.param) and i.use in ("matmul", None),
    ),
    Rule(
        "muon",
        "hidden matrix",
        lambda i: (
            i.param.ndim == 2
            and (i.use == "matmul" or (i.use is None and isinstance(i.module, _MATRIX_LAYERS)))
        ),
    ),
    Rule(
        "adamw",
        "ndim ≥ 3, not a conv kernel, no experts dimension declared by its module",
        lambda i: i.param.ndim >= 3 and i.use in ("matmul", None),
    ),
)


@dataclass(frozen=True)
class ParamRecord:
    """The decision for one parameter.

    ``transposed``: the weight is stored (in, out) (transformers' ``Conv1D``); its matrix for
    Muon is the transpose. ``row_blocks``: row counts of the blocks Muon orthogonalizes as
    separate matrices (``Muon(orthogonalize="split_qkv" | "per_head")``); () = whole.
    """

    name: str
    param: Tensor = field(repr=False)
    algorithm: str
    reason: str
    batch_dims: int = 0
    transposed: bool = False
    row_blocks: tuple[int, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.param.shape)


Roles = str | nn.Module | Sequence[str | nn.Module] | bool | None


def partition(
    model: nn.Module | Iterable[tuple[str, Tensor]],
    *,
    example_input: Any = None,
    head: Roles = None,
    input_layer: Roles = None,
    exclude: Sequence[str | nn.Module | Tensor] = (),
    rules: Sequence[Rule] = RULES,
) -> list[ParamRecord]:
    """Route every parameter of ``model`` to ``"muon"`` or ``"adamw"``, with the reason.

    Args:
        model: the network, or its ``named_parameters()`` (then there is no module graph:
            every ≥2-D tensor is a hidden matrix unless named in ``exclude``). Shared (tied)
            parameters appear once, under their first name.
        example_input: a batch for one recorded forward pass (module docstring): a tensor, a
            tuple of positional arguments, or a dict of keyword arguments (e.g.
            ``{"input_ids": ids}`` for a transformers model). Parameters are not changed; no
            backward pass runs.
        head: the output head module(s), by module or dotted name; False: none; None: found
            (example forward, ``get_output_embeddings()``, or the last layer of an
            ``nn.Sequential``).
        input_layer: likewise for the layer(s) that consume the input; False: none (the
            inputs are already embedded).
        exclude: parameters (by tensor or dotted name) or modules to give to AdamW.
        rules: the rule table, first match wins (default :data:`RULES`).

    Returns:
        One :class:`ParamRecord` per distinct parameter, in ``model.named_parameters()`` order.

    Raises:
        ValueError: a named module is not a submodule; the head, the input layer or the use
            of a parameter cannot be told without ``example_input`` (the message says what to
            pass); no rule applies to a parameter.
    """
    if not isinstance(model, nn.Module):
        return _partition_named(model, exclude)
    modules = dict(model.named_modules())
    trace = _Trace(model, example_input) if example_input is not None else None
    heads = _roles(model, modules, head, "head", trace)
    inputs = _roles(model, modules, input_layer, "input_layer", trace)
    excluded = _excluded(model, modules, exclude)
    embedding_weights = {
        id(p) for m in modules.values() if isinstance(m, _EMBEDDINGS) for p in m.parameters()
    }
    records, seen, unknown = [], set(), []
    for module_name, module in modules.items():
        for leaf, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            name = f"{module_name}.{leaf}" if module_name else leaf
            experts = next(
                (getattr(module, a) for a in _EXPERT_ATTRS
                 if isinstance(getattr(module, a, None), int)),
                None,
            )  # fmt: skip
            info = ParamInfo(
                name=name,
                param=param,
                module=module,
                leaf=leaf,
                head=heads.get(module),
                input_layer=inputs.get(module),
                tied_to_embedding=id(param) in embedding_weights and module in heads,
                use=None if trace is None else trace.uses.get(id(param)),
                experts=experts if experts is not None and param.shape[0] == experts else None,
                excluded=id(param) in excluded or module in excluded,
            )
            rule = next((r for r in rules if r.applies(info)), None)
            if rule is None:
                unknown.append(f"{name} {tuple(param.shape)} (in a {type(module).__name__})")
                continue
            records.append(
                ParamRecord(
                    name,
                    param,
                    rule.algorithm,
                    rule.explain(info),
                    rule.batch_dims(info),
                    transposed=rule.algorithm == "muon" and _is_transposed(module, param),
                )
            )
    if unknown:
        raise ValueError(
            f"partition: cannot tell whether {', '.join(unknown)} multiplies activations (Muon) "
            "or is added or looked up like an embedding (AdamW) without running the model; pass "
            "example_input=<a batch the model accepts>, or exclude=[...] the embedding-like ones"
            " and pass the rest in explicit param groups"
        )
    order = {id(p): k for k, p in enumerate(model.parameters())}
    return sorted(records, key=lambda r: order.get(id(r.param), len(order)))


def _partition_named(
    named: Iterable[tuple[str, Tensor]], exclude: Sequence[Any]
) -> list[ParamRecord]:
    """Named tensors without modules: shape decides, ``exclude`` names the extreme layers."""
    names = {e for e in exclude if isinstance(e, str)}
    ids = {id(e) for e in exclude if isinstance(e, Tensor)}
    records, seen = [], set()
    for item in named:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Tensor)):
            raise TypeError(
                f"partition: expected an nn.Module or (name, tensor) pairs, got {item!r}"
            )
        name, p = item
        if id(p) in seen:
            continue
        seen.add(id(p))
        if name in names or id(p) in ids or any(name.startswith(n + ".") for n in names):
            records.append(ParamRecord(name, p, "adamw", "excluded (exclude=)"))
        elif p.ndim < 2:
            records.append(ParamRecord(name, p, "adamw", "ndim < 2 (vector or scalar)"))
        elif p.ndim == 2:
            records.append(ParamRecord(
                name, p, "muon",
                "matrix (named parameters: no module graph; exclude= the embeddings and head)",
            ))  # fmt: skip
        else:
            records.append(ParamRecord(
                name, p, "muon",
                "tensor flattened to rows × rest (named parameters: no module graph)",
            ))  # fmt: skip
    return records


def _roles(
    model: nn.Module, modules: dict[str, nn.Module], given: Roles, kind: str, trace: _Trace | None
) -> dict[nn.Module, str]:
    """module → how it was found, for the head (``kind="head"``) or the input layer."""
    if given is False:
        return {}
    if given is not None and given is not True:
        items = [given] if isinstance(given, (str, nn.Module)) else list(given)
        out = {}
        for m in items:
            if isinstance(m, str):
                if m not in modules:
                    raise ValueError(f"{kind} must name a submodule of the model; no module {m!r}")
                m = modules[m]
            out[m] = f"{kind}="
        return out
    if trace is not None:
        found = trace.heads if kind == "head" else trace.inputs
        how = "produces the output" if kind == "head" else "consumes the input"
        return {m: f"example forward: {how}" for m in found}
    getter = "get_output_embeddings" if kind == "head" else "get_input_embeddings"
    declared = _declared(model, getter)
    if declared is not False:
        return {declared: f"{type(model).__name__}.{getter}()"}
    if isinstance(model, nn.Sequential):
        layers = [m for m in model if any(True for _ in m.parameters())]
        if layers:
            m = layers[-1] if kind == "head" else layers[0]
            where = "last" if kind == "head" else "first"
            return {mm: f"{where} layer of the nn.Sequential" for mm in _leaves(m, kind)}
        return {}
    if kind == "input_layer" and any(isinstance(m, _EMBEDDINGS) for m in modules.values()):
        return {}  # the ids go to the embeddings, which are AdamW's anyway
    if not any(isinstance(m, _MATRIX_LAYERS) or p.ndim >= 2
               for m in modules.values() for p in m.parameters(recurse=False)):  # fmt: skip
        return {}
    what = "output head" if kind == "head" else "input layer"
    raise ValueError(
        f"partition: cannot tell the {what} of {type(model).__name__} without running it; pass "
        f"example_input=<a batch the model accepts> (one forward pass finds it), or {kind}="
        f"'<module name>' ({kind}=False: there is none)"
    )


def _leaves(m: nn.Module, kind: str) -> list[nn.Module]:
    """The parameterized module at the end (head) or start (input) of a Sequential entry."""
    if isinstance(m, nn.Sequential):
        layers = [c for c in m if any(True for _ in c.parameters())]
        return _leaves(layers[-1] if kind == "head" else layers[0], kind)
    return [m]


def _declared(model: nn.Module, getter: str) -> nn.Module | bool:
    """``model.<getter>()``: the module, or False (not declared)."""
    fn = getattr(model, getter, None)
    if not callable(fn):
        return False
    try:
        m = fn()
    except (NotImplementedError, AttributeError):
        return False
    # None says nothing (transformers' models without an LM head answer None)
    return m if isinstance(m, nn.Module) else False


def _excluded(model: nn.Module, modules: dict[str, nn.Module], exclude: Sequence[Any]) -> set:
    out: set = set()
    params = dict(model.named_parameters(remove_duplicate=False))
    for e in exclude:
        if isinstance(e, Tensor):
            out.add(id(e))
        elif isinstance(e, nn.Module):
            out.add(e)
        elif isinstance(e, str) and e in params:
            out.add(id(params[e]))
        elif isinstance(e, str) and e in modules:
            out.add(modules[e])
        else:
            raise ValueError(f"exclude: no parameter or module named {e!r}")
    return out


class _Trace:
    """One recorded forward pass: which modules get the inputs, how each parameter is used,
    which matrix products are nearest the output."""

    def __init__(self, model: nn.Module, example_input: Any) -> None:
        args, kwargs = _as_call(example_input)
        storages = {t.untyped_storage().data_ptr() for t in _tensors((args, kwargs))}
        direct = {m for m in model.modules() if any(True for _ in m.parameters(recurse=False))}
        self.inputs: list[nn.Module] = []

        def pre_hook(module: nn.Module, a: Any, kw: Any) -> None:
            if (
                module in direct
                and module not in self.inputs
                and any(t.untyped_storage().data_ptr() in storages for t in _tensors((a, kw)))
            ):
                self.inputs.append(module)

        handles = [m.register_forward_pre_hook(pre_hook, with_kwargs=True) for m in direct]
        # the recorded forward leaves no trace: buffers (BatchNorm statistics) and the random
        # streams (dropout) are as before
        buffers = [(b, b.detach().clone()) for b in model.buffers()]
        cuda = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})
        try:
            with torch.random.fork_rng(devices=cuda), torch.enable_grad():
                out = model(*args, **kwargs)
        finally:
            for h in handles:
                h.remove()
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
        owner = {id(p): m for m in direct for p in m.parameters(recurse=False)}
        roots = [t.grad_fn for t in _outputs(out) if t.grad_fn is not None]
        self.uses, head_params = _graph_uses(roots)
        self.heads = list({owner[i]: None for i in head_params if i in owner})
        # the input layer multiplies the input itself: not a container that passes it on
        # to a child (ViT's embeddings, a model holding expert weights), not a lookup
        got = set(self.inputs)
        self.inputs = [
            m for m in self.inputs
            if any(self.uses.get(id(p)) == "matmul" for p in m.parameters(recurse=False))
            and not any(c in got for c in m.modules() if c is not m)
        ]  # fmt: skip


def _as_call(example_input: Any) -> tuple[tuple, dict]:
    if isinstance(example_input, dict):
        return (), dict(example_input)
    if isinstance(example_input, tuple):
        return example_input, {}
    return (example_input,), {}


def _tensors(obj: Any) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def _outputs(out: Any) -> list[Tensor]:
    """The tensor(s) the model produces: ``logits`` of a transformers output, else the first
    floating tensor found."""
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return [logits]
    if isinstance(out, dict) and isinstance(out.get("logits"), Tensor):
        return [out["logits"]]
    floating = [t for t in _tensors(out if not hasattr(out, "to_tuple") else out.to_tuple())
                if t.is_floating_point()]  # fmt: skip
    return floating[:1]


def _graph_uses(roots: list[Any]) -> tuple[dict[int, str], set[int]]:
    """Per parameter (by id) its use; and the parameters of the matrix products nearest the
    output (the head), if those are one layer's: with no head, the residual branches' last
    products are all nearest, and none of them is the output head."""
    parents: dict[Any, list[Any]] = {}
    leaves: dict[Any, Tensor] = {}
    order, stack, seen = [], list(roots), set(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        for child, _ in getattr(node, "next_functions", ()):
            if child is None:
                continue
            parents.setdefault(child, []).append(node)
            if hasattr(child, "variable"):
                leaves[child] = child.variable
            if child not in seen:
                seen.add(child)
                stack.append(child)

    def consumers(node: Any) -> list[Any]:
        out, todo, done = [], list(parents.get(node, [])), set()
        while todo:
            n = todo.pop()
            if n in done:
                continue
            done.add(n)
            if _PASS_THROUGH.match(n.name()):
                todo.extend(parents.get(n, []))
            else:
                out.append(n)
        return out

    uses: dict[int, str] = {}
    param_of_consumer: dict[Any, list[int]] = {}
    for leaf, p in leaves.items():
        kinds = set()
        for c in consumers(leaf):
            kind = _kind(c.name())
            kinds.add(kind)
            if kind == "matmul" and p.ndim >= 2:
                param_of_consumer.setdefault(c, []).append(id(p))
        # a tied embedding is looked up and multiplied: the lookup decides
        uses[id(p)] = next((k for k in ("lookup", "matmul") if k in kinds), "elementwise")
    # breadth-first from the output, stopping at products that consume a ≥2-D parameter
    frontier: list[Any] = []
    queue, visited = list(roots), set(roots)
    while queue:
        node = queue.pop(0)
        if node in param_of_consumer:
            frontier.append(node)
            continue
        for child, _ in getattr(node, "next_functions", ()):
            if child is not None and child not in visited and not hasattr(child, "variable"):
                visited.add(child)
                queue.append(child)
    head = {i for node in frontier for i in param_of_consumer[node]}
    return uses, head if len(frontier) == 1 else set()


def _kind(node_name: str) -> str:
    if _LOOKUP.search(node_name):
        return "lookup"
    return "matmul" if _MATMUL.search(node_name) else "elementwise"


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
