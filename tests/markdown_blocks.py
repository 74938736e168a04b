"""The code blocks of a Markdown page, and how to run one and check what it prints.

A ```` ```python ```` block is an example that must run. When a ```` ```text ```` block follows it
(only blank lines between), that block is what the example prints: compared as doctest compares
(``...`` matches anything, runs of whitespace are equal), wall times (``0.418 s``, ``17 µs``)
excepted. A ```` ```console ```` block holds
``$ optkit ...`` commands, each followed by what it prints (the same comparison); they run in a
subprocess. A block preceded by ``<!-- not-run: reason -->`` is left alone (say why).
MyST-NB ``{code-cell}`` blocks are not collected here: the docs build runs them.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(`{3,})([\w-]*)[^\n]*\n(.*?)^\1\s*$", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not-run:[^>]*-->\s*$")
PRIVATE = re.compile(r"\boptkit(?:\.\w+)*\._\w+|from\s+optkit(?:\.\w+)*\s+import\s+\(?\s*_\w+")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass
class Example:
    """One runnable block: where it is, its code, and what it should print (None: unchecked)."""

    path: Path
    line: int
    lang: str
    code: str
    expected: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def examples(path: Path) -> list[Example]:
    """The ``python`` and ``console`` blocks of one Markdown file, each with its output block."""
    path = path.resolve()
    text = path.read_text(encoding="utf-8")
    blocks = list(FENCE.finditer(text))
    out = []
    for i, m in enumerate(blocks):
        lang = m.group(2)
        if lang not in ("python", "console"):
            continue
        if NOT_RUN.search(text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]):
            continue
        expected = None
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if lang == "python" and nxt and nxt.group(2) == "text":
            if not text[m.end() : nxt.start()].strip():
                expected = nxt.group(3)
        line = text.count("\n", 0, m.start()) + 1
        out.append(Example(path, line, lang, m.group(3), expected))
    return out


def private_imports(code: str) -> list[str]:
    """Names starting with ``_`` that the code reaches inside optkit."""
    return [m.group(0) for m in PRIVATE.finditer(code)]


TIME = re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)? ?(?:s|ms|µs)\b")
RULE = re.compile(r"([━─═])\1+")


def _normalized(text: str) -> str:
    """Wall times read ``<time>`` and table rules one character long: the two things a rerun
    changes in a table that is otherwise the same (a longer time widens its column)."""
    return RULE.sub(r"\1", TIME.sub("<time>", text))


def check(want: str, got: str) -> bool:
    """doctest's comparison (``...`` matches anything, whitespace runs are equal) of the two
    texts, after :func:`_normalized`."""
    return doctest.OutputChecker().check_output(_normalized(want), _normalized(got), FLAGS)


def run_python(example: Example, cwd: Path) -> str:
    """Execute a python block in a fresh namespace in ``cwd``; return what it printed."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    buf = io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(buf):
            exec(compile(example.code, example.id, "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(old)
    return buf.getvalue()


def console_commands(code: str) -> list[tuple[str, str]]:
    """``[(command, expected output), ...]`` from a console block (``$ `` starts a command)."""
    out: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"a console block starts with a command ('$ ...'), got {line!r}")
    return [(cmd, "\n".join(lines)) for cmd, lines in out]


def run_console(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """One ``optkit ...`` command, as the console script runs it, stdout and stderr together."""
    argv = shlex.split(command)
    if argv[0] != "optkit":
        raise ValueError(f"console blocks run optkit commands only, got {command!r}")
    env = {
        **os.environ,
        "COLUMNS": "120",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "optkit.cli", *argv[1:]],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
