# latentlab — two commands: `make run` (all studies, standard preset) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | md5sum | cut -c1-8)
PRESET ?= standard
JOBS ?= 2
STUDIES := 01_h2 02_sfmn 03_recon 04_setvae
NBS := $(addprefix notebooks/,$(addsuffix .ipynb,$(STUDIES)))
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: setup system run full test lab bench notebooks sweep lint clean

setup: $(STAMP)

# Debian packages: Beagle 5.4 for Study 3's external anchor, Chromium for the JupyterLab
# browser test. Installed where we can (root + apt); without Beagle, Study 3 says so and
# skips only its row; without Chromium outside CI, the browser test is skipped.
system:
	@missing=""; \
	command -v beagle >/dev/null 2>&1 || missing="$$missing beagle"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
	      || echo "warning: could not install$$missing (Study 3 skips Beagle's row; the browser test needs chromium)"; \
	  else echo "warning: missing$$missing and no root apt (Study 3 skips Beagle's row; the browser test needs chromium)"; fi; \
	fi

$(STAMP): pyproject.toml Makefile
	$(MAKE) system
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and exactly: 2.13.0 is the CPU build on local disk; anything looser pulls CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	rm -f $(VENV)/.installed-*
	touch $@

# Main job: every study notebook at the chosen preset, executed into runs/<study>/. A failing study
# does not stop the others: each gets runs/<study>/run_status.json, runs/index.html shows what
# failed and why, and the job exits non-zero. JOBS=2 (default) runs two studies at once, one core
# each, longest first; JOBS=1 one after another. Only some: make run STUDIES_ONLY="sfmn h2".
run: setup
	$(PY) -m latentlab.runall --preset $(PRESET) --jobs $(JOBS) $(STUDIES_ONLY)
	@echo "results: runs/ (report: runs/index.html)"

full:
	$(MAKE) run PRESET=full

test: setup
	$(VENV)/bin/pytest tests --durations=15
	$(VENV)/bin/pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

# Re-execute the committed notebooks in place at the quick preset (what nbval compares against), one at
# a time (papermill over an encrypted kernel connection), then bring each text twin (notebooks/NN_x.py,
# jupytext) in step with its executed .ipynb.
notebooks: setup
	@for nb in $(NBS); do \
	  $(PY) -m latentlab.kernels $$nb --cwd notebooks || exit 1; \
	  $(VENV)/bin/jupytext --quiet --sync $$nb || exit 1; \
	done

# Papermill over a parameter grid on Dask: make sweep NOTEBOOK=notebooks/X.ipynb GRID=params/Y.yaml
# (SCHEDULER=tcp://HOST:PORT for an existing cluster; default a LocalCluster with 2 workers).
sweep: setup
	$(VENV)/bin/latentlab sweep $(NOTEBOOK) --grid $(GRID) $(if $(SCHEDULER),--scheduler $(SCHEDULER),)

# Always behind a token (a fresh one each start, or LAB_TOKEN=...), even when a user's Jupyter config disables it.
# Opening or saving notebooks/NN_x.ipynb or its .py twin keeps both in step (jupytext, jupytext.toml).
lab: setup
	$(VENV)/bin/latentlab lab --root $(CURDIR)

bench: setup
	@for b in fit_overhead h2 sfmn recon setvae sweep; do echo "== benchmarks/$$b.py"; $(PY) benchmarks/$$b.py || exit 1; done

lint: setup
	$(VENV)/bin/ruff check lib tests benchmarks tools

clean:
	rm -rf runs .pytest_cache .ruff_cache $(VENV)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
