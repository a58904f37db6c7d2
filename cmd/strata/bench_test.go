package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/stratabroker/strata/internal/bench"
	"github.com/stratabroker/strata/internal/kafkafake"
	"github.com/stratabroker/strata/kafka"
)

// The harness itself is tested in internal/bench; these tests drive it
// through the command line: flags, --json, summaries and usage errors.
//
// The benchmarks that drive an agent do not run in parallel with each
// other: each saturates the machine on purpose, and on two cores several at
// once (under -race especially) starve the streams they measure.

// checkLatency asserts a sane distribution: some samples, ordered
// percentiles.

func checkLatency(t *testing.T, name string, l bench.Latency) {
	t.Helper()
	if l.Count == 0 {
		t.Errorf("%s: no latency samples", name)
	}
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("%s: percentiles out of order: %+v", name, l)
	}
}

func checkFlow(t *testing.T, name string, f *bench.Flow) {
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

func benchJSON(t *testing.T, args ...string) bench.Result {
	t.Helper()
	out := ok(t, "", append(args, "--json")...)
	var r bench.Result
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
	// The batch calls, in the summary.
	out := ok(t, "", "bench", "produce", "--addr", addr, "--api", "batch", "--duration", "500ms", "--warmup", "0s",
		"--producers", "1", "--partitions", "2", "--record-size", "256", "--batch", "20")
	if !strings.Contains(out, "strata bench produce over the batch calls: topic") || !strings.Contains(out, "produce (ack)") {
		t.Errorf("bench produce --api batch:\n%s", out)
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
	// The same records through FetchBatches: counted from the batches
	// `strata produce` wrote.
	r = benchJSON(t, "bench", "consume", "--addr", addr, "--topic", "logs", "--api", "batch", "--fetch-max-bytes", "64KiB")
	if r.API != "batch" || r.Backlog == nil || r.Backlog.Records != 3 || r.Consume.Records != 3 || r.Consume.Bytes != 6 {
		t.Errorf("--api batch: api %q, backlog %+v, consumed %+v", r.API, r.Backlog, r.Consume)
	}
	ok(t, "", "topic", "create", "empty", "--addr", addr)
	fails(t, "", []string{"bench", "consume", "--addr", addr, "--topic", "empty"}, "topic empty has no records to read; give --backlog-bytes")
}

func TestBenchStore(t *testing.T) {
	t.Parallel()
	out := ok(t, "", "bench", "store", "--store", "memory://", "--index", "memory://", "--duration", "200ms",
		"--object-size", "256KiB", "--block-size", "128KiB", "--concurrency", "2", "--json")
	var r bench.StoreResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for name, op := range map[string]*bench.Op{"put": r.Put, "get": r.Get, "get_range_64k": r.GetRange64K,
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
		{[]string{"bench", "consume", "--api", "poll"}, `--api "poll": want subscribe, fetch or batch`},
		{[]string{"bench", "produce", "--api", "fetch"}, `--api "fetch": want stream or batch`},
		{[]string{"bench", "e2e", "--kafka", "127.0.0.1:1", "--api", "batch"}, `--api "batch": not used with --kafka`},
		{[]string{"bench", "consume", "--fetch-max-bytes", "4MiB"}, "--fetch-max-bytes: only with --api batch or --kafka"},
		{[]string{"bench", "consume", "--api", "batch", "--fetch-max-bytes", "0"}, "--fetch-max-bytes 0: want 1 to 1GiB"},
		{[]string{"bench", "store"}, "--store or --index is required"},
		{[]string{"bench", "store", "--store", "memory://", "--concurrency", "0"}, "--concurrency 0"},
		{[]string{"bench", "store", "--store", "ftp://x"}, "unknown scheme"},
		{[]string{"bench", "produce", "--addr", "127.0.0.1:1"}, "cannot reach a Strata agent"},
		{[]string{"bench", "produce", "--kafka", "127.0.0.1:1"}, "cannot reach a Kafka listener at 127.0.0.1:1"},
		{[]string{"bench", "produce", "--linger", "5ms"}, "--linger: only with --kafka"},
		{[]string{"bench", "produce", "--kafka", "127.0.0.1:1", "--addr", "127.0.0.1:2"}, "--addr: not used with --kafka"},
		{[]string{"bench", "e2e", "--kafka", " , "}, `--kafka " , ": want host:port`},
		{[]string{"bench", "consume", "--kafka", "127.0.0.1:1", "--api", "fetch"}, `--api "fetch": not used with --kafka`},
		{[]string{"bench", "produce", "--kafka", "127.0.0.1:1", "--compression", "lz4"}, `--compression "lz4": want none or gzip`},
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

// startKafka runs a Kafka listener over an in-memory fake core on loopback
// and returns its address.
func startKafka(t *testing.T) string {
	t.Helper()
	core := kafkafake.New("cli-test")
	srv, err := kafka.NewServer(core, kafka.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	core.SetBrokers(kafka.Broker{ID: 1, Host: host, Port: int32(p)})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, kafka.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return l.Addr().String()
}

func TestBenchKafka(t *testing.T) {
	addr := startKafka(t)
	r := benchJSON(t, "bench", "e2e", "--kafka", addr, "--duration", "1s", "--warmup", "200ms", "--rate", "1000",
		"--batch", "10", "--producers", "2", "--consumers", "2", "--partitions", "4", "--linger", "1ms", "--compression", "gzip")
	if r.Command != "e2e" || r.Protocol != "kafka" || r.Addr != addr || r.Compression != "gzip" {
		t.Errorf("result header %+v", r)
	}
	checkFlow(t, "produce", r.Produce)
	checkFlow(t, "consume", r.Consume)
	if r.E2E == nil {
		t.Fatal("no e2e latency")
	}
	checkLatency(t, "e2e", *r.E2E)
	// The summary says what it ran against.
	out := ok(t, "", "bench", "produce", "--kafka", addr, "--duration", "300ms", "--warmup", "0s", "--producers", "1", "--partitions", "2")
	if !strings.Contains(out, "strata bench produce over kafka "+addr+": topic bench-") || !strings.Contains(out, "produce (ack)") {
		t.Errorf("summary:\n%s", out)
	}
}
