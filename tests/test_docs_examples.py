"""Every ```python and ```console block of the docs' Markdown pages runs and prints what the
page shows (see ``markdown_blocks``); MyST-NB code cells are run by the docs build itself."""

from __future__ import annotations

import pytest

from .markdown_blocks import (
    ROOT,
    check,
    console_commands,
    examples,
    private_imports,
    run_console,
    run_python,
)

DOCS = ROOT / "docs"
PAGES = sorted(
    p for p in DOCS.rglob("*.md") if not {"_build", "bench"} & set(p.relative_to(DOCS).parts)
)
EXAMPLES = [e for p in PAGES for e in examples(p)]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_docs_example(example, tmp_path):
    if example.lang == "python":
        got = run_python(example, tmp_path)
        if example.expected is not None:
            assert check(example.expected, got), f"{example.id} printed:\n{got}"
        return
    for command, expected in console_commands(example.code):
        proc = run_console(command, tmp_path)
        assert "Traceback" not in proc.stdout, (command, proc.stdout)
        if expected.strip():
            assert check(expected + "\n", proc.stdout), f"{example.id}: {command}\n{proc.stdout}"
        else:
            assert proc.returncode == 0, (command, proc.stdout)


def test_docs_use_public_names_only():
    for page in [*PAGES, ROOT / "README.md"]:
        text = page.read_text(encoding="utf-8")
        assert not private_imports(text), (page, private_imports(text))


def test_pages_have_examples():
    assert len(EXAMPLES) >= 5
