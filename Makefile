# Two commands on a fresh Debian machine:  `make run` (the whole platform, offline)  and  `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-tools lint typecheck proto proto-check bench clean

$(STAMP): pyproject.toml scripts/install-system-deps.sh scripts/install-extras.sh
	bash scripts/install-system-deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	bash scripts/install-extras.sh $(PY)
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/rtvoice up $(if $(AGENT),-f $(AGENT),)

# Tools the tests start (kube-apiserver, helmlite, moto's venv): built here, before pytest, and cached.
test-tools: setup
	bash scripts/test-tools.sh

test: setup proto-check lint typecheck test-tools
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check services operator tests bench

typecheck: setup
	$(VENV)/bin/mypy

proto: setup
	PYTHON=$(PY) scripts/gen_proto.sh

proto-check: setup
	PYTHON=$(PY) scripts/check_proto.sh

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
