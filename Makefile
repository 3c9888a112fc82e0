# The project's commands. The README shows these recipes; CI (.ci/run) runs `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

SERVICES := scripts/services.sh
WITH_ENV := eval "$$($(SERVICES) env)" &&
PYTHON := .services/venv/bin/python
RELEASE_DIR := $(or $(CARGO_TARGET_DIR),target)/release

.PHONY: help
help: ## list the recipes (scripts/check-make.sh checks that every one is listed)
	@grep -hE '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

.PHONY: services services-down services-status
services: ## install what is missing and start Postgres, the broker and ClickHouse locally
	$(SERVICES) up >/dev/null

services-down: ## stop the local services this checkout started
	$(SERVICES) down

services-status: ## show which local services answer (one that does not is reported, not an error)
	$(SERVICES) status || [ $$? -eq 3 ]

.PHONY: build lint fmt test test-steps
build: ## build every binary
	cargo build --workspace --all-targets

fmt: ## format the code
	cargo fmt --all

lint: ## formatting and clippy, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: ## every test: lint, unit and integration tests on the real local services, offline manifest checks, the binaries built and started as the image ships them, the test client page in a real browser, then the operator's Deployments run from those binaries by a local kubelet, end to end; the time of each step at the end
	@scripts/time-steps.sh run $(MAKE) --no-print-directory test-steps

# NB: make runs each recipe line of test-steps, and of the recipes it depends on, through
# scripts/time-steps.sh, which times it for the table `make test` prints.
test-steps: .SHELLFLAGS := step $(.SHELLFLAGS)
test-steps: SHELL := $(CURDIR)/scripts/time-steps.sh
test-steps: services lint ## the steps of `make test`, without the table of their times
	scripts/check-make.sh
	scripts/test-services.sh
	cargo build --workspace --bins
	$(WITH_ENV) cargo test --workspace --no-fail-fast
	$(WITH_ENV) scripts/check-api-schema.sh
	$(PYTHON) scripts/check-crd.py
	$(PYTHON) scripts/check-chart.py
	scripts/check-shipped-binaries.py
	$(WITH_ENV) $(PYTHON) scripts/test-kubelet.py
	$(WITH_ENV) scripts/test-client-page.sh
	$(WITH_ENV) scripts/test-pipeline-e2e.sh
	PATH="$$PATH:$(CURDIR)/.services/bin" $(PYTHON) scripts/check-monitoring.py

.PHONY: crd
crd: ## regenerate crds/cdcpipeline.yaml from the Rust types
	cargo run -q -p cdcstar-crds --bin crdgen

.PHONY: demo demo-ui
# The demo does not wait for the tansu broker's first build: the mock broker stands in meanwhile
# (scripts/services.sh, CDCSTAR_BROKER=tansu-or-mock); the tests use tansu and wait for it.
demo demo-ui: export CDCSTAR_BROKER ?= tansu-or-mock
demo: services ## the whole pipeline locally as a cluster would run it: the operator's own Deployments for examples/shop-pipeline.yaml run by a local kubelet (scripts/kubelet.py), the reference client's flow through the api pod, ClickHouse contents and arrival times (PROFILE=release for optimised binaries)
	$(WITH_ENV) scripts/demo.sh

demo-ui: services ## make demo, then the pipeline keeps running with the test client page (http://127.0.0.1:3002/client/, DEMO_API_PORT) until Ctrl-C
	$(WITH_ENV) DEMO_KEEP_RUNNING=1 scripts/demo.sh

# --- chart ---
# Helm chart, container images and the kind walkthrough (docs/chart.md).
CHART_DIR := charts/cdcstar
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' $(CHART_DIR)/Chart.yaml)
IMAGE_REGISTRY ?=
IMAGES := operator sink api capture
KIND_CLUSTER ?= cdcstar

.PHONY: chart-crd chart-check check-shipped images kind-load e2e-kind
chart-crd: crd ## regenerate the CRD and copy it into the chart (charts/cdcstar/files/cdcpipeline.crd.yaml)
	mkdir -p $(CHART_DIR)/files
	cp crds/cdcpipeline.yaml $(CHART_DIR)/files/cdcpipeline.crd.yaml

chart-check: ## offline chart checks: lint, render, kubernetes-validate --strict, schema, RBAC vs operator calls
	$(PYTHON) scripts/check-chart.py

check-shipped: ## build the binaries with docker/Dockerfile's own cargo command and environment, start each, and the operator through its first TLS request to a local HTTPS API endpoint
	scripts/check-shipped-binaries.py

images: ## build the cdcstar-{operator,sink,api,capture} images with docker, tagged with the chart's appVersion
	for image in $(IMAGES); do \
	  docker build -f docker/Dockerfile --target "$$image" --build-arg VERSION=$(IMAGE_TAG) \
	    -t "$(IMAGE_REGISTRY)cdcstar-$$image:$(IMAGE_TAG)" . ; \
	done

kind-load: ## load the images into the kind cluster named by KIND_CLUSTER (default cdcstar)
	for image in $(IMAGES); do \
	  kind load docker-image --name $(KIND_CLUSTER) "$(IMAGE_REGISTRY)cdcstar-$$image:$(IMAGE_TAG)"; \
	done

e2e-kind: ## the kind end-to-end run for users (needs docker, kind, kubectl, helm): see docs/chart.md
	scripts/e2e-kind.sh
# --- end chart ---

# --- api ---
# The shop REST API (docs/api.md).
.PHONY: run-api bench-api check-api-schema
run-api: services ## run the API on the local Postgres (http://localhost:3002, docs at /docs), creating its tables
	cargo build --release -p cdcstar-api --bin cdcstar-api
	$(WITH_ENV) AUTO_INIT_DB=true target/release/cdcstar-api serve

check-api-schema: services ## schemathesis on the running API, every check, 100 examples per operation, fixed seed: 0 failures (scripts/check-api-schema.sh)
	$(WITH_ENV) scripts/check-api-schema.sh

bench-api: services ## API load: 70% GET by id, 20% list limit 50, 10% POST order + 3 items, 64 connections, 30 s (ARGS=... for cdcstar-api-load)
	cargo build --release -p cdcstar-api --bins
	$(WITH_ENV) api/scripts/bench.sh $(ARGS)
# --- end api ---

# --- operator ---
# The operator (docs/operator.md).
PIPELINE ?= examples/shop-pipeline.yaml

.PHONY: operator-test operator-plan operator-golden
operator-test: services ## operator: unit, mock-apiserver, pure-build (golden, kubernetes-validate) and real Postgres/ClickHouse tests
	$(WITH_ENV) cargo test -p cdcstar-operator

operator-plan: ## print every SQL statement, DDL and manifest the operator would apply for PIPELINE (default examples/shop-pipeline.yaml), touching nothing
	cargo run -q -p cdcstar-operator -- plan $(PIPELINE)

operator-golden: ## after a reviewed change: regenerate operator/tests/golden/* and operator/tests/api_calls.txt
	UPDATE_GOLDEN=1 UPDATE_API_CALLS=1 cargo test -p cdcstar-operator --test build --test leader_and_startup
# --- end operator ---

# --- capture ---
# The native capture (docs/capture.md) and the one-command local pipeline.
.PHONY: capture-test run-capture bench-pipeline
capture-test: services ## native capture: decoder/type unit tests and real Postgres + broker tests (envelopes, TOAST, SIGKILL restart, heartbeat, snapshot)
	$(WITH_ENV) cargo test -p cdcstar-source -p cdcstar-capture

run-capture: services ## run the native capture for PIPELINE (default examples/shop-pipeline.yaml) on the local services, creating publication and slot
	cargo build --release -p cdcstar-capture
	$(WITH_ENV) target/release/cdcstar-capture --pipeline $(PIPELINE) --create-slot

bench-pipeline: services ## end-to-end benchmark on a private mock broker (BENCH_BROKER=env: KAFKA_BROKERS): latency p50/p95/p99 at a fixed rate, max sustained rate, snapshot rate beside the broker's own produce and drain ceilings, peak RSS (ARGS: see the script header)
	$(WITH_ENV) scripts/bench-pipeline.sh $(ARGS)
# --- end capture ---

# --- sink ---
# The sink (docs/sink.md).
.PHONY: sink-test run-sink bench-sink bench-propagation
BENCH_EVENTS ?= 1000000
BENCH_FACTS ?= 100000 1000000
sink-test: services ## sink: unit tests, star-schema semantics on ClickHouse, the binary end to end (DLQ, SIGKILL, broker restart, ClickHouse outage)
	$(WITH_ENV) cargo test -p cdcstar-sink

run-sink: services ## run the sink for PIPELINE (default examples/shop-pipeline.yaml) on the local services, creating topics and tables
	cargo build --release -p cdcstar-sink --bin cdcstar-sink
	$(WITH_ENV) target/release/cdcstar-sink --pipeline $(PIPELINE) --create-topics --create-tables --metrics-addr 127.0.0.1:9464

bench-sink: services ## sink throughput vs a raw ClickHouse insert of the same rows and the broker's own produce and drain rates, peak RSS and CPU, on a private mock broker (BENCH_BROKER=env: KAFKA_BROKERS; BENCH_EVENTS, default 1000000; ARGS=... for cdcstar-sink-bench)
	cargo build --release -p cdcstar-sink --bins
	$(WITH_ENV) scripts/bench-broker.sh $(RELEASE_DIR)/cdcstar-sink-bench --events $(BENCH_EVENTS) $(ARGS)

bench-propagation: services ## one customer change reaching N orders and N/5 items (BENCH_FACTS, default "100000 1000000"): time until flushed, rows written, statements per kind, sink idle and peak RSS, the adapter's own rewrite of the same rows; on a private mock broker (ARGS=... for cdcstar-propagation-bench, e.g. --lookup-recheck false)
	cargo build --release -p cdcstar-sink --bins
	for facts in $(BENCH_FACTS); do $(WITH_ENV) scripts/bench-broker.sh $(RELEASE_DIR)/cdcstar-propagation-bench --facts $$facts $(ARGS) || exit 1; done
# --- end sink ---
