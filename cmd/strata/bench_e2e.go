package main

// strata bench e2e: producers at a rate and tailing Subscribe streams on
// the same topic. The latency is a record's arrival at a consumer minus the
// send time it carries in its first 8 bytes; both ends run in this process,
// on one clock.

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

const benchE2EHelp = `Usage: strata bench e2e [flags]

Runs --consumers Subscribe streams following the topic from its end, each
on its share of the partitions, then --producers producers at --rate
records/s, and reports the produce-to-consume latency: the time from a
record being due at its producer to its arrival at a consumer (a record is
visible once its segment is committed, so this is at least the ack
latency). Producer ack latency and both throughputs are reported too.

The default --rate 0 produces flat out, which measures latency under
overload; give a rate below the agent's maximum (see strata bench produce)
for the latency at that load.

Examples:
  strata bench e2e --rate 20000
  strata bench e2e --rate 5000 --consumers 1 --json
`

func runBenchE2E(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata bench e2e"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var f benchFlags
	f.register(fs, 2*time.Second)
	positional, err := c.parseFlags(fs, benchE2EHelp, args)
	if err != nil {
		return err
	}
	if err := noArgs(cmd, positional); err != nil {
		return err
	}
	if err := f.check(cmd); err != nil {
		return err
	}
	if err := checkRate(cmd, &f); err != nil {
		return err
	}
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
	clock := startCPUClock()

	// Subscribe first; the streams are in place once their headers are in.
	cctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	cnt := &counters{}
	var win window // set before the consumers run
	consumers := make([]*tailConsumer, min(f.consumers, int(t.partitions)))
	for i := range consumers {
		ccl, err := f.dial(fs)
		if err != nil {
			return err
		}
		defer ccl.close()
		var parts []int32
		for p := int32(i); p < t.partitions; p += int32(len(consumers)) {
			parts = append(parts, p)
		}
		tc := &tailConsumer{cl: ccl, win: &win, cnt: cnt, stats: newFlowStats(), e2e: newFlowStats()}
		if err := tc.open(cctx, t.name, parts); err != nil {
			return err
		}
		consumers[i] = tc
	}
	win = newWindow(f.warmup, f.duration)
	var wg sync.WaitGroup
	for _, tc := range consumers {
		wg.Go(func() { tc.run(cctx) })
	}
	mw := watchMetrics(ctx, f.metrics, win)
	stopProgress := startProgress(c.stderr, f.showProgress(c), win, cnt)
	pstats, err := runProducers(ctx, &f, fs, t.name, win, nil, cnt)
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
		return err
	}
	agent, merr := mw.result()
	if ctx.Err() != nil {
		return errInterrupted
	}
	if merr != nil {
		return merr
	}
	cstats, e2e := newFlowStats(), newFlowStats()
	for _, tc := range consumers {
		if tc.err != nil {
			return tc.err
		}
		cstats.merge(tc.stats)
		e2e.merge(tc.e2e)
	}
	r := newResult("e2e", cl, &f, t, win)
	r.Consumers = len(consumers)
	r.Produce = pstats.json(f.duration.Seconds())
	r.Consume = cstats.json(f.duration.Seconds())
	lat := latencyOf(e2e.hist)
	r.E2E = &lat
	r.Agent = agent
	return finish(c, &f, r, clock)
}

// tailConsumer follows some partitions from their end over Subscribe.
type tailConsumer struct {
	cl     *client
	win    *window
	cnt    *counters
	stats  *flowStats // records and bytes read; latency between messages
	e2e    *flowStats // produce-to-consume latency
	stream *connect.ServerStreamForClient[stratav1.SubscribeResponse]
	err    error
}

func (tc *tailConsumer) open(ctx context.Context, topic string, partitions []int32) error {
	stream, err := tc.cl.consumer.Subscribe(ctx, connect.NewRequest(&stratav1.SubscribeRequest{
		Topic: topic, Partitions: partitions, Start: &stratav1.SubscribeRequest_Latest{Latest: true},
	}))
	if err != nil {
		return tc.cl.explain(err, topic)
	}
	// The agent sends the headers once the start positions are fixed.
	stream.ResponseHeader()
	if err := stream.Err(); err != nil {
		return tc.cl.explain(err, topic)
	}
	tc.stream = stream
	return nil
}

func (tc *tailConsumer) run(ctx context.Context) {
	defer tc.stream.Close()
	last := time.Now()
	for tc.stream.Receive() {
		if tc.stream.Msg().GetKeepAlive() {
			continue // not a delivery: no latency sample
		}
		now := time.Now()
		in := tc.win.in(now)
		var n, bytes int64
		for _, r := range tc.stream.Msg().GetRecords() {
			v := r.GetValue()
			n++
			bytes += int64(len(v) + len(r.GetKey()))
			if in && len(v) >= 8 {
				sent := int64(binary.BigEndian.Uint64(v))
				tc.e2e.hist.Record(now.UnixNano() - sent)
			}
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
	if err := tc.stream.Err(); err != nil && ctx.Err() == nil {
		tc.cnt.errors.Add(1)
		tc.err = fmt.Errorf("a consumer's stream ended: %w", tc.cl.explain(err, ""))
	}
}
