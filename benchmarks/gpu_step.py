"""One GPU's check of optkit: the card's ceilings, then AdamW and Muon steps against anchors.

    python benchmarks/gpu_step.py --out gpu-check-output [--dion PATH] [--time-limit 330]
    python benchmarks/gpu_step.py --device cpu --tiny --out /tmp/x   # every code path, tiny

Sections, in order (each one's numbers go to ``--out``/gpu_step.json; the table is printed last):

1. **ceilings** — copy bandwidth (a device-to-device copy, bytes read + written over its time)
   and the bf16 GEMM rate (8192³ on random data). Every later rate is a fraction of these.
2. **adamw** — a ~1B-parameter float32 set (64 matrices 4096×4096): ``optkit.AdamW`` against
   ``torch.optim.AdamW(fused=True)``; GB/s counts the 28 bytes per parameter a fused step must
   move (read θ, g, m, v; write θ, m, v). Targets: ≤ 1.02× torch fused, ≥ 85% of the copy
   bandwidth.
3. **muon** — the Muon step on GPT-2 small (124M: d = 768, 12 layers, vocab 50257) and on a
   1.3B GPT-like set (d = 2048, 24 layers): ``optkit.Muon(model)`` eager (Newton–Schulz compiled
   per stack inside), ``optkit.Muon`` with NS eager, ``torch.compile(opt.step)``;
   ``torch.optim.Muon`` + fused AdamW; a Keller-Jordan-style reference (each matrix on its own,
   bf16, + fused AdamW); microsoft/dion's ``Muon`` when ``--dion`` names a checkout of its
   source. All variants share one set of parameters and gradients (timing does not depend on
   the values), each with its own state. Targets on the 1.3B set: ≤ 0.5× torch.optim.Muon,
   ≤ 0.8× dion's Muon.
4. **ns** — Newton–Schulz alone on the 1.3B set's matrices (24 of each shape): optkit's
   ``orthogonalize_many`` as Muon runs it, and per shape the plain and Gram forms with and
   without the Triton triangle kernel, eager, and compiled with the default kernel; TFLOP/s
   of the FLOPs executed (``ns_flops(device="cuda")``) and of Keller Jordan's form, against
   the measured GEMM rate (target ≥ 50%); polar error ‖O − UVᵀ‖_F / ‖UVᵀ‖_F against the
   float64 SVD factor on one matrix per shape with singular values log-spaced from 1 to
   1e-3, for optkit, torch, KJ and dion.

Timing: CUDA events around each call after warm-up, medians over rounds in which the variants'
order rotates. Without CUDA (and without ``--device cpu``) the script stops with one line.
``--time-limit`` (seconds) skips what would not fit, with a note in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import statistics
import sys
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpt_params import GPT

import optkit
import optkit.optim._ns_cuda as ns_cuda
from optkit.optim import newton_schulz as NS

LR, MU, ADAMW_LR = 0.02, 0.95, 3e-4
QUINTIC = NS.QUINTIC


# --- timing ----------------------------------------------------------------------------------
class Clock:
    """Times calls on one device: CUDA events there, the wall clock (after nothing to wait
    for) on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def ms(self, fn: Callable[[], Any]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3

    def rotated(
        self, variants: dict[str, Callable[[], Any]], rounds: int, warmup: int
    ) -> dict[str, float]:
        """Median ms per call of each variant; round r starts at variant r (rotation), so no
        variant always follows the same one."""
        names = list(variants)
        for name in names:
            for _ in range(warmup):
                variants[name]()
        self.sync()
        times: dict[str, list[float]] = {n: [] for n in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(self.ms(variants[name]))
        return {n: statistics.median(t) for n, t in times.items()}


class Budget:
    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


# --- reference implementations ---------------------------------------------------------------
def kj_newton_schulz(G: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Keller Jordan's zeropower_via_newtonschulz5 (bf16, one matrix)."""
    a, b, c = QUINTIC
    X = G.bfloat16()
    tall = X.size(-2) > X.size(-1)
    if tall:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.mT if tall else X


class KJMuon:
    """A Keller-Jordan-style Muon: each hidden matrix on its own (bf16 NS), fused AdamW."""

    def __init__(self, hidden: list[torch.Tensor], others: list[torch.Tensor]) -> None:
        self.hidden = hidden
        self.bufs = [torch.zeros_like(p) for p in hidden]
        self.adamw = torch.optim.AdamW(others, lr=ADAMW_LR, betas=(0.9, 0.95), fused=True)

    @torch.no_grad()
    def step(self) -> None:
        for p, buf in zip(self.hidden, self.bufs):
            buf.lerp_(p.grad, 1 - MU)
            u = p.grad.lerp(buf, MU)
            O = kj_newton_schulz(u)
            p.add_(O, alpha=-LR * max(1, p.size(0) / p.size(1)) ** 0.5)
        self.adamw.step()


class Pair:
    """Two optimizers stepped as one (a Muon for the matrices, an AdamW for the rest)."""

    def __init__(self, *opts: Any) -> None:
        self.opts = opts

    def step(self) -> None:
        for o in self.opts:
            o.step()


def load_dion(path: str | None) -> tuple[Any, str]:
    """microsoft/dion's package from a checkout (never downloaded), or (None, why not)."""
    if not path:
        return None, "no --dion checkout given"
    root = Path(path).resolve()
    if not (root / "dion" / "__init__.py").exists():
        return None, f"{root} has no dion/__init__.py"
    sys.path.insert(0, str(root))
    try:
        import dion  # type: ignore[import-not-found]

        return dion, f"dion from {root}"
    except Exception as error:  # a checkout that does not import on this torch
        return None, f"import dion failed: {type(error).__name__}: {error}"


# --- the parameter sets ----------------------------------------------------------------------
GPT_SETS = {
    "gpt2-124M": dict(d=768, layers=12, vocab=50257, heads=12),
    "gpt-1.3B": dict(d=2048, layers=24, vocab=50257, heads=16),
}
TINY_SETS = {"tiny": dict(d=64, layers=1, vocab=96, heads=4)}


def gpt_on(device: torch.device, d: int, layers: int, vocab: int, heads: int) -> GPT:
    with torch.device(device):
        torch.manual_seed(0)
        model = GPT(d, layers, vocab, heads)
    g = torch.Generator(device=device).manual_seed(1)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g, device=device) * 1e-2
    return model


def spectrum_matrix(m: int, n: int, device: torch.device, decay: float = 1e-3) -> torch.Tensor:
    """float64 m×n with singular values log-spaced from 1 to ``decay`` (like a gradient)."""
    g = torch.Generator(device=device).manual_seed(m + n)
    k = min(m, n)
    U, _ = torch.linalg.qr(torch.randn(m, k, dtype=torch.float64, device=device, generator=g))
    V, _ = torch.linalg.qr(torch.randn(n, k, dtype=torch.float64, device=device, generator=g))
    s = torch.logspace(0, math.log10(decay), k, dtype=torch.float64, device=device)
    return (U * s) @ V.T


def polar_error(O: torch.Tensor, G: torch.Tensor) -> float:
    U, _, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    P = U @ Vh
    return (torch.linalg.matrix_norm(O.double() - P) / torch.linalg.matrix_norm(P)).item()


# --- sections --------------------------------------------------------------------------------
def ceilings(device: torch.device, clock: Clock, tiny: bool) -> dict[str, Any]:
    numel = 1 << (14 if tiny else 28)  # 1 GiB of float32 on a GPU
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    t = clock.rotated({"copy": lambda: dst.copy_(src)}, rounds=5 if tiny else 20, warmup=3)
    copy_gbs = 2 * src.numel() * 4 / (t["copy"] * 1e-3) / 1e9
    n = 128 if tiny else 8192
    A = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    B = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    t = clock.rotated({"gemm": lambda: A @ B}, rounds=5 if tiny else 20, warmup=3)
    gemm = 2 * n**3 / (t["gemm"] * 1e-3) / 1e12
    return {"copy_GBps": copy_gbs, "bf16_gemm_TFLOPs": gemm, "copy_bytes": 8 * numel, "gemm_n": n}


def adamw(device: torch.device, clock: Clock, tiny: bool, copy_gbs: float) -> dict[str, Any]:
    count, side = (4, 64) if tiny else (64, 4096)
    g = torch.Generator(device=device).manual_seed(0)

    def param_set() -> list[torch.nn.Parameter]:
        ps = [torch.nn.Parameter(torch.randn(side, side, device=device, generator=g) * 0.02)
              for _ in range(count)]  # fmt: skip
        for p in ps:
            p.grad = torch.randn(side, side, device=device, generator=g) * 1e-3
        return ps

    ours = optkit.AdamW(param_set(), lr=1e-4, weight_decay=0.1)
    theirs = torch.optim.AdamW(param_set(), lr=1e-4, weight_decay=0.1, fused=True)
    t = clock.rotated(
        {"optkit.AdamW": ours.step, "torch AdamW fused": theirs.step},
        rounds=5 if tiny else 15,
        warmup=2,
    )
    numel = count * side * side
    out: dict[str, Any] = {"params": numel, "ms": t}
    out["GBps"] = {k: 28 * numel / (v * 1e-3) / 1e9 for k, v in t.items()}
    out["ratio_to_torch_fused"] = t["optkit.AdamW"] / t["torch AdamW fused"]
    out["fraction_of_copy_bandwidth"] = out["GBps"]["optkit.AdamW"] / copy_gbs
    return out


def muon_variants(
    model: GPT, dion: Any, compile_backend: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The optimizers over one shared parameter set; and why any variant is missing."""
    ours = optkit.Muon(model, lr=LR, momentum=MU, adamw_lr=ADAMW_LR)
    hidden = [r.param for r in ours.records if r.algorithm == "muon"]
    ids = {id(p) for p in hidden}
    others = [p for p in model.parameters() if id(p) not in ids]
    variants: dict[str, Any] = {"optkit.Muon": ours}
    missing: dict[str, str] = {}
    variants["optkit.Muon (NS eager)"] = optkit.Muon(model, lr=LR, momentum=MU, adamw_lr=ADAMW_LR)
    if compile_backend:
        compiled = optkit.Muon(model, lr=LR, momentum=MU, adamw_lr=ADAMW_LR)
        step = torch.compile(compiled.step, backend=compile_backend)
        variants["optkit.Muon compiled step"] = types.SimpleNamespace(step=step)
    else:
        missing["optkit.Muon compiled step"] = "--no-compile"
    if hasattr(torch.optim, "Muon"):
        variants["torch.optim.Muon + fused AdamW"] = Pair(
            torch.optim.Muon(hidden, lr=LR, momentum=MU, weight_decay=0.0),
            torch.optim.AdamW(others, lr=ADAMW_LR, betas=(0.9, 0.95), fused=True),
        )
    else:
        missing["torch.optim.Muon + fused AdamW"] = f"torch {torch.__version__} has no optim.Muon"
    variants["KJ-style Muon + fused AdamW"] = KJMuon(hidden, others)
    if dion is not None:
        try:
            groups = [
                {"params": hidden, "algorithm": "muon"},
                {"params": others, "algorithm": "adamw", "lr": ADAMW_LR},
            ]
            variants["dion Muon"] = dion.Muon(
                groups, lr=LR, mu=MU, weight_decay=0.0, nesterov=True, use_triton=True
            )
        except Exception as error:
            missing["dion Muon"] = f"{type(error).__name__}: {error}"
    else:
        missing["dion Muon"] = "no --dion checkout"
    return variants, missing


@contextlib.contextmanager
def ns_compile(enabled: bool):
    old = ns_cuda.COMPILE
    ns_cuda.COMPILE = enabled
    try:
        yield
    finally:
        ns_cuda.COMPILE = old


def muon(
    device: torch.device,
    clock: Clock,
    sets: dict[str, dict[str, int]],
    dion: Any,
    compile_backend: str | None,
    budget: Budget,
    tiny: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, shape in sets.items():
        if budget.left() < 60 and not tiny:
            out[name] = {"skipped": f"time limit ({budget.left():.0f} s left)"}
            continue
        model = gpt_on(device, **shape)
        variants, missing = muon_variants(model, dion, compile_backend)
        calls: dict[str, Callable[[], Any]] = {}
        setup: dict[str, float] = {}
        for label, opt in variants.items():
            eager_ns = label == "optkit.Muon (NS eager)"

            def call(opt=opt, eager_ns=eager_ns) -> None:
                with ns_compile(not eager_ns and ns_cuda.COMPILE):
                    opt.step()

            try:
                t0 = time.perf_counter()
                call()  # first step: state, compilation
                call()
                clock.sync()
                setup[label] = round(time.perf_counter() - t0, 2)
                calls[label] = call
            except Exception as error:
                missing[label] = f"{type(error).__name__}: {str(error)[:300]}"
        t = clock.rotated(calls, rounds=2 if tiny else 7, warmup=1)
        params = sum(p.numel() for p in model.parameters())
        entry: dict[str, Any] = {
            "params": params,
            "ms": t,
            "missing": missing,
            "first_two_steps_s": setup,
        }
        for anchor in ("torch.optim.Muon + fused AdamW", "dion Muon"):
            if anchor in t:
                entry[f"ratio_to {anchor}"] = t["optkit.Muon"] / t[anchor]
        out[name] = entry
        del model, variants, calls
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def ns_section(
    device: torch.device,
    clock: Clock,
    shape: dict[str, int],
    dion: Any,
    gemm_tflops: float,
    budget: Budget,
    tiny: bool,
) -> dict[str, Any]:
    d, layers = shape["d"], shape["layers"]
    shapes = [(3 * d, d), (d, d), (4 * d, d), (d, 4 * d)]  # qkv, proj, fc, out (out × in)
    g = torch.Generator(device=device).manual_seed(2)
    mats = [torch.randn(*s, device=device, generator=g) for s in shapes for _ in range(layers)]
    out: dict[str, Any] = {"shapes": shapes, "per_shape_count": layers}
    executed = sum(NS.ns_flops(*m.shape, device=device) for m in mats)
    kj = sum(NS.ns_flops(*m.shape, gram=False, blocks=False) for m in mats)
    t = clock.rotated(
        {
            "optkit orthogonalize_many": lambda: NS.orthogonalize_many(mats, cast_back=False),
            "KJ per matrix": lambda: [kj_newton_schulz(m) for m in mats],
        },
        rounds=3 if tiny else 7,
        warmup=2,
    )
    out["ms"] = t
    out["TFLOPs_executed"] = executed / (t["optkit orthogonalize_many"] * 1e-3) / 1e12
    out["TFLOPs_KJ_form"] = kj / (t["optkit orthogonalize_many"] * 1e-3) / 1e12
    out["fraction_of_gemm"] = out["TFLOPs_executed"] / gemm_tflops
    out["KJ_TFLOPs"] = kj / (t["KJ per matrix"] * 1e-3) / 1e12
    # per shape: plain / Gram form × Triton kernel on/off × compiled or not
    forms: dict[str, dict[str, float]] = {}
    sched = NS.ns_schedule("quintic")
    for s in shapes:
        if budget.left() < 30 and not tiny:
            forms[f"{s}"] = {"skipped": budget.left()}
            continue
        X = torch.randn(layers, *s, device=device, generator=g).bfloat16()
        variants = {}
        for gram in (False, True):
            for triton in (False, True):
                for compiled in (False, True):
                    label = f"{'gram' if gram else 'plain'}{'+triton' if triton else ''}" + (
                        "+compile" if compiled else ""
                    )
                    if triton and not ns_cuda._ns_triton.available(device):
                        continue
                    if compiled and triton != ns_cuda.uses_triton(min(s), device):
                        continue  # each compilation costs seconds: only the default kernel

                    def run(X=X, gram=gram, triton=triton, compiled=compiled) -> Any:
                        old = ns_cuda.TRITON
                        ns_cuda.TRITON = triton
                        try:
                            with ns_compile(compiled):
                                return NS._iterate(X, sched, 5, 1e-7, gram=gram)
                        finally:
                            ns_cuda.TRITON = old

                    variants[label] = run
        times = clock.rotated(variants, rounds=3 if tiny else 5, warmup=2)
        forms[f"{s[0]}x{s[1]}"] = times
    out["forms_ms"] = forms
    # polar error on one gradient-like matrix per shape
    errors: dict[str, dict[str, float]] = {}
    torch_ns = getattr(getattr(torch.optim, "_muon", None), "_zeropower_via_newtonschulz", None)
    dion_ns = None
    if dion is not None:
        with contextlib.suppress(Exception):
            from dion.newton_schulz_triton import newton_schulz_triton as dion_ns  # type: ignore
    for s in shapes:
        G = spectrum_matrix(*s, device=device)
        row = {
            "optkit": polar_error(NS.orthogonalize_many([G.float()])[0], G),
            "KJ bf16": polar_error(kj_newton_schulz(G.float()), G),
        }
        if torch_ns is not None:
            row["torch.optim.Muon"] = polar_error(torch_ns(G.float(), QUINTIC, 5, 1e-7), G)
        if dion_ns is not None:
            with contextlib.suppress(Exception):
                row["dion"] = polar_error(dion_ns(G.float()[None].bfloat16(), epsilon=1e-7)[0], G)
        errors[f"{s[0]}x{s[1]}"] = row
    out["polar_error"] = errors
    return out


# --- report ----------------------------------------------------------------------------------
def machine(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(card=props.name, memory_GiB=round(props.total_memory / 2**30, 1),
                    sms=props.multi_processor_count, cuda=torch.version.cuda)  # fmt: skip
        with contextlib.suppress(Exception):
            import subprocess

            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip()  # fmt: skip
    with contextlib.suppress(ImportError):
        import triton

        info["triton"] = triton.__version__
    return info


def table(results: dict[str, Any]) -> str:
    lines = [f"machine: {json.dumps(results['machine'])}"]
    c = results.get("ceilings", {})
    if "copy_GBps" in c:
        lines.append(f"ceilings: copy {c['copy_GBps']:.0f} GB/s, bf16 GEMM "
                     f"{c['bf16_gemm_TFLOPs']:.0f} TFLOP/s")  # fmt: skip
    a = results.get("adamw", {})
    if "ms" in a:
        lines.append(f"AdamW ({a['params'] / 1e9:.2f}B params):")
        for k, v in a["ms"].items():
            lines.append(f"  {k:40s} {v:9.2f} ms  {a['GBps'][k]:7.0f} GB/s")
        lines.append(f"  optkit / torch fused = {a['ratio_to_torch_fused']:.3f} (target <= 1.02); "
                     f"{a['fraction_of_copy_bandwidth']:.0%} of copy bandwidth "
                     "(target >= 85%)")  # fmt: skip
    for name, entry in results.get("muon", {}).items():
        if "ms" not in entry:
            lines.append(f"Muon {name}: {entry}")
            continue
        lines.append(f"Muon step, {name} ({entry['params'] / 1e6:.0f}M params):")
        base = entry["ms"].get("torch.optim.Muon + fused AdamW")
        for k, v in entry["ms"].items():
            rel = f"{v / base:6.2f}x torch" if base else ""
            lines.append(f"  {k:40s} {v:9.2f} ms  {rel}")
        for k, why in entry["missing"].items():
            lines.append(f"  {k:40s} not run: {why}")
        for k in ("ratio_to torch.optim.Muon + fused AdamW", "ratio_to dion Muon"):
            if k in entry:
                target = 0.5 if "torch" in k else 0.8
                lines.append(f"  optkit.Muon {k} = {entry[k]:.3f} (target <= {target})")
    n = results.get("ns", {})
    if "ms" in n:
        lines.append(f"Newton-Schulz on the {n.get('set')} matrices ({n['per_shape_count']} "
                     f"of each shape {n['shapes']}):")  # fmt: skip
        for k, v in n["ms"].items():
            lines.append(f"  {k:40s} {v:9.2f} ms")
        lines.append(f"  optkit: {n['TFLOPs_executed']:.0f} TFLOP/s executed "
                     f"({n['fraction_of_gemm']:.0%} of GEMM, target >= 50%), "
                     f"{n['TFLOPs_KJ_form']:.0f} in KJ-form FLOPs; "
                     f"KJ: {n['KJ_TFLOPs']:.0f}")  # fmt: skip
        for s, times in n["forms_ms"].items():
            lines.append(f"  {s}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else
                                               f"{k} {v}" for k, v in times.items()))  # fmt: skip
        for s, row in n["polar_error"].items():
            lines.append(f"  polar error {s}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
    for k, v in results.get("errors", {}).items():
        lines.append(f"ERROR in {k}: {v}")
    lines.append(f"total {results.get('seconds', 0):.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check-output"))
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes: every code path, fast")
    parser.add_argument("--dion", default=None, help="path of a microsoft/dion checkout")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend for the compiled step")  # fmt: skip
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled step")
    parser.add_argument("--time-limit", type=float, default=330.0, help="seconds (skips the rest)")
    parser.add_argument("--sections", default="ceilings,adamw,muon,ns")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_step.py: no CUDA device (torch.cuda.is_available() is False); this check "
              "needs one GPU (or --device cpu --tiny to exercise the code)",
              file=sys.stderr)  # fmt: skip
        return 2
    if device.type != "cuda" and not args.tiny:
        print("gpu_step.py: full-size runs need CUDA; use --tiny on other devices",
              file=sys.stderr)  # fmt: skip
        return 2
    budget = Budget(args.time_limit)
    clock = Clock(device)
    sections = set(args.sections.split(","))
    dion, dion_note = load_dion(args.dion)
    results: dict[str, Any] = {"machine": machine(device), "dion": dion_note, "errors": {}}
    results["machine"]["tiny"] = args.tiny
    args.out.mkdir(parents=True, exist_ok=True)
    compile_backend = None if args.no_compile else args.compile_backend
    sets = TINY_SETS if args.tiny else GPT_SETS
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("ceilings", lambda: ceilings(device, clock, args.tiny)),
        ("adamw", lambda: adamw(device, clock, args.tiny, results["ceilings"]["copy_GBps"])),
        ("muon", lambda: muon(device, clock, sets, dion, compile_backend, budget, args.tiny)),
        ("ns", lambda: ns_section(device, clock, list(sets.values())[-1], dion,
                                  results["ceilings"]["bf16_gemm_TFLOPs"], budget, args.tiny)),
    ]  # fmt: skip
    for name, run in steps:
        if name not in sections:
            continue
        if budget.left() < 20 and not args.tiny:
            results["errors"][name] = f"skipped: time limit ({budget.left():.0f} s left)"
            continue
        t0 = time.perf_counter()
        try:
            results[name] = run()
            if name == "ns":
                results[name]["set"] = list(sets)[-1]
        except Exception as error:
            results["errors"][name] = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]", flush=True)
        (args.out / "gpu_step.json").write_text(json.dumps(results, indent=1, default=str))
    results["seconds"] = time.perf_counter() - budget.start
    (args.out / "gpu_step.json").write_text(json.dumps(results, indent=1, default=str))
    text = table(results)
    (args.out / "gpu_step.txt").write_text(text + "\n")
    print(text)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
