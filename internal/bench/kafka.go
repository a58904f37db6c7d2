package bench

// The Kafka side: a Kafka listener driven with franz-go (kgo), the way a
// Kafka application would use it. Producers are idempotent (acks=all) and
// pick partitions themselves; consumers read partitions directly (no
// group), from given offsets.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaErrorCode names a Kafka failure for the error counts: the protocol's
// error name (MESSAGE_TOO_LARGE, NOT_LEADER_OR_FOLLOWER, ...) when the
// broker answered with one, else what went wrong on the client's side.
func kafkaErrorCode(err error) string {
	var ke *kerr.Error
	var ne net.Error
	switch {
	case errors.As(err, &ke):
		return ke.Message
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "RECORD_TIMEOUT"
	case errors.Is(err, kgo.ErrClientClosed):
		return "CLIENT_CLOSED"
	case errors.As(err, &ne):
		return "NETWORK_EXCEPTION"
	}
	return "UNKNOWN"
}

// kafkaTarget administers the topic over Kafka (Metadata, CreateTopics,
// DeleteTopics, ListOffsets).
type kafkaTarget struct {
	brokers []string
	cl      *kgo.Client
	adm     *kadm.Client
}

func openKafkaTarget(f *Config) (*kafkaTarget, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.Kafka...), kgo.DialTimeout(5*time.Second), kgo.RetryTimeout(15*time.Second))
	if err != nil {
		return nil, flagErrorf("--kafka %s: %v", strings.Join(f.Kafka, ","), err)
	}
	return &kafkaTarget{brokers: f.Kafka, cl: cl, adm: kadm.NewClient(cl)}, nil
}

func (k *kafkaTarget) addr() string { return strings.Join(k.brokers, ",") }
func (k *kafkaTarget) close()       { k.cl.Close() }

func (k *kafkaTarget) explain(err error) error {
	if errors.Is(err, context.Canceled) {
		return ErrInterrupted
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return fmt.Errorf("cannot reach a Kafka listener at %s: %w", k.addr(), err)
	}
	return err
}

func (k *kafkaTarget) setupTopic(ctx context.Context, f *Config) (*benchTopic, error) {
	name := f.Topic
	if name == "" {
		name = newTopicName()
	} else {
		topics, err := k.adm.ListTopics(ctx, name)
		if err != nil {
			return nil, k.explain(err)
		}
		if d, ok := topics[name]; ok && d.Err == nil {
			n := int32(len(d.Partitions))
			if f.PartitionsGiven && int(n) != f.Partitions {
				return nil, flagErrorf("--partitions %d: topic %s exists with %d partition%s", f.Partitions, name, n, plural(int(n)))
			}
			return &benchTopic{name: name, partitions: n}, nil
		} else if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("describe topic %s: %w", name, d.Err)
		}
	}
	resp, err := k.adm.CreateTopic(ctx, int32(f.Partitions), -1, nil, name)
	if err != nil {
		return nil, fmt.Errorf("create topic %s: %w", name, k.explain(err))
	}
	n := resp.NumPartitions
	if n <= 0 {
		n = int32(f.Partitions)
	}
	return &benchTopic{name: name, partitions: n, created: true}, nil
}

func (k *kafkaTarget) teardown(t *benchTopic, keep bool, stderr io.Writer) {
	if !t.created || keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := k.adm.DeleteTopic(ctx, t.name); err != nil {
		fmt.Fprintf(stderr, "strata bench: could not delete topic %s: %v\n", t.name, k.explain(err))
	}
}

// endOffsets are the topic's high watermarks, by partition.
func (k *kafkaTarget) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	ends, err := k.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list the end offsets of %s: %w", topic, k.explain(err))
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

func (k *kafkaTarget) spans(ctx context.Context, topic string) ([]span, error) {
	starts, err := k.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list the start offsets of %s: %w", topic, k.explain(err))
	}
	ends, err := k.endOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	var out []span
	starts.Each(func(o kadm.ListedOffset) {
		if end := ends[o.Partition]; end > o.Offset {
			out = append(out, span{partition: o.Partition, from: o.Offset, to: end})
		}
	})
	return out, nil
}

// runKafkaProducers is runProducers over Kafka: one franz-go client per
// producer.
func runKafkaProducers(ctx context.Context, f *Config, t *benchTopic, win window, stop func() bool, cnt *counters) (*flowStats, error) {
	var interval time.Duration
	if f.Rate > 0 {
		interval = f.requestInterval()
	}
	codec := kgo.NoCompression()
	if f.Compression == "gzip" {
		codec = kgo.GzipCompression()
	}
	begin := time.Now()
	producers := make([]*kafkaProducer, f.Producers)
	for i := range producers {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(f.Kafka...),
			kgo.DefaultProduceTopic(t.name),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(f.Linger),
			kgo.ProducerBatchCompression(codec),
			// Room for every group in flight, so Produce never blocks on
			// the buffer: the producer's own limit is Inflight groups.
			kgo.MaxBufferedRecords((f.Inflight+1)*f.Batch),
		)
		if err != nil {
			return nil, flagErrorf("--kafka %s: %v", strings.Join(f.Kafka, ","), err)
		}
		producers[i] = &kafkaProducer{
			cl: cl, batch: f.Batch, size: int(f.RecordSize), partitions: t.partitions,
			slots:    make(chan struct{}, f.Inflight),
			interval: interval, win: win, stop: stop, cnt: cnt, stats: newFlowStats(),
			due:       begin.Add(time.Duration(i) * interval / time.Duration(f.Producers)),
			values:    randomValues(uint64(i), f.Batch, int(f.RecordSize)),
			partition: int32(i) % t.partitions,
		}
	}
	var wg sync.WaitGroup
	for _, p := range producers {
		wg.Go(func() { p.run(ctx) })
	}
	wg.Wait()
	total := newFlowStats()
	for _, p := range producers {
		// Close fails whatever an interrupted run left buffered, calling
		// its promises before it returns.
		p.cl.Close()
		p.mu.Lock()
		total.merge(p.stats)
		p.mu.Unlock()
	}
	return total, nil
}

// kafkaProducer is one producer: a franz-go client handing groups of
// --batch records to one partition at a time.
type kafkaProducer struct {
	cl         *kgo.Client
	batch      int
	size       int
	partitions int32
	slots      chan struct{} // one per group in flight
	interval   time.Duration
	due        time.Time
	win        window
	stop       func() bool
	cnt        *counters
	values     []byte // random values to copy from, back to back
	partition  int32  // of the next group

	mu    sync.Mutex // guards stats: promises run on the client's goroutines
	stats *flowStats
}

// group is --batch records sent together, acknowledged when the last is.
type group struct {
	t0       time.Time
	left, ok int
}

func (p *kafkaProducer) run(ctx context.Context) {
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
			break
		}
		if !p.takeSlot(ctx) {
			break
		}
		g := &group{t0: t0, left: p.batch}
		for i := 0; i < p.batch; i++ {
			// The client holds each record until it is acknowledged, so
			// each gets its own value.
			v := make([]byte, p.size)
			copy(v, p.values[i*p.size:(i+1)*p.size])
			binary.BigEndian.PutUint64(v, uint64(t0.UnixNano()))
			p.cl.Produce(context.WithoutCancel(ctx), &kgo.Record{Partition: p.partition, Value: v}, func(_ *kgo.Record, err error) { p.acked(g, err) })
		}
		p.partition = (p.partition + 1) % p.partitions
	}
	// Wait for what is in flight, unless interrupted or the broker stays
	// silent; the client's Close then fails what is left, counted as
	// CLIENT_CLOSED.
	fctx, cancel := context.WithTimeout(ctx, kafkaDrainTimeout)
	defer cancel()
	_ = p.cl.Flush(fctx)
}

// kafkaDrainTimeout bounds the wait for answers after the window: franz-go
// retries an idempotent record until it is answered, so a broker that went
// away would otherwise hold the run forever.
const kafkaDrainTimeout = 30 * time.Second

// takeSlot waits for room for one more group in flight. It gives up when
// ctx ends, or when the window ended and no answer freed a slot for
// kafkaDrainTimeout after it.
func (p *kafkaProducer) takeSlot(ctx context.Context) bool {
	select {
	case p.slots <- struct{}{}:
		return true
	default:
	}
	timer := time.NewTimer(time.Until(p.win.end.Add(kafkaDrainTimeout)))
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
		return true
	case <-ctx.Done():
	case <-timer.C:
	}
	return false
}

// acked counts one record's answer; the group's last one records the
// group's latency and frees its slot.
func (p *kafkaProducer) acked(g *group, err error) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.win.in(now) && !errors.Is(err, context.Canceled) {
			p.stats.errors[kafkaErrorCode(err)]++
		}
		p.cnt.errors.Add(1)
	} else {
		g.ok++
	}
	if g.left--; g.left > 0 {
		return
	}
	n := int64(g.ok)
	p.cnt.produced.Add(n)
	p.cnt.producedBytes.Add(n * int64(p.size))
	if p.win.in(now) && n > 0 {
		p.stats.records += n
		p.stats.bytes += n * int64(p.size)
		p.stats.hist.Record(now.Sub(g.t0).Nanoseconds())
	}
	<-p.slots
}

// kafkaReader reads its share of the partitions up to their high
// watermarks with one franz-go client, from the offsets given.
type kafkaReader struct {
	brokers []string
	topic   string
	share   map[int32][2]int64
	// maxBytes is each partition's in a Fetch (FetchMaxPartitionBytes,
	// Kafka's max.partition.fetch.bytes); maxRequestBytes the Fetch's over
	// all partitions (FetchMaxBytes, Kafka's fetch.max.bytes).
	maxBytes        int32
	maxRequestBytes int32
	win             window
	cnt             *counters
	stats           *flowStats
}

func (r *kafkaReader) read(ctx context.Context) error {
	offsets := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	for p, s := range r.share {
		offsets[p] = kgo.NewOffset().At(s[0])
		left[p] = s[1]
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: offsets}),
		kgo.FetchMaxBytes(r.maxRequestBytes), kgo.FetchMaxPartitionBytes(r.maxBytes))
	if err != nil {
		return err
	}
	defer cl.Close()
	last := time.Now()
	for len(left) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now()
		var failed error
		fetches.EachError(func(topic string, p int32, err error) {
			if r.win.in(now) {
				r.stats.errors[kafkaErrorCode(err)]++
			}
			r.cnt.errors.Add(1)
			failed = fmt.Errorf("fetch %s partition %d: %w", topic, p, err)
		})
		if failed != nil {
			return failed
		}
		var n, bytes int64
		fetches.EachRecord(func(rec *kgo.Record) {
			end, ok := left[rec.Partition]
			if !ok || rec.Offset >= end {
				return // past the backlog's end
			}
			n++
			bytes += int64(len(rec.Value) + len(rec.Key))
			for _, h := range rec.Headers {
				bytes += int64(len(h.Key) + len(h.Value))
			}
			if rec.Offset+1 >= end {
				delete(left, rec.Partition)
			}
		})
		r.cnt.consumed.Add(n)
		r.cnt.consumedBytes.Add(bytes)
		if r.win.in(now) {
			r.stats.records += n
			r.stats.bytes += bytes
			r.stats.hist.Record(now.Sub(last).Nanoseconds())
		}
		last = now
	}
	return nil
}

// kafkaTail follows partitions from the offsets given (their high
// watermarks before any producer started).
type kafkaTail struct{ cl *kgo.Client }

func openKafkaTail(f *Config, topic string, partitions []int32, ends map[int32]int64) (*kafkaTail, error) {
	offsets := map[int32]kgo.Offset{}
	for _, p := range partitions {
		offsets[p] = kgo.NewOffset().At(ends[p])
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.Kafka...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		// Tailing: the broker answers as soon as one record is there.
		kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return nil, flagErrorf("--kafka %s: %v", strings.Join(f.Kafka, ","), err)
	}
	return &kafkaTail{cl: cl}, nil
}

func (k *kafkaTail) next(ctx context.Context, each func(key, value []byte)) (bool, error) {
	fetches := k.cl.PollFetches(ctx)
	if ctx.Err() != nil {
		return false, nil
	}
	var failed error
	fetches.EachError(func(topic string, p int32, err error) {
		failed = fmt.Errorf("fetch %s partition %d: %w", topic, p, err)
	})
	if failed != nil {
		return false, failed
	}
	fetches.EachRecord(func(rec *kgo.Record) { each(rec.Key, rec.Value) })
	return true, nil
}

func (k *kafkaTail) close() { k.cl.Close() }
