# kenning-hil entry points: `make demo` and `make test` set up everything from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= dev,onnx,litert,tflm,tvm,tensorflow,torch,report
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PYTEST_ARGS ?= -n 2
RESULTS ?= results

.PHONY: setup system-deps demo test bench lint clean

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

system-deps:
	./scripts/install-system-deps.sh

demo: setup
	$(VENV)/bin/kenning-hil run scenarios/digits-onnxruntime.json --output $(RESULTS)/demo/digits-onnxruntime.json

test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/run_all.py

lint: setup
	$(VENV)/bin/ruff check kenning_hil tests benchmarks scripts

clean:
	rm -rf $(VENV) build results .pytest_cache
