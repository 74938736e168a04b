"""A slice of the minimize tests on every available device (``device`` fixture): the same
iterates as on the CPU, the result on the input's device, for each method family."""

from __future__ import annotations

import pytest
import torch

import optkit
from optkit.problems import PROBLEMS

from ..devices import tolerance

F64 = torch.float64
METHODS = ["gd", "adam", "newton", "newton-cg", "bfgs", "lbfgs", "L-BFGS-B"]


def rosen(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


@pytest.mark.parametrize("method", METHODS)
def test_rosenbrock_on_device_equals_cpu_run(method, device):
    options = {"lr": 1e-3, "max_iter": 200} if method in ("gd", "adam") else {}
    x0 = torch.tensor([-1.2, 1.0, -0.5, 0.8], dtype=F64)
    on_cpu = optkit.minimize(rosen, x0, method=method, options=options)
    on_device = optkit.minimize(rosen, x0.to(device), method=method, options=options)
    assert on_device.x.device.type == device.type
    assert on_device.status == on_cpu.status and on_device.nit == on_cpu.nit
    assert on_device.nfev == on_cpu.nfev
    torch.testing.assert_close(on_device.x.cpu(), on_cpu.x, **tolerance(device, F64))


@pytest.mark.parametrize("name", ["beale", "helical_valley", "quadratic_20"])
def test_problem_set_minimizer_on_device(name, device):
    problem = PROBLEMS[name]
    x0 = torch.as_tensor(problem.x0, dtype=F64)
    result = optkit.minimize(problem.fun, x0.to(device), method="bfgs")
    assert result.success and result.x.device.type == device.type
    reference = optkit.minimize(problem.fun, x0, method="bfgs")
    torch.testing.assert_close(result.x.cpu(), reference.x, rtol=1e-8, atol=1e-10)
