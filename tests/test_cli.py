"""The ``optkit`` command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import optkit.cli as cli

CMD = [sys.executable, "-m", "optkit.cli"]
ENV = {**os.environ, "COLUMNS": "120", "OMP_NUM_THREADS": "1"}


def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CMD, *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=timeout
    )


def test_help_lists_the_subcommands():
    out = run("--help")
    assert out.returncode == 0
    for sub in ("compare", "ewma", "advise", "bench"):
        assert sub in out.stdout


def test_compare_default_methods_write_figures_and_json(tmp_path):
    out = run("compare", "--max-iter", "25", "--out", "res", "--threads", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    for name in ("trajectories.png", "loss_curves.png"):
        png = tmp_path / "res" / name
        assert png.stat().st_size > 10_000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "res" / "results.json").read_text())
    assert data["problem"] == "rosenbrock" and data["f_star"] == 0.0
    methods = [r["method"] for r in data["runs"]]
    assert methods == ["gd", "momentum", "rmsprop", "adam", "newton", "bfgs", "lbfgs"]
    for r in data["runs"]:
        assert len(r["f_history"]) == r["nit"] + 1 == len(r["time_history"])
        assert r["time_history"] == sorted(r["time_history"])
    bfgs = next(r for r in data["runs"] if r["method"] == "bfgs")
    assert bfgs["nit"] <= 25 and bfgs["fun"] < 1.0
    for m in methods:  # the table
        assert m in out.stdout


def test_compare_projects_higher_dimensions_and_takes_set(tmp_path):
    out = run(
        "compare",
        "--problem",
        "wood",
        "--methods",
        "adam,lbfgs",
        "--max-iter",
        "20",
        "--set",
        "adam.lr=0.01",
        "--set",
        "adam.betas=0.8,0.99",
        "--out",
        str(tmp_path),
        "--threads",
        "1",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    adam = data["runs"][0]
    assert adam["options"]["lr"] == 0.01 and adam["options"]["betas"] == [0.8, 0.99]
    assert (tmp_path / "trajectories.png").stat().st_size > 10_000


def test_ewma_generated_and_csv(tmp_path):
    out = run("ewma", "--lam", "0.8", "--out", "gen", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "bias-corrected" in out.stdout and "SMA w=9" in out.stdout
    assert (tmp_path / "gen" / "ewma_vs_sma.png").stat().st_size > 10_000
    summary = json.loads((tmp_path / "gen" / "ewma.json").read_text())
    assert summary["window"] == 9 and len(summary["smoothers"]) == 5

    csv = tmp_path / "prices.csv"
    csv.write_text(
        "day,price\n" + "".join(f"{i},{100 + (i % 7) - 3 + i * 0.1}\n" for i in range(60))
    )
    out = run(
        "ewma", "--csv", str(csv), "--column", "price", "--window", "5", "--out", "c", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "roughness" in out.stdout
    assert (tmp_path / "c" / "ewma_vs_sma.png").stat().st_size > 10_000


ERRORS = {
    "unknown problem": (["compare", "--problem", "nope"], "unknown problem 'nope'"),
    "unknown method": (["compare", "--methods", "gd,sgdx"], "unknown method 'sgdx'"),
    "bad --set syntax": (["compare", "--set", "adam.lr"], "expected METHOD.OPTION=VALUE"),
    "bad --set option": (["compare", "--set", "adam.momentum=0.9"], "has no option 'momentum'"),
    "bad --set value": (
        ["compare", "--methods", "adam", "--set", "adam.lr=-1", "--max-iter", "2"],
        "lr",
    ),
    "missing csv": (["ewma", "--csv", "no/such/file.csv", "--column", "x"], "cannot read CSV"),
    "missing column": (["ewma", "--csv", "{csv}", "--column", "nope"], "no column 'nope'"),
    "bad --lam": (["ewma", "--lam", "1.5"], "--lam must be in (0, 1)"),
    "unknown advise problem": (["advise", "--problem", "nope"], "unknown problem"),
    "bad --fun": (["advise", "--fun", "nosuchmodule_xyz:f", "--x0=1,2"], "cannot import"),
}


def _error_args(name: str, tmp_path: Path) -> list[str]:
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n")
    args = [a.replace("{csv}", str(csv)) for a in ERRORS[name][0]]
    return args if args[0] == "advise" else [*args, "--out", str(tmp_path / "o")]


@pytest.mark.parametrize("name", list(ERRORS))
def test_user_error_in_process(name, tmp_path, capsys):
    """Every error path through ``main()`` (what the console script calls): code 2, one line."""
    assert cli.main(_error_args(name, tmp_path)) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert ERRORS[name][1] in err


@pytest.mark.slow
def test_user_errors_in_subprocesses(tmp_path):
    """The issue's error paths as a user sees them: unknown problem / method, bad --set,
    unreadable CSV, plus an argparse usage error (all in parallel to save time; five fresh
    interpreters importing torch: the longest test here, so ``make test-all`` only —
    ``test_user_error_in_process`` checks the same messages in ``make test``)."""
    names = ["unknown problem", "unknown method", "bad --set syntax", "missing csv"]
    cases = {name: _error_args(name, tmp_path) for name in names}
    cases["usage"] = ["compare", "--max-iter", "many"]
    procs = {
        name: subprocess.Popen(
            [*CMD, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            cwd=tmp_path,
        )
        for name, args in cases.items()
    }
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 2, (name, err)
        assert "Traceback" not in err, name
        assert len(err.strip().splitlines()) == 1, (name, err)
        assert ERRORS[name][1] in err if name in ERRORS else "invalid int value" in err


def test_bench_is_wired_or_says_not_available(capsys):
    """In-process: ``optkit bench`` either exists (issue 9's parser) or exits 2 in one line."""
    try:
        import optkit.bench.cli  # noqa: F401
    except ImportError:
        assert cli.main(["bench", "digits"]) == 2
        err = capsys.readouterr().err
        assert "not available" in err and len(err.strip().splitlines()) == 1
    else:
        with pytest.raises(SystemExit) as exc:
            cli.main(["bench", "--help"])
        assert exc.value.code == 0


def test_parse_set_literals():
    from optkit._compare import parse_set

    got = parse_set(
        ["bfgs.line_search=armijo", "rmsprop.centered=true", "lbfgs.history=5"],
        ["bfgs", "rmsprop", "lbfgs"],
    )
    assert got == {
        "bfgs": {"line_search": "armijo"},
        "rmsprop": {"centered": True},
        "lbfgs": {"history": 5},
    }
    with pytest.raises(ValueError, match="is not being run"):
        parse_set(["adam.lr=0.1"], ["gd"])


# --- a new user's first tries: --version, typos, CSV gaps, constant series, pipes ----------------
def test_version(capsys):
    import optkit

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"optkit {optkit.__version__} (torch ")


TYPOS = {
    "option": (["ewma", "--lamb", "0.5"], "did you mean --lam?"),
    "option=value": (["ewma", "--wndow=5"], "did you mean --window?"),
    "subcommand": (["comapre"], "did you mean compare?"),
    "bench task": (["bench", "digit"], "did you mean digits?"),
    "problem": (["compare", "--problem", "rosenbrok"], "did you mean 'rosenbrock'?"),
    "method": (["compare", "--methods", "adam,lbgfs"], "did you mean 'lbfgs'?"),
    "--set option": (["compare", "--methods", "adam", "--set", "adam.lrr=3"], "did you mean 'lr'?"),
}


@pytest.mark.parametrize("name", list(TYPOS))
def test_typos_get_did_you_mean(name, tmp_path, capsys):
    args, hint = TYPOS[name]
    try:
        code = cli.main([*args, "--out", str(tmp_path)] if args[0] == "compare" else args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert hint in err and len(err.strip().splitlines()) == 1, err


def test_no_suggestion_for_a_far_off_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["ewma", "--zzzzzz"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err


def _csv(path: Path, cells: list[str]) -> Path:
    path.write_text("t,close\n" + "".join(f"{i},{c}\n" for i, c in enumerate(cells)))
    return path


def test_ewma_csv_refuses_gaps_naming_the_lines(tmp_path, capsys):
    """An empty (or non-finite) cell would shift every later sample in time: refused."""
    cells = [str(float(i)) for i in range(30)]
    cells[6], cells[20] = "", "nan"
    csv = _csv(tmp_path / "gaps.csv", cells)
    assert cli.main(["ewma", "--csv", str(csv), "--column", "close", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "2 rows of 30 (lines 8, 22)" in err and "fill or remove those rows" in err


def test_ewma_csv_trailing_blank_lines_are_not_samples(tmp_path, capsys):
    csv = _csv(tmp_path / "ok.csv", [str(float(i % 5)) for i in range(30)])
    csv.write_text(csv.read_text() + "\n,\n\n")
    out = tmp_path / "o"
    assert cli.main(["ewma", "--csv", str(csv), "--column", "close", "--out", str(out)]) == 0
    assert json.loads((out / "ewma.json").read_text())["n"] == 30


def test_ewma_labels_say_what_each_lag_measures(tmp_path, capsys):
    csv = _csv(tmp_path / "p.csv", [str(100 + (i % 7) - 3 + i * 0.1) for i in range(60)])
    assert (
        cli.main(["ewma", "--csv", str(csv), "--column", "close", "--out", str(tmp_path / "o1")])
        == 0
    )
    out = capsys.readouterr().out
    assert "lag vs raw series" in out and "mean age of weights" in out
    assert "lag (measured)" not in out and "lag (theory)" not in out
    assert cli.main(["ewma", "--n", "200", "--out", str(tmp_path / "o2")]) == 0
    assert "lag vs clean signal" in capsys.readouterr().out


def test_ewma_constant_series_has_no_inf_and_no_warning(tmp_path, capsys):
    import warnings

    csv = _csv(tmp_path / "flat.csv", ["5"] * 30)
    out = tmp_path / "o"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a divide-by-zero RuntimeWarning fails the test
        code = cli.main(["ewma", "--csv", str(csv), "--column", "close", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "inf" not in text and "nan" not in text
    assert "n/a" in text and "constant" in text
    data = json.loads((out / "ewma.json").read_text())  # strict JSON: no NaN/Infinity
    assert all(s["lag"] is None and s["roughness_ratio"] is None for s in data["smoothers"])


def test_bench_table_is_120_columns_when_piped(monkeypatch, tmp_path, capsys):
    """Piped output (not a terminal): the table keeps its cells at 120 columns, no ellipses."""
    import optkit.bench.cli as bench_cli

    row = {f"column_{k}": f"value-{k}-{'x' * 6}" for k in range(7)}
    fake = {
        "task": "grokking",
        "rows": [row, row],
        "machine": {"cpu": "cpu", "cpu_count": 2, "torch": "t", "python": "p", "numpy": "n"},
    }
    monkeypatch.setattr(bench_cli, "run_task", lambda *a, **k: fake)
    assert cli.main(["bench", "grokking", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and row["column_6"] in out
    assert max(len(line) for line in out.splitlines()) <= 120


def test_bench_says_which_extra_a_task_needs(monkeypatch, capsys):
    import importlib.util

    import optkit.bench.cli as bench_cli

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    assert bench_cli.missing_requirements("digits") == ["scikit-learn"]
    assert bench_cli.missing_requirements("grokking") == []
    assert cli.main(["bench", "digits"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "optkit[bench]"' in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ModuleNotFoundError, match=r"optkit\[bench\]"):
        bench_cli.run_task("boosting", quick=True)
