# Quick start:
#   make demo   set up .venv, make a small MNIST-1D shard set, build its ledger, train with SeTa
#   make test   set up .venv with the test extras and run the test suite
# Both create .venv/ if missing and reuse it if present.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo

.PHONY: demo test venv bench clean-demo

# torch 2.13.0 is installed first: a CPU build of it lies on disk on our
# machines, so this avoids pulling a multi-GB CUDA build from the index.
$(VENV)/.installed-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "torch==2.13.0" || $(PY) -m pip install -q "torch>=2.2"
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

venv: $(VENV)/.installed-dev,demo

demo: $(VENV)/.installed-demo
	$(PY) tools/demo.py --out $(DEMO_DIR)

test: $(VENV)/.installed-dev,demo
	$(PY) -m pytest -q

clean-demo:
	rm -rf $(DEMO_DIR)
