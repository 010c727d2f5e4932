# mcpruntime — build, test and run.
#
#   make run      build everything and run examples/hello.py on the default backend
#   make test     run every module's tests, including the conformance suite
#                 against every plugin
#
# Everything a target needs beyond Go is installed idempotently by `make deps`
# (Debian packages; each plugin's own Makefile says what it needs).

SHELL      := /bin/bash
ROOT       := $(abspath .)
BIN        := $(ROOT)/bin
PLUGIN_BIN := $(BIN)/plugins
GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X main.version=$(VERSION)

# Backends built from this repository: every plugins/NAME with a Makefile.
PLUGINS    := $(patsubst plugins/%/Makefile,%,$(wildcard plugins/*/Makefile))

.PHONY: npm-deps console-deps all build core hostpython plugins deps run test test-core test-sdk test-examples test-plugins test-fuzz chaos proto bench clean

all: build

build: core hostpython plugins ## build bin/mcpruntime and every plugin into bin/plugins

core:
	@echo "==> building bin/mcpruntime"
	@mkdir -p $(PLUGIN_BIN)
	cd core && $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/mcpruntime ./cmd/mcpruntime
	cd core && $(GO) build -trimpath -o $(BIN)/scripted-llm ./cmd/scripted-llm

hostpython:
	@echo "==> building the hostpython example plugin"
	@mkdir -p $(PLUGIN_BIN)
	cd examples/plugins/hostpython && $(GO) build -trimpath -o $(PLUGIN_BIN)/mcpruntime-plugin-hostpython .

plugins:
	@set -e; for p in $(PLUGINS); do \
		echo "==> building plugin $$p"; \
		$(MAKE) --no-print-directory -C plugins/$$p build BIN=$(PLUGIN_BIN); \
	done

deps: npm-deps console-deps ## install what the plugins need (Debian packages, daemons) and the MCP peers
	@set -e; for p in $(PLUGINS); do \
		echo "==> dependencies of plugin $$p"; \
		$(MAKE) --no-print-directory -C plugins/$$p deps; \
	done

# Headless Chromium (Debian's chromium) for the web console's browser tests
# in core/cmd/mcpruntime; under CI=true they fail without it.
console-deps:
	@command -v chromium >/dev/null || { echo "installing chromium (the console's browser tests)"; apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends chromium; }

# Real MCP servers and the official TypeScript client, pinned by
# deps/npm/package-lock.json, installed into deps/npm/node_modules (never
# npx). Node.js comes from Debian when the machine has none.
NPM_DIR := $(ROOT)/deps/npm

npm-deps:
	@command -v npm >/dev/null || { echo "installing nodejs and npm"; apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends nodejs npm; }
	@if ! cmp -s $(NPM_DIR)/package-lock.json $(NPM_DIR)/node_modules/.package-lock.json.installed; then \
		echo "==> npm ci (MCP servers and client in deps/npm)"; \
		cd $(NPM_DIR) && npm ci --no-audit --no-fund --ignore-scripts && cp package-lock.json node_modules/.package-lock.json.installed; \
	fi

run: build ## the main job: run examples/hello.py on the default backend
	$(BIN)/mcpruntime exec examples/hello.py

test: deps test-sdk test-core test-fuzz test-examples test-plugins chaos ## every test, every module (installs what they need first)

# Fuzz targets for what untrusted sides hand the runtime: HTTP request
# bodies, runtime.hcl, the kernel channel (written by sandbox code). Each
# runs for FUZZTIME; a finding is saved under testdata/fuzz and fails the run.
FUZZTIME ?= 10s
FUZZ_TARGETS := core/server:FuzzDecodeExecRequest core/config:FuzzParse sdk/kernel:FuzzReadFrame sdk/kernel:FuzzConnExec

test-fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		dir=$${t%%:*}; name=$${t##*:}; mod=$${dir%%/*}; pkg=./$${dir#*/}; \
		echo "==> fuzz $$name ($$dir, $(FUZZTIME))"; \
		(cd $$mod && $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg); \
	done

# The sdk, the core and the in-process conformance suites (hostpython's,
# whose plugin code runs inside the test binary) run under the race
# detector; RACE= turns it off.
RACE ?= -race

test-sdk:
	@echo "==> sdk"
	cd sdk && $(GO) test $(RACE) ./...

test-core: core hostpython
	@echo "==> core"
	cd core && $(GO) test $(RACE) -timeout 30m ./...

# The example scripts run offline (scripted model) on each listed backend;
# they check their own output.
EXAMPLE_BACKENDS ?= hostpython $(PLUGINS)

test-examples: build deps
	@echo "==> examples: the hostpython plugin's conformance"
	cd examples/plugins/hostpython && $(GO) test $(RACE) ./...
	@set -e; for b in $(EXAMPLE_BACKENDS); do for e in examples/[0-9]*/run.sh; do \
		echo "==> example $$e on $$b"; BACKEND=$$b bash $$e >/tmp/mcpruntime-example.log 2>&1 || { cat /tmp/mcpruntime-example.log; exit 1; }; \
	done; done

test-plugins: deps
	@set -e; for p in $(PLUGINS); do \
		echo "==> plugin $$p"; \
		$(MAKE) --no-print-directory -C plugins/$$p test; \
	done

# Fault injection: a mixed load on wasm and opensandbox sessions (through
# `serve` and the session daemon) while the server, the daemon and plugins
# are killed at random; then no silent state loss, no missing or torn
# replay record, no orphaned process or container. CHAOS_DURATION sets how
# long faults are injected; the report is written to CHAOS_REPORT.
CHAOS_DURATION ?= 60s
CHAOS_REPORT ?= /tmp/mcpruntime-chaos.json

chaos: build deps ## fault injection under load (see the README's Reliability section)
	cd core && CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_REPORT=$(CHAOS_REPORT) \
		$(GO) test -tags chaos -run TestChaos -count=1 -timeout 20m -v ./internal/chaos/

bench: build ## benchmarks of the core and the default backend
	cd core && $(GO) test -run '^$$' -bench . -benchtime 2000x ./session/
	$(BIN)/mcpruntime bench

proto: ## regenerate the gRPC code from sdk/proto
	@command -v protoc >/dev/null || { echo "installing protobuf-compiler"; apt-get install -y -o DPkg::Lock::Timeout=600 --no-install-recommends protobuf-compiler; }
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
	cd sdk && PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I proto \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		proto/sandbox/v1/sandbox.proto

clean:
	rm -rf $(BIN)
