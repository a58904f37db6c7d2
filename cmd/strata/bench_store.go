package main

// strata bench store: the ceilings the agent works under, measured on the
// same store and index with the agent's own clients (objectlog.OpenBucket,
// coordinator.Open) and no agent in between: create-only PUTs of objects of
// the segment size, whole GETs and ranged GETs of them (64 KiB, and the
// block cache's block), and Redis round trips: PING, and one pipelined
// EVALSHA of a small script shaped like a segment commit's per-partition
// script (raise a counter, add a sorted-set entry).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/hdr"
	"github.com/stratabroker/strata/objectlog"
)

const benchStoreHelp = `Usage: strata bench store --store URL [--index URL] [flags]

Measures what the object store and the index give without an agent, with
the agent's own clients, so the agent's numbers can be read as a fraction
of them. Each phase runs --concurrency workers for --duration:

  put               create-only PUTs of --object-size objects
  get               whole GETs of the objects the put phase wrote
  get_range_64k     ranged GETs of 64 KiB at random aligned offsets
  get_range_block   ranged GETs of --block-size (the agent's cache block)
  redis_ping        PING round trips (with --index)
  redis_eval        one EVALSHA per pipeline, a script shaped like a
                    segment commit's (with --index)

The objects go under bench-store/<random>/ and are deleted at the end; the
Redis keys are under strata-bench:* and deleted too. Store credentials come
from the environment as for the agent (AWS_ACCESS_KEY_ID, ...).

Examples:
  strata bench store --store 's3://strata?endpoint=127.0.0.1:9000&insecure=true' --index redis://127.0.0.1:6379/0
  strata bench store --store file:///tmp/bucket --object-size 4MiB --json
`

// opJSON is one phase's results.
type opJSON struct {
	Ops       int64            `json:"ops"`
	Seconds   float64          `json:"seconds"`
	OpsPerSec float64          `json:"ops_per_sec"`
	MiBPerSec float64          `json:"mib_per_sec,omitempty"`
	Latency   latencyJSON      `json:"latency_ms"`
	Errors    map[string]int64 `json:"errors"`
	// ClientCPU is this process's average CPU use during the phase, in
	// cores; ServerCPU that of the process --watch-pid (or
	// --watch-index-pid) named: the store's or the index's server.
	ClientCPU float64 `json:"client_cpu_cores"`
	ServerCPU float64 `json:"server_cpu_cores,omitempty"`
}

type storeResult struct {
	Command     string    `json:"command"`
	Store       string    `json:"store,omitempty"`
	Index       string    `json:"index,omitempty"`
	ObjectSize  int64     `json:"object_size"`
	BlockSize   int64     `json:"block_size"`
	Concurrency int       `json:"concurrency"`
	Duration    float64   `json:"duration_s"`
	Start       time.Time `json:"start"`
	Put         *opJSON   `json:"put,omitempty"`
	Get         *opJSON   `json:"get,omitempty"`
	GetRange64K *opJSON   `json:"get_range_64k,omitempty"`
	GetRangeBlk *opJSON   `json:"get_range_block,omitempty"`
	RedisPing   *opJSON   `json:"redis_ping,omitempty"`
	RedisEval   *opJSON   `json:"redis_eval,omitempty"`
}

func runBenchStore(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata bench store"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	storeURL := fs.String("store", "", "object store `URL`, as for strata agent")
	indexURL := fs.String("index", "", "index `URL`, as for strata agent (redis://...); empty skips the Redis phases")
	objectSize := byteSize(8 << 20)
	fs.Var(&objectSize, "object-size", "bytes per object (default: the agent's --segment-max-bytes default)")
	blockSize := byteSize(1 << 20)
	fs.Var(&blockSize, "block-size", "ranged GET size of the get_range_block phase (the agent's --cache-block-bytes)")
	concurrency := fs.Int("concurrency", 4, "requests in flight in each phase (the agent's --max-concurrent-uploads is 4)")
	duration := fs.Duration("duration", 5*time.Second, "time of each phase")
	jsonOut := fs.Bool("json", false, "print one JSON object with the results to stdout")
	progress := fs.Bool("progress", false, "print a progress line to stderr every second even when stderr is not a terminal")
	watchPID := fs.Int("watch-pid", 0, "report the CPU use of process `PID` (the store's server, on this machine) in the store phases (Linux)")
	watchIndexPID := fs.Int("watch-index-pid", 0, "report the CPU use of process `PID` (redis-server, on this machine) in the Redis phases (Linux)")
	positional, err := c.parseFlags(fs, benchStoreHelp, args)
	if err != nil {
		return err
	}
	if err := noArgs(cmd, positional); err != nil {
		return err
	}
	switch {
	case *storeURL == "" && *indexURL == "":
		return usagef(cmd, "--store or --index is required: what to measure, e.g. --store 's3://bucket?endpoint=host:9000&insecure=true'")
	case objectSize < 1 || objectSize > 5<<30:
		return usagef(cmd, "--object-size %d: want 1 byte to 5GiB", objectSize)
	case blockSize < 1:
		return usagef(cmd, "--block-size %d: want at least 1 byte", blockSize)
	case *concurrency < 1:
		return usagef(cmd, "--concurrency %d: want at least 1", *concurrency)
	case *duration <= 0:
		return usagef(cmd, "--duration %s: want a positive duration", *duration)
	}
	for name, pid := range map[string]int{"watch-pid": *watchPID, "watch-index-pid": *watchIndexPID} {
		if pid == 0 {
			continue
		}
		if _, err := processCPUOf(pid); err != nil {
			return usagef(cmd, "--%s %d: %v", name, pid, err)
		}
	}
	res := &storeResult{Command: "store", ObjectSize: int64(objectSize), BlockSize: int64(blockSize),
		Concurrency: *concurrency, Duration: duration.Seconds(), Start: time.Now().UTC()}
	ph := &phaser{conc: *concurrency, dur: *duration, stderr: c.stderr, progress: *progress || isTerminal(c.stderr)}

	if *storeURL != "" {
		ph.watch = *watchPID
		res.Store = redactedURL(*storeURL)
		if err := benchBucket(ctx, ph, res, *storeURL, int64(objectSize), int64(blockSize)); err != nil {
			return err
		}
	}
	if *indexURL != "" {
		ph.watch = *watchIndexPID
		res.Index = redactedURL(*indexURL)
		if err := benchRedis(ctx, ph, res, *indexURL); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	if *jsonOut {
		return writeJSON(c.stdout, res)
	}
	fmt.Fprintf(c.stdout, "strata bench store: %s objects, %d in flight, %s per phase\n", formatBytes(int64(objectSize)), *concurrency, *duration)
	tw := newTableWriter(c.stdout)
	tw.row("", "ops/s", "MiB/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors")
	for _, p := range []struct {
		name string
		op   *opJSON
	}{{"put", res.Put}, {"get", res.Get}, {"get_range_64k", res.GetRange64K}, {"get_range_block", res.GetRangeBlk}, {"redis_ping", res.RedisPing}, {"redis_eval", res.RedisEval}} {
		if p.op == nil {
			continue
		}
		mib := ""
		if p.op.MiBPerSec > 0 {
			mib = fmt.Sprintf("%.2f", p.op.MiBPerSec)
		}
		l := p.op.Latency
		tw.row(p.name, fmt.Sprintf("%.0f", p.op.OpsPerSec), mib, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), errorsText(p.op.Errors))
	}
	tw.flush()
	return nil
}

// redactedURL drops user info, for the report.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Redacted()
}

// phaser runs timed phases of concurrent operations.
type phaser struct {
	conc     int
	dur      time.Duration
	stderr   io.Writer
	progress bool
	watch    int // a process whose CPU use to report, or 0
}

// processCPUOf is a process's CPU time so far (user and system), from
// /proc/PID/stat, in seconds of USER_HZ 100 ticks.
func processCPUOf(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read the process's CPU time: %w", err)
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis (utime and stime are the 14th
	// and 15th fields of the line).
	rest := string(data)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad CPU times", pid)
	}
	return (utime + stime) / 100, nil
}

// run calls op from conc workers until the phase's time is up. op returns
// the bytes it moved.
func (ph *phaser) run(ctx context.Context, name string, op func(ctx context.Context, worker int, r *mrand.Rand) (int64, error)) *opJSON {
	ctx, cancel := context.WithTimeout(ctx, ph.dur)
	defer cancel()
	type workerStats struct {
		ops, bytes int64
		hist       *hdr.Histogram
		errors     map[string]int64
	}
	var live atomic.Int64
	var liveBytes atomic.Int64
	stats := make([]*workerStats, ph.conc)
	cpu0, server0 := processCPU(), 0.0
	if ph.watch != 0 {
		server0, _ = processCPUOf(ph.watch)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range ph.conc {
		ws := &workerStats{hist: hdr.New(), errors: map[string]int64{}}
		stats[w] = ws
		wg.Go(func() {
			r := mrand.New(mrand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for ctx.Err() == nil {
				t0 := time.Now()
				n, err := op(ctx, w, r)
				if err != nil {
					if ctx.Err() != nil {
						return // cut by the end of the phase
					}
					ws.errors[storeErrorKind(err)]++
					continue
				}
				ws.hist.Record(time.Since(t0).Nanoseconds())
				ws.ops++
				ws.bytes += n
				live.Add(1)
				liveBytes.Add(n)
			}
		})
	}
	stop := func() {}
	if ph.progress {
		done := make(chan struct{})
		var pwg sync.WaitGroup
		pwg.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			var last, lastBytes int64
			for {
				select {
				case <-done:
					fmt.Fprint(ph.stderr, "\r\033[K")
					return
				case <-t.C:
					n, b := live.Load(), liveBytes.Load()
					fmt.Fprintf(ph.stderr, "\r\033[K%s: %d ops/s, %.1f MiB/s", name, n-last, float64(b-lastBytes)/(1<<20))
					last, lastBytes = n, b
				}
			}
		})
		stop = func() { close(done); pwg.Wait() }
	}
	wg.Wait()
	stop()
	seconds := time.Since(start).Seconds()
	clientCPU := (processCPU() - cpu0) / seconds
	serverCPU := 0.0
	if ph.watch != 0 {
		if s1, err := processCPUOf(ph.watch); err == nil {
			serverCPU = (s1 - server0) / seconds
		}
	}
	total := &workerStats{hist: hdr.New(), errors: map[string]int64{}}
	for _, ws := range stats {
		total.ops += ws.ops
		total.bytes += ws.bytes
		total.hist.Merge(ws.hist)
		for k, v := range ws.errors {
			total.errors[k] += v
		}
	}
	out := &opJSON{Ops: total.ops, Seconds: round3(seconds), Latency: latencyOf(total.hist), Errors: total.errors,
		ClientCPU: round3(clientCPU), ServerCPU: round3(serverCPU)}
	out.OpsPerSec = math.Round(float64(total.ops)/seconds*10) / 10
	out.MiBPerSec = round3(float64(total.bytes) / seconds / (1 << 20))
	return out
}

// storeErrorKind names a failure for the error counts.
func storeErrorKind(err error) string {
	switch {
	case errors.Is(err, objectlog.ErrUnavailable), errors.Is(err, coordinator.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, objectlog.ErrNotFound):
		return "not_found"
	case errors.Is(err, objectlog.ErrAlreadyExists):
		return "already_exists"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	return "other"
}

func benchBucket(ctx context.Context, ph *phaser, res *storeResult, storeURL string, size, block int64) error {
	bucket, err := objectlog.OpenBucket(ctx, storeURL)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer bucket.Close()
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	prefix := "bench-store/" + hex.EncodeToString(tag[:]) + "/"
	data := make([]byte, size)
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := 0; i+8 <= len(data); i += 8 {
		binary.LittleEndian.PutUint64(data[i:], r.Uint64())
	}

	// One object first: a store that refuses writes says so at once,
	// rather than as a phase full of errors.
	first := prefix + "first"
	if err := bucket.PutIfAbsent(ctx, first, bytes.NewReader(data), size); err != nil {
		return fmt.Errorf("put a %s object in %s: %w", formatBytes(size), redactedURL(storeURL), err)
	}
	var mu sync.Mutex
	keys := []string{first}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for _, k := range keys {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				_ = bucket.Delete(dctx, k)
			})
		}
		wg.Wait()
	}()
	var seq atomic.Int64
	res.Put = ph.run(ctx, "put", func(ctx context.Context, w int, _ *mrand.Rand) (int64, error) {
		key := fmt.Sprintf("%sobj-%d-%d", prefix, w, seq.Add(1))
		if err := bucket.PutIfAbsent(ctx, key, bytes.NewReader(data), size); err != nil {
			return 0, err
		}
		mu.Lock()
		keys = append(keys, key)
		mu.Unlock()
		return size, nil
	})
	if ctx.Err() != nil {
		return nil
	}
	written := keys[:len(keys):len(keys)]
	pick := func(r *mrand.Rand) string { return written[r.IntN(len(written))] }
	res.Get = ph.run(ctx, "get", func(ctx context.Context, _ int, r *mrand.Rand) (int64, error) {
		rc, err := bucket.Get(ctx, pick(r))
		if err != nil {
			return 0, err
		}
		defer rc.Close()
		return io.Copy(io.Discard, rc)
	})
	ranged := func(length int64) func(ctx context.Context, _ int, r *mrand.Rand) (int64, error) {
		length = min(length, size)
		return func(ctx context.Context, _ int, r *mrand.Rand) (int64, error) {
			off := r.Int64N(size/length) * length
			rc, err := bucket.GetRange(ctx, pick(r), off, length)
			if err != nil {
				return 0, err
			}
			defer rc.Close()
			return io.Copy(io.Discard, rc)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	res.GetRange64K = ph.run(ctx, "get_range_64k", ranged(64<<10))
	if ctx.Err() != nil {
		return nil
	}
	res.GetRangeBlk = ph.run(ctx, "get_range_block", ranged(block))
	return nil
}

// commitLike is shaped like the per-partition commit script: raise the
// high watermark, add an index entry, keep the set bounded.
var commitLike = redis.NewScript(`
local hwm = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], hwm, ARGV[2] .. ':' .. hwm)
if redis.call('ZCARD', KEYS[2]) > 1000 then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, 0)
end
return hwm
`)

func benchRedis(ctx context.Context, ph *phaser, res *storeResult, indexURL string) error {
	index, err := coordinator.Open(ctx, indexURL, coordinator.Options{})
	if err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	defer index.Close()
	client := index.Client()
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	prefix := "strata-bench:" + hex.EncodeToString(tag[:])
	sha, err := commitLike.Load(ctx, client).Result()
	if err != nil {
		return fmt.Errorf("load a script into the index: %w", err)
	}
	keysOf := func(w int) []string {
		tag := fmt.Sprintf("%s:{b%d}", prefix, w)
		return []string{tag + ":hwm", tag + ":log"}
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for w := range ph.conc {
			client.Del(dctx, keysOf(w)...)
		}
	}()
	res.RedisPing = ph.run(ctx, "redis_ping", func(ctx context.Context, _ int, _ *mrand.Rand) (int64, error) {
		return 0, client.Ping(ctx).Err()
	})
	if ctx.Err() != nil {
		return nil
	}
	res.RedisEval = ph.run(ctx, "redis_eval", func(ctx context.Context, w int, _ *mrand.Rand) (int64, error) {
		pipe := client.Pipeline()
		cmd := pipe.EvalSha(ctx, sha, keysOf(w), 100, "segments/01JBENCHMARKSEGMENTKEY0000.seg")
		if _, err := pipe.Exec(ctx); err != nil {
			if strings.Contains(err.Error(), "NOSCRIPT") {
				return 0, fmt.Errorf("%w: %w", coordinator.ErrUnavailable, err)
			}
			return 0, err
		}
		return 0, cmd.Err()
	})
	return nil
}
