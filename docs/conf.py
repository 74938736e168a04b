"""Sphinx configuration of the optkit documentation (``make docs``).

Pages are MyST Markdown; the lecture pages are MyST-NB notebooks (``file_format: mystnb``) whose
code cells run at build time, so their figures are made by the build and a cell that raises
fails it. The API reference comes from the Google-style docstrings (napoleon + autodoc).
Nothing here needs the network: no intersphinx, MathJax is loaded by the reader's browser.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the checkout's optkit, also without an install
# The notebook kernels are subprocesses: give them the same import path.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
)

import optkit  # noqa: E402

project = "optkit"
author = "the optkit authors"
copyright = "2026, the optkit authors"
release = version = optkit.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "bench/**",  # data of the training benchmarks (results.json, summary.md, runs)
    "**.ipynb_checkpoints",
]
templates_path = ["_templates"]
html_static_path = ["_static"]

# --- MyST / MyST-NB -------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "cache"  # executed at build time; unchanged pages reuse the cache
nb_execution_cache_path = str(ROOT / "docs" / "_build" / ".jupyter_cache")
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_timeout = 600
nb_merge_streams = True

# --- API reference ----------------------------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # a module documents what its __all__ exports
autodoc_default_options = {"members": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True


# MathJax comes from its CDN when the page is read; OPTKIT_MATHJAX points the pages at a local
# copy instead (e.g. Debian's libjs-mathjax 2:
# "file:///usr/share/javascript/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML").
if os.environ.get("OPTKIT_MATHJAX"):
    mathjax_path = os.environ["OPTKIT_MATHJAX"]
    if "config=" in mathjax_path:  # MathJax 2: its own configuration, not version 3's
        mathjax2_config = {"tex2jax": {"processClass": "math", "ignoreClass": "tex2jax_ignore"}}
        mathjax3_config = None

# --- HTML -----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"optkit {release}"
html_theme_options = {"navigation_with_keys": True}
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
