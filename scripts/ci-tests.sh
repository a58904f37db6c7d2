#!/usr/bin/env bash
# ci-tests.sh: everything `make test` checks, run inside scripts/test-services.sh
# so the real services are up. Lint and generated-code checks run first because
# they are fast and their failures are the cheapest to read.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== lint"
make --no-print-directory lint
if [ -f buf.gen.yaml ]; then
  echo "== checkgenerate"
  make --no-print-directory checkgenerate
fi

echo "== typescript type-check"
make --no-print-directory typecheck-ts

echo "== kafkajs packages (integration/kafkajs_test.go)"
make --no-print-directory kafkajs-deps

echo "== go test -race"
go test -race -timeout 20m -count=1 ./...

echo "== fuzz smoke"
make --no-print-directory fuzz FUZZTIME=${FUZZTIME:-20s}
