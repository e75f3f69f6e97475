# Two commands on a fresh machine:  `make up` runs Hearth, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CHROMIUM ?= /usr/bin/chromium

.PHONY: up test install dev browser lint clean

up: install  ## install, then run everything on http://127.0.0.1:8080
	$(VENV)/bin/hearth up

test: dev browser  ## install with test tools, then run the test suite
	$(PY) -m pytest

lint: dev
	$(VENV)/bin/ruff check src tests bench

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

# The CPU build of torch first, explicitly: a bare `torch` requirement (from the fp32
# reference embedder's sentence-transformers) would otherwise pull a multi-GB CUDA build.
# Where pip's index serves only CUDA builds, pass the CPU wheel index: TORCH_INDEX='--index-url URL'.
TORCH_INDEX ?=
$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet 'torch==2.13.0' $(TORCH_INDEX)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The browser tests drive Debian's chromium (Playwright never downloads a browser here).
browser:
	@test -x $(CHROMIUM) || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) .pytest_cache
