"""torch.compile of the optimizers' step, the two ways torch documents it.

``torch.compile(opt.step)`` and a compiled training step that calls ``opt.step()``: equal to
eager in float32 (1e-6 relative), no graph break, and no recompilation while an LR scheduler
changes a tensor ``lr`` every step. Inductor compiles C++ here, seconds per graph: one case
runs in ``make test``, the others are marked slow.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch._dynamo.utils import counters

import optkit

from .optim_db import OPTIM_DB

CASES = {
    "SGD": (optkit.SGD, dict(momentum=0.9, weight_decay=0.01, nesterov=True)),
    "RMSprop": (optkit.RMSprop, dict(momentum=0.5, centered=True)),
    "Adam": (optkit.Adam, dict(weight_decay=0.01, amsgrad=True)),
    "AdamW": (optkit.AdamW, dict(weight_decay=0.1)),
    # float32 Newton–Schulz: bf16 would make "equal to eager" a matter of rounding
    "Muon": (optkit.Muon, dict(weight_decay=0.01, ns_dtype=torch.float32)),
}
FAST = {"Adam"}
PARAMS = [pytest.param(n, marks=[] if n in FAST else [pytest.mark.slow], id=n) for n in CASES]


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))


def _build(name, model):
    cls, kw = CASES[name]
    params = model if name == "Muon" else model.parameters()
    extra = {"adamw_lr": torch.tensor(1e-3)} if name == "Muon" else {}
    return cls(params, lr=torch.tensor(0.05), **kw, **extra)


def _rel_err(a, b):
    num = sum(((x - y) ** 2).sum() for x, y in zip(a.parameters(), b.parameters()))
    den = sum((y**2).sum() for y in b.parameters())
    return (num / den).sqrt().item()


def _loss(model, k):
    g = torch.Generator().manual_seed(k)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 3, generator=g)
    return torch.nn.functional.mse_loss(model(x), y)


def _run(name, compile_what):
    torch._dynamo.reset()
    counters.clear()
    models = [_model(), _model()]
    opts = [_build(name, m) for m in models]
    if compile_what == "step":
        steps = [torch.compile(opts[0].step, fullgraph=True), opts[1].step]
    else:

        def train_step(model, opt, k):
            opt.zero_grad()
            _loss(model, k).backward()
            opt.step()

        compiled = torch.compile(train_step)
        steps = [lambda k: compiled(models[0], opts[0], k), opts[1].step]
    # the schedulers come after torch.compile: they wrap opt.step in torch code dynamo skips
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        scheds = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8) for o in opts]
    for k in range(6):
        for i, (model, opt) in enumerate(zip(models, opts)):
            if compile_what == "step" or i == 1:
                opt.zero_grad()
                _loss(model, k).backward()
                steps[i]()
            else:
                steps[0](k)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scheds[i].step()
        if k == 1:  # state exists from here on: no further compilation
            torch._dynamo.config.error_on_recompile = True
    torch._dynamo.config.error_on_recompile = False
    assert opts[0].param_groups[0]["lr"].item() == pytest.approx(0.05 * 0.8**6)
    return models


def test_every_compile_row_has_a_case():
    assert {info.name for info in OPTIM_DB if info.has("compile")} <= set(CASES)


@pytest.fixture(autouse=True)
def _restore_dynamo():
    yield
    torch._dynamo.config.error_on_recompile = False
    torch._dynamo.reset()


@pytest.mark.parametrize("name", PARAMS)
def test_compiled_step_equals_eager(name):
    """torch.compile(opt.step, fullgraph=True): one graph (no break), no recompilation over
    a tensor-lr schedule, the eager values to 1e-6."""
    compiled, eager = _run(name, "step")
    assert _rel_err(compiled, eager) < 1e-6
    assert not counters["graph_break"], dict(counters["graph_break"])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_compiled_training_step_equals_eager(name):
    """A compiled training step (zero_grad, forward, backward, opt.step()): the eager values;
    graph breaks only outside optkit (backward)."""
    compiled, eager = _run(name, "train")
    assert _rel_err(compiled, eager) < 1e-6
    for reason in counters["graph_break"]:
        assert "optkit" not in reason, reason
