# Two commands: `make demo` and `make test`. Each sets up .venv when it is
# missing or stale; the install is keyed on pyproject.toml's content, so a
# second run with nothing changed reinstalls nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KEY := $(shell sha256sum pyproject.toml | cut -c1-16)
ALL_STAMP := $(VENV)/.installed-all-$(KEY)
DEV_STAMP := $(VENV)/.installed-dev-$(KEY)

.PHONY: demo test lint format bench clean

demo: $(ALL_STAMP)
	$(VENV)/bin/faultlens demo

test: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# benchmarks/mutation.py is no benchmark and takes about an hour: run it on its own.
bench: $(DEV_STAMP)
	for b in $(filter-out benchmarks/mutation.py,$(wildcard benchmarks/*.py)); do $(PY) $$b || exit 1; done

$(VENV)/.venv-ok:
	@$(PY) -c 'import sys' 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

# The dev install holds everything the demo needs, so it satisfies both.
$(ALL_STAMP): | $(VENV)/.venv-ok
	@if [ -e $(DEV_STAMP) ]; then touch $@; else \
	  rm -f $(VENV)/.installed-all-*; \
	  $(PY) -m pip install --quiet -e '.[all]' && touch $@; fi

$(DEV_STAMP): | $(VENV)/.venv-ok
	rm -f $(VENV)/.installed-*
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .faultlens .pytest_cache .ruff_cache
