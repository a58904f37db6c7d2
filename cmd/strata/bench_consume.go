package main

// strata bench consume: catch-up reads. The backlog is what the topic held
// when the run began (after writing --backlog-bytes into it, if asked), read
// from each partition's log start to that high watermark by --consumers
// readers sharing the partitions.

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

const benchConsumeHelp = `Usage: strata bench consume [flags]

Reads a backlog from its start as fast as the agent serves it and reports
the read throughput (catch-up consumption). The backlog is the topic's
records when the run begins: an existing --topic as it is, or, for a new
topic (or with --backlog-bytes on an existing one), what the producers
write first, as fast as they can, unmeasured.

--consumers readers share the partitions. With --api subscribe (the
default) each reads its partitions over one Subscribe stream, and the
latency column is the time between messages; with --api fetch each reads
its partitions one Fetch at a time, and the latency is per Fetch.

The run ends when the backlog is read or --duration passes; --warmup
(default 0) drops the first part of it from the results.

To measure reads from the object store rather than from the writing
agent's cache, fill the backlog through one agent and read it through
another, or restart the agent in between (see scripts/bench.sh).

Examples:
  strata bench consume --backlog-bytes 1GiB
  strata bench consume --topic orders --api fetch --json
`

func runBenchConsume(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata bench consume"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var f benchFlags
	f.register(fs, 0)
	fs.Lookup("duration").DefValue = "1m0s"
	f.duration = time.Minute
	backlog := byteSize(256 << 20)
	fs.Var(&backlog, "backlog-bytes", "record bytes to write before reading, when the topic is new or the flag is given")
	api := fs.String("api", "subscribe", "read with subscribe or fetch")
	fetchBytes := byteSize(1 << 20)
	fs.Var(&fetchBytes, "fetch-bytes", "max_bytes of each Fetch or Subscribe message")
	positional, err := c.parseFlags(fs, benchConsumeHelp, args)
	if err != nil {
		return err
	}
	if err := noArgs(cmd, positional); err != nil {
		return err
	}
	if err := f.check(cmd); err != nil {
		return err
	}
	if err := oneOf(cmd, "api", *api, "subscribe", "fetch"); err != nil {
		return err
	}
	if fetchBytes < 1 || fetchBytes > 1<<30 {
		return usagef(cmd, "--fetch-bytes %d: want 1 to 1GiB", fetchBytes)
	}
	backlogGiven := false
	fs.Visit(func(fl *flag.Flag) { backlogGiven = backlogGiven || fl.Name == "backlog-bytes" })
	cl, err := f.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	t, err := setupTopic(ctx, cl, &f, cmd, fs)
	if err != nil {
		return err
	}
	defer t.teardown(cl, f.keep, c.stderr)

	cnt := &counters{}
	var bl backlogJSON
	if (t.created || backlogGiven) && backlog > 0 {
		bl.Prefilled = true
		start := time.Now()
		target := int64(backlog)
		fill := window{start: start, end: start.Add(24 * time.Hour)}
		pf := f
		pf.rate = 0
		stopProgress := startProgress(c.stderr, f.showProgress(c), fill, cnt)
		// Each producer asks before each request; the requests stop once
		// the backlog is covered, whatever is still in flight.
		var sent atomic.Int64
		perRequest := int64(f.batch) * int64(f.recordSize)
		_, err := runProducers(ctx, &pf, fs, t.name, fill, func() bool { return sent.Add(perRequest) > target+perRequest-1 }, cnt)
		stopProgress()
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return errInterrupted
		}
		if cnt.errors.Load() > 0 && cnt.producedBytes.Load() < target {
			return fmt.Errorf("writing the backlog failed: %d errors", cnt.errors.Load())
		}
		bl.PrefillSec = round3(time.Since(start).Seconds())
	}
	desc, err := cl.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: t.name}))
	if err != nil {
		return cl.explain(err, t.name)
	}
	// Each reader's share: partition -> [from, to).
	shares := make([]map[int32][2]int64, min(f.consumers, int(t.partitions)))
	for i := range shares {
		shares[i] = map[int32][2]int64{}
	}
	for _, info := range desc.Msg.GetPartitions() {
		if info.GetHighWatermark() > info.GetLogStartOffset() {
			bl.Records += info.GetHighWatermark() - info.GetLogStartOffset()
			bl.Bytes += info.GetBytes()
			shares[int(info.GetPartition())%len(shares)][info.GetPartition()] = [2]int64{info.GetLogStartOffset(), info.GetHighWatermark()}
		}
	}
	if bl.Records == 0 {
		return fmt.Errorf("topic %s has no records to read; give --backlog-bytes to write some first", t.name)
	}

	cnt = &counters{}
	clock := startCPUClock() // the reads only, not the backlog's writing
	win := newWindow(f.warmup, f.duration)
	mw := watchMetrics(ctx, f.metrics, win)
	rctx, cancel := context.WithDeadline(ctx, win.end)
	defer cancel()
	stopProgress := startProgress(c.stderr, f.showProgress(c), win, cnt)
	readers := make([]*catchUpReader, 0, len(shares))
	var lastDone atomic.Int64
	var wg sync.WaitGroup
	for _, share := range shares {
		if len(share) == 0 {
			continue
		}
		rcl, err := f.dial(fs)
		if err != nil {
			stopProgress()
			return err
		}
		defer rcl.close()
		r := &catchUpReader{cl: rcl, topic: t.name, share: share, maxBytes: int32(fetchBytes), win: win, cnt: cnt, stats: newFlowStats()}
		readers = append(readers, r)
		wg.Go(func() {
			if *api == "fetch" {
				r.err = r.fetch(rctx)
			} else {
				r.err = r.subscribe(rctx)
			}
			now := time.Now().UnixNano()
			for {
				old := lastDone.Load()
				if now <= old || lastDone.CompareAndSwap(old, now) {
					break
				}
			}
		})
	}
	wg.Wait()
	stopProgress()
	cut := rctx.Err() != nil // the window ended before the backlog did
	cancel()
	end := time.Unix(0, lastDone.Load())
	if end.After(win.end) {
		end = win.end
	}
	seconds := end.Sub(win.start).Seconds()
	if ctx.Err() != nil {
		return errInterrupted
	}
	stats := newFlowStats()
	for _, r := range readers {
		if r.err != nil && !cut {
			return r.err
		}
		stats.merge(r.stats)
	}
	// A run that finished before the window's end ends the metrics' too.
	if end.Before(win.end) {
		mw.endNow()
	}
	agent, err := mw.result()
	if err != nil {
		return err
	}
	r := newResult("consume", cl, &f, t, win)
	r.Producers = 0
	r.Duration = round3(seconds)
	r.Backlog = &bl
	r.Consume = stats.json(seconds)
	r.Agent = agent
	return finish(c, &f, r, clock)
}

// catchUpReader reads its share of the partitions up to their watermarks.
type catchUpReader struct {
	cl       *client
	topic    string
	share    map[int32][2]int64
	maxBytes int32
	win      window
	cnt      *counters
	stats    *flowStats
	err      error
}

func (r *catchUpReader) count(recs []*stratav1.ConsumedRecord, latency time.Duration, now time.Time) {
	var bytes int64
	for _, rec := range recs {
		bytes += int64(len(rec.GetValue()) + len(rec.GetKey()))
		for _, h := range rec.GetHeaders() {
			bytes += int64(len(h.GetKey()) + len(h.GetValue()))
		}
	}
	r.cnt.consumed.Add(int64(len(recs)))
	r.cnt.consumedBytes.Add(bytes)
	if r.win.in(now) {
		r.stats.records += int64(len(recs))
		r.stats.bytes += bytes
		r.stats.hist.Record(latency.Nanoseconds())
	}
}

func (r *catchUpReader) fail(err error) error {
	if r.win.in(time.Now()) {
		r.stats.errors[errorCode(err)]++
	}
	r.cnt.errors.Add(1)
	return r.cl.explain(err, r.topic)
}

// fetch reads each partition in turn, one Fetch at a time.
func (r *catchUpReader) fetch(ctx context.Context) error {
	for p, span := range r.share {
		for next := span[0]; next < span[1]; {
			t0 := time.Now()
			resp, err := r.cl.consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{
				Topic: r.topic, Partition: p, Offset: next, MaxBytes: r.maxBytes,
			}))
			if err != nil {
				return r.fail(err)
			}
			now := time.Now()
			recs := resp.Msg.GetRecords()
			if k := len(recs); k > 0 && recs[k-1].GetOffset() >= span[1] {
				// Records past the backlog's end are not part of it.
				cut := 0
				for cut < k && recs[cut].GetOffset() < span[1] {
					cut++
				}
				recs = recs[:cut]
			}
			r.count(recs, now.Sub(t0), now)
			if resp.Msg.GetNextOffset() <= next {
				return fmt.Errorf("fetch of %s partition %d at offset %d made no progress", r.topic, p, next)
			}
			next = resp.Msg.GetNextOffset()
		}
	}
	return nil
}

// subscribe reads the share over one stream until every partition has
// reached its end.
func (r *catchUpReader) subscribe(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := make([]int32, 0, len(r.share))
	left := map[int32]int64{}
	for p, span := range r.share {
		parts = append(parts, p)
		left[p] = span[1]
	}
	stream, err := r.cl.consumer.Subscribe(ctx, connect.NewRequest(&stratav1.SubscribeRequest{
		Topic: r.topic, Partitions: parts, Start: &stratav1.SubscribeRequest_Earliest{Earliest: true}, MaxBytes: r.maxBytes,
	}))
	if err != nil {
		return r.fail(err)
	}
	defer stream.Close()
	last := time.Now()
	for stream.Receive() {
		if stream.Msg().GetKeepAlive() {
			continue // not a delivery: no latency sample
		}
		now := time.Now()
		recs := stream.Msg().GetRecords()
		kept := recs[:0]
		for _, rec := range recs {
			end, ok := left[rec.GetPartition()]
			if !ok || rec.GetOffset() >= end {
				continue
			}
			kept = append(kept, rec)
			if rec.GetOffset()+1 >= end {
				delete(left, rec.GetPartition())
			}
		}
		r.count(kept, now.Sub(last), now)
		last = now
		if len(left) == 0 {
			return nil
		}
	}
	if err := stream.Err(); err != nil {
		return r.fail(err)
	}
	return fmt.Errorf("the agent ended the stream before the backlog was read")
}
