package bench

import (
	"bufio"
	"context"
	"errors"
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

	"github.com/stratabroker/strata/internal/hdr"
)

// ErrInterrupted ends a run whose context was cancelled (Ctrl-C).
var ErrInterrupted = errors.New("interrupted")

// FlagError is a setting the run cannot use, named by its flag (e.g.
// "--batch 0: want at least 1 record per request"): the caller's mistake,
// not the agent's.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

func flagErrorf(format string, args ...any) error {
	return &FlagError{Err: fmt.Errorf(format, args...)}
}

// Config is what the client benchmarks (Produce, Consume, E2E) share; the
// fields are the flags of `strata bench produce|consume|e2e`.
type Config struct {
	// Dial connects to an agent over Connect; each producer and consumer
	// dials its own. Unused when Kafka is set.
	Dial Dialer
	// Kafka, when not empty, are the seed brokers (host:port) of a Kafka
	// listener: the run then speaks the Kafka protocol with franz-go.
	Kafka []string
	// Linger is the Kafka producer's linger (franz-go ProducerLinger).
	Linger time.Duration
	// Batches drives the Connect API's batch calls (--api batch) instead
	// of the per-record ones: producers send Kafka record batches on
	// ProduceBatchesStream instead of records on ProduceStream, and e2e
	// consumers long-poll FetchBatches instead of following Subscribe
	// streams. Not with Kafka.
	Batches bool

	// Topic is the topic to use, created if missing; empty makes a new
	// bench-<random> topic, deleted afterwards unless Keep.
	Topic string
	// Partitions of a topic the run creates; PartitionsGiven says the user
	// set it, so an existing topic with another count is a mistake.
	Partitions      int
	PartitionsGiven bool
	Keep            bool
	Producers       int
	Consumers       int
	// RecordSize is the value bytes per record, at least 8 (the send time).
	RecordSize int64
	// Rate is records/s across all producers; 0 sends flat out.
	Rate     float64
	Duration time.Duration
	Warmup   time.Duration
	// Batch is the records per produce request (over Kafka: per group of
	// records handed to one partition at once).
	Batch int
	// Inflight is the requests (groups) each producer has unanswered.
	Inflight int
	// Compression is "none" or "gzip": over Connect the response
	// compression the clients accept (applied by Dial), over Kafka and with
	// Batches also the produced batches' compression (kept only where it
	// shrinks a batch, as Kafka's producers do).
	Compression string
	// Metrics is the agent's metrics URL, or empty.
	Metrics string
	// Progress draws a live line on Stderr every second.
	Progress bool
	// Stderr receives the progress line and warnings (a topic not deleted).
	Stderr io.Writer
}

// Check validates the shared settings.
func (f *Config) Check() error {
	switch {
	case f.Partitions < 1 || f.Partitions > math.MaxInt32:
		return flagErrorf("--partitions %d: want at least 1", f.Partitions)
	case f.Producers < 1:
		return flagErrorf("--producers %d: want at least 1", f.Producers)
	case f.Consumers < 1:
		return flagErrorf("--consumers %d: want at least 1", f.Consumers)
	case f.RecordSize < 8:
		return flagErrorf("--record-size %d: want at least 8 bytes (the send time)", f.RecordSize)
	case f.RecordSize > 64<<20:
		return flagErrorf("--record-size %d: at most 64MiB", f.RecordSize)
	case f.Rate < 0 || math.IsNaN(f.Rate) || math.IsInf(f.Rate, 0):
		return flagErrorf("--rate %g: want records per second, or 0 for as fast as possible", f.Rate)
	case f.Duration <= 0:
		return flagErrorf("--duration %s: want a positive duration", f.Duration)
	case f.Warmup < 0:
		return flagErrorf("--warmup %s: must not be negative", f.Warmup)
	case f.Batch < 1:
		return flagErrorf("--batch %d: want at least 1 record per request", f.Batch)
	case f.Inflight < 1:
		return flagErrorf("--max-inflight %d: want at least 1", f.Inflight)
	case f.Linger < 0:
		return flagErrorf("--linger %s: must not be negative", f.Linger)
	case f.Compression != "none" && f.Compression != "gzip":
		return flagErrorf("--compression %q: want none or gzip", f.Compression)
	case f.Batches && f.isKafka():
		return flagErrorf("--api batch: not used with --kafka (the batch calls are the Connect API's)")
	}
	if f.Metrics != "" && !strings.HasPrefix(f.Metrics, "http://") && !strings.HasPrefix(f.Metrics, "https://") {
		return flagErrorf("--metrics %q: want a URL such as http://127.0.0.1:7071/metrics", f.Metrics)
	}
	return nil
}

// CheckRate refuses a rate so low that a producer would send less than
// one request per measured window.
func (f *Config) CheckRate() error {
	if f.Rate == 0 {
		return nil
	}
	if every := f.requestInterval(); every > f.Duration {
		return flagErrorf("--rate %g is too low for --batch %d and --producers %d: each producer would send one request every %s; lower --batch or --producers",
			f.Rate, f.Batch, f.Producers, every.Round(time.Millisecond))
	}
	return nil
}

// requestInterval is how often each producer sends at Rate.
func (f *Config) requestInterval() time.Duration {
	perProducer := f.Rate / float64(f.Producers)
	return time.Duration(float64(f.Batch) / perProducer * float64(time.Second))
}

func (f *Config) isKafka() bool { return len(f.Kafka) > 0 }

func (f *Config) stderr() io.Writer {
	if f.Stderr == nil {
		return io.Discard
	}
	return f.Stderr
}

// window is the measured part of a run: results count only between start
// and end.
type window struct{ start, end time.Time }

func newWindow(warmup, duration time.Duration) window {
	s := time.Now().Add(warmup)
	return window{s, s.Add(duration)}
}

func (w window) in(t time.Time) bool { return !t.Before(w.start) && t.Before(w.end) }

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func latencyOf(h *hdr.Histogram) Latency {
	ms := func(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }
	return Latency{
		Count: h.Count(),
		Mean:  math.Round(h.Mean()/1e3) / 1e3,
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}

// Flow is one direction's results: what was moved in the window and how
// long each request took. Errors counts failures by code: Connect codes
// (unavailable, resource_exhausted, ...) over Connect, Kafka error names
// (MESSAGE_TOO_LARGE, ...) over Kafka.
type Flow struct {
	Records       int64            `json:"records"`
	Bytes         int64            `json:"bytes"`
	Seconds       float64          `json:"seconds"`
	RecordsPerSec float64          `json:"records_per_sec"`
	MiBPerSec     float64          `json:"mib_per_sec"`
	Latency       Latency          `json:"latency_ms"`
	Errors        map[string]int64 `json:"errors"`
}

// flowStats accumulates a Flow in one goroutine.
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

func (s *flowStats) json(seconds float64) *Flow {
	out := &Flow{Records: s.records, Bytes: s.bytes, Seconds: round3(seconds), Latency: latencyOf(s.hist), Errors: s.errors}
	if seconds > 0 {
		out.RecordsPerSec = math.Round(float64(s.records) / seconds)
		out.MiBPerSec = round3(float64(s.bytes) / seconds / (1 << 20))
	}
	return out
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// Result is what `strata bench produce|consume|e2e --json` prints.
type Result struct {
	Command string `json:"command"`
	// Protocol is "kafka" for a run over the Kafka protocol; empty (and
	// left out of the JSON) over Connect.
	Protocol string `json:"protocol,omitempty"`
	// API is the Connect calls the run drove: "stream" (ProduceStream and
	// Subscribe) or "batch" (ProduceBatchesStream and FetchBatches), and
	// for consume the readers' --api (subscribe, fetch or batch). Empty
	// over Kafka.
	API        string `json:"api,omitempty"`
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
	// Compression is the response compression the clients accepted
	// (Connect), or the produced batches' compression (Kafka).
	Compression string `json:"compression"`
	// Produce is the producers' acks; Consume what consumers read; E2E the
	// time from a record's send to its arrival at a consumer.
	Produce *Flow    `json:"produce,omitempty"`
	Consume *Flow    `json:"consume,omitempty"`
	E2E     *Latency `json:"e2e_latency_ms,omitempty"`
	Backlog *Backlog `json:"backlog,omitempty"`
	// Agent is the change of the agent's metrics during the window
	// (--metrics).
	Agent map[string]float64 `json:"agent,omitempty"`
	// AgentCPUPerMiB is the agent's CPU time in milliseconds per MiB of
	// records moved in the window (produced plus consumed, as the flows
	// count them): its process_cpu_seconds_total change over the window
	// divided by the bytes. 0 without --metrics or when nothing moved.
	AgentCPUPerMiB float64 `json:"agent_cpu_ms_per_mib,omitempty"`
	// ClientCPU is the CPU time this process (the load generator) used
	// over the whole run, warm-up included, and the run's wall time: on a
	// machine shared with the agent they tell who had the cores.
	ClientCPU  float64 `json:"client_cpu_s"`
	ClientWall float64 `json:"client_wall_s"`
}

// Failed says whether a flow of the run moved no record while its requests
// failed: an error naming the flow and its error counts by code (for
// example MESSAGE_TOO_LARGE when --record-size is over the topic's
// max.message.bytes), nil otherwise. The summary is still worth printing.
func (r *Result) Failed() error {
	for _, f := range []struct {
		name string
		flow *Flow
	}{{"produce", r.Produce}, {"consume", r.Consume}} {
		if f.flow != nil && f.flow.Records == 0 && len(f.flow.Errors) > 0 {
			codes := slices.Sorted(maps.Keys(f.flow.Errors))
			parts := make([]string, len(codes))
			for i, c := range codes {
				parts[i] = fmt.Sprintf("%s: %d", c, f.flow.Errors[c])
			}
			return fmt.Errorf("%s: no record got through; every request failed (%s)", f.name, strings.Join(parts, ", "))
		}
	}
	return nil
}

// Backlog is what a consume run read: the topic's records when it began.
type Backlog struct {
	Records    int64   `json:"records"`
	Bytes      int64   `json:"bytes"`
	Prefilled  bool    `json:"prefilled"`
	PrefillSec float64 `json:"prefill_s,omitempty"`
}

// setAgent records the agent's metrics over the window, and from them its
// CPU time per MiB of the flows already set.
func (r *Result) setAgent(agent map[string]float64) {
	r.Agent = agent
	r.AgentCPUPerMiB = 0
	var bytes int64
	for _, f := range []*Flow{r.Produce, r.Consume} {
		if f != nil {
			bytes += f.Bytes
		}
	}
	if cpu, ok := agent["cpu_seconds"]; ok && bytes > 0 {
		r.AgentCPUPerMiB = round3(cpu * 1000 / (float64(bytes) / (1 << 20)))
	}
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
func (c cpuClock) stamp(r *Result) {
	r.ClientCPU = round3(processCPU() - c.cpu)
	r.ClientWall = round3(time.Since(c.wall).Seconds())
}

func newResult(command, addr string, f *Config, t *benchTopic, win window) *Result {
	r := &Result{
		Command:     command,
		Addr:        addr,
		Topic:       t.name,
		Partitions:  t.partitions,
		Producers:   f.Producers,
		Consumers:   f.Consumers,
		RecordSize:  f.RecordSize,
		Batch:       f.Batch,
		MaxInflight: f.Inflight,
		TargetRate:  f.Rate,
		Duration:    f.Duration.Seconds(),
		Warmup:      f.Warmup.Seconds(),
		Start:       win.start.UTC(),
		Compression: f.Compression,
	}
	switch {
	case f.isKafka():
		r.Protocol = "kafka"
	case f.Batches:
		r.API = "batch"
	default:
		r.API = "stream"
	}
	return r
}

// PrintSummary writes the human-readable results.
func PrintSummary(w io.Writer, r *Result) {
	rate := "as fast as possible"
	if r.TargetRate > 0 {
		rate = fmt.Sprintf("%.0f records/s", r.TargetRate)
	}
	var who []string
	if r.Producers > 0 {
		who = append(who, fmt.Sprintf("%d producer%s, %d-byte records, batch %d, rate %s", r.Producers, plural(r.Producers), r.RecordSize, r.Batch, rate))
	}
	if r.Consumers > 0 {
		who = append(who, fmt.Sprintf("%d consumer%s", r.Consumers, plural(r.Consumers)))
	}
	over := ""
	if r.Protocol != "" {
		over = " over " + r.Protocol + " " + r.Addr
	} else if r.API == "batch" {
		over = " over the batch calls"
	}
	fmt.Fprintf(w, "strata bench %s%s: topic %s (%d partitions), %s, %.3gs measured after %.3gs warm-up\n",
		r.Command, over, r.Topic, r.Partitions, strings.Join(who, ", "), r.Duration, r.Warmup)
	if r.Backlog != nil {
		fmt.Fprintf(w, "backlog: %d records, %.1f MiB", r.Backlog.Records, float64(r.Backlog.Bytes)/(1<<20))
		if r.Backlog.Prefilled {
			fmt.Fprintf(w, " (written in %.1fs)", r.Backlog.PrefillSec)
		}
		fmt.Fprintln(w)
	}
	tw := newTableWriter(w)
	tw.row("", "records/s", "MiB/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors")
	flow := func(name string, f *Flow) {
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
	if r.AgentCPUPerMiB > 0 {
		fmt.Fprintf(w, "agent CPU: %.2f ms per MiB of records moved\n", r.AgentCPUPerMiB)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
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

// benchTopic is the topic a run uses, and whether it created it.
type benchTopic struct {
	name       string
	partitions int32
	created    bool
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
