"""gd … adamw: minimize runs the optkit.optim optimizer on x (one update rule)."""

import pytest
import torch

import optkit
from optkit.minimization import Status

F64 = torch.float64

# method, options, equivalent torch.optim constructor (same update rule and hyperparameters)
CASES = [
    ("gd", {"lr": 0.01}, lambda p: torch.optim.SGD(p, lr=0.01)),
    (
        "momentum",
        {"lr": 0.01, "momentum": 0.8},
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.8),
    ),
    ("nesterov", {"lr": 0.01}, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True)),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9}, lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9)),
    ("adam", {"lr": 0.05}, lambda p: torch.optim.Adam(p, lr=0.05)),
    (
        "adamw",
        {"lr": 0.05, "weight_decay": 0.1},
        lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
    ),
]


def beale(x):
    y = torch.tensor([1.5, 2.25, 2.625], dtype=x.dtype)
    i = torch.tensor([1.0, 2.0, 3.0], dtype=x.dtype)
    return ((y - x[0] * (1 - x[1] ** i)) ** 2).sum()


@pytest.mark.parametrize(("method", "options", "reference"), CASES, ids=[c[0] for c in CASES])
def test_iterates_equal_a_torch_optim_loop(method, options, reference):
    x0 = torch.tensor([1.0, 1.0], dtype=F64)
    res = optkit.minimize(
        beale, x0, method=method, options={**options, "max_iter": 25, "record": True}
    )
    assert res.status == Status.MAX_ITER and res.nit == 25 and res.nfev == 26
    p = x0.clone().requires_grad_(True)
    opt = reference([p])
    expected = [p.detach().clone()]
    for _ in range(25):
        opt.zero_grad()
        beale(p).backward()
        opt.step()
        expected.append(p.detach().clone())
    torch.testing.assert_close(res.trajectory.x, torch.stack(expected), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(res.x, expected[-1], rtol=1e-12, atol=1e-14)


def test_uses_the_optkit_optimizers(monkeypatch):
    from optkit import optim

    made = []

    class Spy(optim.Adam):
        def __init__(self, *a, **k):
            made.append(k)
            super().__init__(*a, **k)

    monkeypatch.setattr(optim, "Adam", Spy)
    optkit.minimize(beale, torch.ones(2, dtype=F64), method="adam", options={"max_iter": 2})
    assert made == [
        {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}
    ]


def test_converges_and_stops_on_gtol():
    q = lambda x: 0.5 * (x**2).sum()  # noqa: E731
    res = optkit.minimize(
        q,
        torch.full((4,), 3.0, dtype=F64),
        method="momentum",
        options={"lr": 0.1, "max_iter": 2000},
    )
    assert res.success and res.nit < 500 and float(res.jac.abs().max()) <= 1e-5


def test_ftol_stops_first_order():
    q = lambda x: 0.5 * (x**2).sum()  # noqa: E731
    res = optkit.minimize(
        q,
        torch.full((4,), 3.0, dtype=F64),
        method="gd",
        options={"lr": 0.01, "ftol": 1e-3, "max_iter": 5000},
    )
    assert res.success and "ftol" in res.message


def test_divergence_is_a_nonfinite_status():
    res = optkit.minimize(
        lambda x: (x**4).sum(),
        torch.tensor([10.0], dtype=F64),
        method="gd",
        options={"lr": 1.0, "max_iter": 100},
    )
    assert res.status == Status.NONFINITE and torch.isfinite(res.x).all()
