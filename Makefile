# The two commands of the README contract:
#   make book   creates .venv if absent, runs every notebook of _toc.yml (papermill), builds the HTML book
#   make test   creates .venv if absent, builds the book, runs pytest (unit + nbval + built-book checks)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= auto
BUILD := _build

.PHONY: book test test-kernels venv notebooks collect mathjax system-deps weights clean

# The second float-kernel setting of CI (.ci/run): ATen's scalar kernels, oneDNN without AVX-512, numpy's
# OpenBLAS on its SSE3 (Prescott) kernels, one thread. Results must not depend on it beyond the stated
# tolerances.
OTHER_KERNELS := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Prescott OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

mathjax: $(BUILD)/mathjax/es5/tex-chtml.js

$(BUILD)/mathjax/es5/tex-chtml.js:
	@mkdir -p $(BUILD)/mathjax
	cd $(BUILD) && npm pack -s mathjax@3 >/dev/null && tar xzf mathjax-3*.tgz && rm -rf mathjax && mv package mathjax && rm -f mathjax-3*.tgz

# Debian packages: chromium (book checks) and dataset-fashion-mnist (the offline stand-in data set).
# Without root/apt, install chromium yourself; Fashion-MNIST then comes from torchvision's download.
system-deps:
	@need=""; command -v chromium >/dev/null || need="$$need chromium"; \
	test -d /usr/share/datasets/fashion-mnist || need="$$need dataset-fashion-mnist"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$need"; apt-get update -qq && apt-get install -y -qq $$need >/dev/null; \
	  else echo "please install:$$need (Debian/Ubuntu: sudo apt-get install$$need)"; fi; fi

book: venv mathjax system-deps
	$(PY) -m paper_repro.build.book build --profile $(PROFILE)

test: venv system-deps book
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider --durations=15

# The notebooks' checks again under other float kernels; prints a kernel fingerprint under both settings
# first, to show that the raw numbers do change.
test-kernels: venv system-deps
	@echo "float kernels, default:  $$($(PY) scripts/kernel_fingerprint.py)"
	@echo "float kernels, CI's 2nd: $$($(OTHER_KERNELS) $(PY) scripts/kernel_fingerprint.py)"
	$(OTHER_KERNELS) $(PY) -m pytest notebooks --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider --durations=15

# fp16 copies of the LPIPS / FD-VGG16 backbone weights in .weights/ (small enough to carry to a GPU machine)
weights: venv
	$(PY) scripts/export_weights.py

notebooks: venv
	$(PY) -m paper_repro.build.book refresh-notebooks

# A background sweep's new records (scripts/cpu_chain.sh in the worktree RUN) into data/results, and the
# pages that show them refreshed; never replaces a stored record.
RUN ?= ../run
collect: venv
	$(PY) -m paper_repro.build.book collect $(RUN)/data/results

clean:
	rm -rf $(BUILD)
