package main

// strata bench produce, and the producers that e2e and the consume
// backlog also use: each producer has its own connection and one
// ProduceStream with up to --max-inflight requests unanswered, the way
// `strata produce` pipelines, so one producer keeps several flushes busy.

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	mrand "math/rand/v2"
	"sync"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

const benchProduceHelp = `Usage: strata bench produce [flags]

Runs --producers producers against the agent for --warmup then --duration,
and reports the acknowledged throughput and the ack latency: the time from
a request being due (rate-limited) or sent (--rate 0) to its answer, which
comes once the records are in the store and committed to the index.

Each producer has its own connection and ProduceStream with up to
--max-inflight requests of --batch records unanswered. Records have no key:
the agent puts each request's records in one partition, moving on per
request. With --rate the producers share the rate evenly; with --rate 0
they send as fast as answers come back.

The topic is --topic if it exists, created with --partitions if it does
not; without --topic a new topic bench-<random> is created and deleted at
the end (--keep keeps it).

Examples:
  strata bench produce --duration 30s
  strata bench produce --rate 50000 --record-size 512 --json
  strata bench produce --metrics http://127.0.0.1:7071/metrics
`

func runBenchProduce(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata bench produce"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var f benchFlags
	f.register(fs, 2*time.Second)
	fs.Lookup("consumers").Usage = "unused by produce"
	positional, err := c.parseFlags(fs, benchProduceHelp, args)
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

	cnt := &counters{}
	win := newWindow(f.warmup, f.duration)
	mw := watchMetrics(ctx, f.metrics, win)
	stopProgress := startProgress(c.stderr, f.showProgress(c), win, cnt)
	stats, err := runProducers(ctx, &f, fs, t.name, win, nil, cnt)
	stopProgress()
	if err != nil {
		return err
	}
	agent, err := mw.result()
	if ctx.Err() != nil {
		return errInterrupted
	}
	if err != nil {
		return err
	}
	r := newResult("produce", cl, &f, t, win)
	r.Consumers = 0
	r.Produce = stats.json(f.duration.Seconds())
	r.Agent = agent
	return finish(c, &f, r, clock)
}

func newResult(command string, cl *client, f *benchFlags, t *benchTopic, win window) *benchResult {
	return &benchResult{
		Command:     command,
		Addr:        cl.addr,
		Topic:       t.name,
		Partitions:  t.partitions,
		Producers:   f.producers,
		Consumers:   f.consumers,
		RecordSize:  int64(f.recordSize),
		Batch:       f.batch,
		TargetRate:  f.rate,
		Duration:    f.duration.Seconds(),
		Warmup:      f.warmup.Seconds(),
		Start:       win.start.UTC(),
		Compression: f.gzip,
	}
}

// checkRate refuses a rate so low that a producer would send less than
// one request per measured window.
func checkRate(cmd string, f *benchFlags) error {
	if f.rate == 0 {
		return nil
	}
	if every := requestInterval(f); every > f.duration {
		return usagef(cmd, "--rate %g is too low for --batch %d and --producers %d: each producer would send one request every %s; lower --batch or --producers",
			f.rate, f.batch, f.producers, every.Round(time.Millisecond))
	}
	return nil
}

// requestInterval is how often each producer sends at --rate.
func requestInterval(f *benchFlags) time.Duration {
	perProducer := f.rate / float64(f.producers)
	return time.Duration(float64(f.batch) / perProducer * float64(time.Second))
}

// runProducers runs the producers until the window ends (or stop says so)
// and returns their merged results over the window.
func runProducers(ctx context.Context, f *benchFlags, fs *flag.FlagSet, topic string, win window, stop func() bool, cnt *counters) (*flowStats, error) {
	var interval time.Duration
	if f.rate > 0 {
		interval = requestInterval(f)
	}
	begin := time.Now()
	producers := make([]*benchProducer, f.producers)
	for i := range producers {
		cl, err := f.dial(fs)
		if err != nil {
			return nil, err
		}
		defer cl.close()
		p := &benchProducer{
			cl: cl, batch: f.batch, size: int(f.recordSize), inflight: f.inflight,
			interval: interval, win: win, stop: stop, cnt: cnt, stats: newFlowStats(),
			// Spread the producers' requests over the interval.
			due: begin.Add(time.Duration(i) * interval / time.Duration(f.producers)),
		}
		p.prepare(topic, uint64(i))
		producers[i] = p
	}
	var wg sync.WaitGroup
	for _, p := range producers {
		wg.Go(func() { p.run(ctx) })
	}
	wg.Wait()
	total := newFlowStats()
	for _, p := range producers {
		total.merge(p.stats)
	}
	return total, nil
}

// benchProducer is one producer: a connection and its ProduceStream.
type benchProducer struct {
	cl       *client
	batch    int
	size     int
	inflight int
	interval time.Duration // between requests; 0 sends flat out
	due      time.Time     // when the next request is due, with interval
	win      window
	stop     func() bool
	cnt      *counters
	stats    *flowStats // written by the receiving goroutine only

	values []byte // the batch's values, back to back
	req    *stratav1.ProduceStreamRequest
	nextID uint64
}

// sentRequest is a request waiting for its answer.
type sentRequest struct {
	t0      time.Time
	records int
}

// prepare builds the request sent over and over: the values are random
// bytes (incompressible), and each starts with its send time, written
// just before the request goes out. Send marshals the message before it
// returns, so the same request can be changed for the next send.
func (p *benchProducer) prepare(topic string, seed uint64) {
	r := mrand.New(mrand.NewPCG(seed, uint64(time.Now().UnixNano())))
	p.values = make([]byte, p.batch*p.size)
	for i := 0; i+8 <= len(p.values); i += 8 {
		binary.LittleEndian.PutUint64(p.values[i:], r.Uint64())
	}
	recs := make([]*stratav1.Record, p.batch)
	for i := range recs {
		recs[i] = &stratav1.Record{Value: p.values[i*p.size : (i+1)*p.size]}
	}
	p.req = &stratav1.ProduceStreamRequest{Request: &stratav1.ProduceRequest{
		Topics: []*stratav1.TopicRecords{{Topic: topic, Records: recs}},
	}}
}

func (p *benchProducer) run(ctx context.Context) {
	for ctx.Err() == nil {
		if !p.session(ctx) {
			return
		}
		// The stream broke (the error is counted): open another.
		if sleepCtx(ctx, 100*time.Millisecond) != nil {
			return
		}
	}
}

// session runs one stream. It returns true if the stream broke before the
// producer was done.
func (p *benchProducer) session(ctx context.Context) bool {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream := p.cl.producer.ProduceStream(sctx)
	inflight := make(chan sentRequest, p.inflight)
	recvDone := make(chan struct{})
	broken := false
	go func() {
		defer close(recvDone)
		broken = p.receive(stream, inflight)
	}()
	finished := false
loop:
	for {
		var t0 time.Time
		if p.interval > 0 {
			if sleepUntil(ctx, p.due) != nil {
				break
			}
			t0 = p.due
			p.due = p.due.Add(p.interval)
		} else {
			t0 = time.Now()
		}
		if !t0.Before(p.win.end) || (p.stop != nil && p.stop()) || ctx.Err() != nil {
			finished = true
			break
		}
		for i := 0; i < p.batch; i++ {
			binary.BigEndian.PutUint64(p.values[i*p.size:], uint64(t0.UnixNano()))
		}
		p.nextID++
		p.req.RequestId = p.nextID
		select {
		case inflight <- sentRequest{t0: t0, records: p.batch}:
		case <-recvDone:
			break loop
		}
		if err := stream.Send(p.req); err != nil {
			break // the receiver meets the error and counts it
		}
	}
	close(inflight)
	_ = stream.CloseRequest()
	<-recvDone
	_ = stream.CloseResponse()
	return broken && !finished && ctx.Err() == nil
}

// receive takes the answers in order and counts them; it reports whether
// the stream broke.
func (p *benchProducer) receive(stream *connect.BidiStreamForClient[stratav1.ProduceStreamRequest, stratav1.ProduceStreamResponse], inflight <-chan sentRequest) bool {
	for s := range inflight {
		resp, err := stream.Receive()
		now := time.Now()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = connect.NewError(connect.CodeUnavailable, errors.New("the agent ended the stream"))
			}
			if p.win.in(now) && !errors.Is(err, context.Canceled) {
				p.stats.errors[errorCode(err)]++
			}
			p.cnt.errors.Add(1)
			return true
		}
		if e := resp.GetError(); e != nil {
			if p.win.in(now) {
				p.stats.errors[e.GetCode()]++
			}
			p.cnt.errors.Add(1)
			continue
		}
		n := int64(s.records)
		p.cnt.produced.Add(n)
		p.cnt.producedBytes.Add(n * int64(p.size))
		if p.win.in(now) {
			p.stats.records += n
			p.stats.bytes += n * int64(p.size)
			p.stats.hist.Record(now.Sub(s.t0).Nanoseconds())
		}
	}
	return false
}
