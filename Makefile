# Paved — developer entry points. `make up` runs the platform, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= uv
export PAVED_HOME := $(CURDIR)
export PAVED_RUN_DIR ?= $(CURDIR)/.run
export PAVED_KAFKA_PORT ?= 9092
export PAVED_KAFKA_CONTROLLER_PORT ?= 9093
export PAVED_PG_PORT ?= 5433
PY := $(UV) run --frozen python

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## install system packages if missing, the Python workspace (uv), the pinned Kafka jars
	@bash infra/local/system-deps.sh
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet "uv==0.13.9"
	$(UV) sync --frozen --all-packages
	$(PY) -m paved_shared.devstack fetch

.PHONY: infra-up
infra-up: setup ## start Kafka (KRaft) and PostgreSQL on $PAVED_KAFKA_PORT / $PAVED_PG_PORT
	$(PY) -m paved_shared.devstack up

export PAVED_REGISTRY_HTTP_PORT ?= 8080
export PAVED_APPROVER_HTTP_PORT ?= 8081
export PAVED_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(PAVED_KAFKA_PORT)
export PAVED_DATABASE_URL ?= postgresql://postgres@127.0.0.1:$(PAVED_PG_PORT)/paved
# Kafka: SASL/SCRAM with ACLs. `make infra-up` generates one password per principal into
# $(PAVED_RUN_DIR)/secrets/kafka (0600, never committed); each service gets its own.
export PAVED_KAFKA_SECRETS_DIR ?= $(PAVED_RUN_DIR)/secrets/kafka
export PAVED_REGISTRY_URL ?= http://127.0.0.1:$(PAVED_REGISTRY_HTTP_PORT)
export PAVED_APPROVER_URL ?= http://127.0.0.1:$(PAVED_APPROVER_HTTP_PORT)

.PHONY: services-up
services-up: infra-up ## start the five services (registry, validator, approver, deployer-local, audit)
	$(PY) -m paved_shared.platform up

.PHONY: up
up: services-up ## run the platform (Kafka, PostgreSQL, every service) and the demo
	@# The demo only reads Kafka (deployment status, the audit topic): the read-only auditor.
	PAVED_KAFKA_SASL_USERNAME=paved-auditor \
	  PAVED_KAFKA_SASL_PASSWORD_FILE=$(PAVED_KAFKA_SECRETS_DIR)/auditor.password \
	  $(UV) run --frozen paved demo
	@echo "Paved is up. Try: uv run paved show iris-classifier 1 | make status | make down"

.PHONY: down
down: ## stop everything `make up` started (services, model servers, Kafka, PostgreSQL)
	-$(PY) -m paved_shared.platform down
	-PAVED_DEPLOYER_RUN_DIR=$(PAVED_RUN_DIR)/deployments $(PY) -m paved_deployer stop-servers
	-$(PY) -m paved_shared.devstack down

.PHONY: status
status: ## what is running
	$(PY) -m paved_shared.devstack status
	$(PY) -m paved_shared.platform status

.PHONY: lint
lint: ## ruff lint + format check
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

.PHONY: fmt
fmt: ## apply ruff fixes and formatting
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

.PHONY: typecheck
typecheck: ## mypy strict over every package and its tests
	$(UV) run --frozen mypy schemas/src shared/src services/*/src conftest.py

.PHONY: schemas
schemas: ## regenerate JSON Schemas (and their history) from the pydantic contract
	$(PY) -m paved_schemas.generate

.PHONY: asyncapi-check
asyncapi-check: ## fail when committed AsyncAPI documents are stale
	$(PY) -m paved_cli.asyncapi --check

.PHONY: schemas-check
schemas-check: ## fail when committed JSON Schemas are stale or incompatible
	$(PY) -m paved_schemas.generate --check

.PHONY: asyncapi
asyncapi: ## regenerate the services' AsyncAPI documents from their faststream apps
	$(PY) -m paved_cli.asyncapi

.PHONY: test-prereqs
test-prereqs: ## build/fetch what integration tests run (cached in .run/): kube-apiserver + etcd, Keycloak
	bash services/deployer/scripts/build-kube-apiserver.sh
	bash infra/oidc/keycloak.sh fetch

.PHONY: test
test: setup lint typecheck schemas-check asyncapi-check test-prereqs ## everything: lint, types, schema check, unit + integration + e2e tests
	$(UV) run --frozen pytest

.PHONY: bench-registry
bench-registry: infra-up ## registry vs MLflow at 100,000 versions, same PostgreSQL (prints figures)
	$(PY) bench/registry/bench_registry.py

.PHONY: bench-audit
bench-audit: infra-up ## audit ingest and replay+verify rates for 1,000,000 events beside raw Kafka consume
	$(PY) bench/audit/bench_audit.py

.PHONY: bench-serving
bench-serving: ## Paved model server vs `mlflow models serve`: requests/s, p50/p99, ratio
	$(PY) bench/serving/bench_serving.py

.PHONY: bench-sandbox
bench-sandbox: ## start-up overhead of the validation sandbox over a bare process (prints figures)
	$(PY) bench/sandbox/bench_sandbox.py

.PHONY: clean
clean: down ## remove the run folder (Kafka and PostgreSQL data)
	rm -rf $(PAVED_RUN_DIR)
