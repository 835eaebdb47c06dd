# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install install-test bench-ingest bench-query clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'

run: install
	$(BIN)/koban serve --demo

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench-ingest: install-test
	$(BIN)/python benchmarks/ingest.py

bench-query: install-test
	$(BIN)/python benchmarks/query.py

clean:
	rm -rf $(VENV) koban-data .pytest_cache
