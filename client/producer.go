package client

// Producer: Kafka's producer over ProducerService.ProduceStream. Records
// gather into one batch per partition (linger, batch size); a sender
// goroutine packs ready batches of many partitions into requests and
// pipelines them on one stream, which the agent appends in order; a
// receiver takes the answers, in order, and calls each record's promise.
//
// Idempotence (the default; KIP-98): the producer gets an id and epoch from
// InitProducerId and numbers each partition's records; a batch keeps its
// sequence numbers across retries, so a retry of a batch that was written
// is answered with its first offsets instead of written again. Order per
// partition holds with up to 5 batches in flight: after a failure the
// partition sends nothing until its in-flight batches are back, then resends
// from the oldest unacknowledged batch, in order (a later batch that arrived
// first was refused with OUT_OF_RANGE, as it left a gap). A partition that
// has not acknowledged a batch in the current epoch gets one batch at a
// time: a partition with no state for the producer takes any sequence
// (KIP-360), so two batches in flight there could land in either order.
// When a batch is refused before it was written (a record over
// max.message.bytes, a deleted topic), its partition's later batches are
// numbered again from its sequence once none is in flight. When a batch
// that may have been written is given up on (delivery timeout), or a gap
// appears that no earlier batch explains (the partition lost the
// producer's state), the producer waits for its in-flight requests, bumps
// its epoch (InitProducerId with its id, KIP-360) and numbers every
// unacknowledged batch from 0 again. (A batch of another partition that
// failed retryably and waits for its retry at that moment is then sent in
// the new epoch; had its first attempt been written, it is written twice:
// Kafka's clients share this edge, which needs a batch given up on first.)

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/internal/kafkahash"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// ErrProducerClosed fails the records given to a Producer after Close, and
// those Close could not deliver before its context ended.
var ErrProducerClosed = errors.New("producer closed")

// Compression is how produce requests are compressed on the wire, on top
// of BatchCompression's compression of the record batches inside them.
// (Transactional producers send records, which the agent stores as the
// topic's compression.type says.)
type Compression int

const (
	// CompressionNone sends requests as they are (the default).
	CompressionNone Compression = iota
	// CompressionGzip gzips every request message (Connect's gzip), which
	// every agent accepts.
	CompressionGzip
)

// ProducerOpt configures a Producer (NewProducer).
type ProducerOpt interface{ apply(*producerConfig) }

type producerOptFunc func(*producerConfig)

func (f producerOptFunc) apply(c *producerConfig) { f(c) }

type producerConfig struct {
	connectOpts       []connect.ClientOption
	linger            time.Duration
	batchMaxBytes     int
	batchMaxRecords   int
	maxRequestBytes   int
	inflightPerPart   int
	inflightRequests  int
	maxBufferedBytes  int64
	idempotent        bool
	retryBackoffMin   time.Duration
	retryBackoffMax   time.Duration
	deliveryTimeout   time.Duration
	requestTimeout    time.Duration
	manualPartitioner bool
	compression       Compression
	batchCodec        BatchCodec
	metadataMaxAge    time.Duration
	log               *slog.Logger
	recordPath        bool          // tests: records on ProduceStream, as transactions send them
	transactionalID   string        // txn.go
	txnTimeout        time.Duration // txn.go
}

// Linger is how long a batch waits for more records before it is sent
// (Kafka's linger.ms); default 5ms. A batch also goes out when it is full.
func Linger(d time.Duration) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.linger = d })
}

// BatchMaxBytes bounds the record bytes of one partition's batch (Kafka's
// batch.size); default 1 MiB. A single record larger than it gets a batch
// of its own.
func BatchMaxBytes(n int) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.batchMaxBytes = n })
}

// BatchMaxRecords bounds the records of one partition's batch; default 0,
// no bound but BatchMaxBytes.
func BatchMaxRecords(n int) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.batchMaxRecords = n })
}

// MaxRequestBytes bounds the record bytes of one request, of many
// partitions' batches (Kafka's max.request.size); default 8 MiB. A record
// over it fails. The agent's max-request-bytes (32 MiB) must be larger.
func MaxRequestBytes(n int) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.maxRequestBytes = n })
}

// MaxInFlightPerPartition bounds the batches of one partition sent and not
// yet answered (Kafka's max.in.flight.requests.per.connection); default 5,
// at most 5 when idempotent: the agent remembers a producer's last 5
// batches per partition, which is what lets it recognize any retried one.
func MaxInFlightPerPartition(n int) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.inflightPerPart = n })
}

// MaxBufferedBytes bounds the record bytes produced and not yet answered
// (Kafka's buffer.memory); Produce blocks while they would exceed it.
// Default 64 MiB.
func MaxBufferedBytes(n int64) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.maxBufferedBytes = n })
}

// DisableIdempotence sends plain requests: no InitProducerId, no sequence
// numbers. A retried batch that had been written is then written again
// (at least once), and retries may reorder a partition's batches.
func DisableIdempotence() ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.idempotent = false })
}

// RetryBackoff is the wait before retrying after a retryable error, from
// min doubling up to max (Kafka's retry.backoff.ms and
// retry.backoff.max.ms); default 100ms to 1s.
func RetryBackoff(min, max time.Duration) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.retryBackoffMin, c.retryBackoffMax = min, max })
}

// DeliveryTimeout bounds the time from Produce to a record's result (Kafka's
// delivery.timeout.ms); a batch not acknowledged by then fails with its last
// error, and it may or may not have been written. Default 2 minutes.
func DeliveryTimeout(d time.Duration) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.deliveryTimeout = d })
}

// RequestTimeout is how long a request may go unanswered before the stream
// is dropped and its batches retried on a new one (Kafka's
// request.timeout.ms); default 30s. The agent answers after its commit,
// which it retries for its commit-timeout (10s by default).
func RequestTimeout(d time.Duration) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.requestTimeout = d })
}

// ManualPartitioner sends every record to the partition its Partition
// field names, instead of Kafka's default partitioner (murmur2 of the key,
// sticky partitions for records without one).
func ManualPartitioner() ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.manualPartitioner = true })
}

// RequestCompression compresses produce requests on the wire.
func RequestCompression(c Compression) ProducerOpt {
	return producerOptFunc(func(cfg *producerConfig) { cfg.compression = c })
}

// BatchCompression compresses each partition's record batch with codec
// (Kafka's compression.type; default none) before it is sent: the agent
// stores the batch as it comes, so the topic's compression.type does not
// apply, and consumers decompress. A batch that a codec would not shrink
// is sent uncompressed, as Kafka's producers do. Transactional producers
// send records, not batches (see the package doc), and ignore it.
func BatchCompression(codec BatchCodec) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.batchCodec = codec })
}

// ConnectOptions are passed to the Connect clients (e.g. connect.WithGRPC()).
func ConnectOptions(opts ...connect.ClientOption) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.connectOpts = append(c.connectOpts, opts...) })
}

// ProducerLogger receives warnings (retried errors, epoch bumps); nil
// discards them.
func ProducerLogger(l *slog.Logger) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.log = l })
}

func (c *producerConfig) check() error {
	var errs []error
	bad := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	bad(c.linger >= 0, "Linger %s: want 0 or more", c.linger)
	bad(c.batchMaxBytes > 0, "BatchMaxBytes %d: want more than 0", c.batchMaxBytes)
	bad(c.batchMaxRecords >= 0, "BatchMaxRecords %d: want 0 (no bound) or more", c.batchMaxRecords)
	bad(c.maxRequestBytes >= c.batchMaxBytes, "MaxRequestBytes %d: want at least BatchMaxBytes %d", c.maxRequestBytes, c.batchMaxBytes)
	bad(c.inflightPerPart >= 1, "MaxInFlightPerPartition %d: want at least 1", c.inflightPerPart)
	bad(!c.idempotent || c.inflightPerPart <= 5, "MaxInFlightPerPartition %d: at most 5 with idempotence (the agent remembers 5 batches per partition)", c.inflightPerPart)
	bad(c.maxBufferedBytes >= int64(c.maxRequestBytes), "MaxBufferedBytes %d: want at least MaxRequestBytes %d", c.maxBufferedBytes, c.maxRequestBytes)
	bad(c.retryBackoffMin > 0 && c.retryBackoffMax >= c.retryBackoffMin, "RetryBackoff %s, %s: want 0 < min <= max", c.retryBackoffMin, c.retryBackoffMax)
	bad(c.deliveryTimeout > 0, "DeliveryTimeout %s: want more than 0", c.deliveryTimeout)
	bad(c.requestTimeout > 0, "RequestTimeout %s: want more than 0", c.requestTimeout)
	bad(c.transactionalID == "" || c.idempotent, "TransactionalID %q: transactions need idempotence", c.transactionalID)
	bad(c.txnTimeout >= 0, "TransactionalID timeout %s: want 0 (the agent's default) or more", c.txnTimeout)
	bad(c.compression == CompressionNone || c.compression == CompressionGzip, "RequestCompression %d: unknown", c.compression)
	if _, err := c.batchCodec.compressor(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// recordOverhead approximates a record's framing in the buffer accounting.
const recordOverhead = 24

// Producer writes records to any topics, Kafka style. Produce, Flush and
// Close may be called from any goroutine.
type Producer struct {
	cfg   producerConfig
	svc   stratav1connect.ProducerServiceClient
	admin stratav1connect.AdminServiceClient
	log   *slog.Logger
	// batchPath: batches go as Kafka record batches on
	// ProduceBatchesStream, encoded (and compressed with comp) here;
	// otherwise, for transactional producers, as records on ProduceStream.
	batchPath bool
	comp      kgo.Compressor

	runCtx context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{} // cap 1: the sender has something to do

	// deliverMu serializes promise calls, so a partition's promises run in
	// order even when several goroutines answer batches.
	deliverMu sync.Mutex

	mu          sync.Mutex
	topics      map[string]*producerTopic
	parts       []*producerPartition // every partition known, for the sender's round robin
	rr          int
	pid         int64
	epoch       int16
	needID      bool // InitProducerId before the next request (start, or a bump)
	buffered    int64
	outstanding int // records produced whose promise has not returned
	flushing    int // Flush calls waiting: lingering batches go at once
	closing     bool
	fatal       error
	changed     chan struct{} // closed and replaced when buffer or outstanding shrink
	stream      *produceStream
	nextReqID   uint64
	backoff     time.Duration
	retryAt     time.Time
	deliveries  []func()

	txn txnState // a transactional producer's transaction (txn.go)
}

type producerTopic struct {
	name    string
	parts   []*producerPartition
	sticky  *producerPartition // where records without a key go now (KIP-480)
	last    *producerPartition // the sticky partition before, avoided next
	fetched time.Time
}

type producerPartition struct {
	topic     string
	partition int32
	t         *producerTopic
	batches   []*producerBatch // unacknowledged, oldest first; the last may be open
	open      *producerBatch   // still taking records
	inflight  int
	nextSeq   int32
	acked     bool // a batch was acknowledged in the current epoch
	draining  bool // a batch failed: nothing is sent until in-flight ones are back
	// rewind: a batch that was certainly not written was given up on; once
	// nothing of the partition is in flight, its later batches are
	// numbered again from rewindSeq, closing the hole without a bump.
	rewind    bool
	rewindSeq int32
}

type batchState int

const (
	batchQueued batchState = iota
	batchInFlight
	batchDone
)

type producerBatch struct {
	part    *producerPartition
	records []pendingRecord
	bytes   int
	created time.Time
	sealed  bool // has a sequence (first sent)
	seq     int32
	epoch   int16
	state   batchState
	alone   bool  // send in a request of its own (to learn which batch an error is about)
	lastErr error // of the last failed attempt
	// results: the record path's answer.
	results []*stratav1.RecordResult
	// The batch path: body is the records encoded once, by the sender,
	// at first send; base the offset of the first record once answered.
	body *encodedBody
	base int64
}

type pendingRecord struct {
	r       *Record
	wire    *stratav1.Record // the record path's
	ts      int64            // the batch path's timestamp, ms since the Unix epoch
	size    int
	promise func(*Record, error)
}

// produceRequest is a request on a stream, waiting for its answer.
type produceRequest struct {
	id      uint64
	batches []*producerBatch // in the order of their records in the request
	msg     *stratav1.ProduceStreamRequest
	// The batch path's: each batch's producer fields for this attempt,
	// taken when the batches were, and the message the sender encodes.
	frames   []batchFrame
	batchMsg *stratav1.ProduceBatchesStreamRequest
	sent     time.Time
}

// batchFrame is a batch's producer fields in one request (-1s without
// idempotence).
type batchFrame struct {
	pid   int64
	epoch int16
	seq   int32
}

// produceStream is ProduceStream or ProduceBatchesStream: send, receive
// (as a streamAnswer) and close the response.
type produceStream struct {
	send      func(*produceRequest) error
	recv      func() (streamAnswer, error)
	closeResp func() error
	cancel    context.CancelFunc
	closeOnce sync.Once
	inflight  []*produceRequest
	failed    bool
}

// streamAnswer is one answer of either stream.
type streamAnswer struct {
	id      uint64
	err     *stratav1.ProduceError
	records *stratav1.ProduceResponse
	batches *stratav1.ProduceBatchesResponse
}

// NewProducer returns a producer that sends to the agent at baseURL (e.g.
// http://127.0.0.1:7070) over httpClient, which must speak HTTP/2 (h2c with
// prior knowledge for http://, or TLS): ProduceStream is a bidirectional
// stream. Nothing is sent before the first record.
func NewProducer(httpClient connect.HTTPClient, baseURL string, opts ...ProducerOpt) (*Producer, error) {
	cfg := producerConfig{
		linger:           5 * time.Millisecond,
		batchMaxBytes:    1 << 20,
		maxRequestBytes:  8 << 20,
		inflightPerPart:  5,
		inflightRequests: 32,
		maxBufferedBytes: 64 << 20,
		idempotent:       true,
		retryBackoffMin:  100 * time.Millisecond,
		retryBackoffMax:  time.Second,
		deliveryTimeout:  2 * time.Minute,
		requestTimeout:   30 * time.Second,
		metadataMaxAge:   time.Minute,
	}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("client.NewProducer: %w", err)
	}
	if baseURL == "" {
		return nil, errors.New("client.NewProducer: empty base URL")
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	if cfg.compression == CompressionGzip {
		cfg.connectOpts = append(cfg.connectOpts, connect.WithSendGzip())
	}
	log := cfg.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	comp, _ := cfg.batchCodec.compressor() // checked above
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{
		cfg:     cfg,
		svc:     stratav1connect.NewProducerServiceClient(httpClient, baseURL, cfg.connectOpts...),
		admin:   stratav1connect.NewAdminServiceClient(httpClient, baseURL, cfg.connectOpts...),
		log:     log,
		runCtx:  ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		topics:  map[string]*producerTopic{},
		needID:  cfg.idempotent,
		changed: make(chan struct{}),
		backoff: cfg.retryBackoffMin,
	}
	p.batchPath, p.comp = cfg.transactionalID == "" && !cfg.recordPath, comp
	go p.run()
	return p, nil
}

// ProducerID is the producer's id and epoch, once it has them (0 and 0
// before its first request, and without idempotence).
func (p *Producer) ProducerID() (int64, int16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid, p.epoch
}

// Produce hands r to the producer. promise (may be nil) is called once
// with r and nil when r is durable, its Partition, Offset and Timestamp
// then set, or with an error: a *connect.Error with the agent's code, a
// context error, or ErrProducerClosed. Retryable errors are retried until
// DeliveryTimeout; an error the agent gives for a record (a record over
// the topic's max.message.bytes) fails the records batched with it, those
// of the same partition produced within one batch. The promises of one partition are
// called in the order of their Produce calls, one at a time, on a goroutine
// of the producer: they must be quick and must not call Flush or Close.
//
// Produce blocks while the buffer is full (MaxBufferedBytes), and the first
// record of a topic waits for the topic's partition count; if ctx ends
// first, the promise gets ctx's error. r's Topic is required; Key, Value,
// Headers and Timestamp (in milliseconds; zero: the producer's clock when
// Produce is called, as Kafka's producer stamps records, or the agent's for
// a transactional producer) are sent; Partition only with
// ManualPartitioner. r must not be changed until its promise is called.
func (p *Producer) Produce(ctx context.Context, r *Record, promise func(*Record, error)) {
	if promise == nil {
		promise = func(*Record, error) {}
	}
	// Called at once, not through deliver: Produce may run inside a
	// promise, which holds deliverMu.
	fail := func(err error) { promise(r, err) }
	if r == nil || r.Topic == "" {
		fail(errors.New("client.Producer: a record needs a topic"))
		return
	}
	size := len(r.Key) + len(r.Value) + recordOverhead
	for _, h := range r.Headers {
		size += len(h.Key) + len(h.Value) + 8
	}
	if size > p.cfg.maxRequestBytes {
		fail(fmt.Errorf("client.Producer: record of %d bytes is over MaxRequestBytes %d", size, p.cfg.maxRequestBytes))
		return
	}
	t, err := p.topic(ctx, r.Topic)
	if err != nil {
		fail(err)
		return
	}

	p.mu.Lock()
	for p.fatal == nil && !p.closing && p.buffered > 0 && p.buffered+int64(size) > p.cfg.maxBufferedBytes {
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			fail(ctx.Err())
			return
		}
		p.mu.Lock()
	}
	if err := p.refuseLocked(); err != nil {
		p.mu.Unlock()
		fail(err)
		return
	}
	part, err := p.partitionLocked(t, r)
	if err != nil {
		p.mu.Unlock()
		fail(err)
		return
	}
	if p.transactional() {
		p.mu.Unlock()
		wrapped, err := p.addToTxn(ctx, part, promise)
		if err != nil {
			fail(err)
			return
		}
		promise = wrapped
		p.mu.Lock()
		if err := p.refuseLocked(); err != nil {
			p.mu.Unlock()
			fail(err)
			return
		}
	}
	pr := pendingRecord{r: r, size: size, promise: promise}
	if p.batchPath {
		// The batch carries its records' timestamps: an unset one is
		// the producer's clock now, as Kafka's producer sets it.
		if r.Timestamp.IsZero() {
			pr.ts = time.Now().UnixMilli()
		} else {
			pr.ts = r.Timestamp.UnixMilli()
		}
	} else {
		pr.wire = &stratav1.Record{Key: r.Key, Value: r.Value, Partition: &part.partition}
		if !r.Timestamp.IsZero() {
			pr.wire.Timestamp = timestamppb.New(r.Timestamp)
		}
		for _, h := range r.Headers {
			pr.wire.Headers = append(pr.wire.Headers, &stratav1.Header{Key: h.Key, Value: h.Value})
		}
	}
	b := part.open
	wake := p.flushing > 0
	if b == nil || (b.bytes+size > p.cfg.batchMaxBytes && len(b.records) > 0) ||
		(p.cfg.batchMaxRecords > 0 && len(b.records) >= p.cfg.batchMaxRecords) {
		wake = true // a new batch to linger on, and maybe a full one to send
		if b != nil && part.t.sticky == part {
			part.t.sticky, part.t.last = nil, part // a full batch moves the sticky partition on (KIP-480)
		}
		b = &producerBatch{part: part, created: time.Now()}
		part.open = b
		part.batches = append(part.batches, b)
	}
	b.records = append(b.records, pr)
	b.bytes += size
	p.buffered += int64(size)
	p.outstanding++
	if b.bytes >= p.cfg.batchMaxBytes || (p.cfg.batchMaxRecords > 0 && len(b.records) >= p.cfg.batchMaxRecords) {
		wake = true
	}
	p.mu.Unlock()
	if wake {
		p.signal()
	}
}

// ProduceSync produces the records and waits for all of their results; it
// returns the first error (the records' own promises tell which failed).
func (p *Producer) ProduceSync(ctx context.Context, rs ...*Record) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	wg.Add(len(rs))
	for _, r := range rs {
		p.Produce(ctx, r, func(_ *Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return first
}

// Flush sends every buffered record at once (no lingering) and waits until
// every record produced so far has had its promise called, or ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.flushing++
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	p.mu.Unlock()
	p.signal()
	for {
		p.mu.Lock()
		n, ch := p.outstanding, p.changed
		p.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close flushes, then stops the producer. Records still unanswered when
// ctx ends fail with ErrProducerClosed (those in flight may still be
// written). Produce after Close fails with ErrProducerClosed.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	err := p.Flush(ctx)
	p.mu.Lock()
	if p.fatal == nil {
		p.fatal = ErrProducerClosed
	}
	p.failQueuedLocked(ErrProducerClosed)
	if s := p.stream; s != nil {
		p.streamFailedLocked(s, ErrProducerClosed)
	}
	p.mu.Unlock()
	p.deliver()
	p.cancel()
	<-p.done
	return err
}

// refuseLocked is the error for a new record, if the producer takes none.
func (p *Producer) refuseLocked() error {
	if p.closing {
		return ErrProducerClosed
	}
	return p.fatal
}

// topic returns the topic's partitions, asking the agent on first use and
// when the count is older than a minute (partitions only ever grow).
func (p *Producer) topic(ctx context.Context, name string) (*producerTopic, error) {
	p.mu.Lock()
	t := p.topics[name]
	p.mu.Unlock()
	if t != nil && time.Since(t.fetched) < p.cfg.metadataMaxAge {
		return t, nil
	}
	resp, err := p.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: name}))
	if err != nil {
		if t != nil {
			p.log.Warn("refreshing the topic's partition count failed; using the old one", "topic", name, "err", err)
			p.mu.Lock()
			t.fetched = time.Now()
			p.mu.Unlock()
			return t, nil
		}
		return nil, fmt.Errorf("describe topic %q: %w", name, err)
	}
	n := resp.Msg.GetTopic().GetPartitions()
	p.mu.Lock()
	defer p.mu.Unlock()
	if t = p.topics[name]; t == nil {
		t = &producerTopic{name: name}
		p.topics[name] = t
	}
	for i := int32(len(t.parts)); i < n; i++ {
		part := &producerPartition{topic: name, partition: i, t: t}
		t.parts = append(t.parts, part)
		p.parts = append(p.parts, part)
	}
	t.fetched = time.Now()
	if len(t.parts) == 0 {
		return nil, fmt.Errorf("topic %q has no partitions", name)
	}
	return t, nil
}

// partitionLocked is where r goes: Kafka's default partitioner (murmur2
// of the key; records without a key stick to one partition until its batch
// is sent or full, KIP-480), or r.Partition with ManualPartitioner.
func (p *Producer) partitionLocked(t *producerTopic, r *Record) (*producerPartition, error) {
	n := int32(len(t.parts))
	switch {
	case p.cfg.manualPartitioner:
		if r.Partition < 0 || r.Partition >= n {
			return nil, fmt.Errorf("client.Producer: topic %q has %d partitions, record asks for partition %d", t.name, n, r.Partition)
		}
		return t.parts[r.Partition], nil
	case r.Key != nil:
		return t.parts[kafkahash.KeyPartition(r.Key, n)], nil
	}
	if t.sticky == nil {
		i := rand.Int32N(n)
		if n > 1 && t.parts[i] == t.last {
			i = (i + 1) % n
		}
		t.sticky = t.parts[i]
	}
	return t.sticky, nil
}

func (p *Producer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// broadcastLocked wakes the goroutines waiting for buffer space or Flush.
func (p *Producer) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// deliver calls the promises queued so far, in order. A goroutine that
// finds another delivering leaves its promises to it: that one loops until
// the queue is empty, so no goroutine (the sender above all) ever waits for
// a promise, which may itself wait in Produce for buffer space.
func (p *Producer) deliver() {
	for {
		if !p.deliverMu.TryLock() {
			return
		}
		for {
			p.mu.Lock()
			d := p.deliveries
			p.deliveries = nil
			p.mu.Unlock()
			if len(d) == 0 {
				break
			}
			for _, f := range d {
				f()
			}
			p.mu.Lock()
			p.outstanding -= len(d)
			p.broadcastLocked()
			p.mu.Unlock()
		}
		p.deliverMu.Unlock()
		// Promises queued between the last look and the unlock, by a
		// goroutine that found the lock taken, are this one's to deliver.
		p.mu.Lock()
		more := len(p.deliveries) > 0
		p.mu.Unlock()
		if !more {
			return
		}
	}
}

// run is the sender: it gets the producer id, packs ready batches into
// requests and sends them, and watches the timeouts.
func (p *Producer) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		now := time.Now()
		p.expireLocked(now)
		wait := time.Hour
		var reqs []*produceRequest
		var s, built *produceStream
		initID := false
		switch {
		case p.fatal != nil:
		case now.Before(p.retryAt):
			wait = p.retryAt.Sub(now)
		case p.needID:
			// Not before the first record; and a bump waits for the
			// requests in flight: their batches carry the old epoch.
			initID = p.outstanding > 0 && (p.stream == nil || len(p.stream.inflight) == 0)
		default:
			reqs, wait = p.buildRequestsLocked(now)
			built = p.stream
			if len(reqs) > 0 && !p.batchPath {
				if p.stream == nil {
					p.openStreamLocked()
				}
				s = p.stream
				s.inflight = append(s.inflight, reqs...)
			}
		}
		if s := p.stream; s != nil && len(s.inflight) > 0 {
			if late := s.inflight[0].sent.Add(p.cfg.requestTimeout); !late.After(now) {
				p.log.Warn("produce request unanswered; retrying on a new stream", "timeout", p.cfg.requestTimeout)
				p.streamFailedLocked(s, connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("no answer within %s", p.cfg.requestTimeout)))
			} else {
				wait = min(wait, late.Sub(now))
			}
		}
		if p.outstanding > 0 {
			wait = min(wait, time.Second) // delivery timeouts
		}
		pid := p.pid
		p.mu.Unlock()
		p.deliver()

		if initID {
			p.initProducerID(pid)
			continue
		}
		if len(reqs) > 0 && p.batchPath {
			// Encoded outside the lock: until they are on a stream's
			// inflight list, nothing but this goroutine touches the
			// batches taken (they are neither queued nor on a stream).
			for _, r := range reqs {
				p.encodeRequest(r)
			}
			p.mu.Lock()
			if p.stream != built {
				// The stream they were built behind failed meanwhile,
				// and its requests went back to their queues: these go
				// back too, so each partition's batches are sent again
				// in order, never one past a batch not yet resent.
				for _, r := range reqs {
					p.requestFailedLocked(r, connect.NewError(connect.CodeUnavailable, errors.New("the produce stream failed before the request was sent")))
				}
				reqs = nil
			} else {
				if p.stream == nil {
					p.openStreamLocked()
				}
				s = p.stream
				s.inflight = append(s.inflight, reqs...)
			}
			p.mu.Unlock()
			p.deliver()
		}
		if len(reqs) > 0 {
			// A stalled agent stops reading and Send blocks; the
			// request timeout then ends the stream, which unblocks it.
			watchdog := time.AfterFunc(p.cfg.requestTimeout, func() {
				p.mu.Lock()
				p.streamFailedLocked(s, connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("request not sent within %s", p.cfg.requestTimeout)))
				p.mu.Unlock()
				p.deliver()
				p.signal()
			})
			for _, r := range reqs {
				if err := s.send(r); err != nil {
					// The receiver learns why and retries the batches.
					break
				}
			}
			watchdog.Stop()
		}
		timer.Reset(wait)
		select {
		case <-p.wake:
		case <-timer.C:
		case <-p.runCtx.Done():
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// initProducerID gets an id (pid 0) or bumps the epoch of pid, and numbers
// the unacknowledged batches from 0 in the new epoch.
func (p *Producer) initProducerID(pid int64) {
	resp, err := p.svc.InitProducerId(p.runCtx, connect.NewRequest(p.initProducerIDRequest(pid)))
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.runCtx.Err() != nil {
			return
		}
		if !retriable(connect.CodeOf(err)) {
			p.fatal = fmt.Errorf("init producer id: %w", err)
			p.failQueuedLocked(p.fatal)
			return
		}
		p.log.Warn("InitProducerId failed; retrying", "err", err)
		p.backoffLocked()
		return
	}
	p.pid, p.epoch = resp.Msg.GetProducerId(), int16(resp.Msg.GetProducerEpoch())
	p.needID = false
	p.backoff = p.cfg.retryBackoffMin
	if pid != 0 {
		p.log.Info("producer epoch bumped; sequences start again at 0", "producer_id", p.pid, "epoch", p.epoch)
	}
	for _, part := range p.parts {
		part.nextSeq, part.acked, part.draining, part.rewind = 0, false, false, false
		for _, b := range part.batches {
			if b.state == batchQueued && b.sealed {
				b.seq, b.epoch = part.nextSeq, p.epoch
				part.nextSeq = addSeq(part.nextSeq, len(b.records))
			}
		}
	}
}

func (p *Producer) backoffLocked() {
	p.retryAt = time.Now().Add(p.backoff)
	p.backoff = min(2*p.backoff, p.cfg.retryBackoffMax)
}

func addSeq(seq int32, n int) int32 {
	s := int64(seq) + int64(n)
	if s > math.MaxInt32 {
		s -= math.MaxInt32 + 1
	}
	return int32(s)
}

// close ends the stream. Canceling its context does not stop a Receive
// waiting on an HTTP/2 response body; closing the body does.
func (s *produceStream) close() {
	s.closeOnce.Do(func() {
		s.cancel()
		go func() { _ = s.closeResp() }()
	})
}

func (p *Producer) openStreamLocked() {
	ctx, cancel := context.WithCancel(p.runCtx)
	s := &produceStream{cancel: cancel}
	if p.batchPath {
		bidi := p.svc.ProduceBatchesStream(ctx)
		s.send = func(r *produceRequest) error { return bidi.Send(r.batchMsg) }
		s.recv = func() (streamAnswer, error) {
			m, err := bidi.Receive()
			if err != nil {
				return streamAnswer{}, err
			}
			return streamAnswer{id: m.GetRequestId(), err: m.GetError(), batches: m.GetResponse()}, nil
		}
		s.closeResp = bidi.CloseResponse
	} else {
		bidi := p.svc.ProduceStream(ctx)
		s.send = func(r *produceRequest) error { return bidi.Send(r.msg) }
		s.recv = func() (streamAnswer, error) {
			m, err := bidi.Receive()
			if err != nil {
				return streamAnswer{}, err
			}
			return streamAnswer{id: m.GetRequestId(), err: m.GetError(), records: m.GetResponse()}, nil
		}
		s.closeResp = bidi.CloseResponse
	}
	p.stream = s
	go p.receive(s)
}

// sendableLocked is the partition's next batch to send, if it may go now,
// and otherwise when its linger ends (zero: not waiting on time).
func (p *Producer) sendableLocked(part *producerPartition, now time.Time) (*producerBatch, time.Time) {
	if part.draining || part.rewind || len(part.batches) == 0 || part.inflight >= p.cfg.inflightPerPart {
		return nil, time.Time{}
	}
	if p.cfg.idempotent && !part.acked && part.inflight > 0 {
		return nil, time.Time{}
	}
	var b *producerBatch
	for _, c := range part.batches {
		if c.state == batchQueued {
			b = c
			break
		}
	}
	if b == nil {
		return nil, time.Time{}
	}
	if b == part.open && p.flushing == 0 && !p.closing {
		full := b.bytes >= p.cfg.batchMaxBytes || (p.cfg.batchMaxRecords > 0 && len(b.records) >= p.cfg.batchMaxRecords)
		if due := b.created.Add(p.cfg.linger); !full && now.Before(due) {
			return nil, due
		}
	}
	return b, time.Time{}
}

// buildRequestsLocked packs ready batches, at most one per partition per
// request, into requests, and says how long to wait for the next linger.
func (p *Producer) buildRequestsLocked(now time.Time) ([]*produceRequest, time.Duration) {
	wait := time.Hour
	var reqs []*produceRequest
	inflight := 0
	if p.stream != nil {
		inflight = len(p.stream.inflight)
	}
	for inflight+len(reqs) < p.cfg.inflightRequests {
		var batches []*producerBatch
		bytes := 0
		n := len(p.parts)
		for k := range n {
			part := p.parts[(p.rr+k)%n]
			b, due := p.sendableLocked(part, now)
			if b == nil {
				if !due.IsZero() {
					wait = min(wait, due.Sub(now))
				}
				continue
			}
			if len(batches) > 0 && (b.alone || bytes+b.bytes > p.cfg.maxRequestBytes) {
				continue
			}
			p.takeBatchLocked(b)
			batches = append(batches, b)
			bytes += b.bytes
			if b.alone {
				break
			}
		}
		if n > 0 {
			p.rr = (p.rr + 1) % n
		}
		if len(batches) == 0 {
			break
		}
		reqs = append(reqs, p.requestLocked(batches, now))
	}
	return reqs, wait
}

// takeBatchLocked marks b in flight, giving it its sequence on first send.
func (p *Producer) takeBatchLocked(b *producerBatch) {
	part := b.part
	if b == part.open {
		part.open = nil
		if part.t.sticky == part {
			part.t.sticky, part.t.last = nil, part // the sticky partition moves on once its batch is sent (KIP-480)
		}
	}
	if !b.sealed {
		b.sealed = true
		b.seq, b.epoch = part.nextSeq, p.epoch
		part.nextSeq = addSeq(part.nextSeq, len(b.records))
	}
	b.state = batchInFlight
	part.inflight++
}

// requestLocked lays the batches out as one request, grouped by topic;
// batches is reordered to match the records' order in it.
func (p *Producer) requestLocked(batches []*producerBatch, now time.Time) *produceRequest {
	if p.batchPath {
		return p.batchRequestLocked(batches, now)
	}
	p.nextReqID++
	req := &stratav1.ProduceRequest{}
	if p.cfg.idempotent {
		req.ProducerId, req.ProducerEpoch = p.pid, int32(p.epoch)
		req.TransactionalId = p.cfg.transactionalID
	}
	byTopic := map[string]*stratav1.TopicRecords{}
	var order [][]*producerBatch
	index := map[string]int{}
	for _, b := range batches {
		tr := byTopic[b.part.topic]
		if tr == nil {
			tr = &stratav1.TopicRecords{Topic: b.part.topic}
			if p.cfg.idempotent {
				tr.BaseSequences = map[int32]int32{}
			}
			byTopic[b.part.topic] = tr
			req.Topics = append(req.Topics, tr)
			index[b.part.topic] = len(order)
			order = append(order, nil)
		}
		for _, r := range b.records {
			tr.Records = append(tr.Records, r.wire)
		}
		if p.cfg.idempotent {
			tr.BaseSequences[b.part.partition] = b.seq
		}
		i := index[b.part.topic]
		order[i] = append(order[i], b)
	}
	laid := make([]*producerBatch, 0, len(batches))
	for _, bs := range order {
		laid = append(laid, bs...)
	}
	return &produceRequest{
		id:      p.nextReqID,
		batches: laid,
		msg:     &stratav1.ProduceStreamRequest{RequestId: p.nextReqID, Request: req},
		sent:    now,
	}
}

// receive takes a stream's answers until it ends.
func (p *Producer) receive(s *produceStream) {
	defer s.close()
	for {
		resp, err := s.recv()
		p.mu.Lock()
		if err != nil {
			if !s.failed {
				p.log.Warn("produce stream failed; retrying its requests", "err", err)
			}
			p.streamFailedLocked(s, err)
			p.mu.Unlock()
			p.deliver()
			p.signal()
			return
		}
		if s.failed {
			p.mu.Unlock()
			continue
		}
		if len(s.inflight) == 0 || s.inflight[0].id != resp.id {
			p.streamFailedLocked(s, fmt.Errorf("the agent answered request %d out of turn", resp.id))
			p.mu.Unlock()
			p.deliver()
			p.signal()
			return
		}
		req := s.inflight[0]
		s.inflight = s.inflight[1:]
		switch {
		case resp.err != nil:
			p.requestFailedLocked(req, connect.NewError(codeOf(resp.err.GetCode()), errors.New(resp.err.GetMessage())))
		case p.batchPath:
			p.batchesAnsweredLocked(req, resp.batches)
		default:
			p.requestAnsweredLocked(req, resp.records)
		}
		p.mu.Unlock()
		p.deliver()
		p.signal()
	}
}

// streamFailedLocked ends s and retries (or fails) every request on it.
func (p *Producer) streamFailedLocked(s *produceStream, err error) {
	if s.failed {
		return
	}
	s.failed = true
	s.close()
	if p.stream == s {
		p.stream = nil
	}
	if ce := new(connect.Error); !errors.As(err, &ce) {
		err = connect.NewError(connect.CodeUnavailable, err)
	}
	for _, req := range s.inflight {
		p.requestFailedLocked(req, err)
	}
	s.inflight = nil
}

// retriable reports whether a request that failed with code may succeed
// when sent again as it is.
func retriable(code connect.Code) bool {
	switch code {
	case connect.CodeUnavailable, connect.CodeResourceExhausted, connect.CodeDeadlineExceeded,
		connect.CodeAborted, connect.CodeCanceled, connect.CodeUnknown, connect.CodeInternal:
		return true
	}
	return false
}

// requestFailedLocked decides, per batch, between a retry, an epoch bump
// and a failure.
func (p *Producer) requestFailedLocked(req *produceRequest, err error) {
	code := connect.CodeOf(err)
	for _, b := range req.batches {
		b.state = batchQueued
		b.lastErr = err
		b.part.inflight--
		b.part.draining = true
	}
	defer p.undrainLocked(req.batches)
	if p.fatal != nil {
		for _, b := range req.batches {
			p.failBatchLocked(b, p.fatal, false)
		}
		return
	}
	switch {
	case retriable(code):
		p.backoffLocked()
	case code == connect.CodeOutOfRange && p.cfg.idempotent:
		// A sequence gap: fine if an earlier batch of the partition is
		// unacknowledged (its failure made the gap; it goes first now).
		// Otherwise the partition lost our state: bump the epoch.
		explained := true
		for _, b := range req.batches {
			explained = explained && (b.part.batches[0] != b || b.part.rewind)
		}
		switch {
		case explained:
		case len(req.batches) > 1:
			for _, b := range req.batches {
				b.alone = true
			}
		default:
			p.log.Warn("sequence gap on a partition; bumping the producer epoch", "topic", req.batches[0].part.topic, "partition", req.batches[0].part.partition, "err", err)
			p.needID = true
		}
	case code == connect.CodeFailedPrecondition && p.cfg.idempotent:
		// Fenced: a newer epoch of this producer id wrote. Nothing this
		// producer sends can be written any more.
		p.fatal = fmt.Errorf("producer %d epoch %d fenced: %w", p.pid, p.epoch, err)
		p.log.Error("producer fenced", "err", err)
		for _, b := range req.batches {
			p.failBatchLocked(b, p.fatal, false)
		}
		p.failQueuedLocked(p.fatal)
	case len(req.batches) > 1:
		// One error for the request: resend each batch alone to learn
		// which one it is about.
		for _, b := range req.batches {
			b.alone = true
		}
	default:
		// Refused before anything of it was appended (a bad record, an
		// unknown topic), or its partition's chunk was not committed (a
		// deleted topic): not written.
		p.failBatchLocked(req.batches[0], err, true)
	}
}

// undrainLocked lets partitions send again once nothing of theirs is in
// flight.
func (p *Producer) undrainLocked(batches []*producerBatch) {
	for _, b := range batches {
		if b.part.inflight == 0 {
			b.part.draining = false
			p.rewindLocked(b.part)
		}
	}
}

// rewindLocked numbers the partition's unacknowledged batches again from
// the hole a batch given up on left, once none of them is in flight: none
// of them can have been written, as each would have left a gap.
func (p *Producer) rewindLocked(part *producerPartition) {
	if !part.rewind || part.inflight > 0 {
		return
	}
	part.rewind = false
	seq := part.rewindSeq
	for _, b := range part.batches {
		if b.sealed && b.state == batchQueued {
			b.seq = seq
			seq = addSeq(seq, len(b.records))
		}
	}
	part.nextSeq = seq
}

// requestAnsweredLocked records the offsets of every batch of req.
func (p *Producer) requestAnsweredLocked(req *produceRequest, resp *stratav1.ProduceResponse) {
	p.backoff = p.cfg.retryBackoffMin
	var results [][]*stratav1.RecordResult
	for _, tr := range resp.GetTopics() {
		results = append(results, tr.GetResults())
	}
	ti, ri := 0, 0
	for i, b := range req.batches {
		if i > 0 && b.part.topic != req.batches[i-1].part.topic {
			ti, ri = ti+1, 0
		}
		if ti >= len(results) || ri+len(b.records) > len(results[ti]) {
			p.requestFailedLocked(&produceRequest{batches: req.batches[i:]}, connect.NewError(connect.CodeInternal, errors.New("the agent's answer does not match the request")))
			return
		}
		b.results = results[ti][ri : ri+len(b.records)]
		ri += len(b.records)
		b.state = batchDone
		b.part.inflight--
		b.part.acked = true
		p.popDoneLocked(b.part)
	}
	p.undrainLocked(req.batches)
}

// popDoneLocked delivers the partition's acknowledged batches from the
// oldest on, so promises keep the partition's order.
func (p *Producer) popDoneLocked(part *producerPartition) {
	for len(part.batches) > 0 && part.batches[0].state == batchDone {
		b := part.batches[0]
		part.batches = part.batches[1:]
		p.buffered -= int64(b.bytes)
		for i, pr := range b.records {
			if b.results == nil {
				// The batch path: consecutive offsets from the base,
				// the timestamps the batch carried.
				partition, offset, ts := b.part.partition, b.base+int64(i), pr.ts
				p.deliveries = append(p.deliveries, func() {
					pr.r.Partition, pr.r.Offset, pr.r.Timestamp = partition, offset, time.UnixMilli(ts).UTC()
					pr.promise(pr.r, nil)
				})
				continue
			}
			res := b.results[i]
			p.deliveries = append(p.deliveries, func() {
				pr.r.Partition = res.GetPartition()
				pr.r.Offset = res.GetOffset()
				if res.GetTimestamp() != nil {
					pr.r.Timestamp = res.GetTimestamp().AsTime()
				}
				pr.promise(pr.r, nil)
			})
		}
	}
	p.broadcastLocked()
}

// failBatchLocked gives up on b. Its sequence numbers were never written
// (unwritten), or may have been: either way the partition's next batches
// would leave a gap. An idempotent producer numbers them again from b's
// sequence when b was certainly not written, and otherwise bumps its epoch
// (the partition may hold b or not; a new epoch starts afresh).
func (p *Producer) failBatchLocked(b *producerBatch, err error, unwritten bool) {
	part := b.part
	for i, c := range part.batches {
		if c == b {
			part.batches = append(part.batches[:i:i], part.batches[i+1:]...)
			break
		}
	}
	if part.open == b {
		part.open = nil
	}
	if b.state == batchInFlight {
		part.inflight--
	}
	b.state = batchDone
	p.buffered -= int64(b.bytes)
	werr := fmt.Errorf("produce to %s/%d: %w", part.topic, part.partition, err)
	for _, pr := range b.records {
		p.deliveries = append(p.deliveries, func() { pr.promise(pr.r, werr) })
	}
	if p.cfg.idempotent && b.sealed && p.fatal == nil {
		switch {
		case !unwritten:
			p.needID = true
		case !part.rewind:
			part.rewind, part.rewindSeq = true, b.seq
			p.rewindLocked(part)
		}
	}
	p.popDoneLocked(part)
}

// failQueuedLocked fails every batch not in flight.
func (p *Producer) failQueuedLocked(err error) {
	for _, part := range p.parts {
		for _, b := range append([]*producerBatch(nil), part.batches...) {
			if b.state == batchQueued {
				p.failBatchLocked(b, err, false)
			}
		}
	}
}

// expireLocked fails the batches waiting longer than DeliveryTimeout.
func (p *Producer) expireLocked(now time.Time) {
	for _, part := range p.parts {
		for _, b := range append([]*producerBatch(nil), part.batches...) {
			if b.state == batchQueued && now.Sub(b.created) > p.cfg.deliveryTimeout {
				err := b.lastErr
				if err == nil {
					err = connect.NewError(connect.CodeDeadlineExceeded, errors.New("not sent"))
				}
				// Never sent (not sealed): no hole. Sent: it may
				// have been written, so the epoch is bumped.
				p.failBatchLocked(b, fmt.Errorf("delivery timeout %s: %w", p.cfg.deliveryTimeout, err), false)
			}
		}
	}
}
