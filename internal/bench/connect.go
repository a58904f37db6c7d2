package bench

// The Connect side: the agent's public API, as strata produce and consume
// speak it. Each producer has its own connection and one ProduceStream with
// up to Config.Inflight requests unanswered, the way `strata produce`
// pipelines, so one producer keeps several flushes busy.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// Conn is one connection to an agent's public API.
type Conn struct {
	// Addr is the agent's base URL, for results and messages.
	Addr     string
	Admin    stratav1connect.AdminServiceClient
	Producer stratav1connect.ProducerServiceClient
	Consumer stratav1connect.ConsumerServiceClient
	// Explain turns an RPC error into a message a person can act on; topic,
	// when not empty, is the topic the call was about. Nil leaves errors
	// as they are.
	Explain func(err error, topic string) error
	// Close releases the connection; nil if there is nothing to release.
	Close func()
}

// Dialer opens a new Conn. Nothing needs to be sent yet.
type Dialer func() (*Conn, error)

func (c *Conn) explain(err error, topic string) error {
	if err == nil || c.Explain == nil {
		return err
	}
	return c.Explain(err, topic)
}

func (c *Conn) close() {
	if c.Close != nil {
		c.Close()
	}
}

// errorCode is the Connect code of a failure, for the error counts.
func errorCode(err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return connect.CodeCanceled.String()
	}
	return connect.CodeOf(err).String()
}

func newTopicName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "bench-" + hex.EncodeToString(b[:])
}

// setupTopic finds or creates the topic named by Topic, or a fresh one.
func setupTopic(ctx context.Context, cl *Conn, f *Config) (*benchTopic, error) {
	name := f.Topic
	if name == "" {
		name = newTopicName()
	} else {
		desc, err := cl.Admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: name}))
		if err == nil {
			n := desc.Msg.GetTopic().GetPartitions()
			if f.PartitionsGiven && int(n) != f.Partitions {
				return nil, flagErrorf("--partitions %d: topic %s exists with %d partition%s", f.Partitions, name, n, plural(int(n)))
			}
			return &benchTopic{name: name, partitions: n}, nil
		}
		if connect.CodeOf(err) != connect.CodeNotFound {
			return nil, cl.explain(err, "")
		}
	}
	resp, err := cl.Admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: name, Partitions: int32(f.Partitions)}))
	if err != nil {
		return nil, fmt.Errorf("create topic %s: %w", name, cl.explain(err, ""))
	}
	return &benchTopic{name: name, partitions: resp.Msg.GetTopic().GetPartitions(), created: true}, nil
}

// teardown deletes a topic the run created, unless keep.
func (t *benchTopic) teardown(cl *Conn, keep bool, stderr io.Writer) {
	if !t.created || keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Admin.DeleteTopic(ctx, connect.NewRequest(&stratav1.DeleteTopicRequest{Name: t.name})); err != nil {
		fmt.Fprintf(stderr, "strata bench: could not delete topic %s: %v\n", t.name, cl.explain(err, t.name))
	}
}

// runProducers runs the producers until the window ends (or stop says so)
// and returns their merged results over the window.
func runProducers(ctx context.Context, f *Config, t *benchTopic, win window, stop func() bool, cnt *counters) (*flowStats, error) {
	if f.isKafka() {
		return runKafkaProducers(ctx, f, t, win, stop, cnt)
	}
	if f.Batches {
		return runBatchProducers(ctx, f, t, win, stop, cnt)
	}
	var interval time.Duration
	if f.Rate > 0 {
		interval = f.requestInterval()
	}
	begin := time.Now()
	producers := make([]*connectProducer, f.Producers)
	for i := range producers {
		cl, err := f.Dial()
		if err != nil {
			return nil, err
		}
		defer cl.close()
		p := &connectProducer{
			cl: cl, batch: f.Batch, size: int(f.RecordSize), inflight: f.Inflight,
			interval: interval, win: win, stop: stop, cnt: cnt, stats: newFlowStats(),
			// Spread the producers' requests over the interval.
			due: begin.Add(time.Duration(i) * interval / time.Duration(f.Producers)),
		}
		p.prepare(t.name, uint64(i))
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

// randomValues is n values of size random bytes (incompressible), back to
// back.
func randomValues(seed uint64, n, size int) []byte {
	r := mrand.New(mrand.NewPCG(seed, uint64(time.Now().UnixNano())))
	values := make([]byte, n*size)
	for i := 0; i+8 <= len(values); i += 8 {
		binary.LittleEndian.PutUint64(values[i:], r.Uint64())
	}
	return values
}

// connectProducer is one producer: a connection and its ProduceStream.
type connectProducer struct {
	cl       *Conn
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
func (p *connectProducer) prepare(topic string, seed uint64) {
	p.values = randomValues(seed, p.batch, p.size)
	recs := make([]*stratav1.Record, p.batch)
	for i := range recs {
		recs[i] = &stratav1.Record{Value: p.values[i*p.size : (i+1)*p.size]}
	}
	p.req = &stratav1.ProduceStreamRequest{Request: &stratav1.ProduceRequest{
		Topics: []*stratav1.TopicRecords{{Topic: topic, Records: recs}},
	}}
}

func (p *connectProducer) run(ctx context.Context) {
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
func (p *connectProducer) session(ctx context.Context) bool {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream := p.cl.Producer.ProduceStream(sctx)
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
func (p *connectProducer) receive(stream *connect.BidiStreamForClient[stratav1.ProduceStreamRequest, stratav1.ProduceStreamResponse], inflight <-chan sentRequest) bool {
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
