# dbsync — build, test, deploy. `make help` lists the targets.
#
# One shared cargo target directory for every function (and for `sam build`,
# which runs this Makefile's build-* targets): an absolute path, so a build
# started from anywhere reuses the same compiled dependencies.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
export CARGO_TARGET_DIR ?= $(ROOT)/target
VENV := $(ROOT)/.venv
# The SAM CLI must work offline: no telemetry calls.
export SAM_CLI_TELEMETRY := 0
PY := $(VENV)/bin/python
NODE_TOOLS := $(ROOT)/.ci/node_modules/.bin
REGION ?= us-east-1
# The functions, as SAM logical id = binary (= package) name.
FUNCTIONS := PreflightFunction=preflight LeaseFunction=lease VersionCheckFunction=version-check \
             DropFksFunction=drop-fks StartDmsFunction=start-dms PollDmsFunction=poll-dms \
             RestoreFksFunction=restore-fks FixSequencesFunction=fix-sequences \
             RefreshViewsFunction=refresh-views TriggerFunction=trigger
BINARIES := $(foreach f,$(FUNCTIONS),--bin $(word 2,$(subst =, ,$(f))))

.PHONY: help
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- set-up
.PHONY: deps postgres tools
deps: postgres tools ## install everything the tests and the demo need

# PostgreSQL server binaries (initdb, postgres) for the throwaway test/demo servers.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$$PG_BINDIR" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing PostgreSQL (apt)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql openssl >/dev/null; \
	else \
	  echo "PostgreSQL server binaries are missing: install the 'postgresql' package (or set PG_BINDIR)"; exit 1; \
	fi

$(VENV)/.stamp: .ci/requirements-tools.txt .ci/requirements-test.txt .ci/requirements-checkov.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r .ci/requirements-tools.txt -r .ci/requirements-test.txt
	python3 -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install -q -r .ci/requirements-checkov.txt
	touch $@

.ci/node_modules/.stamp: .ci/package.json .ci/package-lock.json
	cd .ci && npm ci --silent --no-audit --no-fund
	touch $@

tools: $(VENV)/.stamp .ci/node_modules/.stamp

# ---------------------------------------------------------------- main jobs
.PHONY: demo test check lint bench
demo: postgres ## sync two throwaway local PostgreSQL databases through the real state machine
	cargo run --release -p dbsync -- demo

test: deps ## everything CI runs: format, clippy, lint, all tests (real PostgreSQL, moto), sam build
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	PATH="$(VENV)/bin:$$PATH" cargo test --workspace
	$(MAKE) lint
	$(MAKE) build

bench: postgres ## benchmarks against the alternatives; writes BENCHMARKS.md
	cargo run --release -p dbsync-bench

# ---------------------------------------------------------------- AWS
.PHONY: build deploy lint validate
build: tools ## sam build: the functions' arm64 bootstrap binaries (offline)
	PATH="$(VENV)/bin:$$PATH" sam build --template template.yaml --build-in-source
	@for f in $(FUNCTIONS); do id=$${f%%=*}; \
	  file .aws-sam/build/$$id/bootstrap | grep -q 'ARM aarch64' || { echo "$$id: not an arm64 executable"; exit 1; }; \
	done; echo "sam build: $(words $(FUNCTIONS)) arm64 bootstrap executables"

deploy: build ## sam deploy (CONFIG_ENV=staging|production picks a samconfig environment)
	PATH="$(VENV)/bin:$$PATH" sam deploy --config-env $(or $(CONFIG_ENV),default)

lint: tools ## cfn-lint, sam validate, asl-validator, statelint, checkov
	PATH="$(VENV)/bin:$$PATH" cfn-lint template.yaml
	PATH="$(VENV)/bin:$$PATH" sam validate --lint --region $(REGION) --template template.yaml
	@tmp=$$(mktemp -d); cargo run -q -p dbsync -- asl substitute --definition statemachine/db-sync.asl.json > $$tmp/db-sync.asl.json; \
	  $(NODE_TOOLS)/asl-validator --json-path $$tmp/db-sync.asl.json && \
	  $(NODE_TOOLS)/statelint $$tmp/db-sync.asl.json && echo "statelint: ok"; rc=$$?; rm -rf $$tmp; exit $$rc
	$(VENV)/checkov/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

# One target per function, called by `sam build` (BuildMethod: makefile).
# SAM passes ARTIFACTS_DIR. Every target asks cargo for all the binaries at
# once: the first call cross-builds them together for Lambda's arm64 (shared
# dependencies compiled once), the others find them built and only copy.
define build_function
.PHONY: build-$(1)
build-$(1):
	PATH="$(VENV)/bin:$$$$PATH" cargo lambda build --release --arm64 $(BINARIES) --manifest-path $(ROOT)/Cargo.toml
	cp $(CARGO_TARGET_DIR)/lambda/$(2)/bootstrap $$(ARTIFACTS_DIR)/bootstrap
endef
$(foreach f,$(FUNCTIONS),$(eval $(call build_function,$(word 1,$(subst =, ,$(f))),$(word 2,$(subst =, ,$(f))))))

.PHONY: clean
clean: ## remove build output
	rm -rf .aws-sam $(CARGO_TARGET_DIR)
