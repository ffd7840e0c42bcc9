# Two commands on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch: an unpinned torch would pull a multi-GB CUDA build.
TORCH_CPU ?= torch==2.13.0

.PHONY: venv test demo bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_CPU)"
	$(PY) -m pip install -q -e ".[test,plot]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# Both papers' experiments on the bundled synthetic data, in a few minutes: tables on stdout,
# CSV and PNG files in skmm_out/. One torch thread: the models are small, and extra threads
# only add synchronisation on a small or busy machine.
demo: venv
	$(PY) -m skmm reproduce all --quick --threads 1 --out skmm_out

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[bench]"
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) benchmarks/bench_featprop.py

clean:
	rm -rf $(VENV) build *.egg-info skmm_out

# The documentation site, into docs/_build/html, with warnings as errors. Offline by default:
# intersphinx needs network access to fetch the scikit-learn, NumPy, SciPy, torch and skorch
# inventories; `make docs SKMM_DOCS_OFFLINE=0` links to them.
SKMM_DOCS_OFFLINE ?= 1
SPHINXOPTS ?=

.PHONY: docs

$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed
	SKMM_DOCS_OFFLINE=$(SKMM_DOCS_OFFLINE) $(PY) -m sphinx -b html -W --keep-going \
		$(SPHINXOPTS) docs docs/_build/html
