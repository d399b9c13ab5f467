# Local stack: `make run` (foreground), `make up` (background), `make stop`, `make test`.
# The logic lives in infra/local/ (Python); this file is thin glue.
SHELL := /bin/bash
PYTHON := .venv/bin/python

.PHONY: run up stop status test deps build mail lint

deps:
	python3 infra/local/bootstrap.py

run: deps
	$(PYTHON) -m infra.local run

up: deps
	$(PYTHON) -m infra.local up

stop:
	@if [ -x $(PYTHON) ]; then $(PYTHON) -m infra.local stop; fi

status:
	$(PYTHON) -m infra.local status

build: deps
	$(PYTHON) -m infra.local build

mail:
	$(PYTHON) -m infra.local.mail list

test: up
	$(PYTHON) -m pytest tests

lint: deps
	$(PYTHON) -m ruff check .
