# The project's commands. The README shows these recipes; CI (.ci/run) runs `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

SERVICES := scripts/services.sh
WITH_ENV := eval "$$($(SERVICES) env)" &&
PYTHON := .services/venv/bin/python

.PHONY: help
help: ## list the recipes
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: services services-down services-status
services: ## install what is missing and start Postgres, the broker and ClickHouse locally
	$(SERVICES) up >/dev/null

services-down: ## stop the local services this checkout started
	$(SERVICES) down

services-status: ## show which local services answer
	$(SERVICES) status

.PHONY: build lint fmt test
build: ## build every binary
	cargo build --workspace --all-targets

fmt: ## format the code
	cargo fmt --all

lint: ## formatting and clippy, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: services lint ## every test: lint, unit and integration tests on the real local services, offline manifest checks
	$(WITH_ENV) cargo test --workspace --no-fail-fast
	$(PYTHON) scripts/check-crd.py
	$(PYTHON) scripts/check-chart.py

.PHONY: crd
crd: ## regenerate crds/cdcpipeline.yaml from the Rust types
	cargo run -q -p cdcstar-crds --bin crdgen

.PHONY: demo
demo: services ## the whole pipeline locally: api, native capture and sink for examples/shop-pipeline.yaml, driven through the API
	cargo build --release -p cdcstar-api -p cdcstar-capture -p cdcstar-sink
	$(WITH_ENV) scripts/demo.sh
