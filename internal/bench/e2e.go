package bench

// E2E: producers at a rate and tailing consumers on the same topic. The
// latency is a record's arrival at a consumer minus the send time it
// carries in its first 8 bytes; both ends run in this process, on one
// clock.

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// E2E runs f.Consumers consumers following the topic from its end, each on
// its share of the partitions (Subscribe streams over Connect; FetchBatches
// long polls from the high watermarks with f.Batches; franz-go clients
// consuming the partitions directly from their high watermarks over
// Kafka), then f.Producers producers at f.Rate, and reports the
// produce-to-consume latency: the time from a record being due at its
// producer to its arrival at a consumer. Producer ack latency and both
// throughputs are reported too.
func E2E(ctx context.Context, f Config) (*Result, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	if err := f.CheckRate(); err != nil {
		return nil, err
	}
	tg, t, done, err := openRun(ctx, &f)
	if err != nil {
		return nil, err
	}
	defer done()
	clock := startCPUClock()

	// Subscribe first: the consumers' start positions are fixed before any
	// producer sends.
	cctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	cnt := &counters{}
	var win window // set before the consumers run
	var ends map[int32]int64
	if f.isKafka() || f.Batches {
		if ends, err = tg.endOffsets(ctx, t.name); err != nil {
			return nil, err
		}
	}
	consumers := make([]*tailConsumer, min(f.Consumers, int(t.partitions)))
	for i := range consumers {
		var parts []int32
		for p := int32(i); p < t.partitions; p += int32(len(consumers)) {
			parts = append(parts, p)
		}
		tc := &tailConsumer{win: &win, cnt: cnt, stats: newFlowStats(), e2e: newFlowStats()}
		switch {
		case f.isKafka():
			tc.src, err = openKafkaTail(&f, t.name, parts, ends)
		case f.Batches:
			tc.src, err = openBatchTail(&f, t.name, parts, ends)
		default:
			tc.src, err = openConnectTail(cctx, &f, t.name, parts)
		}
		if err != nil {
			return nil, err
		}
		defer tc.src.close()
		consumers[i] = tc
	}
	win = newWindow(f.Warmup, f.Duration)
	var wg sync.WaitGroup
	for _, tc := range consumers {
		wg.Go(func() { tc.run(cctx) })
	}
	mw := watchMetrics(ctx, f.Metrics, win)
	stopProgress := startProgress(f.stderr(), f.Progress, win, cnt)
	pstats, err := runProducers(ctx, &f, t, win, nil, cnt)
	if err == nil {
		// Let the consumers catch the last records (they are counted only
		// if they arrive within the window anyway).
		deadline := time.Now().Add(2 * time.Second)
		for cnt.consumed.Load() < cnt.produced.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	stopConsumers()
	wg.Wait()
	stopProgress()
	if err != nil {
		return nil, err
	}
	agent, merr := mw.result()
	if ctx.Err() != nil {
		return nil, ErrInterrupted
	}
	if merr != nil {
		return nil, merr
	}
	cstats, e2e := newFlowStats(), newFlowStats()
	for _, tc := range consumers {
		if tc.err != nil {
			return nil, tc.err
		}
		cstats.merge(tc.stats)
		e2e.merge(tc.e2e)
	}
	r := newResult("e2e", tg.addr(), &f, t, win)
	r.Consumers = len(consumers)
	r.Produce = pstats.json(f.Duration.Seconds())
	r.Consume = cstats.json(f.Duration.Seconds())
	lat := latencyOf(e2e.hist)
	r.E2E = &lat
	r.setAgent(agent)
	clock.stamp(r)
	return r, nil
}

// tailSource delivers a tailing consumer's records, one response (a
// Subscribe message, or a poll's fetches) at a time.
type tailSource interface {
	// next calls each with every record of the next response and returns
	// true, or returns false once the source ended: err nil if ctx did.
	next(ctx context.Context, each func(key, value []byte)) (bool, error)
	close()
}

// tailConsumer follows some partitions from their end.
type tailConsumer struct {
	src   tailSource
	win   *window
	cnt   *counters
	stats *flowStats // records and bytes read; latency between responses
	e2e   *flowStats // produce-to-consume latency
	err   error
}

func (tc *tailConsumer) run(ctx context.Context) {
	last := time.Now()
	for {
		var n, bytes int64
		var in bool
		var now time.Time
		more, err := tc.src.next(ctx, func(key, value []byte) {
			if n == 0 {
				now = time.Now()
				in = tc.win.in(now)
			}
			n++
			bytes += int64(len(value) + len(key))
			if in && len(value) >= 8 {
				sent := int64(binary.BigEndian.Uint64(value))
				tc.e2e.hist.Record(now.UnixNano() - sent)
			}
		})
		if !more {
			if err != nil && ctx.Err() == nil {
				tc.cnt.errors.Add(1)
				tc.err = fmt.Errorf("a consumer's stream ended: %w", err)
			}
			return
		}
		if n == 0 {
			now = time.Now()
			in = tc.win.in(now)
		}
		tc.cnt.consumed.Add(n)
		tc.cnt.consumedBytes.Add(bytes)
		if in {
			tc.stats.records += n
			tc.stats.bytes += bytes
			tc.stats.hist.Record(now.Sub(last).Nanoseconds())
		}
		last = now
	}
}

// connectTail is a Subscribe stream from the partitions' ends.
type connectTail struct {
	cl     *Conn
	stream *connect.ServerStreamForClient[stratav1.SubscribeResponse]
}

func openConnectTail(ctx context.Context, f *Config, topic string, partitions []int32) (*connectTail, error) {
	cl, err := f.Dial()
	if err != nil {
		return nil, err
	}
	stream, err := cl.Consumer.Subscribe(ctx, connect.NewRequest(&stratav1.SubscribeRequest{
		Topic: topic, Partitions: partitions, Start: &stratav1.SubscribeRequest_Latest{Latest: true},
	}))
	if err != nil {
		cl.close()
		return nil, cl.explain(err, topic)
	}
	// The agent sends the headers once the start positions are fixed.
	stream.ResponseHeader()
	if err := stream.Err(); err != nil {
		cl.close()
		return nil, cl.explain(err, topic)
	}
	return &connectTail{cl: cl, stream: stream}, nil
}

func (c *connectTail) next(_ context.Context, each func(key, value []byte)) (bool, error) {
	if !c.stream.Receive() {
		return false, c.cl.explain(c.stream.Err(), "")
	}
	for c.stream.Msg().GetKeepAlive() {
		// Not a delivery: no latency sample.
		if !c.stream.Receive() {
			return false, c.cl.explain(c.stream.Err(), "")
		}
	}
	for _, r := range c.stream.Msg().GetRecords() {
		each(r.GetKey(), r.GetValue())
	}
	return true, nil
}

func (c *connectTail) close() {
	_ = c.stream.Close()
	c.cl.close()
}
