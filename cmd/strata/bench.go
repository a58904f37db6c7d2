package main

// strata bench: load generators in the spirit of the OpenMessaging
// Benchmark, and the raw ceilings of the store and index they run on.
//
//	produce  producers at a target rate (or flat out), ack latency
//	consume  catch-up reads of a backlog, read throughput
//	e2e      producers and tailing Subscribe streams, produce-to-consume latency
//	store    PUT, GET, ranged GET and Redis round trips, without an agent
//
// The three client benchmarks share one shape: a warm-up whose results are
// thrown away, then a measured window of --duration. Each goroutine keeps
// its own latency histogram (internal/hdr), merged at the end. Latencies
// of rate-limited producers count from the moment a request was due, not
// when it went out, so a stalled agent shows as latency rather than as
// fewer requests (coordinated omission). Every record value starts with its
// due time in Unix nanoseconds (8 bytes, big endian): that is how e2e
// consumers measure produce-to-consume latency.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/internal/hdr"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

const benchHelp = `Usage: strata bench <produce|consume|e2e|store> [flags]

Measures a Strata agent (produce, consume, e2e) or the store and index
under it (store), and prints throughput and latency percentiles; --json
prints one JSON object for scripts instead.

  produce  producers send batches over ProduceStream at --rate records/s
           (0: as fast as the agent acknowledges); ack latency
  consume  consumers read a backlog from its start (catch-up), with
           Subscribe or Fetch; read throughput
  e2e      producers at --rate and tailing Subscribe streams on the same
           topic; produce-to-consume latency
  store    PUT, whole GET and ranged GET of objects of --object-size in
           --store, and Redis round trips per second on --index

Run 'strata bench <subcommand> --help' for the flags.
`

func runBench(ctx context.Context, c *cli, args []string) error {
	return runSubcommand(ctx, c, "strata bench", benchHelp, []command{
		{name: "produce", run: runBenchProduce},
		{name: "consume", run: runBenchConsume},
		{name: "e2e", run: runBenchE2E},
		{name: "store", run: runBenchStore},
	}, args)
}

// benchFlags are the flags the client benchmarks share.
type benchFlags struct {
	client     clientFlags
	topic      string
	partitions int
	keep       bool
	producers  int
	consumers  int
	recordSize byteSize
	rate       float64
	duration   time.Duration
	warmup     time.Duration
	batch      int
	inflight   int
	json       bool
	progress   bool
	metrics    string
	gzip       string
}

func (f *benchFlags) register(fs *flag.FlagSet, warmup time.Duration) {
	f.client.register(fs)
	fs.StringVar(&f.topic, "topic", "", "`TOPIC` to use; created if missing (default: a new topic bench-<random>, deleted afterwards)")
	fs.IntVar(&f.partitions, "partitions", 16, "partitions of a topic the benchmark creates")
	fs.BoolVar(&f.keep, "keep", false, "keep the topic the benchmark created")
	fs.IntVar(&f.producers, "producers", 4, "producers, each with its own connection and ProduceStream")
	fs.IntVar(&f.consumers, "consumers", 4, "consumers, each reading its share of the partitions")
	f.recordSize = 1024
	fs.Var(&f.recordSize, "record-size", "value bytes per record (at least 8: the send time goes first)")
	fs.Float64Var(&f.rate, "rate", 0, "records/s across all producers; 0 sends as fast as acknowledgements allow")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured time, after the warm-up")
	fs.DurationVar(&f.warmup, "warmup", warmup, "time run before measuring; its results are dropped")
	fs.IntVar(&f.batch, "batch", 100, "records per produce request")
	fs.IntVar(&f.inflight, "max-inflight", 16, "produce requests each producer has sent and not yet had answered")
	fs.BoolVar(&f.json, "json", false, "print one JSON object with the results to stdout")
	fs.BoolVar(&f.progress, "progress", false, "print a progress line to stderr every second even when stderr is not a terminal")
	fs.StringVar(&f.gzip, "compression", "none", "response compression the clients accept: none, or gzip (what connect clients accept by default; the records are random, so it only costs CPU)")
	fs.StringVar(&f.metrics, "metrics", "", "the agent's metrics `URL` (http://host:7071/metrics): report its store requests, index commits and CPU during the measurement")
}

// check validates the shared flags.
func (f *benchFlags) check(cmd string) error {
	switch {
	case f.partitions < 1 || f.partitions > math.MaxInt32:
		return usagef(cmd, "--partitions %d: want at least 1", f.partitions)
	case f.producers < 1:
		return usagef(cmd, "--producers %d: want at least 1", f.producers)
	case f.consumers < 1:
		return usagef(cmd, "--consumers %d: want at least 1", f.consumers)
	case f.recordSize < 8:
		return usagef(cmd, "--record-size %d: want at least 8 bytes (the send time)", f.recordSize)
	case f.recordSize > 64<<20:
		return usagef(cmd, "--record-size %d: at most 64MiB", f.recordSize)
	case f.rate < 0 || math.IsNaN(f.rate) || math.IsInf(f.rate, 0):
		return usagef(cmd, "--rate %g: want records per second, or 0 for as fast as possible", f.rate)
	case f.duration <= 0:
		return usagef(cmd, "--duration %s: want a positive duration", f.duration)
	case f.warmup < 0:
		return usagef(cmd, "--warmup %s: must not be negative", f.warmup)
	case f.batch < 1:
		return usagef(cmd, "--batch %d: want at least 1 record per request", f.batch)
	case f.inflight < 1:
		return usagef(cmd, "--max-inflight %d: want at least 1", f.inflight)
	}
	if err := oneOf(cmd, "compression", f.gzip, "none", "gzip"); err != nil {
		return err
	}
	if f.metrics != "" && !strings.HasPrefix(f.metrics, "http://") && !strings.HasPrefix(f.metrics, "https://") {
		return usagef(cmd, "--metrics %q: want a URL such as http://127.0.0.1:7071/metrics", f.metrics)
	}
	return nil
}

// dial connects as --addr and --protocol say, accepting compressed
// responses only with --compression gzip.
func (f *benchFlags) dial(fs *flag.FlagSet) (*client, error) {
	cl, err := f.client.dial(fs)
	if err != nil || f.gzip == "gzip" {
		return cl, err
	}
	opts := []connect.ClientOption{connect.WithAcceptCompression("gzip", nil, nil)}
	switch f.client.protocol {
	case "grpc":
		opts = append(opts, connect.WithGRPC())
	case "grpcweb":
		opts = append(opts, connect.WithGRPCWeb())
	}
	hc := &http.Client{Transport: cl.transport}
	cl.producer = stratav1connect.NewProducerServiceClient(hc, cl.addr, opts...)
	cl.consumer = stratav1connect.NewConsumerServiceClient(hc, cl.addr, opts...)
	return cl, nil
}

// showProgress reports whether the live line is wanted.
func (f *benchFlags) showProgress(c *cli) bool { return f.progress || isTerminal(c.stderr) }

// window is the measured part of a run: results count only between start
// and end.
type window struct{ start, end time.Time }

func newWindow(warmup, duration time.Duration) window {
	s := time.Now().Add(warmup)
	return window{s, s.Add(duration)}
}

func (w window) in(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }

// latencyJSON is a latency distribution in milliseconds.
type latencyJSON struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func latencyOf(h *hdr.Histogram) latencyJSON {
	ms := func(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }
	return latencyJSON{
		Count: h.Count(),
		Mean:  math.Round(h.Mean()/1e3) / 1e3,
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}

// flowJSON is one direction's results: what was moved in the window and
// how long each request took.
type flowJSON struct {
	Records       int64            `json:"records"`
	Bytes         int64            `json:"bytes"`
	Seconds       float64          `json:"seconds"`
	RecordsPerSec float64          `json:"records_per_sec"`
	MiBPerSec     float64          `json:"mib_per_sec"`
	Latency       latencyJSON      `json:"latency_ms"`
	Errors        map[string]int64 `json:"errors"`
}

// flowStats accumulates a flowJSON in one goroutine.
type flowStats struct {
	records, bytes int64
	hist           *hdr.Histogram
	errors         map[string]int64
}

func newFlowStats() *flowStats { return &flowStats{hist: hdr.New(), errors: map[string]int64{}} }

func (s *flowStats) merge(o *flowStats) {
	s.records += o.records
	s.bytes += o.bytes
	s.hist.Merge(o.hist)
	for k, v := range o.errors {
		s.errors[k] += v
	}
}

func (s *flowStats) json(seconds float64) *flowJSON {
	out := &flowJSON{Records: s.records, Bytes: s.bytes, Seconds: round3(seconds), Latency: latencyOf(s.hist), Errors: s.errors}
	if seconds > 0 {
		out.RecordsPerSec = math.Round(float64(s.records) / seconds)
		out.MiBPerSec = round3(float64(s.bytes) / seconds / (1 << 20))
	}
	return out
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// benchResult is what --json prints for produce, consume and e2e.
type benchResult struct {
	Command    string `json:"command"`
	Addr       string `json:"addr"`
	Topic      string `json:"topic"`
	Partitions int32  `json:"partitions"`
	Producers  int    `json:"producers"`
	Consumers  int    `json:"consumers,omitempty"`
	RecordSize int64  `json:"record_size"`
	Batch      int    `json:"batch"`
	// MaxInflight is the requests each producer keeps unanswered.
	MaxInflight int       `json:"max_inflight"`
	TargetRate  float64   `json:"target_rate"`
	Duration    float64   `json:"duration_s"`
	Warmup      float64   `json:"warmup_s"`
	Start       time.Time `json:"start"`
	// Compression is the response compression the clients accepted.
	Compression string `json:"compression"`
	// Produce is the producers' acks; Consume what consumers read; E2E the
	// time from a record's send to its arrival at a consumer.
	Produce *flowJSON    `json:"produce,omitempty"`
	Consume *flowJSON    `json:"consume,omitempty"`
	E2E     *latencyJSON `json:"e2e_latency_ms,omitempty"`
	Backlog *backlogJSON `json:"backlog,omitempty"`
	// Agent is the change of the agent's metrics during the window
	// (--metrics).
	Agent map[string]float64 `json:"agent,omitempty"`
	// ClientCPU is the CPU time this process (the load generator) used
	// over the whole run, warm-up included, and the run's wall time: on a
	// machine shared with the agent they tell who had the cores.
	ClientCPU  float64 `json:"client_cpu_s"`
	ClientWall float64 `json:"client_wall_s"`
}

// cpuClock measures this process's CPU time.
type cpuClock struct {
	wall time.Time
	cpu  float64
}

func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func startCPUClock() cpuClock { return cpuClock{time.Now(), processCPU()} }

// stamp records the CPU time and wall time since the clock started.
func (c cpuClock) stamp(r *benchResult) {
	r.ClientCPU = round3(processCPU() - c.cpu)
	r.ClientWall = round3(time.Since(c.wall).Seconds())
}

type backlogJSON struct {
	Records    int64   `json:"records"`
	Bytes      int64   `json:"bytes"`
	Prefilled  bool    `json:"prefilled"`
	PrefillSec float64 `json:"prefill_s,omitempty"`
}

// printSummary writes the human-readable results.
func printSummary(w io.Writer, r *benchResult) {
	rate := "as fast as possible"
	if r.TargetRate > 0 {
		rate = fmt.Sprintf("%.0f records/s", r.TargetRate)
	}
	var who []string
	if r.Producers > 0 {
		who = append(who, fmt.Sprintf("%d producer%s, %d-byte records, batch %d, rate %s", r.Producers, plural64(int64(r.Producers)), r.RecordSize, r.Batch, rate))
	}
	if r.Consumers > 0 {
		who = append(who, fmt.Sprintf("%d consumer%s", r.Consumers, plural64(int64(r.Consumers))))
	}
	fmt.Fprintf(w, "strata bench %s: topic %s (%d partitions), %s, %.3gs measured after %.3gs warm-up\n",
		r.Command, r.Topic, r.Partitions, strings.Join(who, ", "), r.Duration, r.Warmup)
	if r.Backlog != nil {
		fmt.Fprintf(w, "backlog: %d records, %.1f MiB", r.Backlog.Records, float64(r.Backlog.Bytes)/(1<<20))
		if r.Backlog.Prefilled {
			fmt.Fprintf(w, " (written in %.1fs)", r.Backlog.PrefillSec)
		}
		fmt.Fprintln(w)
	}
	tw := newTableWriter(w)
	tw.row("", "records/s", "MiB/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors")
	flow := func(name string, f *flowJSON) {
		if f == nil {
			return
		}
		tw.row(name, fmt.Sprintf("%.0f", f.RecordsPerSec), fmt.Sprintf("%.2f", f.MiBPerSec),
			ms(f.Latency.P50), ms(f.Latency.P90), ms(f.Latency.P99), ms(f.Latency.P999), ms(f.Latency.Max), errorsText(f.Errors))
	}
	flow(latencyName(r.Command, "produce"), r.Produce)
	flow(latencyName(r.Command, "consume"), r.Consume)
	if l := r.E2E; l != nil {
		tw.row("produce-to-consume", "", "", ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), "")
	}
	tw.flush()
	if len(r.Agent) > 0 {
		keys := slices.Sorted(maps.Keys(r.Agent))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + strconv.FormatFloat(r.Agent[k], 'g', 6, 64)
		}
		fmt.Fprintf(w, "agent during the window: %s\n", strings.Join(parts, " "))
	}
}

// latencyName says what a row's latency is.
func latencyName(cmd, flow string) string {
	if flow == "produce" {
		return "produce (ack)"
	}
	if cmd == "e2e" {
		return "consume"
	}
	return "consume (per response)"
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func errorsText(m map[string]int64) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// tableWriter aligns columns: the first left, the rest right.
type tableWriter struct {
	w    io.Writer
	rows [][]string
}

func newTableWriter(w io.Writer) *tableWriter { return &tableWriter{w: w} }

func (t *tableWriter) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *tableWriter) flush() {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		for i, c := range r {
			if i == 0 {
				fmt.Fprintf(&b, "%-*s", widths[i], c)
			} else {
				fmt.Fprintf(&b, "  %*s", widths[i], c)
			}
		}
		fmt.Fprintln(t.w, strings.TrimRight(b.String(), " "))
	}
	t.rows = nil
}

// errorCode is the Connect code of a failure, for the error counts.
func errorCode(err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return connect.CodeCanceled.String()
	}
	return connect.CodeOf(err).String()
}

// benchTopic is the topic a run uses, and whether it created it.
type benchTopic struct {
	name       string
	partitions int32
	created    bool
	infos      []*stratav1.PartitionInfo
}

// setupTopic finds or creates the topic named by --topic, or a fresh one.
func setupTopic(ctx context.Context, cl *client, f *benchFlags, cmd string, fs *flag.FlagSet) (*benchTopic, error) {
	name := f.topic
	if name == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		name = "bench-" + hex.EncodeToString(b[:])
	} else {
		desc, err := cl.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: name}))
		if err == nil {
			n := desc.Msg.GetTopic().GetPartitions()
			given := false
			fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == "partitions" })
			if given && int(n) != f.partitions {
				return nil, usagef(cmd, "--partitions %d: topic %s exists with %d partition%s", f.partitions, name, n, plural(n))
			}
			return &benchTopic{name: name, partitions: n, infos: desc.Msg.GetPartitions()}, nil
		}
		if connect.CodeOf(err) != connect.CodeNotFound {
			return nil, cl.explain(err, "")
		}
	}
	resp, err := cl.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: name, Partitions: int32(f.partitions)}))
	if err != nil {
		return nil, fmt.Errorf("create topic %s: %w", name, cl.explain(err, ""))
	}
	return &benchTopic{name: name, partitions: resp.Msg.GetTopic().GetPartitions(), created: true}, nil
}

// teardown deletes a topic the run created, unless --keep.
func (t *benchTopic) teardown(cl *client, keep bool, stderr io.Writer) {
	if !t.created || keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.admin.DeleteTopic(ctx, connect.NewRequest(&stratav1.DeleteTopicRequest{Name: t.name})); err != nil {
		fmt.Fprintf(stderr, "strata bench: could not delete topic %s: %v\n", t.name, cl.explain(err, t.name))
	}
}

// counters are the live totals behind the progress line.
type counters struct {
	produced, producedBytes atomic.Int64
	consumed, consumedBytes atomic.Int64
	errors                  atomic.Int64
}

// startProgress redraws one line on w every second until the returned
// function is called.
func startProgress(w io.Writer, enabled bool, win window, cnt *counters) func() {
	if !enabled {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastP, lastPB, lastC, lastCB int64
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case now := <-t.C:
				p, pb, c, cb := cnt.produced.Load(), cnt.producedBytes.Load(), cnt.consumed.Load(), cnt.consumedBytes.Load()
				phase := "measuring"
				if now.Before(win.start) {
					phase = fmt.Sprintf("warm-up %.0fs", win.start.Sub(now).Seconds())
				} else if left := win.end.Sub(now); left > 0 {
					phase = fmt.Sprintf("measuring, %.0fs left", left.Seconds())
				}
				line := phase
				if p > 0 || lastP > 0 {
					line += fmt.Sprintf(" | produce %d rec/s %.1f MiB/s", p-lastP, float64(pb-lastPB)/(1<<20))
				}
				if c > 0 || lastC > 0 {
					line += fmt.Sprintf(" | consume %d rec/s %.1f MiB/s", c-lastC, float64(cb-lastCB)/(1<<20))
				}
				line += fmt.Sprintf(" | errors %d", cnt.errors.Load())
				fmt.Fprintf(w, "\r\033[K%s", line)
				lastP, lastPB, lastC, lastCB = p, pb, c, cb
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// agentMetrics are the counters read from the agent's /metrics whose
// change during the window the results report, by their short names.
var agentMetrics = map[string]string{
	"strata_store_puts_total":           "puts",
	"strata_store_put_bytes_total":      "put_bytes",
	"strata_store_gets_total":           "gets",
	"strata_store_get_bytes_total":      "get_bytes",
	"strata_index_commits_total":        "commits",
	"strata_index_commit_chunks_total":  "commit_chunks",
	"strata_cache_hits_total":           "cache_hits",
	"strata_cache_misses_total":         "cache_misses",
	"strata_produced_records_total":     "produced_records",
	"strata_fetched_records_total":      "fetched_records",
	"process_cpu_seconds_total":         "cpu_seconds",
	"strata_flush_seconds_count":        "flushes",
	"strata_store_put_seconds_sum":      "put_seconds_sum",
	"strata_index_commit_seconds_sum":   "commit_seconds_sum",
	"strata_index_commit_seconds_count": "commit_attempts",
	"strata_flush_seconds_sum":          "flush_seconds_sum",
	"process_resident_memory_bytes":     "rss_bytes_end",
	"go_memstats_heap_inuse_bytes":      "heap_inuse_bytes_end",
	"strata_produce_rejected_total":     "produce_rejected",
	"strata_segment_bytes_sum":          "segment_bytes_sum",
	"strata_segment_bytes_count":        "segments",
}

// gauges are reported as their value at the end, not a change.
var gauges = map[string]bool{"rss_bytes_end": true, "heap_inuse_bytes_end": true}

// scrapeMetrics reads the unlabelled samples of the metrics above.
func scrapeMetrics(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the agent's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read the agent's metrics at %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		short, known := agentMetrics[name]
		if !ok || !known {
			continue
		}
		if v, err := strconv.ParseFloat(strings.Fields(value)[0], 64); err == nil {
			out[short] = v
		}
	}
	return out, sc.Err()
}

// metricsDelta is after minus before, gauges as they are after.
func metricsDelta(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if gauges[k] {
			out[k] = v
		} else {
			out[k] = v - before[k]
		}
	}
	return out
}

// sleepUntil waits until t or ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	return sleepCtx(ctx, d)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// metricsWindow reads the agent's metrics at the start and end of the
// window, when --metrics is set; result returns the change.
type metricsWindow struct {
	url           string
	early         chan struct{} // closed to end the window now
	done          chan struct{}
	before, after map[string]float64
	err           error
}

func watchMetrics(ctx context.Context, url string, win window) *metricsWindow {
	m := &metricsWindow{url: url, early: make(chan struct{}), done: make(chan struct{})}
	if url == "" {
		close(m.done)
		return m
	}
	go func() {
		defer close(m.done)
		if m.err = sleepUntil(ctx, win.start); m.err != nil {
			return
		}
		if m.before, m.err = scrapeMetrics(ctx, url); m.err != nil {
			return
		}
		timer := time.NewTimer(time.Until(win.end))
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-m.early:
		case <-ctx.Done():
			m.err = ctx.Err()
			return
		}
		m.after, m.err = scrapeMetrics(ctx, url)
	}()
	return m
}

// endNow ends the window early (a run that finished before it).
func (m *metricsWindow) endNow() {
	if m.url != "" {
		close(m.early)
	}
}

// result waits for the end of the window and returns the change.
func (m *metricsWindow) result() (map[string]float64, error) {
	<-m.done
	if m.url == "" || m.err != nil {
		return nil, m.err
	}
	return metricsDelta(m.before, m.after), nil
}

// finish prints r as --json or a summary.
func finish(c *cli, f *benchFlags, r *benchResult, clock cpuClock) error {
	clock.stamp(r)
	if f.json {
		return writeJSON(c.stdout, r)
	}
	printSummary(c.stdout, r)
	return nil
}
