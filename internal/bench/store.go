package bench

// Store: the ceilings the agent works under, measured on the
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

// Op is one phase's results: operations, their latency, errors by kind
// (unavailable, not_found, already_exists, deadline_exceeded, other).
type Op struct {
	Ops       int64            `json:"ops"`
	Seconds   float64          `json:"seconds"`
	OpsPerSec float64          `json:"ops_per_sec"`
	MiBPerSec float64          `json:"mib_per_sec,omitempty"`
	Latency   Latency          `json:"latency_ms"`
	Errors    map[string]int64 `json:"errors"`
	// ClientCPU is this process's average CPU use during the phase, in
	// cores; ServerCPU that of the process --watch-pid (or
	// --watch-index-pid) named: the store's or the index's server.
	ClientCPU float64 `json:"client_cpu_cores"`
	ServerCPU float64 `json:"server_cpu_cores,omitempty"`
}

// StoreResult is what `strata bench store --json` prints.
type StoreResult struct {
	Command     string    `json:"command"`
	Store       string    `json:"store,omitempty"`
	Index       string    `json:"index,omitempty"`
	ObjectSize  int64     `json:"object_size"`
	BlockSize   int64     `json:"block_size"`
	Concurrency int       `json:"concurrency"`
	Duration    float64   `json:"duration_s"`
	Start       time.Time `json:"start"`
	Put         *Op       `json:"put,omitempty"`
	Get         *Op       `json:"get,omitempty"`
	GetRange64K *Op       `json:"get_range_64k,omitempty"`
	GetRangeBlk *Op       `json:"get_range_block,omitempty"`
	RedisPing   *Op       `json:"redis_ping,omitempty"`
	RedisEval   *Op       `json:"redis_eval,omitempty"`

	duration time.Duration // as given, for the summary
}

// StoreConfig is what Store measures; the fields are the flags of
// `strata bench store`.
type StoreConfig struct {
	// Store and Index are URLs as for strata agent; either may be empty
	// (its phases are skipped), not both.
	Store, Index string
	// ObjectSize is the bytes per object; BlockSize the ranged GET size of
	// the get_range_block phase.
	ObjectSize, BlockSize int64
	// Concurrency is the requests in flight in each phase.
	Concurrency int
	// Duration is the time of each phase.
	Duration time.Duration
	// WatchPID and WatchIndexPID name processes on this machine (the
	// store's and the index's servers) whose CPU use the store and the
	// Redis phases report; 0 for none.
	WatchPID, WatchIndexPID int
	// Progress draws a live line on Stderr every second.
	Progress bool
	Stderr   io.Writer
}

// Check validates the settings.
func (c *StoreConfig) Check() error {
	switch {
	case c.Store == "" && c.Index == "":
		return flagErrorf("--store or --index is required: what to measure, e.g. --store 's3://bucket?endpoint=host:9000&insecure=true'")
	case c.ObjectSize < 1 || c.ObjectSize > 5<<30:
		return flagErrorf("--object-size %d: want 1 byte to 5GiB", c.ObjectSize)
	case c.BlockSize < 1:
		return flagErrorf("--block-size %d: want at least 1 byte", c.BlockSize)
	case c.Concurrency < 1:
		return flagErrorf("--concurrency %d: want at least 1", c.Concurrency)
	case c.Duration <= 0:
		return flagErrorf("--duration %s: want a positive duration", c.Duration)
	}
	for name, pid := range map[string]int{"watch-pid": c.WatchPID, "watch-index-pid": c.WatchIndexPID} {
		if pid == 0 {
			continue
		}
		if _, err := processCPUOf(pid); err != nil {
			return flagErrorf("--%s %d: %v", name, pid, err)
		}
	}
	return nil
}

// Store measures what the object store and the index give without an
// agent, with the agent's own clients, so the agent's numbers can be read
// as a fraction of them. Each phase runs c.Concurrency workers for
// c.Duration: put, get, get_range_64k, get_range_block (with c.Store),
// redis_ping and redis_eval (with c.Index). The objects go under
// bench-store/<random>/ and the Redis keys under strata-bench:*; both are
// deleted at the end.
func Store(ctx context.Context, c StoreConfig) (*StoreResult, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	stderr := c.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	res := &StoreResult{Command: "store", ObjectSize: c.ObjectSize, BlockSize: c.BlockSize,
		Concurrency: c.Concurrency, Duration: c.Duration.Seconds(), Start: time.Now().UTC(), duration: c.Duration}
	ph := &phaser{conc: c.Concurrency, dur: c.Duration, stderr: stderr, progress: c.Progress}
	if c.Store != "" {
		ph.watch = c.WatchPID
		res.Store = redactedURL(c.Store)
		if err := benchBucket(ctx, ph, res, c.Store, c.ObjectSize, c.BlockSize); err != nil {
			return nil, err
		}
	}
	if c.Index != "" {
		ph.watch = c.WatchIndexPID
		res.Index = redactedURL(c.Index)
		if err := benchRedis(ctx, ph, res, c.Index); err != nil {
			return nil, err
		}
	}
	if ctx.Err() != nil {
		return nil, ErrInterrupted
	}
	return res, nil
}

// PrintStoreSummary writes the human-readable results of Store.
func PrintStoreSummary(w io.Writer, res *StoreResult) {
	fmt.Fprintf(w, "strata bench store: %s objects, %d in flight, %s per phase\n", sizeText(res.ObjectSize), res.Concurrency, res.duration)
	tw := newTableWriter(w)
	tw.row("", "ops/s", "MiB/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors")
	for _, p := range []struct {
		name string
		op   *Op
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
}

// sizeText is n as --object-size takes it: 8MiB, 512KiB, or bytes.
func sizeText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
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
func (ph *phaser) run(ctx context.Context, name string, op func(ctx context.Context, worker int, r *mrand.Rand) (int64, error)) *Op {
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
	out := &Op{Ops: total.ops, Seconds: round3(seconds), Latency: latencyOf(total.hist), Errors: total.errors,
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

func benchBucket(ctx context.Context, ph *phaser, res *StoreResult, storeURL string, size, block int64) error {
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
		return fmt.Errorf("put a %s object in %s: %w", sizeText(size), redactedURL(storeURL), err)
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

func benchRedis(ctx context.Context, ph *phaser, res *StoreResult, indexURL string) error {
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
