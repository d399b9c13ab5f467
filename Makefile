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

# Deploy: OpenFaaS through faas-cli; manifests regenerated from stack.yml.
.PHONY: deploy manifests

# `faas-cli up` = build + push + deploy; set REGISTRY (and TAG) to a registry you can push to,
# OPENFAAS_URL to the gateway, and run infra/openfaas/create-secrets.sh once beforehand.
deploy:
	faas-cli up -f stack.yml $(FAAS_FLAGS)

manifests:
	$(PYTHON) -m infra.generate

# The fault-injection suite alone (also part of `make test`).
.PHONY: test-faults

# Stops PostgreSQL/RabbitMQ/the SMTP sink and kills functions on the running stack: never run
# it against a stack someone else is using. Figures: .local/faults.json, docs/reliability.md.
test-faults: up
	$(PYTHON) -m pytest tests/faults

# The fuzz suite alone (also part of `make test`): OpenAPI document checks, schemathesis
# against the running stack, malformed CloudEvents, hostile images. Figures: docs/reliability.md.
.PHONY: test-fuzz

test-fuzz: up
	$(PYTHON) -m pytest tests/fuzz -s
