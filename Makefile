# kenning-hil entry points: `make demo` and `make test` set up everything from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= dev,onnx,litert,tflm,tvm,tensorflow,torch,report,labgrid
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PYTEST_ARGS ?= -n 2
RESULTS ?= results

.PHONY: setup system-deps demo test test-quick test-under-load bench lint clean

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

system-deps:
	./scripts/install-system-deps.sh

DEMO_TARGETS ?= --target=host-onnxruntime --target=host-litert --target=host-tflm --target=qemu-m4

# The main job: the digits suite (fp32 and int8) on the host runtimes and the simulated
# Cortex-M4, then MLPerf Tiny on LiteRT and the simulated board (skipped with the reason
# when the external models are absent). Each writes a report and prints its path.
demo: setup
	$(VENV)/bin/pytest -p no:cacheprovider -n 2 suites/digits.yaml $(DEMO_TARGETS) \
		--hil-report $(RESULTS)/demo/digits
	$(VENV)/bin/pytest -p no:cacheprovider -n 2 suites/mlperf_tiny.yaml \
		--target=host-litert --target=qemu-m4 --samples 10 --hil-report $(RESULTS)/demo/mlperf_tiny

# lint first: a broken layer contract fails the run before the long tests start. Every test
# runs, the `slow` ones (MLPerf Tiny bit-exactness on the QEMU boards, the 10,000-frame
# fuzz runs) included: this is what CI runs (.ci/run).
test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# local iteration only: the tests not marked slow
test-quick: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS) -m "not slow"

# `make test` while stress-ng keeps every core busy: no test may depend on an idle machine
test-under-load: setup
	./scripts/test-under-load.sh

# The benchmarks run outside pytest, so they take this checkout's models path from the
# environment (pytest runs read hil_models_path in pyproject.toml; the package default is
# models/ under the project).
bench: export KENNING_HIL_MODELS ?= $(abspath ../shared/models)
bench: setup
	$(PY) benchmarks/run_all.py

lint: setup
	$(VENV)/bin/ruff check kenning_hil tests benchmarks scripts
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build results .pytest_cache
