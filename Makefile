# Strata build, test and lint entry points. `make test` is what CI runs.
SHELL := /usr/bin/env bash
GO ?= go
# Tools are pinned here and installed into the cache directory on first use.
TOOLS_BIN := $(HOME)/.cache/strata/bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS_BIN)/staticcheck-$(STATICCHECK_VERSION)
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
PROTO_TOOLS := $(TOOLS_BIN)/proto-$(BUF_VERSION)-$(PROTOC_GEN_GO_VERSION)-$(PROTOC_GEN_CONNECT_GO_VERSION)
BUF := $(PROTO_TOOLS)/buf
# The TypeScript side (web/: generated code, the guide's example) pins its
# tools and libraries in web/package.json and web/package-lock.json; npm ci
# installs exactly those into web/node_modules.
NPM ?= npm
WEB_DEPS := web/node_modules/.package-lock.json
# kafkajs and its codecs for integration/kafkajs_test.go, pinned the same way.
KAFKAJS_DIR := integration/testdata/kafkajs
KAFKAJS_DEPS := $(KAFKAJS_DIR)/node_modules/.package-lock.json
FUZZTIME ?= 30s

.PHONY: all build test test-unit lint generate checkgenerate typecheck-ts kafkajs-deps bench bench-go fuzz clean

all: build

build:
	$(GO) build -o bin/strata ./cmd/strata

# Every test, with the real services the integration tests need (MinIO,
# redis-server, a Redis Cluster) started by scripts/test-services.sh.
test:
	scripts/test-services.sh scripts/ci-tests.sh

# Tests that need no services (miniredis and the filesystem store only) fail
# loudly if a real-service test is reached; use `make test` for all of them.
test-unit:
	$(GO) test ./...

$(STATICCHECK):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS_BIN)/staticcheck $(STATICCHECK)

$(BUF):
	@mkdir -p $(PROTO_TOOLS)
	GOBIN=$(PROTO_TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOBIN=$(PROTO_TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(PROTO_TOOLS) $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)

$(WEB_DEPS): web/package.json web/package-lock.json
	@command -v $(NPM) >/dev/null || { echo "npm (Node.js 20 or later) is needed for the TypeScript code in web/: install Node.js"; exit 1; }
	$(NPM) ci --prefix web --no-audit --no-fund --loglevel=error

$(KAFKAJS_DEPS): $(KAFKAJS_DIR)/package.json $(KAFKAJS_DIR)/package-lock.json
	@command -v $(NPM) >/dev/null || { echo "npm (Node.js 20 or later) is needed for the kafkajs integration test: install Node.js"; exit 1; }
	$(NPM) ci --prefix $(KAFKAJS_DIR) --no-audit --no-fund --loglevel=error

# The packages of the kafkajs integration test (make test installs them).
kafkajs-deps: $(KAFKAJS_DEPS)

# Generated code (Go in proto/gen, TypeScript in web/src/gen) is committed;
# checkgenerate fails when it is stale.
generate: $(BUF) $(WEB_DEPS)
	PATH=$(PROTO_TOOLS):$(CURDIR)/web/node_modules/.bin:$$PATH $(BUF) generate

checkgenerate: generate
	@if [ -n "$$(git status --porcelain -- proto/gen web/src/gen)" ]; then \
		git status --short -- proto/gen web/src/gen; \
		echo "generated code is stale: run make generate and commit"; exit 1; fi

# Type-checks the generated TypeScript and the example of docs/typescript.md
# against the pinned @connectrpc and @bufbuild packages.
typecheck-ts: $(WEB_DEPS)
	$(NPM) --prefix web run --silent typecheck

lint: $(STATICCHECK) $(BUF)
	$(GO) vet ./...
	$(STATICCHECK) ./...
# ./... skips testdata: the sarama group member integration/sarama_groups_test.go builds.
	$(GO) vet ./integration/testdata/saramamember
	$(STATICCHECK) ./integration/testdata/saramamember
	$(BUF) lint
	$(BUF) format -d --exit-code
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The benchmark suite: a real agent against local MinIO and redis-server,
# driven by strata bench; writes docs/benchmarks.md and its chart.
bench:
	scripts/test-services.sh scripts/bench.sh

# The go test benchmarks of each package, against the same services.
bench-go:
	scripts/test-services.sh $(GO) test -run '^$$' -bench . -benchtime 2x ./...

# Every fuzz target as package:Func. Each gets an equal share of FUZZTIME
# (given in seconds, e.g. 30s), so the smoke run takes FUZZTIME in all however
# many targets there are; any other form of FUZZTIME is given to each target.
# New inputs are minimized for at most 3 s: an archive file is kilobytes, and
# the default minute of minimizing each one would leave no time to fuzz.
FUZZ_TARGETS := ./objectlog:FuzzReadSegment ./objectlog:FuzzReadArchive ./kafka:FuzzDecodeRequest

fuzz:
	@t='$(FUZZTIME)'; share=$$t; \
	if [[ $$t =~ ^[0-9]+s$$ ]]; then share=$$(( $${t%s} / $(words $(FUZZ_TARGETS)) ))s; fi; \
	if [ "$$share" = 0s ]; then share=1s; fi; \
	for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; fn=$${target##*:}; \
		echo "fuzz $$pkg $$fn for $$share"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $$share -fuzzminimizetime 3s || exit 1; \
	done

clean:
	rm -rf bin web/node_modules $(KAFKAJS_DIR)/node_modules
