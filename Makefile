# Two entry points: `make demo` runs the xApp demo on embedded defaults, `make test` passes the tests.
# Both create .venv on first use. torch is pinned to the 2.13.0 CPU build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install

$(BIN)/xapp: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/xapp

install: $(BIN)/xapp

demo: install
	$(BIN)/xapp demo

test: install
	$(BIN)/python -m pytest -q
