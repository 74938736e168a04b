"""EWMA / SMA: closed form, bias correction, streaming == vectorized, pandas parity, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import optkit


def closed_form(x, lam, a0):
    """a_n = λⁿ·a0 + Σ_{i=1..n} (1−λ)·λ^{n−i}·x_i, evaluated directly for every n."""
    n = len(x)
    out = np.empty(n)
    for t in range(1, n + 1):
        i = np.arange(1, t + 1)
        out[t - 1] = lam**t * a0 + np.sum((1 - lam) * lam ** (t - i) * x[:t])
    return out


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("a0", ["zero", "mean", "first", 2.5])
def test_closed_form(lam, a0):
    x = np.random.default_rng(0).normal(size=300)
    start = {"zero": 0.0, "mean": x.mean(), "first": x[0]}.get(a0, a0)
    np.testing.assert_allclose(
        optkit.ewma(x, lam, a0=a0), closed_form(x, lam, start), rtol=1e-12, atol=1e-12
    )


def test_constant_series_exact_with_bias_correction():
    x = np.full(1000, 3.7)
    out = optkit.ewma(x, 0.999, bias_correction=True)
    np.testing.assert_allclose(out, x, rtol=1e-13)
    # without correction the zero start shows: weights sum to 1 − λᵗ (lecture: 0.0956 at n=10)
    raw = optkit.ewma(np.ones(10), 0.99)
    assert raw[-1] == pytest.approx(1 - 0.99**10, rel=1e-12)
    assert raw[-1] == pytest.approx(0.0956, abs=1e-4)


def test_multidimensional_along_first_axis_and_types():
    x = np.random.default_rng(1).normal(size=(50, 3, 2))
    out = optkit.ewma(x, 0.8, a0="first")
    for j in range(3):
        for k in range(2):
            np.testing.assert_allclose(out[:, j, k], optkit.ewma(x[:, j, k], 0.8, a0="first"))
    t = optkit.ewma(torch.tensor(x, dtype=torch.float32), 0.8, a0="first")
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), out, rtol=1e-5, atol=1e-5)
    assert isinstance(optkit.ewma([1, 2, 3], 0.5), np.ndarray)  # integers → float


def test_ewma_is_differentiable():
    x = torch.randn(20, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: optkit.ewma(v, 0.7, a0="first"), (x,))


def test_streaming_equals_vectorized_arrays():
    x = np.random.default_rng(2).normal(size=(40, 4))
    avg = optkit.EWMA(0.9, bias_correction=True)
    streamed = np.stack([avg.update(row) for row in x])
    np.testing.assert_allclose(streamed, optkit.ewma(x, 0.9, bias_correction=True), rtol=1e-12)
    avg.reset()
    assert avg.value is None and avg.count == 0


@settings(max_examples=50, deadline=None)
@given(
    x=arrays(np.float64, st.integers(1, 60), elements=st.floats(-1e3, 1e3)),
    lam=st.floats(0.01, 0.99),
    a0=st.sampled_from(["zero", "first", -1.5]),
)
def test_property_streaming_equals_vectorized(x, lam, a0):
    avg = optkit.EWMA(lam, a0=a0)
    streamed = np.array([avg.update(v) for v in x])
    np.testing.assert_allclose(streamed, optkit.ewma(x, lam, a0=a0), rtol=1e-9, atol=1e-9)


def test_parity_with_pandas():
    pd = pytest.importorskip("pandas")
    x = np.random.default_rng(3).normal(size=5000).cumsum()
    s = pd.Series(x)
    for lam in (0.5, 0.95, 0.999):
        np.testing.assert_allclose(
            optkit.ewma(x, lam, a0="first"),
            s.ewm(alpha=1 - lam, adjust=False).mean(),
            rtol=1e-10,
            atol=1e-10,
        )
        np.testing.assert_allclose(
            optkit.ewma(x, lam, bias_correction=True),
            s.ewm(alpha=1 - lam, adjust=True).mean(),
            rtol=1e-10,
            atol=1e-10,
        )
    for window in (1, 7, 100):
        np.testing.assert_allclose(
            optkit.sma(x, window), s.rolling(window, min_periods=1).mean(), rtol=1e-9, atol=1e-9
        )


def test_sma_values():
    np.testing.assert_allclose(optkit.sma([2.0, 4.0, 6.0, 8.0], 3), [2.0, 3.0, 4.0, 6.0])
    t = optkit.sma(torch.arange(5.0), 5)
    assert isinstance(t, torch.Tensor)
    torch.testing.assert_close(t, torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]))


def test_long_series_with_lambda_near_one():
    """10⁶ points with λ near 1, so every one of the ~20 scan passes matters: still exact."""
    x = torch.ones(10**6, dtype=torch.float64)
    out = optkit.ewma(x, 0.999999, bias_correction=True)
    torch.testing.assert_close(out, x, rtol=1e-9, atol=0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: optkit.ewma([1.0], 0.0), r"lam must be in \(0, 1\), got 0.0"),
        (lambda: optkit.ewma([1.0], 1.0), r"lam must be in \(0, 1\), got 1.0"),
        (lambda: optkit.ewma([1.0], -0.5), r"lam must be in \(0, 1\)"),
        (lambda: optkit.ewma([], 0.5), r"x must not be empty"),
        (lambda: optkit.ewma(3.0, 0.5), r"x must have at least one dimension"),
        (lambda: optkit.ewma([1.0], 0.5, a0="last"), r"a0 must be 'zero', 'mean', 'first'"),
        (lambda: optkit.ewma([1.0], 0.5, a0="first", bias_correction=True), r"needs a0='zero'"),
        (lambda: optkit.sma([1.0], 0), r"window must be an integer >= 1, got 0"),
        (lambda: optkit.sma([1.0], 2.5), r"window must be an integer >= 1"),
        (lambda: optkit.sma([], 2), r"x must not be empty"),
        (lambda: optkit.EWMA(1.5), r"lam must be in \(0, 1\)"),
        (lambda: optkit.EWMA(0.5, a0="mean"), r"a0 must be 'zero', 'first' or a number"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
