# Two entry points: `make demo` runs the xApp demo on embedded defaults, `make test` passes the tests.
# Both create .venv on first use. torch is pinned to the 2.13.0 CPU build, everything else to constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install lock

$(BIN)/xapp: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(BIN)/xapp

install: $(BIN)/xapp

# Rewrite constraints.txt from the installed versions, keeping its header.
lock: install
	head -n 4 constraints.txt > constraints.txt.new
	$(BIN)/pip freeze --exclude-editable | sed 's/+cpu//' >> constraints.txt.new
	mv constraints.txt.new constraints.txt

demo: install
	$(BIN)/xapp demo

test: install
	$(BIN)/python -m pytest -q
