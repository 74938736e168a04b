"""Newton–Schulz: parity with a plain float64 reference, orthogonality, invariances, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import optkit.optim._ns_cpu as ns_cpu
import optkit.optim._ns_cuda as ns_cuda
from optkit.optim._ns_cpu import _Sym
from optkit.optim.newton_schulz import (
    POLAR_EXPRESS,
    QUINTIC,
    _iterate,
    default_ns_dtype,
    newton_schulz,
    ns_flops,
    ns_schedule,
    orthogonalize_many,
)

F64 = torch.float64


def reference_ns(G: torch.Tensor, coefficients, steps: int, eps=1e-7, norm_scale=1.0):
    """The algorithm written plainly for one matrix in float64 (KJ's loop, no batching)."""
    X = G.to(F64)
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T
    X = X / (X.norm() * norm_scale + eps)
    coefficients = list(coefficients)
    for k in range(steps):
        a, b, c = coefficients[min(k, len(coefficients) - 1)]
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if tall else X


def spectrum_matrix(m, n, seed, decay=1e-3):
    """A matrix with log-spaced singular values, like a gradient's (condition number 1/decay)."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(m, m, dtype=F64, generator=g))
    V, _ = torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=g))
    k = min(m, n)
    s = torch.logspace(0, torch.log10(torch.tensor(decay)).item(), k, dtype=F64)
    return (U[:, :k] * s) @ V[:, :k].T


def polar_error(O, G):
    """Relative Frobenius distance to the exact polar factor UVᵀ of G (the SVD's)."""
    U, _, Vh = torch.linalg.svd(G.to(F64), full_matrices=False)
    P = U @ Vh
    return (torch.linalg.matrix_norm(O.to(F64) - P) / torch.linalg.matrix_norm(P)).item()


@pytest.mark.parametrize("shape", [(8, 8), (6, 20), (20, 6), (3, 7, 5), (2, 2, 9, 4)])
@pytest.mark.parametrize("schedule", ["quintic", "polar_express"])
def test_newton_schulz_matches_float64_reference(shape, schedule):
    X = torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    sched = ns_schedule(schedule)
    O = newton_schulz(X, 5, schedule)
    assert O.shape == X.shape and O.dtype == F64
    flat = X.reshape(-1, *shape[-2:])
    ref = torch.stack([reference_ns(M, sched.coefficients, 5, norm_scale=sched.norm_scale)
                       for M in flat]).reshape(shape)  # fmt: skip
    assert (O - ref).abs().max().item() < 1e-10


def test_orthogonalize_many_batches_and_matches_reference():
    g = torch.Generator().manual_seed(2)
    shapes = [(16, 8), (8, 16), (8, 16), (4, 16, 8), (16, 16), (5, 3)]
    Ms = [torch.randn(*s, dtype=F64, generator=g) for s in shapes]
    Os = orthogonalize_many(Ms, 5, "quintic")
    for M, O in zip(Ms, Os):
        assert O.shape == M.shape
        ref = [reference_ns(m, [QUINTIC], 5) for m in M.reshape(-1, *M.shape[-2:])]
        assert (O - torch.stack(ref).reshape(M.shape)).abs().max().item() < 1e-10


@pytest.mark.parametrize("shape", [(64, 64), (64, 256), (256, 64)])
def test_orthogonality_no_worse_than_float32_reference_quintic(shape):
    G = spectrum_matrix(*shape, seed=3)
    ref32 = reference_ns(G.float(), [QUINTIC], 5).float()  # float32-input KJ reference
    ref_err = polar_error(ref32, G)
    # float32 batched: as good as the reference; bfloat16 (the auto choice on CUDA and on
    # CPUs with native bf16): within 5% of it — the quintic's own error (~0.2-0.6) dominates
    assert polar_error(newton_schulz(G.float(), 5, dtype=torch.float32), G) <= ref_err * 1.0001
    for dtype in (None, torch.bfloat16):
        err = polar_error(newton_schulz(G.float(), 5, dtype=dtype), G)
        assert err <= ref_err * 1.05, (dtype, err, ref_err)
    # singular values >= 1e-2 of the largest land in the quintic's band [0.7, 1.2]
    G2 = spectrum_matrix(*shape, seed=4, decay=1e-2)
    s = torch.linalg.svdvals(newton_schulz(G2.float(), 5, dtype=torch.float32).double())
    assert 0.6 < s.min() and s.max() < 1.25
    # Polar Express converges much closer
    pe = polar_error(newton_schulz(G, 8, "polar_express"), G)
    assert pe < 0.1 * ref_err


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 12), n=st.integers(1, 12), seed=st.integers(0, 2**16),
    log_scale=st.floats(-4, 4),
)  # fmt: skip
def test_transpose_equivariance_and_scale_invariance(m, n, seed, log_scale):
    X = torch.randn(m, n, dtype=F64, generator=torch.Generator().manual_seed(seed))
    O = newton_schulz(X, 5, eps=0.0)
    assert torch.allclose(newton_schulz(X.T, 5, eps=0.0), O.T, atol=1e-10, rtol=0)
    assert torch.allclose(newton_schulz(X * 10**log_scale, 5, eps=0.0), O, atol=1e-10, rtol=0)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 10), extra=st.integers(0, 30), tall=st.booleans(), steps=st.integers(1, 8),
    schedule=st.sampled_from(["quintic", "polar_express"]), seed=st.integers(0, 2**16),
    blocks=st.booleans(),
)  # fmt: skip
def test_gram_form_equals_plain_form_in_float64(m, extra, tall, steps, schedule, seed, blocks):
    """In exact arithmetic the grouped Gram iteration is the plain one, and the symmetric-block
    products are the full ones; float64 shows it (``blocks``: from m = 2 on instead of 512)."""
    shape = (3, m + extra, m) if tall else (3, m, m + extra)
    X = torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))
    sched = ns_schedule(schedule)
    with pytest.MonkeyPatch.context() as patch:
        if blocks:
            patch.setattr(ns_cpu, "SYMMETRIC_MIN", 2)
        plain = _iterate(X, sched, steps, 1e-7, gram=False)
        gram = _iterate(X, sched, steps, 1e-7, gram=True)
    ref = torch.stack([reference_ns(M, sched.coefficients, steps, norm_scale=sched.norm_scale)
                       for M in X])  # fmt: skip
    assert (plain - ref).abs().max().item() < 1e-10
    assert (gram - ref).abs().max().item() < 1e-10


def test_symmetric_blocks_compute_the_full_products():
    g = torch.Generator().manual_seed(3)
    for tall, shape in [(False, (2, 7, 19)), (True, (2, 19, 7)), (False, (2, 6, 6))]:
        X = torch.randn(*shape, dtype=F64, generator=g)
        A = X.mT @ X if tall else X @ X.mT
        S = _Sym.gram(X, tall)
        assert S.s11.shape == (2, 3, 3) and S.s12.shape[-2:] == (3, A.size(-1) - 3)
        assert torch.allclose(S.full(), A, atol=1e-12, rtol=0)
        # h = b·A + c·A² and products of polynomials in A (they commute): all symmetric
        h = S.times(S, add=S, beta=-4.775, alpha=2.0315)
        assert torch.allclose(h.full(), -4.775 * A + 2.0315 * A @ A, atol=1e-10, rtol=0)
        assert torch.allclose(h.times(S).full(), h.full() @ A, atol=1e-10, rtol=0)


def rounding_error(X: torch.Tensor, **kw) -> float:
    """Relative Frobenius distance of bf16 Newton–Schulz to the same algorithm in float64."""
    exact = newton_schulz(X, 5, dtype=F64, **kw)
    return (torch.linalg.norm(newton_schulz(X, 5, **kw).to(F64) - exact) / exact.norm()).item()


def test_symmetric_blocks_are_used_on_cpu_from_512_and_keep_bf16_accuracy():
    """Orthogonality as with full products; rounding error at most 1.2× theirs (the Gram
    groups' block sums round once more in bf16: measured 1.13×; plain steps: 1.0×)."""
    assert ns_cpu.uses_blocks(512) and not ns_cpu.uses_blocks(384)
    assert all(ns_cuda.kernels(m, torch.device("cuda")) is not ns_cpu.BlockKernels
               for m in (512, 4096))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    for shape, limit in [((2, 512, 1024), 1.2), ((2, 512, 512), 1.05)]:  # Gram form; plain
        X = torch.randn(*shape, generator=g)
        G = spectrum_matrix(*shape[1:], 0)
        blocks = rounding_error(X), polar_error(newton_schulz(G, 5, dtype=torch.bfloat16), G)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ns_cpu, "SYMMETRIC_MIN", 10**9)
            full = rounding_error(X), polar_error(newton_schulz(G, 5, dtype=torch.bfloat16), G)
        assert blocks[0] <= full[0] * limit, (shape, blocks, full)
        assert blocks[1] <= full[1] * 1.03 + 0.005, (shape, blocks, full)


def test_symmetric_blocks_up_to_two_threads():
    """Beyond ``SYMMETRIC_MAX_THREADS`` threads the six GEMM calls of a block product are not
    known to pay for the quarter of the FLOPs they save; ns_flops follows the same policy."""
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            assert ns_cpu.uses_blocks(512) and not ns_cpu.uses_blocks(256)
            assert ns_flops(512, 2048) < ns_flops(512, 2048, blocks=False)
        torch.set_num_threads(3)
        assert not ns_cpu.uses_blocks(512)
        assert ns_flops(512, 2048) == ns_flops(512, 2048, blocks=False)
    finally:
        torch.set_num_threads(threads)


def test_plain_steps_in_bf16_round_like_torch_muon():
    """X ← a·X + B·X with a·X inside the product's float32 accumulation, as torch and KJ do;
    forming h = aI + B in bf16 first had doubled the rounding error (0.020 against 0.011)."""
    torch_ns = pytest.importorskip("torch.optim._muon")._zeropower_via_newtonschulz
    g = torch.Generator().manual_seed(1)
    for shape in [(512, 512), (256, 384)]:  # with and without symmetric panels
        X = torch.randn(2, *shape, generator=g)
        exact = newton_schulz(X, 5, dtype=F64)
        theirs = torch.stack([torch_ns(M, QUINTIC, 5, 1e-7) for M in X]).to(F64)
        reference = (torch.linalg.norm(theirs - exact) / exact.norm()).item()
        assert rounding_error(X) <= 1.1 * reference, (shape, rounding_error(X), reference)


@pytest.mark.parametrize("decay", [1.0, 1e-3, 1e-6])
@pytest.mark.parametrize("shape", [(64, 256), (256, 64)])
def test_gram_form_in_bfloat16_as_accurate_as_plain_form(shape, decay):
    """Groups of GRAM_GROUP steps keep bf16 rounding harmless (one long group would not)."""
    G = torch.randn(*shape, dtype=F64) if decay == 1.0 else spectrum_matrix(*shape, 5, decay)
    X = G.to(torch.bfloat16)[None]
    sched = ns_schedule("quintic")
    plain = polar_error(_iterate(X, sched, 5, 1e-7, gram=False)[0], G)
    gram = polar_error(_iterate(X, sched, 5, 1e-7, gram=True)[0], G)
    assert gram <= plain * 1.03 + 0.005, (gram, plain)


def test_gram_form_is_chosen_for_elongated_matrices_and_saves_flops():
    assert ns_flops(512, 2048) < 0.7 * ns_flops(512, 2048, gram=False)
    assert ns_flops(2048, 512) == ns_flops(512, 2048)
    assert ns_flops(512, 512, blocks=False) == ns_flops(512, 512, gram=False, blocks=False)
    assert ns_flops(512, 512, blocks=False) == 5 * 6 * 512**3
    assert ns_flops(512, 700) == ns_flops(512, 700, gram=False)  # aspect ≤ 1.5: plain form
    # symmetric blocks: 3/4 of the Gram and m×m FLOPs (KJ's form: steps·(4m²n + 2m³))
    assert ns_flops(512, 512) == 5 * (0.75 * 2 + 2 + 2) * 512**3  # B = b·A + c·A² in full
    assert ns_flops(256, 256) == ns_flops(256, 256, blocks=False)  # below SYMMETRIC_MIN


def test_schedules():
    assert ns_schedule("quintic").steps(3) == [QUINTIC] * 3
    assert len(POLAR_EXPRESS.steps(5)) == 5 and POLAR_EXPRESS.norm_scale == 1.01
    assert POLAR_EXPRESS.steps(12)[-1] == (1.875, -1.25, 0.375)
    assert default_ns_dtype("cpu", F64) == F64
    assert default_ns_dtype("cuda", torch.float32) == torch.bfloat16


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: newton_schulz(torch.ones(3), 5), "at least 2 dimensions"),
        (lambda: newton_schulz(torch.ones(3, 3), 0), "steps must be an integer >= 1"),
        (lambda: newton_schulz(torch.ones(3, 3), 5, "cubic"), "coefficients must be one of"),
        (lambda: newton_schulz(torch.ones(3, 3), 5, [(1.0, 2.0)]), "coefficients must be"),
        (lambda: orthogonalize_many([torch.ones(3)]), r"matrices\[0\]"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("shape", [(2, 5, 5), (2, 4, 13), (2, 13, 4)])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_iterate_leaves_its_input_alone_unless_it_may_consume_it(shape, steps):
    X = torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(5))
    before = X.clone()
    sched = ns_schedule("quintic")
    kept = _iterate(X, sched, steps, 1e-7)
    assert torch.equal(X, before)
    consumed = _iterate(X, sched, steps, 1e-7, consume=True)
    assert torch.equal(consumed, kept)
