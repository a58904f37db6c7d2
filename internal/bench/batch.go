package bench

// The Connect API's batch calls (Config.Batches): producers send Kafka
// RecordBatch v2 bytes on ProducerService.ProduceBatchesStream, as the Go
// client's Producer does, and readers take whole stored batches of many
// partitions per ConsumerService.FetchBatches call, as its GroupConsumer
// does. The batches are encoded with franz-go's kmsg (the client package
// keeps its encoder to itself), and read back by walking their headers and
// record lengths in place: the records are counted from the batch headers,
// and nothing is copied or allocated per record, so the load generator's
// CPU goes to moving bytes, as a Kafka client's does.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/types/known/durationpb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// Kafka's DefaultRecordBatch header, byte offsets (magic 2).
const (
	batchHeaderLen       = 61
	batchLengthOffset    = 8
	batchCRCOffset       = 17
	batchCRCStart        = 21 // the CRC covers attributes to the end
	batchAttrsOffset     = 21
	batchLastDeltaOffset = 23
	batchFirstTSOffset   = 27
	batchMaxTSOffset     = 35
	batchNumRecsOffset   = 57
	batchLengthBase      = 12 // base offset and length, not in length

	batchCodecMask   = 0x07
	batchControlFlag = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchEncoder builds one RecordBatch of n records of size-byte values,
// no keys or headers, over and over: the records are encoded once, and
// each batch only stamps its send time into the values (and the batch
// timestamps), compresses if asked and frames the result.
type batchEncoder struct {
	body    []byte // the records, uncompressed
	valueAt []int  // where each record's value starts in body
	count   int32
	comp    kgo.Compressor // nil: no compression
	codec   int16
	zbuf    bytes.Buffer
	out     []byte // the framed batch, reused
}

// newBatchEncoder encodes the records of values (n values of size bytes,
// back to back) with kmsg.Record: offset deltas 0 to n-1, timestamp
// deltas 0. codec is "none" or "gzip".
func newBatchEncoder(values []byte, n, size int, codec string) (*batchEncoder, error) {
	e := &batchEncoder{count: int32(n), valueAt: make([]int, n)}
	for i := range n {
		v := values[i*size : (i+1)*size]
		rec := kmsg.Record{OffsetDelta: int32(i), Key: nil, Value: v}
		// attributes, timestamp delta 0, offset delta, null key, value,
		// no headers: kmsg writes the length it is given.
		rec.Length = int32(1 + 1 + kbin.VarintLen(int32(i)) + 1 + kbin.VarintLen(int32(size)) + size + 1)
		start := len(e.body)
		e.body = rec.AppendTo(e.body)
		// The value is followed only by the header count (one byte).
		e.valueAt[i] = len(e.body) - 1 - size
		if !bytes.Equal(e.body[e.valueAt[i]:e.valueAt[i]+size], v) || len(e.body)-start != int(rec.Length)+kbin.VarintLen(rec.Length) {
			return nil, errors.New("bench: record encoding out of step with its computed length")
		}
	}
	if codec == "gzip" {
		comp, err := kgo.DefaultCompressor(kgo.GzipCompression())
		if err != nil {
			return nil, err
		}
		e.comp, e.codec = comp, int16(kgo.CodecGzip)
	}
	return e, nil
}

// encode returns the batch with every value's first 8 bytes set to sent
// (Unix nanoseconds) and the batch timestamps to sent's milliseconds. A
// codec that does not shrink the records is dropped, as Kafka's producers
// do (random values never shrink). The result is valid until the next call.
func (e *batchEncoder) encode(sent time.Time) []byte {
	for _, at := range e.valueAt {
		binary.BigEndian.PutUint64(e.body[at:], uint64(sent.UnixNano()))
	}
	records, codec := e.body, int16(0)
	if e.comp != nil {
		e.zbuf.Reset()
		if z, used := e.comp.Compress(&e.zbuf, e.body); used != kgo.CodecNone && len(z) < len(e.body) {
			records, codec = z, e.codec
		}
	}
	ms := sent.UnixMilli()
	hdr := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           codec,
		LastOffsetDelta:      e.count - 1,
		FirstTimestamp:       ms,
		MaxTimestamp:         ms,
		ProducerID:           -1, // not idempotent
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           e.count,
	}
	out := hdr.AppendTo(e.out[:0]) // no Records: the 61-byte header
	out = append(out, records...)
	binary.BigEndian.PutUint32(out[batchLengthOffset:], uint32(len(out)-batchLengthBase))
	binary.BigEndian.PutUint32(out[batchCRCOffset:], crc32.Checksum(out[batchCRCStart:], castagnoli))
	e.out = out
	return out
}

// batchRecord is what a reader sees of one record: where its key and value
// are, in the fetched bytes (or the decompressed records).
type batchRecord struct {
	offset     int64
	key, value []byte
	headers    int64 // bytes of its header keys and values
}

// walkBatches reads the whole RecordBatch v2 in buf, as FetchBatches
// answers them, and counts the records at offsets in [from, to): from each
// batch's header for a batch wholly inside, offset by offset for one
// straddling an end. Control batches (transaction markers) hold no
// records. each, when not nil, is called with every record counted. It
// returns the records, their bytes (keys, values, header keys and values,
// as the other readers count them) and the offset after the last batch
// (where the partition's next fetch starts).
func walkBatches(buf []byte, from, to int64, each func(batchRecord)) (records, size, next int64, err error) {
	next = from
	for len(buf) > 0 {
		if len(buf) < batchHeaderLen {
			return records, size, next, fmt.Errorf("a record batch of %d bytes, shorter than its %d-byte header", len(buf), batchHeaderLen)
		}
		total := int64(binary.BigEndian.Uint32(buf[batchLengthOffset:])) + batchLengthBase
		if total < batchHeaderLen || total > int64(len(buf)) {
			return records, size, next, fmt.Errorf("a record batch of length %d in %d bytes", total, len(buf))
		}
		batch := buf[:total]
		buf = buf[total:]
		base := int64(binary.BigEndian.Uint64(batch))
		attrs := binary.BigEndian.Uint16(batch[batchAttrsOffset:])
		last := base + int64(int32(binary.BigEndian.Uint32(batch[batchLastDeltaOffset:])))
		count := int64(int32(binary.BigEndian.Uint32(batch[batchNumRecsOffset:])))
		next = max(next, last+1)
		if attrs&batchControlFlag != 0 || last < from || base >= to {
			continue
		}
		body := batch[batchHeaderLen:]
		if codec := kgo.CompressionCodecType(attrs & batchCodecMask); codec != kgo.CodecNone {
			if body, err = decompressor.Decompress(body, codec); err != nil {
				return records, size, next, fmt.Errorf("the record batch at offset %d: %w", base, err)
			}
		}
		whole := base >= from && last < to
		var walked, in int64
		for len(body) > 0 {
			var r batchRecord
			var n int
			if r, n, err = readRecord(body, base); err != nil {
				return records, size, next, fmt.Errorf("the record batch at offset %d, record %d: %w", base, walked, err)
			}
			body = body[n:]
			walked++
			if r.offset < from || r.offset >= to {
				continue
			}
			in++
			size += int64(len(r.key)+len(r.value)) + r.headers
			if each != nil {
				each(r)
			}
		}
		if walked != count {
			return records, size, next, fmt.Errorf("the record batch at offset %d holds %d records; its header says %d", base, walked, count)
		}
		if whole {
			records += count
		} else {
			records += in
		}
	}
	return records, size, next, nil
}

// decompressor is kgo's, shared: it pools its readers.
var decompressor = kgo.DefaultDecompressor()

var errShortRecord = errors.New("record cut short")

// readRecord reads the record at the start of b (Kafka's Record: a varint
// length, attributes, timestamp and offset deltas, key, value, headers)
// without copying it; n is its size with its length.
func readRecord(b []byte, base int64) (r batchRecord, n int, err error) {
	length, k := kbin.Varint(b)
	if k <= 0 || length < 0 || int64(length) > int64(len(b)-k) {
		return r, 0, errShortRecord
	}
	n = k + int(length)
	rec := b[k:n]
	if len(rec) < 1 {
		return r, 0, errShortRecord
	}
	rec = rec[1:] // attributes
	if _, k = kbin.Varlong(rec); k <= 0 {
		return r, 0, errShortRecord
	}
	rec = rec[k:]
	delta, k := kbin.Varint(rec)
	if k <= 0 {
		return r, 0, errShortRecord
	}
	rec = rec[k:]
	r.offset = base + int64(delta)
	if r.key, rec, err = varintBytes(rec); err != nil {
		return r, 0, err
	}
	if r.value, rec, err = varintBytes(rec); err != nil {
		return r, 0, err
	}
	headers, k := kbin.Varint(rec)
	if k <= 0 || headers < 0 {
		return r, 0, errShortRecord
	}
	rec = rec[k:]
	for range headers {
		var hk, hv []byte
		if hk, rec, err = varintBytes(rec); err != nil {
			return r, 0, err
		}
		if hv, rec, err = varintBytes(rec); err != nil {
			return r, 0, err
		}
		r.headers += int64(len(hk) + len(hv))
	}
	return r, n, nil
}

// varintBytes splits off a varint-length byte string (-1: null).
func varintBytes(b []byte) (field, rest []byte, err error) {
	l, k := kbin.Varint(b)
	if k <= 0 || int64(l) > int64(len(b)-k) {
		return nil, nil, errShortRecord
	}
	if l < 0 {
		return nil, b[k:], nil
	}
	return b[k : k+int(l)], b[k+int(l):], nil
}

// runBatchProducers is runProducers over ProduceBatchesStream.
func runBatchProducers(ctx context.Context, f *Config, t *benchTopic, win window, stop func() bool, cnt *counters) (*flowStats, error) {
	var interval time.Duration
	if f.Rate > 0 {
		interval = f.requestInterval()
	}
	begin := time.Now()
	producers := make([]*batchProducer, f.Producers)
	for i := range producers {
		enc, err := newBatchEncoder(randomValues(uint64(i), f.Batch, int(f.RecordSize)), f.Batch, int(f.RecordSize), f.Compression)
		if err != nil {
			return nil, err
		}
		cl, err := f.Dial()
		if err != nil {
			return nil, err
		}
		defer cl.close()
		producers[i] = &batchProducer{
			cl: cl, topic: t.name, partitions: t.partitions, partition: int32(i) % t.partitions,
			enc: enc, batch: f.Batch, size: int(f.RecordSize), inflight: f.Inflight,
			interval: interval, win: win, stop: stop, cnt: cnt, stats: newFlowStats(),
			due: begin.Add(time.Duration(i) * interval / time.Duration(f.Producers)),
		}
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

// batchProducer is one producer: a connection and its
// ProduceBatchesStream, each request one batch of --batch records for one
// partition, the partitions taken round robin (the client picks them on
// this path, as Kafka's producers do). It is not idempotent: like the
// Connect producers, it sends each request once.
type batchProducer struct {
	cl         *Conn
	topic      string
	partitions int32
	partition  int32 // of the next request
	enc        *batchEncoder
	batch      int
	size       int
	inflight   int
	interval   time.Duration
	due        time.Time
	win        window
	stop       func() bool
	cnt        *counters
	stats      *flowStats // written by the receiving goroutine only
	nextID     uint64
}

func (p *batchProducer) run(ctx context.Context) {
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

// session runs one stream, as connectProducer.session does. It returns
// true if the stream broke before the producer was done.
func (p *batchProducer) session(ctx context.Context) bool {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream := p.cl.Producer.ProduceBatchesStream(sctx)
	inflight := make(chan sentRequest, p.inflight)
	recvDone := make(chan struct{})
	broken := false
	go func() {
		defer close(recvDone)
		broken = p.receive(stream, inflight)
	}()
	part := &stratav1.PartitionRecordBatches{Topic: p.topic}
	req := &stratav1.ProduceBatchesStreamRequest{Request: &stratav1.ProduceBatchesRequest{
		Partitions: []*stratav1.PartitionRecordBatches{part},
	}}
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
		// Send marshals the message before it returns, so the encoder's
		// buffer is free again for the next batch.
		part.Partition = p.partition
		part.RecordBatches = p.enc.encode(t0)
		p.partition = (p.partition + 1) % p.partitions
		p.nextID++
		req.RequestId = p.nextID
		select {
		case inflight <- sentRequest{t0: t0, records: p.batch}:
		case <-recvDone:
			break loop
		}
		if err := stream.Send(req); err != nil {
			break // the receiver meets the error and counts it
		}
	}
	close(inflight)
	_ = stream.CloseRequest()
	<-recvDone
	_ = stream.CloseResponse()
	return broken && !finished && ctx.Err() == nil
}

// receive takes the answers in order and counts them, errors by their
// Connect code (a refused request's, or its partition's); it reports
// whether the stream broke.
func (p *batchProducer) receive(stream *connect.BidiStreamForClient[stratav1.ProduceBatchesStreamRequest, stratav1.ProduceBatchesStreamResponse], inflight <-chan sentRequest) bool {
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
		code := resp.GetError().GetCode()
		if code == "" {
			for _, r := range resp.GetResponse().GetPartitions() {
				if e := r.GetError(); e != nil {
					code = e.GetCode()
				}
			}
		}
		if code != "" {
			if p.win.in(now) {
				p.stats.errors[code]++
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

// fetchBatches reads the share with one FetchBatches call at a time over
// all its unfinished partitions, --fetch-bytes each and --fetch-max-bytes
// in all (Kafka's max.partition.fetch.bytes and fetch.max.bytes). The
// partitions' order turns by one each call, as Kafka's consumers rotate
// it, so that a partition first in line does not always take the budget.
func (r *catchUpReader) fetchBatches(ctx context.Context) error {
	parts := make([]int32, 0, len(r.share))
	for p := range r.share {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	next := map[int32]int64{}
	for _, p := range parts {
		next[p] = r.share[p][0]
	}
	for turn := 0; len(next) > 0; turn++ {
		req := &stratav1.FetchBatchesRequest{
			MaxWait:  durationpb.New(500 * time.Millisecond),
			MinBytes: 1,
			MaxBytes: r.maxRequestBytes,
		}
		for i := range parts {
			p := parts[(turn+i)%len(parts)]
			if off, ok := next[p]; ok {
				req.Partitions = append(req.Partitions, &stratav1.FetchBatchesPartition{
					Topic: r.topic, Partition: p, Offset: off, MaxBytes: r.maxBytes,
				})
			}
		}
		t0 := time.Now()
		resp, err := r.cl.Consumer.FetchBatches(ctx, connect.NewRequest(req))
		if err != nil {
			return r.fail(err)
		}
		now := time.Now()
		var n, size int64
		for _, res := range resp.Msg.GetPartitions() {
			p := res.GetPartition()
			from, ok := next[p]
			if !ok {
				return fmt.Errorf("FetchBatches answered %s partition %d, not asked", r.topic, p)
			}
			if e := res.GetError(); e != nil {
				return r.fail(fmt.Errorf("fetch batches of %s partition %d at offset %d: %w", r.topic, p, from,
					connect.NewError(connectCode(e.GetCode()), errors.New(e.GetMessage()))))
			}
			end := r.share[p][1]
			k, b, after, err := walkBatches(res.GetRecordBatches(), from, end, nil)
			if err != nil {
				return fmt.Errorf("%s partition %d: %w", r.topic, p, err)
			}
			n, size = n+k, size+b
			next[p] = after
			if after >= end {
				delete(next, p)
			}
		}
		r.countN(n, size, now.Sub(t0), now)
	}
	return nil
}

// connectCode is the Connect code named by s ("unavailable", ...), as a
// PartitionError carries it; unknown for a name it does not know.
func connectCode(s string) connect.Code {
	var c connect.Code
	if err := c.UnmarshalText([]byte(s)); err != nil {
		return connect.CodeUnknown
	}
	return c
}

// batchTail follows partitions from the offsets given with one
// FetchBatches long poll at a time (e2e over the batch calls).
type batchTail struct {
	cl    *Conn
	topic string
	parts []int32
	at    map[int32]int64 // each partition's next offset
	turn  int
}

func openBatchTail(f *Config, topic string, partitions []int32, ends map[int32]int64) (*batchTail, error) {
	cl, err := f.Dial()
	if err != nil {
		return nil, err
	}
	next := map[int32]int64{}
	for _, p := range partitions {
		next[p] = ends[p]
	}
	return &batchTail{cl: cl, topic: topic, parts: partitions, at: next}, nil
}

func (b *batchTail) next(ctx context.Context, each func(key, value []byte)) (bool, error) {
	for {
		// Tailing: the agent answers as soon as one batch is there.
		req := &stratav1.FetchBatchesRequest{MaxWait: durationpb.New(500 * time.Millisecond), MinBytes: 1}
		for i := range b.parts {
			p := b.parts[(b.turn+i)%len(b.parts)]
			req.Partitions = append(req.Partitions, &stratav1.FetchBatchesPartition{Topic: b.topic, Partition: p, Offset: b.at[p]})
		}
		b.turn++
		resp, err := b.cl.Consumer.FetchBatches(ctx, connect.NewRequest(req))
		if ctx.Err() != nil {
			return false, nil
		}
		if err != nil {
			return false, b.cl.explain(err, b.topic)
		}
		var got int64
		for _, res := range resp.Msg.GetPartitions() {
			p := res.GetPartition()
			if e := res.GetError(); e != nil {
				return false, fmt.Errorf("fetch batches of %s partition %d: %s: %s", b.topic, p, e.GetCode(), e.GetMessage())
			}
			n, _, after, err := walkBatches(res.GetRecordBatches(), b.at[p], 1<<62, func(r batchRecord) { each(r.key, r.value) })
			if err != nil {
				return false, fmt.Errorf("%s partition %d: %w", b.topic, p, err)
			}
			got += n
			b.at[p] = after
		}
		if got > 0 {
			return true, nil
		}
	}
}

func (b *batchTail) close() { b.cl.close() }
