# ubernet_lite: the two commands of the README are `make reproduce` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KERNEL := ubernet-lite
# The kernel lives inside .venv (`ipykernel install --sys-prefix`), so each clone runs its own
# environment; Jupyter tools started from .venv look there before the user's folder.
export JUPYTER_PREFER_ENV_PATH := 1
KERNEL_JSON := $(VENV)/share/jupyter/kernels/$(KERNEL)/kernel.json
PRESET ?= lite
DATA ?= synthetic
DEVICE ?= cpu
DATA_ROOT ?=
STEPS ?=
# The scale of the lite preset's runs (ul.series.SCALE_SETTINGS): quick by default (the run that
# `make test` checks); `make reproduce SCALE=course` for the course run (PRESET=paper ignores it).
# Quick stays the default while the course run misses three of its targets (docs/course_recipe.md).
SCALE ?= quick
NB ?= $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: setup test test-unit test-notebooks test-paper-series reproduce notebooks-refresh lab lint format bench clean book book-check

# `make setup`: (re)creates .venv when it is missing or older than the files that define it.
setup: $(STAMP) $(KERNEL_JSON)

$(STAMP): pyproject.toml constraints.txt
	@$(PY) -c 'import sys' 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# The Jupyter kernel papermill runs (-k $(KERNEL)), registered inside this clone's .venv.
$(KERNEL_JSON): $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (ubernet-lite)" >/dev/null

test: setup test-unit test-notebooks

test-unit: setup
	MPLBACKEND=Agg $(PY) -m pytest tests -q

test-notebooks: setup
	TQDM_DISABLE=1 $(PY) -m pytest --nbval-lax --nbval-current-env -p no:randomly notebooks -q

# Every notebook under PRESET=paper DATA=real on the CPU, on tiny fixture data sets and steps
# (tests/test_paper_series.py, about 5 minutes on 2 cores; part of test-unit, this runs it alone).
test-paper-series: setup
	TQDM_DISABLE=1 MPLBACKEND=Agg $(PY) -m pytest tests/test_paper_series.py -q -s

# The main job: every notebook of the series, in order, headless, into outputs/notebooks/, at
# SCALE (quick by default; every notebook takes the `scale` parameter, those that train nothing
# ignore it).
reproduce: setup
	@mkdir -p outputs/notebooks
	@for nb in $(NB); do \
	  echo "== $$nb"; start=$$(date +%s); \
	  $(VENV)/bin/papermill --cwd notebooks -k $(KERNEL) \
	    -p preset $(PRESET) -p scale $(SCALE) -p data $(DATA) -p device $(DEVICE) \
	    $(if $(DATA_ROOT),-p data_root $(DATA_ROOT)) $(if $(STEPS),-p steps $(STEPS)) \
	    $$nb outputs/notebooks/$$(basename $$nb) --no-progress-bar || exit 1; \
	  echo "$$(basename $$nb) $(SCALE) $$(( $$(date +%s) - start )) s" | tee -a outputs/timings.txt; \
	done

# Re-execute the notebooks in place, rewriting their stored outputs (what nbval compares).
notebooks-refresh: setup
	@for nb in $(NB); do \
	  echo "== $$nb"; TQDM_DISABLE=1 $(VENV)/bin/papermill --cwd notebooks -k $(KERNEL) $$nb $$nb --no-progress-bar || exit 1; \
	done

# The series as a static site in outputs/book/ (open outputs/book/index.html): the notebooks that the
# latest `make reproduce` executed (outputs/notebooks/; absent: the committed ones), nothing re-executed.
book: setup
	$(PY) book/build.py

# Every page of outputs/book/ in headless Chromium; screenshots in outputs/book-screenshots/.
# Says so and passes when Chromium is not installed (apt-get install -y chromium chromium-driver).
book-check: book
	$(PY) book/check.py

lab: setup
	$(VENV)/bin/jupyter lab notebooks

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf outputs .pytest_cache
