package bench

// Consume: catch-up reads. The backlog is what the topic held when the run
// began (after writing BacklogBytes into it, if asked), read from each
// partition's log start to that high watermark by Config.Consumers readers
// sharing the partitions.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// ConsumeOptions are the settings only Consume has.
type ConsumeOptions struct {
	// API is "subscribe" (one Subscribe stream per reader), "fetch" (one
	// Fetch of one partition at a time) or "batch" (one FetchBatches of all
	// the reader's partitions at a time; the backlog, if written, is then
	// written with the batch calls too, as Config.Batches says) over
	// Connect; over Kafka the readers always Fetch, with franz-go, and API
	// must be empty.
	API string
	// FetchBytes is the max_bytes of each Fetch or Subscribe message; over
	// Kafka and with API "batch", the most bytes of each partition in a
	// fetch (Kafka's max.partition.fetch.bytes, default 1 MiB).
	FetchBytes int64
	// FetchMaxBytes, over Kafka and with API "batch", is the most bytes of
	// a fetch over all its partitions (Kafka's fetch.max.bytes); 0 is
	// Kafka's default, 50 MiB. The agent lowers it to its
	// --max-fetch-bytes, as a Kafka broker lowers it to its own
	// fetch.max.bytes (KIP-541). Not used by "subscribe" and "fetch".
	FetchMaxBytes int64
	// BacklogBytes are written before reading when the topic is new, or
	// when BacklogGiven (the user asked for it on an existing topic).
	BacklogBytes int64
	BacklogGiven bool
}

// kafkaFetchMaxBytes is Kafka's default fetch.max.bytes (and franz-go's
// FetchMaxBytes).
const kafkaFetchMaxBytes = 50 << 20

func (o *ConsumeOptions) check(kafka bool) error {
	switch {
	case kafka && o.API != "":
		return flagErrorf("--api %q: not used with --kafka (Kafka readers always Fetch)", o.API)
	case !kafka && o.API != "subscribe" && o.API != "fetch" && o.API != "batch":
		return flagErrorf("--api %q: want subscribe, fetch or batch", o.API)
	case o.FetchBytes < 1 || o.FetchBytes > 1<<30:
		return flagErrorf("--fetch-bytes %d: want 1 to 1GiB", o.FetchBytes)
	case o.FetchMaxBytes < 0 || o.FetchMaxBytes > 1<<30:
		return flagErrorf("--fetch-max-bytes %d: want 1 to 1GiB", o.FetchMaxBytes)
	}
	return nil
}

// fetchMaxBytes is FetchMaxBytes with 0 as Kafka's default.
func (o *ConsumeOptions) fetchMaxBytes() int32 {
	if o.FetchMaxBytes == 0 {
		return kafkaFetchMaxBytes
	}
	return int32(o.FetchMaxBytes)
}

// Consume reads a backlog from its start as fast as the agent serves it
// and reports the read throughput (catch-up consumption). The run ends when
// the backlog is read or f.Duration passes; f.Warmup drops the first part
// of it from the results.
func Consume(ctx context.Context, f Config, o ConsumeOptions) (*Result, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	if err := o.check(f.isKafka()); err != nil {
		return nil, err
	}
	if o.API == "batch" {
		f.Batches = true // the backlog goes in as the readers take it out
	}
	tg, t, done, err := openRun(ctx, &f)
	if err != nil {
		return nil, err
	}
	defer done()

	cnt := &counters{}
	var bl Backlog
	if (t.created || o.BacklogGiven) && o.BacklogBytes > 0 {
		bl.Prefilled = true
		start := time.Now()
		target := o.BacklogBytes
		fill := window{start: start, end: start.Add(24 * time.Hour)}
		pf := f
		pf.Rate = 0
		stopProgress := startProgress(f.stderr(), f.Progress, fill, cnt)
		// Each producer asks before each request; the requests stop once
		// the backlog is covered, whatever is still in flight.
		var sent atomic.Int64
		perRequest := int64(f.Batch) * f.RecordSize
		_, err := runProducers(ctx, &pf, t, fill, func() bool { return sent.Add(perRequest) > target+perRequest-1 }, cnt)
		stopProgress()
		if err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ErrInterrupted
		}
		if cnt.errors.Load() > 0 && cnt.producedBytes.Load() < target {
			return nil, fmt.Errorf("writing the backlog failed: %d errors", cnt.errors.Load())
		}
		bl.PrefillSec = round3(time.Since(start).Seconds())
	}
	spans, err := tg.spans(ctx, t.name)
	if err != nil {
		return nil, err
	}
	// Each reader's share: partition -> [from, to).
	shares := make([]map[int32][2]int64, min(f.Consumers, int(t.partitions)))
	for i := range shares {
		shares[i] = map[int32][2]int64{}
	}
	for _, s := range spans {
		bl.Records += s.to - s.from
		bl.Bytes += s.bytes
		shares[int(s.partition)%len(shares)][s.partition] = [2]int64{s.from, s.to}
	}
	if bl.Records == 0 {
		return nil, fmt.Errorf("topic %s has no records to read; give --backlog-bytes to write some first", t.name)
	}

	cnt = &counters{}
	clock := startCPUClock() // the reads only, not the backlog's writing
	win := newWindow(f.Warmup, f.Duration)
	mw := watchMetrics(ctx, f.Metrics, win)
	rctx, cancel := context.WithDeadline(ctx, win.end)
	defer cancel()
	stopProgress := startProgress(f.stderr(), f.Progress, win, cnt)
	type reader struct {
		read  func(context.Context) error
		stats *flowStats
		err   error
	}
	readers := make([]*reader, 0, len(shares))
	var lastDone atomic.Int64
	var wg sync.WaitGroup
	for _, share := range shares {
		if len(share) == 0 {
			continue
		}
		r := &reader{stats: newFlowStats()}
		if f.isKafka() {
			kr := &kafkaReader{brokers: f.Kafka, topic: t.name, share: share, maxBytes: int32(o.FetchBytes), maxRequestBytes: o.fetchMaxBytes(), win: win, cnt: cnt, stats: r.stats}
			r.read = kr.read
		} else {
			rcl, err := f.Dial()
			if err != nil {
				stopProgress()
				return nil, err
			}
			defer rcl.close()
			cr := &catchUpReader{cl: rcl, topic: t.name, share: share, maxBytes: int32(o.FetchBytes), maxRequestBytes: o.fetchMaxBytes(), win: win, cnt: cnt, stats: r.stats}
			switch o.API {
			case "fetch":
				r.read = cr.fetch
			case "batch":
				r.read = cr.fetchBatches
			default:
				r.read = cr.subscribe
			}
		}
		readers = append(readers, r)
		wg.Go(func() {
			r.err = r.read(rctx)
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
		return nil, ErrInterrupted
	}
	stats := newFlowStats()
	for _, r := range readers {
		if r.err != nil && !cut {
			return nil, r.err
		}
		stats.merge(r.stats)
	}
	if f.isKafka() && stats.records == bl.Records {
		// ListOffsets gives no sizes: the backlog's bytes are those read.
		bl.Bytes = stats.bytes
	}
	// A run that finished before the window's end ends the metrics' too.
	if end.Before(win.end) {
		mw.endNow()
	}
	agent, err := mw.result()
	if err != nil {
		return nil, err
	}
	r := newResult("consume", tg.addr(), &f, t, win)
	r.API = o.API
	r.Producers = 0
	r.Duration = round3(seconds)
	r.Backlog = &bl
	r.Consume = stats.json(seconds)
	r.setAgent(agent)
	clock.stamp(r)
	return r, nil
}

// catchUpReader reads its share of the partitions up to their watermarks
// over Connect.
type catchUpReader struct {
	cl    *Conn
	topic string
	share map[int32][2]int64
	// maxBytes is each Fetch's or Subscribe message's max_bytes, or
	// FetchBatches' per partition; maxRequestBytes is FetchBatches' over
	// all partitions.
	maxBytes        int32
	maxRequestBytes int32
	win             window
	cnt             *counters
	stats           *flowStats
}

func (r *catchUpReader) count(recs []*stratav1.ConsumedRecord, latency time.Duration, now time.Time) {
	var bytes int64
	for _, rec := range recs {
		bytes += int64(len(rec.GetValue()) + len(rec.GetKey()))
		for _, h := range rec.GetHeaders() {
			bytes += int64(len(h.GetKey()) + len(h.GetValue()))
		}
	}
	r.countN(int64(len(recs)), bytes, latency, now)
}

// countN counts one response of n records of size bytes.
func (r *catchUpReader) countN(n, size int64, latency time.Duration, now time.Time) {
	r.cnt.consumed.Add(n)
	r.cnt.consumedBytes.Add(size)
	if r.win.in(now) {
		r.stats.records += n
		r.stats.bytes += size
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
			resp, err := r.cl.Consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{
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
	stream, err := r.cl.Consumer.Subscribe(ctx, connect.NewRequest(&stratav1.SubscribeRequest{
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
