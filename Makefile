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
# Prints how long a step took (make test's phases).
TIMED := $(ROOT)/.ci/timed
# The dbsync CLI (lint uses its `asl substitute`).
DBSYNC ?= cargo run -q -p dbsync --
REGION ?= us-east-1
# The functions, as SAM logical id = binary (= package) name.
FUNCTIONS := PreflightFunction=preflight LeaseFunction=lease VersionCheckFunction=version-check \
             DropFksFunction=drop-fks StartDmsFunction=start-dms PollDmsFunction=poll-dms \
             PlanCopyFunction=plan-copy CopyPieceFunction=copy-piece \
             RestoreFksFunction=restore-fks FixSequencesFunction=fix-sequences \
             RefreshViewsFunction=refresh-views AfterLoadFunction=after-load TriggerFunction=trigger
BINARIES := $(foreach f,$(FUNCTIONS),--bin $(word 2,$(subst =, ,$(f))))
# The functions that open database connections get the CA bundle beside their
# binary (the template points DB_SSLROOTCERT at it).
DB_BINARIES := lease version-check drop-fks restore-fks fix-sequences refresh-views after-load plan-copy copy-piece
DB_FUNCTION_IDS := $(foreach f,$(FUNCTIONS),$(if $(filter $(word 2,$(subst =, ,$(f))),$(DB_BINARIES)),$(word 1,$(subst =, ,$(f)))))

# RDS certificates chain to Amazon's RDS CAs, which are in no public root
# store, so `verify-full` needs their bundle in the package. Where it comes from:
#   RDS_CA_BUNDLE=path  a bundle you downloaded (or your own CA for a non-RDS
#                       target); checked to hold certificates and no key;
#   RDS_CA_BUNDLE=none  package none (only for DbSslMode=require);
#   unset               downloaded once from AWS's trust store over HTTPS into
#                       .cache/, checked against RDS_CA_SHA256 when you pin it.
RDS_CA_URL ?= https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
RDS_CA_SHA256 ?=
RDS_CA_CACHE := $(ROOT)/.cache/rds-global-bundle.pem
RDS_CA_BUNDLE ?= $(RDS_CA_CACHE)
CA_FILE_NAME := rds-ca-bundle.pem
# The sync configuration (data rules, after_sync SQL), packaged with the
# database functions as /var/task/dbsync.yml. Absent at its default path: an
# empty one (no rules); absent at a path you give: the build fails.
SYNC_CONFIG_FILE ?= $(ROOT)/dbsync.yml

.PHONY: help
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- set-up
.PHONY: deps postgres tools
deps: postgres tools ## install everything the tests and the demo need

# PostgreSQL server binaries (initdb, postgres) for the throwaway test/demo servers.
postgres:
	@if { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$$PG_BINDIR" ]; } && command -v openssl >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing PostgreSQL (apt)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql openssl >/dev/null; \
	else \
	  echo "PostgreSQL server binaries or openssl are missing: install the 'postgresql' and 'openssl' packages (or set PG_BINDIR)"; exit 1; \
	fi

$(VENV)/.stamp: .ci/requirements-tools.txt .ci/requirements-test.txt .ci/requirements-checkov.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(TIMED) "pip: SAM CLI, cargo-lambda, moto, cfn-lint" $(VENV)/bin/pip install -q -r .ci/requirements-tools.txt -r .ci/requirements-test.txt
	python3 -m venv $(VENV)/checkov
	$(TIMED) "pip: checkov" $(VENV)/checkov/bin/pip install -q -r .ci/requirements-checkov.txt
	touch $@

.ci/node_modules/.stamp: .ci/package.json .ci/package-lock.json
	cd .ci && $(TIMED) "npm: asl-validator, statelint" npm ci --silent --no-audit --no-fund
	touch $@

tools: $(VENV)/.stamp .ci/node_modules/.stamp

# ---------------------------------------------------------------- main jobs
.PHONY: demo test check lint bench
demo: postgres ## sync two throwaway local PostgreSQL databases through the real state machine
	cargo run --release -p dbsync -- demo

test: deps ## everything CI runs: format, clippy, lint, all tests (real PostgreSQL, moto), sam build
	$(TIMED) fmt cargo fmt --all -- --check
	$(TIMED) clippy cargo clippy --workspace --all-targets -- -D warnings
	PATH="$(VENV)/bin:$$PATH" $(TIMED) "tests (build and run)" cargo test --workspace
	@# The CLI the tests just built: `cargo run -p dbsync` alone resolves other
	@# features than the workspace's test build and would compile again.
	$(TIMED) lint $(MAKE) lint DBSYNC=$(CARGO_TARGET_DIR)/debug/dbsync
	@# No network here: package a CA made for the occasion (`make build` packages RDS's).
	tmp=$$(mktemp -d) && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=dbsync-make-test-ca \
	  -keyout $$tmp/key.pem -out $$tmp/ca.pem 2>/dev/null && \
	  $(TIMED) "sam build" $(MAKE) build RDS_CA_BUNDLE=$$tmp/ca.pem; rc=$$?; rm -rf $$tmp; exit $$rc

bench: postgres ## benchmarks against the alternatives; writes BENCHMARKS.md
	cargo build --release -p dbsync
	cargo run --release -p dbsync-bench --

# ---------------------------------------------------------------- AWS
.PHONY: build deploy lint validate rds-ca
build: tools rds-ca ## sam build: the functions' arm64 binaries and the RDS CA bundle (RDS_CA_BUNDLE=path|none)
	PATH="$(VENV)/bin:$$PATH" RDS_CA_BUNDLE="$(RDS_CA_BUNDLE)" RDS_CA_SHA256="$(RDS_CA_SHA256)" SYNC_CONFIG_FILE="$(SYNC_CONFIG_FILE)" sam build --template template.yaml --build-in-source
	@for f in $(FUNCTIONS); do id=$${f%%=*}; \
	  file .aws-sam/build/$$id/bootstrap | grep -q 'ARM aarch64' || { echo "$$id: not an arm64 executable"; exit 1; }; \
	done; echo "sam build: $(words $(FUNCTIONS)) arm64 bootstrap executables"
	@if [ "$(RDS_CA_BUNDLE)" != none ]; then for id in $(DB_FUNCTION_IDS); do \
	  cmp -s "$(RDS_CA_BUNDLE)" .aws-sam/build/$$id/$(CA_FILE_NAME) || { echo "$$id: the CA bundle was not packaged"; exit 1; }; \
	done; echo "sam build: CA bundle $(RDS_CA_BUNDLE) packaged with $(words $(DB_FUNCTION_IDS)) database functions"; \
	else echo "sam build: no CA bundle packaged (RDS_CA_BUNDLE=none): deploy with DbSslMode=require"; fi

# The CA bundle for DbSslMode verify-ca/verify-full (see RDS_CA_BUNDLE above).
rds-ca:
	@set -e; b="$(RDS_CA_BUNDLE)"; [ "$$b" = none ] && exit 0; \
	if [ "$$b" = "$(RDS_CA_CACHE)" ] && [ ! -s "$$b" ]; then \
	  mkdir -p "$$(dirname "$$b")"; echo "rds-ca: downloading $(RDS_CA_URL)"; \
	  curl -fsS --proto '=https' --tlsv1.2 --max-time 60 -o "$$b.part" "$(RDS_CA_URL)" || { rm -f "$$b.part"; \
	    echo "rds-ca: cannot download the RDS CA bundle. Download it elsewhere and build with RDS_CA_BUNDLE=/path/to/global-bundle.pem, or RDS_CA_BUNDLE=none with DbSslMode=require."; exit 1; }; \
	  mv "$$b.part" "$$b"; fi; \
	[ -s "$$b" ] || { echo "rds-ca: RDS_CA_BUNDLE=$$b: no such file"; exit 1; }; \
	if grep -q 'PRIVATE KEY' "$$b"; then echo "rds-ca: $$b holds a private key; give the CA certificates only"; exit 1; fi; \
	n=$$(openssl crl2pkcs7 -nocrl -certfile "$$b" 2>/dev/null | openssl pkcs7 -print_certs -noout 2>/dev/null | grep -c '^subject=' || true); \
	[ "$$n" -gt 0 ] || { echo "rds-ca: $$b holds no PEM certificates"; exit 1; }; \
	sum=$$(sha256sum "$$b" | cut -d' ' -f1); \
	if [ -n "$(RDS_CA_SHA256)" ] && [ "$$sum" != "$(RDS_CA_SHA256)" ]; then \
	  echo "rds-ca: $$b has sha256 $$sum, not the pinned RDS_CA_SHA256=$(RDS_CA_SHA256)"; exit 1; fi; \
	echo "rds-ca: $$b: $$n certificates, sha256 $$sum$(if $(RDS_CA_SHA256),, (pin it with RDS_CA_SHA256=$$sum))"

deploy: build ## sam deploy (CONFIG_ENV=staging|production picks a samconfig environment)
	PATH="$(VENV)/bin:$$PATH" sam deploy --config-env $(or $(CONFIG_ENV),default)

lint: tools ## cfn-lint, sam validate, asl-validator, statelint, checkov
	PATH="$(VENV)/bin:$$PATH" cfn-lint template.yaml
	PATH="$(VENV)/bin:$$PATH" sam validate --lint --region $(REGION) --template template.yaml
	@tmp=$$(mktemp -d); $(DBSYNC) asl substitute --definition statemachine/db-sync.asl.json > $$tmp/db-sync.asl.json; \
	  $(NODE_TOOLS)/asl-validator --json-path $$tmp/db-sync.asl.json && \
	  $(NODE_TOOLS)/statelint $$tmp/db-sync.asl.json && echo "statelint: ok"; rc=$$?; rm -rf $$tmp; exit $$rc
	$(VENV)/checkov/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

define package_sync_config
if [ -f "$(SYNC_CONFIG_FILE)" ]; then cp "$(SYNC_CONFIG_FILE)" $(1)/dbsync.yml; \
elif [ "$(SYNC_CONFIG_FILE)" = "$(ROOT)/dbsync.yml" ]; then printf '# built without dbsync.yml: no data rules, no after_sync\n' > $(1)/dbsync.yml; \
else echo "SYNC_CONFIG_FILE=$(SYNC_CONFIG_FILE): no such file"; exit 1; fi
endef

# One target per function, called by `sam build` (BuildMethod: makefile).
# SAM passes ARTIFACTS_DIR. Every target asks cargo for all the binaries at
# once: the first call cross-builds them together for Lambda's arm64 (shared
# dependencies compiled once), the others find them built and only copy.
define build_function
.PHONY: build-$(1)
build-$(1): $(if $(filter $(2),$(DB_BINARIES)),rds-ca)
	PATH="$(VENV)/bin:$$$$PATH" cargo lambda build --release --arm64 $(BINARIES) --manifest-path $(ROOT)/Cargo.toml
	cp $(CARGO_TARGET_DIR)/lambda/$(2)/bootstrap $$(ARTIFACTS_DIR)/bootstrap
$(if $(filter $(2),$(DB_BINARIES)),$(if $(filter none,$(RDS_CA_BUNDLE)),,	cp "$(RDS_CA_BUNDLE)" $$(ARTIFACTS_DIR)/$(CA_FILE_NAME)))
$(if $(filter $(2),$(DB_BINARIES)),	$$(call package_sync_config,$$(ARTIFACTS_DIR)))
endef
$(foreach f,$(FUNCTIONS),$(eval $(call build_function,$(word 1,$(subst =, ,$(f))),$(word 2,$(subst =, ,$(f))))))

.PHONY: clean
clean: ## remove build output
	rm -rf .aws-sam $(CARGO_TARGET_DIR)
