package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestProduceTransactionsConsumeReadCommitted: strata produce
// --transactional-id writes in transactions of --transaction-records
// lines; strata consume --isolation read_committed reads the committed
// ones to the end (past the commit markers) and never an aborted one.
func TestProduceTransactionsConsumeReadCommitted(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "tx", "--config", "max.message.bytes=100", "--addr", addr)

	var input strings.Builder
	var want []string
	for i := range 25 {
		fmt.Fprintf(&input, "line %d\n", i)
		want = append(want, fmt.Sprintf("line %d", i))
	}
	r := strata(t, input.String(), "produce", "tx", "--transactional-id", "loader", "--transaction-records", "10", "--addr", addr)
	if r.code != 0 {
		t.Fatalf("produce: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "produced 25 records to tx in 3 committed transactions") {
		t.Errorf("produce summary %q", r.stderr)
	}
	wantLines := strings.Join(want, "\n") + "\n"
	for _, iso := range []string{"read_committed", "read_uncommitted"} {
		if got := ok(t, "", "consume", "tx", "--isolation", iso, "--addr", addr); got != wantLines {
			t.Fatalf("consume --isolation %s:\n%s\nwant:\n%s", iso, got, wantLines)
		}
	}

	// A transaction that fails (a line over max.message.bytes) is aborted:
	// read_committed readers never see the lines before the bad one.
	bad := "ok 1\nok 2\n" + strings.Repeat("x", 200) + "\n"
	fails(t, bad, []string{"produce", "tx", "--transactional-id", "loader", "--batch-records", "1", "--addr", addr}, "max.message.bytes")
	if got := ok(t, "", "consume", "tx", "--isolation", "read_committed", "--addr", addr); got != wantLines {
		t.Fatalf("read_committed after an aborted transaction:\n%s\nwant:\n%s", got, wantLines)
	}
	if got := ok(t, "", "consume", "tx", "--isolation", "read_committed", "--from", "27", "--addr", addr); got != "" {
		t.Fatalf("read_committed from the last commit marker on: %q, want nothing", got)
	}

	fails(t, "", []string{"produce", "tx", "--transaction-records", "5", "--addr", addr}, "--transaction-records needs --transactional-id")
	fails(t, "", []string{"produce", "tx", "--transactional-id", "x", "--idempotent=false", "--addr", addr}, "--transactional-id needs --idempotent")
	fails(t, "", []string{"consume", "tx", "--isolation", "serializable", "--addr", addr}, "isolation")
}
