# Two commands: `make demo` and `make test`. Each sets up what it needs: .venv when it is
# missing or stale (the install is keyed on pyproject.toml's content, so a second run with
# nothing changed reinstalls nothing), and for the tests Debian's Chromium.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KEY := $(shell sha256sum pyproject.toml | cut -c1-16)
ALL_STAMP := $(VENV)/.installed-all-$(KEY)
DEV_STAMP := $(VENV)/.installed-dev-$(KEY)
# The editable install is setuptools' strict mode: a tree of links under build/ that
# editors and static tools (jedi, pyright) read as plain paths. A new module needs a new
# link, so the tree is also keyed on the list of the package's files.
PKG_DIRS := analyzer cli dashboards instrumentation sample_traces
FILES_KEY := $(shell find $(PKG_DIRS) -type f -not -path '*/__pycache__/*' | LC_ALL=C sort | sha256sum | cut -c1-16)
LINK_STAMP := $(VENV)/.linked-$(KEY)-$(FILES_KEY)
EDITABLE := --config-settings editable_mode=strict
# Test files run on this many pytest-xdist workers, each file whole on one worker (its
# module fixtures made once). More workers than the 2 cores: the slowest tests mostly wait
# on real services streaming in real time.
TEST_WORKERS ?= 3

.PHONY: demo test lint format bench clean chromium

demo: $(ALL_STAMP) $(LINK_STAMP)
	$(VENV)/bin/faultlens demo

test: $(DEV_STAMP) $(LINK_STAMP) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# benchmarks/mutation.py is no benchmark and takes about an hour: run it on its own.
bench: $(DEV_STAMP) $(LINK_STAMP)
	for b in $(filter-out benchmarks/mutation.py,$(wildcard benchmarks/*.py)); do $(PY) $$b || exit 1; done

# The dashboard's real-browser test drives Debian's Chromium. Installed with apt when it
# is missing and we may (root, or sudo without a password); otherwise one line says how.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=""; \
	  elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "make test: the browser test needs Chromium; run: sudo apt-get install -y chromium chromium-driver" >&2; exit 1; fi; \
	  command -v apt-get >/dev/null || { echo "make test: the browser test needs Chromium on PATH (this machine has no apt-get)" >&2; exit 1; }; \
	  echo "make test: installing Debian's Chromium (apt-get install chromium chromium-driver)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    -o DPkg::Lock::Timeout=300 chromium chromium-driver >/dev/null; }

$(VENV)/.venv-ok:
	@$(PY) -c 'import sys' 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

# The dev install holds everything the demo needs, so it satisfies both.
$(ALL_STAMP): | $(VENV)/.venv-ok
	@if [ -e $(DEV_STAMP) ]; then touch $@; else \
	  rm -f $(VENV)/.installed-all-*; \
	  $(PY) -m pip install --quiet -e '.[all]' $(EDITABLE) && touch $@; fi

$(DEV_STAMP): | $(VENV)/.venv-ok
	rm -f $(VENV)/.installed-*
	$(PY) -m pip install --quiet -e '.[dev]' $(EDITABLE)
	touch $@

$(LINK_STAMP): | $(VENV)/.venv-ok
	rm -f $(VENV)/.linked-*
	$(PY) -m pip install --quiet --no-deps -e . $(EDITABLE)
	touch $@

clean:
	rm -rf $(VENV) build .faultlens .pytest_cache .ruff_cache
