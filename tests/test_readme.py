"""The README's examples run, and print what the README shows (see ``markdown_blocks``)."""

from __future__ import annotations

import pytest

from .markdown_blocks import ROOT, check, examples, private_imports, run_python

README = ROOT / "README.md"
EXAMPLES = [e for e in examples(README) if e.lang == "python"]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_readme_example_runs_and_prints_what_it_shows(example, tmp_path):
    got = run_python(example, tmp_path)
    if example.expected is not None:
        assert check(example.expected, got), f"{example.id} printed:\n{got}"


def test_readme_examples_show_their_output_and_use_public_names():
    assert len(EXAMPLES) >= 3
    assert all(e.expected is not None for e in EXAMPLES), "each example shows what it prints"
    for e in EXAMPLES:
        assert not private_imports(e.code), (e.id, private_imports(e.code))


def test_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


def test_output_mismatch_fails():
    """The comparison the tests rely on: ``...`` matches anything, a wrong number does not."""
    assert check("loss 0.12...\n", "loss 0.1234\n")
    assert check("a   b\n", "a b\n")
    assert not check("loss 0.12\n", "loss 0.13\n")
    assert check("│ bfgs │ 0.036 s │\n┗━━━┛\n", "│ bfgs │ 10.5 ms │\n┗━━━━━┛\n")  # times
    assert not check("│ bfgs │   31 │\n", "│ bfgs │   32 │\n")
