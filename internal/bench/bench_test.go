package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/agent/connectapi"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/kafkafake"
	"github.com/stratabroker/strata/kafka"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// The benchmarks that drive an agent do not run in parallel with each
// other: each saturates the machine on purpose, and on two cores several at
// once (under -race especially) starve the streams they measure.

// startAgent runs an agent on a free port with an in-memory store and index
// for the test's duration and returns a Dialer for it.
func startAgent(t *testing.T) Dialer {
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
	base := "http://" + ls.API.Addr().String()
	return func() (*Conn, error) {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		hc := &http.Client{Transport: tr}
		return &Conn{
			Addr:     base,
			Admin:    stratav1connect.NewAdminServiceClient(hc, base),
			Producer: stratav1connect.NewProducerServiceClient(hc, base),
			Consumer: stratav1connect.NewConsumerServiceClient(hc, base),
			Close:    tr.CloseIdleConnections,
		}, nil
	}
}

// startKafka runs a Kafka listener over an in-memory fake core on loopback
// for the test's duration.
func startKafka(t *testing.T) (string, *kafkafake.Core) {
	t.Helper()
	core := kafkafake.New("bench-test")
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
	return l.Addr().String(), core
}

// config is a short run's settings.
func config(partitions int) Config {
	return Config{Partitions: partitions, Producers: 2, Consumers: 2, RecordSize: 256, Duration: time.Second,
		Warmup: 200 * time.Millisecond, Batch: 20, Inflight: 4, Compression: "none"}
}

// checkLatency asserts a sane distribution: some samples, ordered
// percentiles.
func checkLatency(t *testing.T, name string, l Latency) {
	t.Helper()
	if l.Count == 0 {
		t.Errorf("%s: no latency samples", name)
	}
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("%s: percentiles out of order: %+v", name, l)
	}
}

// checkRateCeiling: --rate is a ceiling over the window measured, give or
// take the requests in flight at both of its edges (acked inside it, sent
// before it). How close a loaded machine gets to the rate is for
// benchmarks, not tests.
func checkRateCeiling(t *testing.T, f *Flow, cfg Config) {
	t.Helper()
	edges := 2 * int64(cfg.Producers*cfg.Inflight*cfg.Batch)
	if limit := int64(float64(cfg.Rate)*f.Seconds) + edges; f.Records == 0 || f.Records > limit {
		t.Errorf("produced %d records at --rate %.0f over %.2fs: want 1 to %d (%d in flight at the edges)", f.Records, cfg.Rate, f.Seconds, limit, edges)
	}
}

func checkFlow(t *testing.T, name string, f *Flow) {
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

func TestBenchProduceAtRateKeepsTopic(t *testing.T) {
	dial := startAgent(t)
	cfg := config(2)
	cfg.Dial, cfg.Warmup, cfg.Rate, cfg.Batch, cfg.Topic, cfg.Keep = dial, 0, 2000, 10, "kept", true
	r, err := Produce(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Command != "produce" || r.Partitions != 2 || r.Producers != 2 || r.RecordSize != 256 || r.Protocol != "" || r.MaxInflight != cfg.Inflight {
		t.Errorf("result header %+v", r)
	}
	checkFlow(t, "produce", r.Produce)
	if err := r.Failed(); err != nil {
		t.Errorf("Failed() of a run that produced: %v", err)
	}
	if r.Consume != nil || r.E2E != nil {
		t.Error("produce reported consume or e2e results")
	}
	// The rate is a ceiling: at most 2000 records/s for a second, give or
	// take the requests at the edges. How close a loaded machine gets to it
	// is for benchmarks, not tests.
	checkRateCeiling(t, r.Produce, cfg)
	cl, _ := dial()
	desc, err := cl.Admin.DescribeTopic(context.Background(), connect.NewRequest(&stratav1.DescribeTopicRequest{Name: "kept"}))
	if err != nil || desc.Msg.GetTopic().GetPartitions() != 2 {
		t.Errorf("kept topic: %v %v", desc, err)
	}
	// The same topic with another partition count is a mistake in the
	// flags.
	cfg.PartitionsGiven, cfg.Partitions = true, 3
	_, err = Produce(context.Background(), cfg)
	var fe *FlagError
	if !errors.As(err, &fe) || fe.Error() != "--partitions 3: topic kept exists with 2 partitions" {
		t.Errorf("Produce with --partitions 3 on a 2-partition topic: %v", err)
	}
}

func TestBenchE2E(t *testing.T) {
	cfg := config(4)
	cfg.Dial, cfg.Rate, cfg.Batch = startAgent(t), 2000, 10
	r, err := E2E(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
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
	dial := startAgent(t)
	for _, api := range []string{"subscribe", "fetch", "batch"} {
		cfg := config(3)
		cfg.Dial, cfg.RecordSize, cfg.Batch, cfg.Duration, cfg.Warmup = dial, 512, 64, time.Minute, 0
		r, err := Consume(context.Background(), cfg, ConsumeOptions{API: api, FetchBytes: 64 << 10, BacklogBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
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
		if r.Consume.Bytes != 2048*512 {
			t.Errorf("--api %s read %d bytes of 2048 512-byte records", api, r.Consume.Bytes)
		}
	}
}

func TestBenchStore(t *testing.T) {
	t.Parallel()
	r, err := Store(context.Background(), StoreConfig{Store: "memory://", Index: "memory://", Duration: 200 * time.Millisecond,
		ObjectSize: 256 << 10, BlockSize: 128 << 10, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]*Op{"put": r.Put, "get": r.Get, "get_range_64k": r.GetRange64K,
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
}

// stored is the records the fake core holds in topic: its high watermarks.
func stored(t *testing.T, core *kafkafake.Core, topic string, partitions int32) int64 {
	t.Helper()
	var n int64
	for p := range partitions {
		o, err := core.ListOffset(context.Background(), topic, p, kafka.ListLatest, false)
		if err != nil {
			t.Fatal(err)
		}
		n += o.Offset
	}
	return n
}

// Over Kafka: what the producers wrote is in the topic, and a catch-up run
// reads all of it.
func TestBenchKafkaProduceThenConsume(t *testing.T) {
	addr, core := startKafka(t)
	cfg := config(4)
	cfg.Kafka, cfg.Rate, cfg.Batch, cfg.Topic, cfg.Keep = []string{addr}, 2000, 10, "kept", true
	r, err := Produce(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Protocol != "kafka" || r.Addr != addr || r.Partitions != 4 {
		t.Errorf("result header %+v", r)
	}
	checkFlow(t, "produce", r.Produce)
	checkRateCeiling(t, r.Produce, cfg)
	// The warm-up's records are in the topic too, uncounted.
	total := stored(t, core, "kept", 4)
	if total < r.Produce.Records {
		t.Fatalf("the topic holds %d records; the producers reported %d acknowledged", total, r.Produce.Records)
	}
	cfg.Duration, cfg.Warmup, cfg.Topic, cfg.Keep = time.Minute, 0, "kept", false
	c, err := Consume(context.Background(), cfg, ConsumeOptions{FetchBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	checkFlow(t, "consume", c.Consume)
	if c.Backlog == nil || c.Backlog.Prefilled || c.Backlog.Records != total || c.Consume.Records != total {
		t.Errorf("backlog %+v, consumed %+v; the topic holds %d records", c.Backlog, c.Consume, total)
	}
	if want := total * 256; c.Consume.Bytes != want || c.Backlog.Bytes != want {
		t.Errorf("consumed %d bytes, backlog %d bytes; want %d", c.Consume.Bytes, c.Backlog.Bytes, want)
	}
	// An --api is the Connect readers' choice.
	_, err = Consume(context.Background(), cfg, ConsumeOptions{API: "fetch", FetchBytes: 1 << 20})
	var fe *FlagError
	if !errors.As(err, &fe) {
		t.Errorf("Consume over Kafka with --api fetch: %v, want a flag error", err)
	}
}

func TestBenchKafkaConsumeBacklog(t *testing.T) {
	addr, core := startKafka(t)
	cfg := config(3)
	cfg.Kafka, cfg.RecordSize, cfg.Batch, cfg.Duration, cfg.Warmup, cfg.Keep = []string{addr}, 512, 64, time.Minute, 0, true
	r, err := Consume(context.Background(), cfg, ConsumeOptions{FetchBytes: 64 << 10, BacklogBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	checkFlow(t, "consume", r.Consume)
	if r.Backlog == nil || !r.Backlog.Prefilled || r.Backlog.Records != 2048 || r.Consume.Records != 2048 {
		t.Errorf("--backlog-bytes 1MiB of 512-byte records: backlog %+v, consumed %+v; want 2048 records", r.Backlog, r.Consume)
	}
	if n := stored(t, core, r.Topic, 3); n != 2048 {
		t.Errorf("the topic holds %d records, want 2048", n)
	}
}

func TestBenchKafkaE2E(t *testing.T) {
	addr, _ := startKafka(t)
	cfg := config(4)
	cfg.Kafka, cfg.Rate, cfg.Batch = []string{addr}, 2000, 10
	r, err := E2E(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkFlow(t, "produce", r.Produce)
	checkFlow(t, "consume", r.Consume)
	if r.E2E == nil {
		t.Fatal("no e2e latency")
	}
	checkLatency(t, "e2e", *r.E2E)
	if r.E2E.P50 < r.Produce.Latency.P50/2 {
		t.Errorf("e2e p50 %.2fms well below ack p50 %.2fms", r.E2E.P50, r.Produce.Latency.P50)
	}
	// The consumers started at the end before any record was sent, so
	// they read no more than was produced, give or take the requests in
	// flight at either edge of the window: a record can be read before
	// its ack arrives, so one acknowledged in the warm-up (or after the
	// window) may be read within it.
	if slack := 2 * int64(cfg.Batch*cfg.Producers*cfg.Inflight); r.Consume.Records > r.Produce.Records+slack {
		t.Errorf("consumed %d records, produced %d", r.Consume.Records, r.Produce.Records)
	}
}

// The broker's refusals are counted by their Kafka error name.
func TestBenchKafkaErrorsByCode(t *testing.T) {
	addr, core := startKafka(t)
	if _, err := core.CreateTopic(context.Background(), kafka.TopicSpec{Name: "small", Partitions: 2,
		Configs: map[string]string{"max.message.bytes": "1000"}}, false); err != nil {
		t.Fatal(err)
	}
	cfg := config(2)
	cfg.Kafka, cfg.Topic, cfg.RecordSize, cfg.Rate, cfg.Batch, cfg.Producers = []string{addr}, "small", 2000, 100, 1, 1
	cfg.Warmup, cfg.Duration = 0, 500*time.Millisecond
	r, err := Produce(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Produce.Records != 0 || r.Produce.Errors["MESSAGE_TOO_LARGE"] == 0 || len(r.Produce.Errors) != 1 {
		t.Errorf("2000-byte records to a topic of max.message.bytes 1000: %d acknowledged, errors %v; want only MESSAGE_TOO_LARGE",
			r.Produce.Records, r.Produce.Errors)
	}
	if err := r.Failed(); err == nil || !strings.Contains(err.Error(), "MESSAGE_TOO_LARGE") {
		t.Errorf("Failed() = %v, want the run failed with MESSAGE_TOO_LARGE", err)
	}
	if n := stored(t, core, "small", 2); n != 0 {
		t.Errorf("the topic holds %d records, want none", n)
	}
}

func TestBenchConfigChecks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.RecordSize = 4 }, "--record-size 4: want at least 8 bytes (the send time)"},
		{func(c *Config) { c.Linger = -time.Second }, "--linger -1s: must not be negative"},
		{func(c *Config) { c.Compression = "zstd" }, `--compression "zstd": want none or gzip`},
		{func(c *Config) { c.Rate = 1 }, "--rate 1 is too low for --batch 20 and --producers 2"},
	} {
		cfg := config(1)
		tc.change(&cfg)
		_, err := Produce(context.Background(), cfg)
		var fe *FlagError
		if !errors.As(err, &fe) || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
			t.Errorf("got %v, want a FlagError starting %q", err, tc.want)
		}
	}
}

// TestResultAgentCPUPerMiB: the agent's CPU seconds over the window, per MiB
// of the run's flows, in milliseconds; nothing without the agent's metrics
// or without bytes moved.
func TestResultAgentCPUPerMiB(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		produce, consume *Flow
		agent            map[string]float64
		want             float64
	}{
		{"produce", &Flow{Bytes: 100 << 20}, nil, map[string]float64{"cpu_seconds": 0.5}, 5},
		{"consume", nil, &Flow{Bytes: 50 << 20}, map[string]float64{"cpu_seconds": 0.5}, 10},
		{"e2e counts both flows", &Flow{Bytes: 100 << 20}, &Flow{Bytes: 100 << 20}, map[string]float64{"cpu_seconds": 1}, 5},
		{"no metrics", &Flow{Bytes: 100 << 20}, nil, nil, 0},
		{"no cpu_seconds", &Flow{Bytes: 100 << 20}, nil, map[string]float64{"puts": 3}, 0},
		{"nothing moved", &Flow{}, nil, map[string]float64{"cpu_seconds": 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &Result{Command: "produce", Produce: tc.produce, Consume: tc.consume}
			r.setAgent(tc.agent)
			if r.AgentCPUPerMiB != tc.want {
				t.Fatalf("AgentCPUPerMiB = %g, want %g", r.AgentCPUPerMiB, tc.want)
			}
			var out strings.Builder
			PrintSummary(&out, r)
			line := fmt.Sprintf("agent CPU: %.2f ms per MiB", tc.want)
			if got := strings.Contains(out.String(), line); got != (tc.want > 0) {
				t.Fatalf("summary has %q: %v, want %v; summary:\n%s", line, got, tc.want > 0, out.String())
			}
		})
	}
}

// highWatermarks is the records an agent's topic holds: the sum of its
// partitions' high watermarks (the topic is never trimmed in these tests).
func highWatermarks(t *testing.T, dial Dialer, topic string) int64 {
	t.Helper()
	cl, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	desc, err := cl.Admin.DescribeTopic(context.Background(), connect.NewRequest(&stratav1.DescribeTopicRequest{Name: topic}))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range desc.Msg.GetPartitions() {
		n += p.GetHighWatermark() - p.GetLogStartOffset()
	}
	return n
}

// Over the batch calls: what the producers wrote is in the topic, and a
// catch-up run reads all of it, several partitions per FetchBatches.
func TestBenchBatchProduceThenConsume(t *testing.T) {
	dial := startAgent(t)
	cfg := config(4)
	cfg.Dial, cfg.Batches, cfg.Rate, cfg.Batch, cfg.Topic, cfg.Keep = dial, true, 2000, 10, "kept", true
	r, err := Produce(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.API != "batch" || r.Protocol != "" || r.Partitions != 4 {
		t.Errorf("result header %+v", r)
	}
	checkFlow(t, "produce", r.Produce)
	checkRateCeiling(t, r.Produce, cfg)
	// The warm-up's records are in the topic too, uncounted.
	total := highWatermarks(t, dial, "kept")
	if total < r.Produce.Records {
		t.Fatalf("the topic holds %d records; the producers reported %d acknowledged", total, r.Produce.Records)
	}
	cfg.Duration, cfg.Warmup, cfg.Keep, cfg.Consumers = time.Minute, 0, false, 1
	// 8 KiB per partition and 16 KiB per call: each call takes several
	// partitions, none whole.
	c, err := Consume(context.Background(), cfg, ConsumeOptions{API: "batch", FetchBytes: 8 << 10, FetchMaxBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	checkFlow(t, "consume", c.Consume)
	if c.API != "batch" || c.Backlog == nil || c.Backlog.Prefilled || c.Backlog.Records != total || c.Consume.Records != total {
		t.Errorf("api %q, backlog %+v, consumed %+v; the topic holds %d records", c.API, c.Backlog, c.Consume, total)
	}
	if want := total * 256; c.Consume.Bytes != want {
		t.Errorf("consumed %d bytes; want %d", c.Consume.Bytes, want)
	}
	// Each call answered at most 16 KiB plus one batch (KIP-74) of
	// the 256 KiB or so the topic holds.
	if calls := c.Consume.Latency.Count; calls < uint64(c.Consume.Bytes/(16<<10+10*300)) {
		t.Errorf("%d FetchBatches calls read %d bytes at most 16 KiB each", calls, c.Consume.Bytes)
	}
}

func TestBenchBatchE2E(t *testing.T) {
	dial := startAgent(t)
	cfg := config(4)
	cfg.Dial, cfg.Batches, cfg.Rate, cfg.Batch, cfg.Topic, cfg.Keep = dial, true, 2000, 10, "tail", true
	r, err := E2E(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.API != "batch" {
		t.Errorf("api %q, want batch", r.API)
	}
	checkFlow(t, "produce", r.Produce)
	checkFlow(t, "consume", r.Consume)
	if r.E2E == nil {
		t.Fatal("no e2e latency")
	}
	checkLatency(t, "e2e", *r.E2E)
	if r.E2E.P50 < r.Produce.Latency.P50/2 {
		t.Errorf("e2e p50 %.2fms well below ack p50 %.2fms", r.E2E.P50, r.Produce.Latency.P50)
	}
	// The consumers started at the end before any record was sent, so
	// they read no more than was produced, give or take the requests in
	// flight at either edge of the window: a record can be read before
	// its ack arrives, so one acknowledged in the warm-up (or after the
	// window) may be read within it.
	if slack := 2 * int64(cfg.Batch*cfg.Producers*cfg.Inflight); r.Consume.Records > r.Produce.Records+slack {
		t.Errorf("consumed %d records, produced %d", r.Consume.Records, r.Produce.Records)
	}
	// Nor more than the topic holds: no record is read twice.
	if total := highWatermarks(t, dial, "tail"); r.Consume.Records > total {
		t.Errorf("consumed %d records; the topic holds %d", r.Consume.Records, total)
	}
}

// The agent's refusals of a partition's batch are counted by their
// Connect code, and nothing of them is counted as produced.
func TestBenchBatchErrorsByCode(t *testing.T) {
	dial := startAgent(t)
	cl, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	if _, err := cl.Admin.CreateTopic(context.Background(), connect.NewRequest(&stratav1.CreateTopicRequest{
		Name: "small", Partitions: 2, Configs: map[string]string{"max.message.bytes": "1000"},
	})); err != nil {
		t.Fatal(err)
	}
	cfg := config(2)
	cfg.Dial, cfg.Batches, cfg.Topic, cfg.RecordSize, cfg.Rate, cfg.Batch, cfg.Producers = dial, true, "small", 2000, 100, 1, 1
	cfg.Warmup, cfg.Duration = 0, 500*time.Millisecond
	r, err := Produce(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Produce.Records != 0 || r.Produce.Errors["invalid_argument"] == 0 || len(r.Produce.Errors) != 1 {
		t.Errorf("2000-byte records to a topic of max.message.bytes 1000: %d acknowledged, errors %v; want only invalid_argument",
			r.Produce.Records, r.Produce.Errors)
	}
	if err := r.Failed(); err == nil || !strings.Contains(err.Error(), "invalid_argument") {
		t.Errorf("Failed() = %v, want the run failed with invalid_argument", err)
	}
	if n := highWatermarks(t, dial, "small"); n != 0 {
		t.Errorf("the topic holds %d records, want none", n)
	}
}

func TestBenchBatchConfigChecks(t *testing.T) {
	t.Parallel()
	cfg := config(1)
	cfg.Kafka, cfg.Batches = []string{"127.0.0.1:1"}, true
	_, err := Produce(context.Background(), cfg)
	var fe *FlagError
	if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), "--api batch: not used with --kafka") {
		t.Errorf("--api batch with --kafka: %v", err)
	}
	cfg = config(1)
	_, err = Consume(context.Background(), cfg, ConsumeOptions{API: "batch", FetchBytes: 1 << 20, FetchMaxBytes: -1})
	if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), "--fetch-max-bytes -1: want 1 to 1GiB") {
		t.Errorf("--fetch-max-bytes -1: %v", err)
	}
}
