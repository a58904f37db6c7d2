package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// checkLatency asserts a sane distribution: some samples, ordered
// percentiles.
// The benchmarks that drive an agent do not run in parallel with each
// other: each saturates the machine on purpose, and on two cores several at
// once (under -race especially) starve the streams they measure.

func checkLatency(t *testing.T, name string, l latencyJSON) {
	t.Helper()
	if l.Count == 0 {
		t.Errorf("%s: no latency samples", name)
	}
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("%s: percentiles out of order: %+v", name, l)
	}
}

func checkFlow(t *testing.T, name string, f *flowJSON) {
	t.Helper()
	if f == nil {
		t.Fatalf("%s: missing", name)
	}
	if f.Records == 0 || f.RecordsPerSec <= 0 || f.MiBPerSec <= 0 {
		t.Errorf("%s: no throughput: %+v", name, f)
	}
	if len(f.Errors) > 0 {
		t.Errorf("%s: errors %v", name, f.Errors)
	}
	checkLatency(t, name, f.Latency)
}

func benchJSON(t *testing.T, args ...string) benchResult {
	t.Helper()
	out := ok(t, "", append(args, "--json")...)
	var r benchResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%s: output is not one JSON object: %v\n%s", strings.Join(args, " "), err, out)
	}
	return r
}

func TestBenchProduce(t *testing.T) {
	addr := startAgent(t)
	r := benchJSON(t, "bench", "produce", "--addr", addr, "--duration", "1s", "--warmup", "200ms",
		"--producers", "2", "--partitions", "4", "--record-size", "256", "--batch", "20")
	if r.Command != "produce" || r.Partitions != 4 || r.Producers != 2 || r.RecordSize != 256 {
		t.Errorf("result header %+v", r)
	}
	checkFlow(t, "produce", r.Produce)
	if r.Consume != nil || r.E2E != nil {
		t.Error("produce reported consume or e2e results")
	}
	// The topic it made is gone.
	if out := ok(t, "", "topic", "list", "--addr", addr); strings.Contains(out, r.Topic) {
		t.Errorf("topic %s left behind:\n%s", r.Topic, out)
	}
}

func TestBenchProduceAtRateKeepsTopic(t *testing.T) {
	addr := startAgent(t)
	r := benchJSON(t, "bench", "produce", "--addr", addr, "--duration", "1s", "--warmup", "0s",
		"--rate", "2000", "--batch", "10", "--topic", "kept", "--partitions", "2", "--keep")
	checkFlow(t, "produce", r.Produce)
	// The rate is a ceiling: at most 2000 records/s for a second, give or
	// take the requests at the edges. How close a loaded machine gets to it
	// is for benchmarks, not tests.
	if n := r.Produce.Records; n == 0 || n > 2100 {
		t.Errorf("produced %d records at --rate 2000 for 1s", n)
	}
	if out := ok(t, "", "topic", "describe", "kept", "--addr", addr); !strings.Contains(out, "Partitions:  2") {
		t.Errorf("kept topic:\n%s", out)
	}
}

func TestBenchE2E(t *testing.T) {
	addr := startAgent(t)
	r := benchJSON(t, "bench", "e2e", "--addr", addr, "--duration", "1s", "--warmup", "200ms",
		"--rate", "2000", "--batch", "10", "--producers", "2", "--consumers", "2", "--partitions", "4")
	checkFlow(t, "produce", r.Produce)
	checkFlow(t, "consume", r.Consume)
	if r.E2E == nil {
		t.Fatal("no e2e latency")
	}
	checkLatency(t, "e2e", *r.E2E)
	// A record is visible only after its commit, so it arrives no sooner
	// than its ack.
	if r.E2E.P50 < r.Produce.Latency.P50/2 {
		t.Errorf("e2e p50 %.2fms well below ack p50 %.2fms", r.E2E.P50, r.Produce.Latency.P50)
	}
}

func TestBenchConsume(t *testing.T) {
	addr := startAgent(t)
	for _, api := range []string{"subscribe", "fetch"} {
		r := benchJSON(t, "bench", "consume", "--addr", addr, "--backlog-bytes", "1MiB", "--api", api,
			"--partitions", "3", "--consumers", "2", "--fetch-bytes", "64KiB", "--record-size", "512", "--batch", "64", "--producers", "2")
		checkFlow(t, "consume --api "+api, r.Consume)
		if r.Backlog == nil || !r.Backlog.Prefilled || r.Backlog.Records == 0 {
			t.Fatalf("backlog %+v", r.Backlog)
		}
		if r.Backlog.Records != 2048 {
			t.Errorf("--backlog-bytes 1MiB of 512-byte records wrote %d records, want 2048", r.Backlog.Records)
		}
		if r.Consume.Records != r.Backlog.Records {
			t.Errorf("--api %s read %d records of a %d-record backlog", api, r.Consume.Records, r.Backlog.Records)
		}
	}
}

func TestBenchConsumeExistingTopic(t *testing.T) {
	addr := startAgent(t)
	ok(t, "", "topic", "create", "logs", "--partitions", "2", "--addr", addr)
	ok(t, "a\nbb\nccc\n", "produce", "logs", "--addr", addr)
	r := benchJSON(t, "bench", "consume", "--addr", addr, "--topic", "logs")
	if r.Backlog == nil || r.Backlog.Prefilled || r.Backlog.Records != 3 || r.Consume.Records != 3 || r.Consume.Bytes != 6 {
		t.Errorf("backlog %+v, consumed %+v", r.Backlog, r.Consume)
	}
	ok(t, "", "topic", "create", "empty", "--addr", addr)
	fails(t, "", []string{"bench", "consume", "--addr", addr, "--topic", "empty"}, "topic empty has no records to read; give --backlog-bytes")
}

func TestBenchStore(t *testing.T) {
	t.Parallel()
	out := ok(t, "", "bench", "store", "--store", "memory://", "--index", "memory://", "--duration", "200ms",
		"--object-size", "256KiB", "--block-size", "128KiB", "--concurrency", "2", "--json")
	var r storeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for name, op := range map[string]*opJSON{"put": r.Put, "get": r.Get, "get_range_64k": r.GetRange64K,
		"get_range_block": r.GetRangeBlk, "redis_ping": r.RedisPing, "redis_eval": r.RedisEval} {
		if op == nil || op.Ops == 0 || op.OpsPerSec <= 0 {
			t.Errorf("%s: no operations: %+v", name, op)
			continue
		}
		if len(op.Errors) > 0 {
			t.Errorf("%s: errors %v", name, op.Errors)
		}
		checkLatency(t, name, op.Latency)
	}
	if r.Put != nil && r.Get != nil && (r.Put.MiBPerSec <= 0 || r.Get.MiBPerSec <= 0) {
		t.Errorf("no MiB/s: put %+v get %+v", r.Put, r.Get)
	}
	// The human summary names every phase.
	out = ok(t, "", "bench", "store", "--store", "memory://", "--duration", "100ms", "--object-size", "64KiB")
	for _, w := range []string{"put", "get_range_block", "MiB/s"} {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q:\n%s", w, out)
		}
	}
}

func TestBenchBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "missing subcommand: produce, consume, e2e or store"},
		{[]string{"bench", "nope"}, `unknown subcommand "nope"`},
		{[]string{"bench", "produce", "--record-size", "4"}, "--record-size 4: want at least 8 bytes"},
		{[]string{"bench", "produce", "--producers", "0"}, "--producers 0: want at least 1"},
		{[]string{"bench", "produce", "--rate", "-5"}, "--rate -5"},
		{[]string{"bench", "produce", "--rate", "1"}, "--rate 1 is too low"},
		{[]string{"bench", "produce", "--duration", "0s"}, "--duration 0s: want a positive duration"},
		{[]string{"bench", "produce", "--batch", "0"}, "--batch 0"},
		{[]string{"bench", "produce", "--metrics", "localhost:7071"}, "--metrics"},
		{[]string{"bench", "e2e", "extra"}, `unexpected argument "extra"`},
		{[]string{"bench", "consume", "--api", "poll"}, `--api "poll": want subscribe or fetch`},
		{[]string{"bench", "store"}, "--store or --index is required"},
		{[]string{"bench", "store", "--store", "memory://", "--concurrency", "0"}, "--concurrency 0"},
		{[]string{"bench", "store", "--store", "ftp://x"}, "unknown scheme"},
		{[]string{"bench", "produce", "--addr", "127.0.0.1:1"}, "cannot reach a Strata agent"},
	} {
		r := fails(t, "", tc.args, tc.want)
		if strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
			t.Errorf("%v: more than an error and a hint:\n%s", tc.args, r.stderr)
		}
	}
	if out := ok(t, "", "bench", "produce", "--help"); !strings.Contains(out, "--max-inflight") || !strings.Contains(out, "ack latency") {
		t.Errorf("bench produce --help:\n%s", out)
	}
	if out := ok(t, "", "bench", "--help"); !strings.Contains(out, "strata bench <produce|consume|e2e|store>") {
		t.Errorf("bench --help:\n%s", out)
	}
}
