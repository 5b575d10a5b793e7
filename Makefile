# The two commands of the README:
#   make book   executes every notebook and builds the HTML book in _build/html
#   make test   ruff + the library's tests + every notebook in book/ through nbval
#   make check  the fast loop: ruff (lint and format) and the unit tests; no apt,
#               no book build, no browser
#
# Both create .venv (python3 -m venv) and install requirements.txt and this
# package into it the first time, and again whenever requirements.txt or
# pyproject.toml change.  Debian packages (OpenBLAS, Fashion-MNIST, Node.js for
# the book's offline web assets) are installed when we run as root with
# apt-get; otherwise we say what to install and carry on.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dlt-installed

# Every tool (and the Jupyter kernel, whose kernelspec runs plain "python")
# comes from the venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Debian packages: OpenBLAS for PyTensor's C back end, the Fashion-MNIST files.
APT_PACKAGES := libopenblas-dev dataset-fashion-mnist
# The book also needs npm (to fetch MathJax, RequireJS and the widget manager).
BOOK_APT_PACKAGES := $(APT_PACKAGES) $(if $(shell command -v npm 2>/dev/null),,nodejs npm)
# The tests build the book and open it in Chromium (driven by Playwright).
TEST_APT_PACKAGES := $(BOOK_APT_PACKAGES) chromium

# --all: re-read (so re-execute) every chapter even if its source did not
# change, since the library under it may have.  `make book BOOK_ARGS=` for
# an incremental build.
BOOK_ARGS ?= --all
PYTEST_ARGS ?=
# `make test` runs pytest on this many processes (pytest-xdist): one per CPU.
# Whole files go to one process (--dist loadfile), so a notebook's cells share
# their kernel and a module's fixtures are made once.
TEST_JOBS ?= auto
NBVAL_ARGS := --nbval-lax --nbval-current-env --nbval-sanitize-with book/nbval_sanitize.cfg --nbval-cell-timeout=600

.PHONY: help book test check lint homework system-deps book-system-deps test-system-deps web-assets venv clean clean-venv

help:
	@echo "make book    build the executed HTML book into _build/html (open _build/html/index.html)"
	@echo "make test    ruff, the book build, pytest tests/ (unit + browser), and nbval over every notebook in book/"
	@echo "make check   the fast loop: ruff (lint + format) and the unit tests, without the book, browser or JAX tests"
	@echo "make homework  every chapter as an nbgrader assignment in $(HOMEWORK_DIR) (source/ and release/)"
	@echo "make system-deps   install the Debian packages (root only; else prints what to install)"
	@echo "make clean   remove _build and the fetched web assets"

# --- Python environment ------------------------------------------------------

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { \
	  echo "'$(PYTHON) -m venv' failed: on Debian/Ubuntu install python3-venv (apt-get install python3-venv)." >&2; \
	  rm -rf $(VENV); exit 1; }

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt -e .
	@touch $@

venv: $(STAMP)

# --- Debian packages ---------------------------------------------------------

# apt_install PACKAGES: install the missing ones when we are root with apt-get,
# otherwise print the command for the user and continue.
define apt_install
	@missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "Note: not a Debian/Ubuntu system; install the equivalents of:$$missing (continuing without them)"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; } \
	    || echo "WARNING: apt-get could not install$$missing; continuing without them." >&2; \
	else \
	  echo "Note: these Debian packages are missing:$$missing"; \
	  echo "      install them with: sudo apt-get install$$missing   (continuing without them)"; \
	fi
endef

system-deps:
	$(call apt_install,$(APT_PACKAGES))

book-system-deps:
	$(call apt_install,$(BOOK_APT_PACKAGES))

# --- The book ----------------------------------------------------------------

# MathJax 3, RequireJS and @jupyter-widgets/html-manager from npm, served
# from the book itself instead of a CDN (book/_web_assets, gitignored).
web-assets: book-system-deps $(STAMP)
	$(BIN)/python scripts/fetch_web_assets.py fetch

# DLT_OFFLINE is left as the caller set it: unset, the chapters try the real
# data and fall back to the bundled sample when there is no network.
# Every kernel of the build loads tests/ipython's figure audit, which notes the
# figures each cell leaves open (tests/test_notebook_pages.py compares them
# with the page): the check costs no second execution.  A full build starts a
# fresh audit.
book: book-system-deps $(STAMP) web-assets
	@start=$$(date +%s); \
	case " $(BOOK_ARGS) " in *" --all "*) rm -rf _build/figure-audit;; esac; \
	IPYTHONDIR=$(CURDIR)/tests/ipython DLT_FIGURE_AUDIT=$(CURDIR)/_build/figure-audit \
	  $(BIN)/python scripts/jupyter_book_build.py build . --builder html -W --keep-going $(BOOK_ARGS); \
	$(BIN)/python scripts/fetch_web_assets.py check _build/html; \
	echo "Built in $$(( $$(date +%s) - start )) s: open _build/html/index.html"

# --- Homework (nbgrader) -----------------------------------------------------

# Every chapter with exercises as an nbgrader source assignment, then its
# release version (no solutions, no hidden tests): book/homework.md.
HOMEWORK_DIR ?= _build/homework
homework: $(STAMP)
	$(BIN)/python -m dlt_lib.homework source --course $(HOMEWORK_DIR) $(HOMEWORK_ARGS)
	cd $(HOMEWORK_DIR) && for chapter in $$(ls source); do \
	  $(CURDIR)/$(BIN)/nbgrader generate_assignment "$$chapter" --force --log-level=WARN; done
	@echo "Release versions to hand out: $(HOMEWORK_DIR)/release/<chapter>/<chapter>.ipynb"

# --- Tests -------------------------------------------------------------------

# Lint and formatting (the rules and what the format check covers: pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The fast loop for a library change: lint, then the unit tests without the
# slow markers (pyproject.toml lists them).  No Debian packages, no book build,
# no browser; a few minutes on 2 cores once ~/.pytensor holds the compiled graphs.
CHECK_MARKERS := not browser and not notebooks and not jax and not book and not dask and not homework
check: $(STAMP)
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest tests -m "$(CHECK_MARKERS)" $(PYTEST_ARGS)

# ruff, then the book build (the browser tests read _build/html), then one
# pytest run over tests/ (unit and browser tests) and the notebooks (nbval),
# so one summary line counts everything; pytest's exit code 5 (nothing
# collected) fails the target too.
test: test-system-deps $(STAMP)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory book
	$(BIN)/python -m pytest tests book -n $(TEST_JOBS) --dist loadfile $(NBVAL_ARGS) $(PYTEST_ARGS)

test-system-deps:
	$(call apt_install,$(TEST_APT_PACKAGES))

clean:
	rm -rf _build book/_web_assets

clean-venv:
	rm -rf $(VENV)
