package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/agent/connectapi"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// startAgent runs an agent on a free port with an in-memory store and index
// for the test's duration and returns its address (host:port, as a user
// would type it).
func startAgent(t *testing.T) string {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = ""
	cfg.FlushInterval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	bucket, err := objectlog.OpenBucket(ctx, "memory://")
	if err != nil {
		t.Fatal(err)
	}
	index, err := coordinator.Open(ctx, "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(ctx, cfg, bucket, index, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ls, err := connectapi.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- connectapi.Serve(ctx, a, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Serve: %v", err)
		}
		_ = index.Close()
		_ = bucket.Close()
	})
	return ls.API.Addr().String()
}

// result is what one command run left behind.
type result struct {
	code           int
	stdout, stderr string
}

// strata runs a command line in process with stdin as its input.
func strata(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return strataCtx(t.Context(), t, stdin, args...)
}

func strataCtx(ctx context.Context, t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// ok runs a command that must succeed and returns its stdout.
func ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := strata(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("strata %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs a command that must fail with exit status 1 and a message on
// stderr containing every one of want.
func fails(t *testing.T, stdin string, args []string, want ...string) result {
	t.Helper()
	r := strata(t, stdin, args...)
	if r.code != 1 {
		t.Fatalf("strata %s: exit %d, want 1\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("strata %s: stderr %q does not contain %q", strings.Join(args, " "), r.stderr, w)
		}
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Errorf("strata %s: stderr has a stack trace: %s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// lockedBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"help"}, {"--help"}} {
		r := strata(t, "", args...)
		if r.code != 0 {
			t.Errorf("strata %v: exit %d", args, r.code)
		}
		for _, cmd := range []string{"agent", "dev", "topic", "produce", "consume"} {
			if !strings.Contains(r.stdout, "\n  "+cmd+" ") {
				t.Errorf("strata %v: command list lacks %s:\n%s", args, cmd, r.stdout)
			}
		}
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"agent", "--help"}, []string{"--store", "--index", "--config", "--flush-interval", "(default 100ms)", "--log-format", `(default "json")`, "STRATA_", "--kafka-listen", "--kafka-advertise", "--zone"}},
		{[]string{"dev", "--help"}, []string{"--data-dir", `(default "./strata-data")`, "(default 50ms)", `(default "text")`, "--store", `--kafka-listen`, `(default "127.0.0.1:9092")`, "kcat -b 127.0.0.1:9092 -L"}},
		{[]string{"topic", "--help"}, []string{"create", "list", "describe", "alter", "delete"}},
		{[]string{"topic", "create", "--help"}, []string{"--partitions", "(default 1)", "--config", "retention.ms", "--addr", `(default "http://127.0.0.1:7070")`, "--protocol"}},
		{[]string{"topic", "list", "--help"}, []string{"--output", `(default "table")`}},
		{[]string{"topic", "describe", "--help"}, []string{"--output", "high watermark"}},
		{[]string{"topic", "alter", "--help"}, []string{"--partitions", "--config"}},
		{[]string{"topic", "delete", "--help"}, []string{"--addr"}},
		{[]string{"produce", "--help"}, []string{"--key-separator", "--partition", "--header", "--batch-records", "(default 500)", "--batch-bytes", `(default 1MiB)`, "--print-offsets", `{"line":1,"partition":0,"offset":41}`, "--file"}},
		{[]string{"consume", "--help"}, []string{"--from", "--partition", "--follow", "-n N", "--output", `(default "plain")`, "key_base64", "value_base64", "RFC 3339", "--print-key"}},
		{[]string{"help", "produce"}, []string{"--key-separator"}},
	}
	for _, c := range cases {
		r := strata(t, "", c.args...)
		if r.code != 0 {
			t.Errorf("strata %v: exit %d, stderr %s", c.args, r.code, r.stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("strata %v: help lacks %q:\n%s", c.args, w, r.stdout)
			}
		}
	}
}

func TestBadCommandLines(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "one", "--partitions", "1", "--addr", addr)
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"frob"}, []string{`unknown command "frob"`, "strata help"}},
		{[]string{"topic"}, []string{"missing subcommand"}},
		{[]string{"topic", "rename", "x"}, []string{`unknown subcommand "rename"`}},
		{[]string{"topic", "create"}, []string{"missing the topic name"}},
		{[]string{"topic", "create", "a", "b"}, []string{"want one topic name"}},
		{[]string{"topic", "create", "x", "--partitions", "0"}, []string{"--partitions 0"}},
		{[]string{"topic", "create", "x", "--partitions", "many"}, []string{`invalid value "many"`, "strata topic create --help"}},
		{[]string{"topic", "create", "x", "--config", "retention.ms"}, []string{"want key=value"}},
		{[]string{"topic", "create", "x", "--nonsense"}, []string{"flag provided but not defined"}},
		{[]string{"topic", "list", "--output", "xml"}, []string{`--output "xml"`, "table or json"}},
		{[]string{"topic", "alter", "one"}, []string{"nothing to change"}},
		{[]string{"topic", "alter", "one", "--partitions", "0"}, []string{"--partitions 0", "above the current one"}},
		{[]string{"topic", "alter", "one", "--partitions", "-2", "--addr", addr}, []string{"--partitions -2"}},
		{[]string{"topic", "list", "--protocol", "soap"}, []string{`--protocol "soap"`}},
		{[]string{"topic", "list", "--addr", "ftp://host:1"}, []string{"--addr", "want http or https"}},
		{[]string{"produce", "one", "--batch-records", "0", "--addr", addr}, []string{"--batch-records 0"}},
		{[]string{"produce", "one", "--batch-bytes", "lots", "--addr", addr}, []string{"want a size"}},
		{[]string{"produce", "one", "--header", "novalue", "--addr", addr}, []string{"want key=value"}},
		{[]string{"produce", "one", "--partition", "-1", "--addr", addr}, []string{"want a partition number"}},
		{[]string{"produce", "one", "--partition", "7", "--addr", addr}, []string{"--partition 7", "has 1 partition"}},
		{[]string{"produce", "--addr", addr}, []string{"missing the topic name"}},
		{[]string{"consume", "one", "--from", "yesterday", "--addr", addr}, []string{`--from "yesterday"`, "RFC 3339"}},
		{[]string{"consume", "one", "--from", "-5", "--addr", addr}, []string{"cannot be negative"}},
		{[]string{"consume", "one", "--output", "csv", "--addr", addr}, []string{`--output "csv"`}},
		{[]string{"consume", "one", "-n", "-1", "--addr", addr}, []string{"-n -1"}},
		{[]string{"consume", "one", "--partition", "3", "--addr", addr}, []string{"--partition 3", "has 1 partition"}},
		{[]string{"agent", "--index", "memory://"}, []string{"--store is required"}},
		{[]string{"agent", "--store", "memory://"}, []string{"--index is required"}},
		{[]string{"agent", "--store", "memory://", "--index", "memory://", "--log-format", "xml"}, []string{`--log-format "xml"`}},
		{[]string{"agent", "--store", "memory://", "--index", "memory://", "--flush-interval", "soon"}, []string{`invalid value "soon"`}},
		{[]string{"agent", "--config", "/nonexistent/strata.yaml"}, []string{"config file"}},
		{[]string{"agent", "--store", "gopher://x", "--index", "memory://", "--listen", "127.0.0.1:0", "--admin-listen", ""}, []string{"open store", "unknown scheme"}},
		{[]string{"dev", "extra"}, []string{`unexpected argument "extra"`}},
	}
	for _, c := range cases {
		fails(t, "", c.args, c.want...)
	}
}

func TestByteSizes(t *testing.T) {
	t.Parallel()
	cases := map[string]int64{"1048576": 1 << 20, "512KiB": 512 << 10, "1MiB": 1 << 20, "1mb": 1e6, "2GiB": 2 << 30, "10 B": 10}
	for in, want := range cases {
		got, err := parseBytes(in)
		if err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5MiB", "1TiB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) did not fail", bad)
		}
	}
	if got := formatBytes(1 << 20); got != "1MiB" {
		t.Errorf("formatBytes(1MiB) = %q", got)
	}
}

func TestNormalizeAddr(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"127.0.0.1:7070":         "http://127.0.0.1:7070",
		"http://host:1/":         "http://host:1",
		"https://strata.example": "https://strata.example",
		" localhost:9 ":          "http://localhost:9",
	}
	for in, want := range cases {
		got, err := normalizeAddr(in)
		if err != nil || got != want {
			t.Errorf("normalizeAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "http://"} {
		if _, err := normalizeAddr(bad); err == nil {
			t.Errorf("normalizeAddr(%q) did not fail", bad)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	want := "cannot reach a Strata agent at http://" + addr + ": connection refused (is `strata dev` running?)"
	for _, args := range [][]string{
		{"topic", "list", "--addr", addr},
		{"topic", "create", "x", "--addr", addr},
		{"consume", "x", "--addr", addr},
		{"produce", "x", "--addr", addr, "--protocol", "grpc"},
	} {
		r := fails(t, "line\n", args, want)
		if strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("strata %v: want a one-line message, got %q", args, r.stderr)
		}
	}
}

func TestUnknownTopic(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	hint := "topic \"nope\" does not exist; create it with `strata topic create nope`"
	fails(t, "", []string{"consume", "nope", "--addr", addr}, hint)
	fails(t, "x\n", []string{"produce", "nope", "--addr", addr}, hint)
	fails(t, "", []string{"topic", "describe", "nope", "--addr", addr}, hint)
	fails(t, "", []string{"topic", "alter", "nope", "--config", "retention.ms=1000", "--addr", addr}, hint)
	fails(t, "", []string{"topic", "delete", "nope", "--addr", addr}, `topic "nope" does not exist`)
}

// TestInterruptedConsume: Ctrl-C ends --follow cleanly (exit 0).
func TestInterruptedConsume(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "quiet", "--addr", addr)
	ctx, cancel := context.WithCancel(t.Context())
	subscribed := make(chan struct{})
	c := &cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &lockedBuffer{}, subscribed: func() { close(subscribed) }}
	done := make(chan int, 1)
	go func() { done <- c.run(ctx, []string{"consume", "quiet", "--follow", "--addr", addr}) }()
	select {
	case <-subscribed:
	case code := <-done:
		t.Fatalf("consume --follow ended before subscribing: exit %d: %s", code, c.stderr)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("consume --follow after Ctrl-C: exit %d, want 0: %s", code, c.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consume --follow did not end after its context was cancelled")
	}
}
