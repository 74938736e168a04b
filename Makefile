# optkit: two commands on a fresh machine -- `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU wheel every machine here has locally; an unpinned torch would pull a CUDA build.
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: install demo test test-all bench docs gpu-check lint format clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# setup.py compiles L-BFGS-B's C engine into src/ (editable install): a changed C file rebuilds
$(STAMP): $(PY) pyproject.toml setup.py src/optkit/minimization/_lbfgsb_core.c
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]" "$(TORCH)"
	touch $(STAMP)

install: $(STAMP)

# `optkit compare` (Rosenbrock, the lecture's methods) and `optkit ewma`, figures in demo-output/.
# One torch thread: these problems are tiny, and thread wake-ups would dominate the timings.
demo: $(STAMP)
	$(VENV)/bin/optkit compare --out demo-output/compare --threads 1
	$(VENV)/bin/optkit ewma --out demo-output/ewma
	@echo
	@echo "figures: demo-output/compare/trajectories.png demo-output/compare/loss_curves.png"
	@echo "         demo-output/ewma/ewma_vs_sma.png  (tables above; JSON next to the figures)"

test: $(STAMP)
	$(PY) -m pytest -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/step_time.py

# One GPU machine, nothing to download: its python3 has torch (with triton), numpy, scipy,
# pytest and hypothesis; optkit comes from this checkout. (1) the device tests on CUDA, (2) the
# GPU benchmark (docs/benchmarks/gpu.md); JSON, table and test report in $(GPU_OUT).
# DION=path/to/a/microsoft-dion/checkout (e.g. in the git-ignored third_party/) adds its Muon.
GPU_PYTHON ?= python3
GPU_OUT    ?= gpu-check-output
DION       ?=
GPU_TESTS  := tests/optim/test_device.py tests/optim/test_compile_ns.py tests/optim/test_ns_triton.py \
              tests/minimize/test_device.py
gpu-check:
	@mkdir -p $(GPU_OUT)
	PYTHONPATH=src $(GPU_PYTHON) -m pytest -p no:cacheprovider -o addopts= -q -rfEs -k cuda \
		--junitxml=$(GPU_OUT)/device-tests.xml $(GPU_TESTS); tests=$$?; \
	PYTHONPATH=src PYTHONUNBUFFERED=1 $(GPU_PYTHON) benchmarks/gpu_step.py --out $(GPU_OUT) \
		--time-limit 300 $(if $(DION),--dion $(DION)); bench=$$?; \
	echo "gpu-check: device tests exit $$tests, gpu_step.py exit $$bench"; \
	test $$tests -eq 0 && test $$bench -eq 0

# The documentation site (Sphinx + MyST-NB: the lecture pages run at build time) into
# docs/_build/html; warnings are errors, and --keep-going lists all of them before failing.
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev,docs]" "$(TORCH)"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "site: docs/_build/html/index.html"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache demo-output docs/_build docs/api/generated
	rm -f src/optkit/minimization/_lbfgsb_core*.so
