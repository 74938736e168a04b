"""Every public name has an entry in the API reference (docs/api/*.md).

Public: each name in the ``__all__`` of a module whose dotted path has no part starting with
``_``. Documented: listed in the autosummary of ``optkit``'s names, given to an
``autofunction``/``autoclass``, or a member of an ``automodule`` (its ``__all__``, less
``:exclude-members:``). The check is by object, so a name re-exported from another module
counts once.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import optkit

API = Path(__file__).resolve().parents[1] / "docs" / "api"


def _documented() -> set[int]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(API.glob("*.md")))
    ids: set[int] = set()
    autosummary = re.search(r"\.\. currentmodule:: optkit\n(.*?)```", text, re.S)
    for name in re.findall(r"^\s{3}(\w+)\s*$", autosummary.group(1), re.M):
        ids.add(id(getattr(optkit, name)))
    for target in re.findall(r"\.\. auto(?:function|class):: ([\w.]+)", text):
        module, _, name = target.rpartition(".")
        ids.add(id(getattr(importlib.import_module(module), name)))
    for m in re.finditer(r"\.\. automodule:: ([\w.]+)\n((?:\s{3}:[^\n]*\n)*)", text):
        module = importlib.import_module(m.group(1))
        if ":no-members:" in m.group(2):
            continue
        excluded = re.search(r":exclude-members: ([^\n]*)", m.group(2))
        skip = {s.strip() for s in excluded.group(1).split(",")} if excluded else set()
        ids.update(id(getattr(module, n)) for n in getattr(module, "__all__", []) if n not in skip)
    return ids


def _public_modules():
    yield optkit
    for info in pkgutil.walk_packages(optkit.__path__, "optkit."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield importlib.import_module(info.name)


def test_every_public_name_has_an_api_entry():
    documented = _documented()
    missing = [
        f"{module.__name__}.{name}"
        for module in _public_modules()
        for name in getattr(module, "__all__", [])
        if not isinstance(getattr(module, name), type(optkit))  # submodules: checked themselves
        and id(getattr(module, name)) not in documented
    ]
    assert not missing, f"not in docs/api: {missing}"
