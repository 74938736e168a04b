"""Smoke tests of the training benchmarks (``optkit bench``): they run, write their files, and
their numbers are sane (finite, decreasing losses). Targets are not checked here: the full runs
are not part of CI (their results live in docs/bench/).

Each task runs its ``tiny()`` preset (a few seconds) for the detailed checks, and the real
``--quick`` preset (what ``optkit bench TASK --quick`` runs; 7–25 s each here) as the CI smoke
test the issue asks for.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from optkit.bench import TASKS, boosting, digits, grokking, second_order
from optkit.bench._common import finite_decreasing, median, write_json
from optkit.bench.cli import check_optimizers, main, markdown_summary, results_table, run_task


def _load(path):
    data = json.loads(path.read_text())
    assert {"task", "config", "machine", "rows"} <= set(data)
    assert {"cpu", "torch", "python"} <= set(data["machine"])
    assert data["rows"], "empty results table"
    return data


def test_common_helpers(tmp_path):
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, math.inf]) == math.inf
    assert math.isnan(median([]))
    assert finite_decreasing([2.0, 1.5, 1.0])
    assert not finite_decreasing([1.0, math.nan, 0.5])
    assert not finite_decreasing([1.0, 1.2])
    p = write_json(tmp_path / "a" / "x.json", {"v": math.inf, "t": torch.tensor([1.0, 2.0])})
    assert json.loads(p.read_text()) == {"v": None, "t": [1.0, 2.0]}


def test_boosting_tiny(tmp_path):
    res = boosting.run(boosting.BoostingConfig.tiny(), tmp_path)
    data = _load(tmp_path / "results.json")
    assert (tmp_path / "boosting.png").stat().st_size > 0
    for method in ("newton", "gradient", "hist_gbdt"):
        for curves in data["runs"]["0"][method].values():
            assert finite_decreasing(curves["train_loss"])
            assert len(curves["train_loss"]) == res["config"]["rounds"] + 1
    # same shrinkage: Newton leaves fit the training set faster than gradient leaves
    rows = {r["method"]: r for r in res["rows"]}
    assert (
        rows["Newton leaves, lr=0.1"]["final_train_loss"]
        < rows["gradient leaves, lr=0.1"]["final_train_loss"]
    )


def test_boosting_newton_leaf_is_newton_step():
    import numpy as np

    # one leaf (a stump that cannot split), start at F = logit(mean y): the Newton leaf value
    # is -Σg/Σh; with lr = 1 the new score is F0 + that value
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 2))
    y = (rng.random(50) < 0.3).astype(float)
    out = boosting.boost(X, y, [X, X], [y, y], leaf="newton", rounds=1, lr=1.0, min_samples_leaf=50)
    p0 = y.mean()
    # g = p0 - y sums to zero at the prior: the step is zero and the loss unchanged
    assert out["train_loss"][1] == pytest.approx(out["train_loss"][0], abs=1e-12)
    assert out["train_loss"][0] == pytest.approx(
        -(p0 * math.log(p0) + (1 - p0) * math.log(1 - p0)), rel=1e-12
    )
    with pytest.raises(ValueError, match="leaf must be"):
        boosting.boost(X, y, [X, X], [y, y], leaf="hessian", rounds=1, lr=1.0)


def test_digits_tiny(tmp_path):
    names = digits.OPTIMIZERS
    cfg = digits.DigitsConfig.tiny()
    cfg = type(cfg)(**{**cfg.__dict__, "optimizers": names})
    res = digits.run(cfg, tmp_path)
    data = _load(tmp_path / "results.json")
    for kind in ("mlp", "cnn"):
        assert (tmp_path / f"digits_{kind}.png").stat().st_size > 0
        for name in names:
            (r,) = data["runs"][kind][name]
            c = r["curves"]
            assert finite_decreasing(c["test_loss"]), (kind, name, c["test_loss"])
            assert all(b >= a for a, b in zip(c["time"], c["time"][1:], strict=False))
    assert len(res["rows"]) == 2 * len(names)
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in res["rows"])


def test_digits_bad_names():
    with pytest.raises(ValueError, match="model must be one of"):
        digits.make_model("resnet")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        digits.make_optimizer("lion", torch.nn.Linear(2, 2), 0.1, 0.0, digits.DigitsConfig())


def test_second_order_tiny(tmp_path):
    res = second_order.run(second_order.SecondOrderConfig.tiny(), tmp_path)
    data = _load(tmp_path / "results.json")
    for name in ("logreg.png", "crossover.png"):
        assert (tmp_path / name).stat().st_size > 0
    for method, r in data["logreg"].items():
        assert finite_decreasing(r["loss"]), method
    # L-BFGS on a 650-parameter convex problem gets to a 1e-2 relative gap within the budget
    assert math.isfinite(res["logreg"]["lbfgs"]["time_to_gap"]["0.01"])
    for per in data["mlp"].values():
        for method, runs in per.items():
            assert runs[0]["loss"][-1] < runs[0]["loss"][0], method


def test_second_order_fit_stops_at_target():
    torch.manual_seed(0)
    X = torch.randn(64, 3, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    for method in ("lbfgs", "newton-cg", "adam"):
        model = torch.nn.Linear(3, 1, bias=False).double()
        out = second_order.fit(
            model,
            lambda model=model: ((model(X).squeeze(1) - y) ** 2).mean(),
            method,
            budget=5.0,
            target=1e-3,
            lr=0.05,
        )
        assert out["loss"][-1] <= 1e-3 and math.isfinite(out["reached"]), method


def test_grokking_tiny(tmp_path):
    res = grokking.run(grokking.GrokkingConfig.tiny(), tmp_path)
    data = _load(tmp_path / "results.json")
    assert (tmp_path / "grokking.png").stat().st_size > 0
    assert set(data["summary"]) == set(grokking.OPTIMIZERS)
    for name, runs in data["runs"].items():
        c = runs[0]["curves"]
        assert finite_decreasing(c["train_loss"]), name
        assert all(0.0 <= a <= 1.0 for a in c["val_acc"])
    assert "ratio_vs_adamw" in res["summary"]["muon"]
    # the rerun reuses the saved runs (same settings): same numbers, no training
    again = grokking.run(grokking.GrokkingConfig.tiny(), tmp_path)
    for name in grokking.OPTIMIZERS:
        for key in ("lr", "steps_to_target", "median_time_s", "final_val_acc"):
            assert again["summary"][name][key] == res["summary"][name][key], (name, key)
    # assembling only: a checkpoint of an interrupted run counts with the steps it ran
    cfg = grokking.GrokkingConfig.tiny()
    cfg = type(cfg)(**{**cfg.__dict__, "seeds": 2})
    part = grokking.train_one(cfg, "adamw", 3e-3, 1, max_steps=10)
    write_json(
        tmp_path / "runs" / "adamw_lr0.003_seed1.json",
        {"key": grokking._run_key(cfg, "adamw"), "result": part, "partial": True},
    )
    assembled = grokking.run(cfg, tmp_path, train=False)
    assert assembled["summary"]["adamw"]["interrupted"] == [False, True]
    assert assembled["summary"]["adamw"]["steps_run"][1] == 10
    assert len(assembled["runs"]["muon"]) == 1  # seed 1 of muon was never run: left out


def test_grokking_data_and_model():
    d = grokking.make_data(7, 0.5)
    x = torch.cat([d["x_train"], d["x_val"]])
    y = torch.cat([d["y_train"], d["y_val"]])
    assert len(x) == 49 and bool(((x[:, 0] + x[:, 1]) % 7 == y).all())
    assert bool((x[:, 2] == 7).all())
    # the last-position shortcut of the final block equals running every position
    torch.manual_seed(0)
    m = grokking.Transformer(7, d=16, heads=2, d_mlp=32, layers=1)
    h = m.embed(x) + m.pos.weight
    block = m.blocks[0]
    full = block(h, last_only=False)[:, -1]
    assert torch.allclose(m.unembed(full), m(x), atol=1e-6)


def test_cli_runs_a_task_and_prints_a_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        boosting.BoostingConfig, "quick", classmethod(lambda cls, seeds=1: cls.tiny())
    )
    assert main(["boosting", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "optkit bench boosting" in out and "results in" in out
    data = _load(tmp_path / "results.json")
    tiny = boosting.BoostingConfig.tiny()
    assert data["task"] == "boosting" and data["config"]["rounds"] == tiny.rounds
    assert data["config"]["lrs"] == list(tiny.lrs)
    assert {r["lr"] for r in data["rows"]} <= set(tiny.lrs)
    assert all(math.isfinite(r["final_train_loss"]) for r in data["rows"])
    assert (tmp_path / "boosting.png").stat().st_size > 0
    summary = (tmp_path / "summary.md").read_text()
    assert "optkit bench boosting --quick" in summary and "| Newton leaves, lr=0.1 |" in summary
    assert main(["boosting", "--cached-only"]) == 2
    assert main(["boosting", "--seeds", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["nope"])
    with pytest.raises(ValueError, match="task must be one of"):
        run_task("nope")


def test_add_parser_registers_bench():
    import argparse

    from optkit.bench.cli import add_parser

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["bench", "second-order", "--quick", "--seeds", "2", "--out", "x"])
    assert (args.task, args.quick, args.seeds, args.out) == ("second-order", True, 2, "x")
    assert callable(args.func)
    assert set(TASKS) == {"grokking", "digits", "second-order", "boosting"}


def test_results_table_formats_inf():
    results = {"task": "t", "rows": [{"method": "a", "x": math.inf, "y": 0.5}]}
    assert results_table(results).row_count == 1
    results["machine"] = {"cpu": "X", "cpu_count": 2, "torch": "2", "python": "3", "numpy": "1"}
    md = markdown_summary(results, "optkit bench t")
    assert "| a | not reached | 0.5 |" in md and "`optkit bench t`" in md


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_quick_presets(task, tmp_path):
    """``optkit bench TASK --quick`` as users run it (7-25 s each here: ``make test-all``)."""
    res = run_task(task, quick=True, out=tmp_path)
    data = _load(tmp_path / "results.json")
    assert data["task"] == res["task"] and len(data["rows"]) == len(res["rows"])
    for row in data["rows"]:
        numbers = [v for v in row.values() if isinstance(v, (int, float)) and v is not None]
        assert numbers and all(math.isfinite(v) for v in numbers), row


def test_muon_variants_and_optimizers_option(tmp_path):
    with pytest.raises(ValueError, match="optimizers: grokking knows"):
        check_optimizers("grokking", ["muon", "lion"])
    assert check_optimizers("digits", ["muon_cautious"]) == ("muon_cautious",)
    cfg = dataclasses.replace(grokking.GrokkingConfig.tiny(), optimizers=("muon",))
    res = run_task("grokking", config=cfg, optimizers=["muon_normuon", "muon_cautious"])
    assert set(res["summary"]) == {"muon_normuon", "muon_cautious"}
    opt = grokking.make_optimizer("muon_cautious", grokking.Transformer(p=7, d=16, heads=2,
                                  d_mlp=32), 0.1, cfg)  # fmt: skip
    assert opt.param_groups[0]["cautious_wd"] and not opt.param_groups[0]["normuon"]
