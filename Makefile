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
FUZZTIME ?= 30s

.PHONY: all build test test-unit lint generate checkgenerate bench bench-go fuzz clean

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

# Generated code is committed; checkgenerate fails when it is stale.
generate: $(BUF)
	PATH=$(PROTO_TOOLS):$$PATH $(BUF) generate

checkgenerate: generate
	@if [ -n "$$(git status --porcelain -- proto/gen)" ]; then \
		git status --short -- proto/gen; \
		echo "generated code is stale: run make generate and commit"; exit 1; fi

lint: $(STATICCHECK) $(BUF)
	$(GO) vet ./...
	$(STATICCHECK) ./...
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

# go test fuzzes one target per run: each gets half of FUZZTIME, so that
# `make fuzz` takes about FUZZTIME in all. New inputs are minimized for at
# most 3 s: an archive file is kilobytes, and the default minute of
# minimizing each one would leave no time to fuzz.
FUZZSHARE = $(shell t=$(FUZZTIME); if [[ $$t =~ ^[0-9]+s$$ ]] && [ $${t%s} -ge 2 ]; then echo $$(( $${t%s} / 2 ))s; else echo $$t; fi)
fuzz:
	$(GO) test ./objectlog -run '^$$' -fuzz '^FuzzReadSegment$$' -fuzztime $(FUZZSHARE)
	$(GO) test ./objectlog -run '^$$' -fuzz '^FuzzReadArchive$$' -fuzztime $(FUZZSHARE) -fuzzminimizetime 3s

clean:
	rm -rf bin
