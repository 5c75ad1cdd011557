# aecourse: set-up, book, tests.
#
#   make book           set up (see `bootstrap`), then build the book into _build/html
#   make test           set up, then unit tests, the book and the student edition, a browser check
#   make book-student   the student edition (no solutions), into _build/student/html
#   make notebooks      regenerate notebooks/*.ipynb and notebooks/student/ from notebooks/*.md
#   make student        regenerate only the student notebooks notebooks/student/*.ipynb
#   make train MODEL=ae retrain one model (python -m aecourse.train MODEL $(ARGS))
#   make evaluate       the metrics table (python -m aecourse.evaluate)
#   make clean          remove _build (the book, the execution cache, screenshots) and .explorers

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The venv is (re)installed when requirements.txt or pyproject.toml is newer than this stamp.
VENV_STAMP := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX_JS := .mathjax/static/mathjax/tex-mml-chtml.js
ORT_VERSION := 1.30.0
ORT_JS := .onnxruntime/static/onnxruntime/ort.wasm.min.js
# The explorers' decoders and data, exported from the shipped weights by `make book`.
EXPLORERS_DIR := .explorers/static/explorers
EXPLORERS_STAMP := .explorers/.exported
BOOK_FLAGS := -W -n --keep-going
MODEL ?= ae
ARGS ?=

.PHONY: help bootstrap system book book-student notebooks student test test-unit test-student test-site test-train train evaluate clean

help:
	@sed -n '3,11p' Makefile | sed 's/^# \{0,1\}//'

## Set-up ---------------------------------------------------------------------------------

# Debian packages (Fashion-MNIST data, Chromium for the browser check, npm for MathJax),
# installed when missing and the machine allows it; then the venv, MathJax and
# onnxruntime-web (the explorers' runtime in the browser). Without
# apt-get (macOS) nothing is installed: the data comes through torchvision, and the
# script says how to get npm and (for `make test`) Chromium with Homebrew.
bootstrap: system $(VENV_STAMP) $(MATHJAX_JS) $(ORT_JS)

system:
	@bash scripts/bootstrap_system.sh $(if $(filter test,$(MAKECMDGOALS)),--browser)

$(VENV_STAMP): requirements.txt pyproject.toml
	@if [ ! -x $(PY) ]; then \
	  $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	    echo "bootstrap: $(PYTHON) is $$($(PYTHON) --version); the course needs Python 3.11 or" \
	      "newer (tested: 3.11, 3.12). Run e.g. make PYTHON=python3.12 ..." >&2; exit 1; }; \
	  echo "bootstrap: creating $(VENV) with $$($(PYTHON) --version)"; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) scripts/check_env.py
	@touch $@

$(MATHJAX_JS):
	@command -v npm >/dev/null || { echo "bootstrap: npm is needed to install MathJax (Debian: apt-get install npm; macOS: brew install node)" >&2; exit 1; }
	npm install --prefix .mathjax --no-audit --no-fund --loglevel=error mathjax@$(MATHJAX_VERSION)
	@# Keep what the CHTML renderer loads: the combined component, its extensions and fonts.
	rm -rf .mathjax/static && mkdir -p .mathjax/static/mathjax/output
	cd .mathjax/node_modules/mathjax/es5 && cp -r tex-mml-chtml.js input ui a11y adaptors sre \
	  $(CURDIR)/.mathjax/static/mathjax/ && cp -r output/chtml output/chtml.js $(CURDIR)/.mathjax/static/mathjax/output/
	cp .mathjax/node_modules/mathjax/LICENSE .mathjax/static/mathjax/

# onnxruntime-web runs the explorers' decoders in the reader's browser, served with the
# site as MathJax is. Kept: the WebAssembly build's loader (ort.wasm.min.js), its module
# and the CPU (SIMD) binary; the WebGPU, WebGL and JSPI builds are left out.
$(ORT_JS):
	@command -v npm >/dev/null || { echo "bootstrap: npm is needed to install onnxruntime-web (Debian: apt-get install npm; macOS: brew install node)" >&2; exit 1; }
	npm install --prefix .onnxruntime --no-audit --no-fund --loglevel=error onnxruntime-web@$(ORT_VERSION)
	rm -rf .onnxruntime/static && mkdir -p .onnxruntime/static/onnxruntime
	cd .onnxruntime/node_modules/onnxruntime-web/dist && cp ort.wasm.min.js \
	  ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm $(CURDIR)/.onnxruntime/static/onnxruntime/

## Book -----------------------------------------------------------------------------------

# _build/html is written afresh each time (no page of an older build survives in it);
# the Sphinx environment and the notebook execution cache in _build/ are kept.
BUILD_BOOK = rm -rf _build/html && $(VENV)/bin/jupyter-book build . --path-output . $(BOOK_FLAGS)

# Executed notebooks are cached by their code alone. A change to the package (code or
# weights) or to the pinned environment clears the cache, so no page shows stale results.
EXEC_STAMP := _build/.jupyter_cache.stamp
PACKAGE_FILES := $(shell find aecourse -type f \( -name '*.py' -o -name '*.json' -o -name '*.safetensors' \) 2>/dev/null)

# Sphinx's environment (_build/.doctrees) goes too: it keeps each page's outputs, and
# Sphinx re-reads (so re-executes) only the pages whose source changed.
$(EXEC_STAMP): $(PACKAGE_FILES) requirements.txt
	rm -rf _build/.jupyter_cache _build/.doctrees
	@mkdir -p _build && touch $@

# The explorers of the site: each decoder exported with torch.onnx from the shipped
# weights, and the data each explorer starts from (aecourse/export.py); again when the
# package (code or weights) changes. Never edited by hand.
$(EXPLORERS_STAMP): $(PACKAGE_FILES) requirements.txt | $(VENV_STAMP)
	rm -rf $(EXPLORERS_DIR)
	$(PY) -m aecourse.export $(EXPLORERS_DIR)
	@touch $@

book: bootstrap $(EXEC_STAMP) $(EXPLORERS_STAMP)
	$(BUILD_BOOK)

book-student: bootstrap $(EXEC_STAMP) $(EXPLORERS_STAMP)
	$(PY) scripts/build_student.py

# Each chapter notebook has one source, notebooks/NN_name.md (MyST Markdown). Its .ipynb
# (for Colab) is generated from it by Jupytext: --update keeps the cell ids of unchanged
# cells, so a one-word edit gives a one-line diff. tests/test_notebooks.py fails when a
# pair differs.
notebooks: bootstrap
	$(VENV)/bin/jupytext --to ipynb --update notebooks/[0-9]*.md
	$(PY) scripts/make_student.py

# The student notebooks notebooks/student/NN_name.ipynb (exercises as skeletons with
# feedback checks, no solutions) are generated from the same sources, and committed so
# that their Colab badges open them; tests/test_student.py fails when one is stale.
student: bootstrap
	$(PY) scripts/make_student.py

## Tests ----------------------------------------------------------------------------------

# Unit tests of the package (and of the notebook pairs), with every notebook run with
# TRAIN = True (AECOURSE_TRAIN_TEST=1: 18 runs, about 19 min of the 2-core machine);
# the browser check in tests/site runs after the book is built.
RUN_UNIT_TESTS = AECOURSE_TRAIN_TEST=1 $(PY) -m pytest tests --ignore=tests/site
# The chapter notebooks run once, in the book build: a cell that raises (every check in
# them is an assert) is a build warning, and warnings are errors.
# The built site in headless Chromium, plus checks of the published book's sources.
RUN_SITE_TESTS = AECOURSE_SITE_DIR=_build/html AECOURSE_STUDENT_SITE_DIR=_build/student/html \
  $(PY) -m pytest tests/site
# Every student notebook runs top to bottom, its exercises unanswered (nbval; outputs are
# not compared), then the student edition of the book is built from the same sources.
RUN_STUDENT_TESTS = $(PY) -m pytest -p no:cacheprovider --nbval-lax notebooks/student && \
  $(PY) scripts/build_student.py

# Every pin of the lock has a wheel for macOS arm64 and Windows x86_64 (pip dry runs, a few
# minutes): checked again when requirements.txt changes.
PLATFORMS_STAMP := _build/.platforms.stamp
$(PLATFORMS_STAMP): requirements.txt scripts/check_platforms.py
	$(PY) scripts/check_platforms.py
	@mkdir -p _build && touch $@

# The notebooks' install cell on Colab replaces none of Colab's packages (a pip dry run
# against the versions Colab publishes, scripts/colab_versions.txt): checked again when
# the package's requirements or that list change.
COLAB_STAMP := _build/.colab.stamp
$(COLAB_STAMP): pyproject.toml scripts/colab_versions.txt scripts/check_colab.py
	$(PY) scripts/check_colab.py
	@mkdir -p _build && touch $@

test: bootstrap $(EXEC_STAMP) $(EXPLORERS_STAMP) $(PLATFORMS_STAMP) $(COLAB_STAMP)
	$(RUN_UNIT_TESTS)
	$(BUILD_BOOK)
	$(RUN_STUDENT_TESTS)
	$(RUN_SITE_TESTS)

# The steps of `make test` one at a time (they assume the set-up is done).
test-unit:
	$(RUN_UNIT_TESTS)
test-student:
	$(RUN_STUDENT_TESTS)
test-site:
	$(RUN_SITE_TESTS)
# Every notebook with TRAIN = True, one epoch on 256 images, for Fashion-MNIST and the
# MNIST and CIFAR-10 stand-ins (18 runs; `make test` runs them with the unit tests).
test-train: bootstrap
	AECOURSE_TRAIN_TEST=1 $(PY) -m pytest tests/test_notebooks_train.py

## Models ---------------------------------------------------------------------------------

train: bootstrap
	$(PY) -m aecourse.train $(MODEL) $(ARGS)

evaluate: bootstrap
	$(PY) -m aecourse.evaluate $(ARGS)

clean:
	rm -rf _build .explorers
