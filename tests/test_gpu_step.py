"""benchmarks/gpu_step.py (``make gpu-check``) as far as a CPU can check it: without CUDA it
stops with one line; with ``--device cpu --tiny`` every section runs on tiny shapes and writes
its JSON and table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import optkit.optim._base

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_step.py"
SRC = Path(__file__).resolve().parents[1] / "src"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=900)  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_stops_with_one_line(tmp_path):
    done = run("--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("gpu_step.py: no CUDA device")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


def test_tiny_cpu_run_exercises_every_section(tmp_path):
    done = run("--device", "cpu", "--tiny", "--out", str(tmp_path),
               "--compile-backend", "aot_eager")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_step.json").read_text())
    assert results["errors"] == {}
    assert results["ceilings"]["copy_GBps"] > 0 and results["ceilings"]["bf16_gemm_TFLOPs"] > 0
    assert set(results["adamw"]["ms"]) == {"optkit.AdamW", "torch AdamW fused"}
    (entry,) = results["muon"].values()
    assert {"optkit.Muon", "optkit.Muon (NS eager)", "KJ-style Muon + fused AdamW"} <= set(
        entry["ms"]
    )
    assert "torch.optim.Muon + fused AdamW" in entry["ms"] or not hasattr(torch.optim, "Muon")
    assert entry["missing"]["dion Muon"] == "no --dion checkout"
    if hasattr(optkit.optim._base, "plan_step"):  # AdamW groups compile with it
        assert "optkit.Muon compiled step" in entry["ms"], entry["missing"]
    ns = results["ns"]
    assert ns["TFLOPs_executed"] > 0 and len(ns["forms_ms"]) == 4
    for row in ns["polar_error"].values():  # tiny matrices, bf16 or float32 per CPU
        assert row["optkit"] <= 1.05 * row["torch.optim.Muon"]
    text = (tmp_path / "gpu_step.txt").read_text()
    assert done.stdout.rstrip().endswith(text.rstrip())  # the table is printed last
