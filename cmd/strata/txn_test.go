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

	// After an error, the summary says how many transactions committed and
	// where to resume.
	ok(t, "", "topic", "create", "tx2", "--config", "max.message.bytes=100", "--addr", addr)
	r = fails(t, "ok 1\nok 2\nok 3\n"+strings.Repeat("x", 200)+"\n", []string{"produce", "tx2", "--transactional-id", "loader2",
		"--transaction-records", "2", "--batch-records", "1", "--addr", addr}, "max.message.bytes")
	if !strings.Contains(r.stderr, "committed 1 transaction to tx2 before the error (lines 1-2); resume from line 3") {
		t.Errorf("summary after the error: %q", r.stderr)
	}
	if got := ok(t, "", "consume", "tx2", "--isolation", "read_committed", "--addr", addr); got != "ok 1\nok 2\n" {
		t.Fatalf("read_committed after the error: %q, want the first transaction's lines", got)
	}

	fails(t, "", []string{"produce", "tx", "--transactional-id", "", "--addr", addr}, "--transactional-id is empty", "--help")
	fails(t, "", []string{"produce", "tx", "--transaction-timeout", "10s", "--addr", addr}, "--transaction-timeout needs --transactional-id")
	fails(t, "", []string{"produce", "tx", "--transactional-id", "x", "--transaction-timeout", "16m", "--addr", addr}, "--transaction-timeout 16m0s", "15m")
	fails(t, "", []string{"produce", "tx", "--delivery-timeout", "-1s", "--addr", addr}, "--delivery-timeout -1s: want more than 0", "--help")
	fails(t, "", []string{"produce", "tx", "--transaction-records", "5", "--addr", addr}, "--transaction-records needs --transactional-id")
	fails(t, "", []string{"produce", "tx", "--transactional-id", "x", "--idempotent=false", "--addr", addr}, "--transactional-id needs --idempotent")
	fails(t, "", []string{"consume", "tx", "--isolation", "serializable", "--addr", addr}, "isolation")
}
