// Package kafkafake is an in-memory kafka.Core for tests of the Kafka
// front-end and of what drives it (kafka/'s tests, the Kafka mode of the
// benchmark harness in internal/bench): topics, configs, partitions of stored
// record batches, idempotent producers and long-polling fetches, all in one
// process and behind one lock. It keeps the core's contracts (kafka/core.go)
// so that real Kafka clients can run against a kafka.Server over it; it is not
// the agent core and stores nothing durably.
//
// It is for tests only: no command or server links it. It lives under
// internal/ rather than inside kafka/ so that tests of other packages can
// start a kafka.Server over it.
//
// Simplifications, each safe for the tests that use it: timestamps are
// looked up per batch (the first batch whose max timestamp is at or after the
// one asked, answered with that batch's base offset and max timestamp), which
// is exact for one-record batches; transactions are checked and their
// offsets committed, but no control records are written (txn.go), so the
// last stable offset is the high watermark and no transaction is ever listed
// as aborted.
package kafkafake

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratabroker/strata/kafka"
)

// Core is the fake. The zero value is not usable; call New.
type Core struct {
	// ProduceDelay delays every produce result, as a flush interval does.
	// Set it before use.
	ProduceDelay time.Duration
	// DefaultPartitions is what a topic created with -1 partitions gets.
	DefaultPartitions int32

	mu        sync.Mutex
	clusterID string
	brokers   []kafka.Broker
	topics    map[string]*topic
	nextPID   int64
	producers map[int64]int16                                           // producer id -> current epoch
	changed   chan struct{}                                             // closed and replaced on every append: wakes long polls
	polling   atomic.Int32                                              // fetches waiting for data
	offsets   map[string]map[kafka.TopicPartition]kafka.CommittedOffset // committed, by group (groups.go)
	txns      map[string]*txnState                                      // by transactional id (txn.go)
	nodeID    int32                                                     // NodeID's answer; 0: the first broker's id
}

// Polling is the number of fetches waiting for data right now.
func (c *Core) Polling() int { return int(c.polling.Load()) }

type topic struct {
	kafka.Topic
	configs    map[string]string // the topic's own values
	partitions []*partition
}

type partition struct {
	batches        []storedBatch
	highWatermark  int64
	logStartOffset int64
	producers      map[int64]*producerState
}

type storedBatch struct {
	base, last   int64 // first and last offset
	maxTimestamp int64
	raw          []byte
	firstSeq     int32
	pid          int64
}

type producerState struct {
	epoch   int16
	nextSeq int32
}

// New returns an empty fake with the given brokers.
func New(clusterID string, brokers ...kafka.Broker) *Core {
	return &Core{
		DefaultPartitions: 1,
		clusterID:         clusterID,
		brokers:           brokers,
		topics:            map[string]*topic{},
		producers:         map[int64]int16{},
		nextPID:           1000,
		changed:           make(chan struct{}),
	}
}

// SetBrokers replaces the live brokers.
func (c *Core) SetBrokers(brokers ...kafka.Broker) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.brokers = slices.Clone(brokers)
}

// ClusterID implements kafka.ClusterCore.
func (c *Core) ClusterID() string { return c.clusterID }

// Brokers implements kafka.ClusterCore.
func (c *Core) Brokers(context.Context) ([]kafka.Broker, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.brokers), nil
}

// SetNodeID sets the broker the front-end answers as (NodeID); until it is
// set, that is the first broker given.
func (c *Core) SetNodeID(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodeID = id
}

// NodeID implements kafka.ClusterCore.
func (c *Core) NodeID() int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodeID == 0 && len(c.brokers) > 0 {
		return c.brokers[0].ID
	}
	return c.nodeID
}

// PartitionBytes implements kafka.StorageCore: the bytes of the batches
// stored at or above each partition's log start offset.
func (c *Core) PartitionBytes(_ context.Context, id kafka.TopicID, partitions []int32) ([]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.topics {
		if t.ID != id {
			continue
		}
		out := make([]int64, len(partitions))
		for i, p := range partitions {
			if p < 0 || int(p) >= len(t.partitions) {
				return nil, fmt.Errorf("%w: partition %d", kafka.ErrUnknownTopicOrPartition, p)
			}
			for _, b := range t.partitions[p].batches {
				if b.last >= t.partitions[p].logStartOffset {
					out[i] += int64(len(b.raw))
				}
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: topic id %x", kafka.ErrUnknownTopicOrPartition, id)
}

// configDef is one topic config the fake knows.
type configDef struct {
	def   string
	typ   kafka.ConfigType
	check func(string) error
}

func isInt(bits int) func(string) error {
	return func(v string) error {
		_, err := strconv.ParseInt(v, 10, bits)
		return err
	}
}

var configDefs = map[string]configDef{
	"retention.ms":           {"604800000", kafka.ConfigTypeLong, isInt(64)},
	"retention.bytes":        {"-1", kafka.ConfigTypeLong, isInt(64)},
	"max.message.bytes":      {"1048588", kafka.ConfigTypeInt, isInt(32)},
	"message.timestamp.type": {"CreateTime", kafka.ConfigTypeString, oneOf("CreateTime", "LogAppendTime")},
	"cleanup.policy": {"delete", kafka.ConfigTypeList, func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if err := oneOf("delete", "compact")(p); err != nil {
				return err
			}
		}
		return nil
	}},
}

func oneOf(values ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(values, v) {
			return fmt.Errorf("%q is not one of %v", v, values)
		}
		return nil
	}
}

func checkConfig(name, value string) error {
	d, ok := configDefs[name]
	if !ok {
		return fmt.Errorf("%w: unknown topic config %q", kafka.ErrInvalidConfig, name)
	}
	if err := d.check(value); err != nil {
		return fmt.Errorf("%w: %s: %v", kafka.ErrInvalidConfig, name, err)
	}
	return nil
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Topics implements kafka.TopicCore.
func (c *Core) Topics(context.Context) ([]kafka.Topic, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []kafka.Topic
	for _, t := range c.topics {
		out = append(out, t.Topic)
	}
	slices.SortFunc(out, func(a, b kafka.Topic) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Topic implements kafka.TopicCore.
func (c *Core) Topic(_ context.Context, name string) (kafka.Topic, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[name]
	if !ok {
		return kafka.Topic{}, fmt.Errorf("%w: topic %q", kafka.ErrUnknownTopicOrPartition, name)
	}
	return t.Topic, nil
}

// TopicByID implements kafka.TopicCore.
func (c *Core) TopicByID(_ context.Context, id kafka.TopicID) (kafka.Topic, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.topics {
		if t.ID == id {
			return t.Topic, nil
		}
	}
	return kafka.Topic{}, fmt.Errorf("%w: %x", kafka.ErrUnknownTopicID, id)
}

// CreateTopic implements kafka.TopicCore.
func (c *Core) CreateTopic(_ context.Context, spec kafka.TopicSpec, validateOnly bool) (kafka.Topic, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !validName.MatchString(spec.Name) || spec.Name == "." || spec.Name == ".." {
		return kafka.Topic{}, fmt.Errorf("%w: %q", kafka.ErrInvalidTopic, spec.Name)
	}
	n := spec.Partitions
	if n == -1 {
		n = c.DefaultPartitions
	}
	if n < 1 {
		return kafka.Topic{}, fmt.Errorf("%w: %d", kafka.ErrInvalidPartitions, spec.Partitions)
	}
	for k, v := range spec.Configs {
		if err := checkConfig(k, v); err != nil {
			return kafka.Topic{}, err
		}
	}
	if _, ok := c.topics[spec.Name]; ok {
		return kafka.Topic{}, fmt.Errorf("%w: %q", kafka.ErrTopicAlreadyExists, spec.Name)
	}
	t := kafka.Topic{Name: spec.Name, Partitions: n}
	if validateOnly {
		return t, nil
	}
	rand.Read(t.ID[:])
	nt := &topic{Topic: t, configs: map[string]string{}}
	for k, v := range spec.Configs {
		nt.configs[k] = v
	}
	for range n {
		nt.partitions = append(nt.partitions, newPartition())
	}
	c.topics[spec.Name] = nt
	return t, nil
}

func newPartition() *partition {
	return &partition{producers: map[int64]*producerState{}}
}

// DeleteTopic implements kafka.TopicCore.
func (c *Core) DeleteTopic(_ context.Context, name string) (kafka.Topic, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[name]
	if !ok {
		return kafka.Topic{}, fmt.Errorf("%w: topic %q", kafka.ErrUnknownTopicOrPartition, name)
	}
	delete(c.topics, name)
	return t.Topic, nil
}

// CreatePartitions implements kafka.TopicCore.
func (c *Core) CreatePartitions(_ context.Context, name string, count int32, validateOnly bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[name]
	if !ok {
		return fmt.Errorf("%w: topic %q", kafka.ErrUnknownTopicOrPartition, name)
	}
	if count <= t.Partitions {
		return fmt.Errorf("%w: topic %q has %d partitions; asked for %d", kafka.ErrInvalidPartitions, name, t.Partitions, count)
	}
	if validateOnly {
		return nil
	}
	for range count - t.Partitions {
		t.partitions = append(t.partitions, newPartition())
	}
	t.Partitions = count
	return nil
}

// TopicConfigs implements kafka.TopicCore.
func (c *Core) TopicConfigs(_ context.Context, name string) ([]kafka.TopicConfig, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: topic %q", kafka.ErrUnknownTopicOrPartition, name)
	}
	var out []kafka.TopicConfig
	for k, d := range configDefs {
		cfg := kafka.TopicConfig{Name: k, Type: d.typ, Source: kafka.ConfigSourceDefault, Documentation: "the " + k + " of the topic"}
		v := d.def
		if own, ok := t.configs[k]; ok {
			v, cfg.Source = own, kafka.ConfigSourceTopic
		}
		cfg.Value = &v
		out = append(out, cfg)
	}
	slices.SortFunc(out, func(a, b kafka.TopicConfig) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// AlterTopicConfigs implements kafka.TopicCore.
func (c *Core) AlterTopicConfigs(_ context.Context, name string, changes []kafka.ConfigChange, validateOnly bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[name]
	if !ok {
		return fmt.Errorf("%w: topic %q", kafka.ErrUnknownTopicOrPartition, name)
	}
	for _, ch := range changes {
		if _, ok := configDefs[ch.Name]; !ok {
			return fmt.Errorf("%w: unknown topic config %q", kafka.ErrInvalidConfig, ch.Name)
		}
		if ch.Value != nil {
			if err := checkConfig(ch.Name, *ch.Value); err != nil {
				return err
			}
		}
	}
	if validateOnly {
		return nil
	}
	for _, ch := range changes {
		if ch.Value == nil {
			delete(t.configs, ch.Name)
		} else {
			t.configs[ch.Name] = *ch.Value
		}
	}
	return nil
}

// partitionLocked returns a partition; c.mu is held.
func (c *Core) partitionLocked(name string, p int32) (*topic, *partition, error) {
	t, ok := c.topics[name]
	if !ok || p < 0 || p >= t.Partitions {
		return nil, nil, fmt.Errorf("%w: %s/%d", kafka.ErrUnknownTopicOrPartition, name, p)
	}
	return t, t.partitions[p], nil
}

func (t *topic) config(name string) string {
	if v, ok := t.configs[name]; ok {
		return v
	}
	return configDefs[name].def
}

// Produce implements kafka.LogCore.
func (c *Core) Produce(_ context.Context, name string, p int32, b kafka.Batch) <-chan kafka.ProduceResult {
	ch := make(chan kafka.ProduceResult, 1)
	r := c.append(name, p, b)
	if c.ProduceDelay > 0 {
		time.AfterFunc(c.ProduceDelay, func() { ch <- r })
	} else {
		ch <- r
	}
	return ch
}

func (c *Core) append(name string, p int32, b kafka.Batch) kafka.ProduceResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	fail := func(err error) kafka.ProduceResult {
		return kafka.ProduceResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1, Err: err}
	}
	t, part, err := c.partitionLocked(name, p)
	if err != nil {
		return fail(err)
	}
	if limit, _ := strconv.Atoi(t.config("max.message.bytes")); len(b.Raw) > limit {
		return fail(fmt.Errorf("%w: %d bytes; max.message.bytes is %d", kafka.ErrMessageTooLarge, len(b.Raw), limit))
	}
	if b.Transactional {
		if err := c.checkTxnBatchLocked(name, p, b); err != nil {
			return fail(err)
		}
	}
	if b.ProducerID >= 0 {
		st := part.producers[b.ProducerID]
		switch {
		case st != nil && b.ProducerEpoch < st.epoch:
			return fail(fmt.Errorf("%w: epoch %d, current %d", kafka.ErrInvalidProducerEpoch, b.ProducerEpoch, st.epoch))
		case st != nil && b.ProducerEpoch == st.epoch && b.BaseSequence != st.nextSeq:
			for _, old := range part.batches {
				if old.pid == b.ProducerID && old.firstSeq == b.BaseSequence {
					return kafka.ProduceResult{BaseOffset: old.base, LogAppendTime: -1, LogStartOffset: part.logStartOffset}
				}
			}
			return fail(fmt.Errorf("%w: sequence %d, expected %d", kafka.ErrOutOfOrderSequence, b.BaseSequence, st.nextSeq))
		case (st == nil || b.ProducerEpoch > st.epoch) && b.BaseSequence != 0:
			return fail(fmt.Errorf("%w: a new producer epoch starts at sequence 0, not %d", kafka.ErrOutOfOrderSequence, b.BaseSequence))
		}
		part.producers[b.ProducerID] = &producerState{epoch: b.ProducerEpoch, nextSeq: b.BaseSequence + b.Records}
	}
	base := part.highWatermark
	binary.BigEndian.PutUint64(b.Raw[0:], uint64(base))
	part.batches = append(part.batches, storedBatch{
		base: base, last: base + int64(b.Records) - 1, maxTimestamp: b.MaxTimestamp,
		raw: b.Raw, firstSeq: b.BaseSequence, pid: b.ProducerID,
	})
	part.highWatermark += int64(b.Records)
	close(c.changed)
	c.changed = make(chan struct{})
	return kafka.ProduceResult{BaseOffset: base, LogAppendTime: -1, LogStartOffset: part.logStartOffset}
}

// Fetch implements kafka.LogCore.
func (c *Core) Fetch(ctx context.Context, req kafka.FetchRequest) ([]kafka.FetchResult, error) {
	deadline := time.NewTimer(req.MaxWait)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		results, total, anyErr := c.readLocked(req)
		changed := c.changed
		c.mu.Unlock()
		if anyErr || total >= int(req.MinBytes) {
			return results, nil
		}
		c.polling.Add(1)
		select {
		case <-changed:
			c.polling.Add(-1)
		case <-deadline.C:
			c.polling.Add(-1)
			c.mu.Lock()
			results, _, _ = c.readLocked(req)
			c.mu.Unlock()
			return results, nil
		case <-ctx.Done():
			c.polling.Add(-1)
			return nil, ctx.Err()
		}
	}
}

func (c *Core) readLocked(req kafka.FetchRequest) ([]kafka.FetchResult, int, bool) {
	results := make([]kafka.FetchResult, len(req.Partitions))
	total, anyErr := 0, false
	for i, fp := range req.Partitions {
		r := &results[i]
		r.Batches = []byte{}
		_, part, err := c.partitionLocked(fp.Topic, fp.Partition)
		if err != nil {
			r.Err, anyErr = err, true
			r.HighWatermark, r.LastStableOffset, r.LogStartOffset = -1, -1, -1
			continue
		}
		r.HighWatermark, r.LastStableOffset, r.LogStartOffset = part.highWatermark, part.highWatermark, part.logStartOffset
		if fp.Offset < part.logStartOffset || fp.Offset > part.highWatermark {
			r.Err, anyErr = fmt.Errorf("%w: offset %d, log %d..%d", kafka.ErrOffsetOutOfRange, fp.Offset, part.logStartOffset, part.highWatermark), true
			continue
		}
		partBytes := 0
		for _, b := range part.batches {
			if b.last < fp.Offset {
				continue
			}
			n := len(b.raw)
			if partBytes+n > int(fp.MaxBytes) || total+n > int(req.MaxBytes) {
				if total > 0 || partBytes > 0 {
					break
				}
			}
			r.Batches = append(r.Batches, b.raw...)
			partBytes += n
			total += n
			if partBytes >= int(fp.MaxBytes) || total >= int(req.MaxBytes) {
				break
			}
		}
	}
	return results, total, anyErr
}

// ListOffset implements kafka.LogCore.
func (c *Core) ListOffset(_ context.Context, name string, p int32, ts int64, _ bool) (kafka.OffsetAndTimestamp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, part, err := c.partitionLocked(name, p)
	if err != nil {
		return kafka.OffsetAndTimestamp{}, err
	}
	switch ts {
	case kafka.ListLatest:
		return kafka.OffsetAndTimestamp{Offset: part.highWatermark, Timestamp: -1}, nil
	case kafka.ListEarliest:
		return kafka.OffsetAndTimestamp{Offset: part.logStartOffset, Timestamp: -1}, nil
	case kafka.ListMaxTimestamp:
		best := kafka.OffsetAndTimestamp{Offset: -1, Timestamp: -1}
		for _, b := range part.batches {
			if b.maxTimestamp > best.Timestamp {
				best = kafka.OffsetAndTimestamp{Offset: b.last, Timestamp: b.maxTimestamp}
			}
		}
		return best, nil
	}
	for _, b := range part.batches {
		if b.maxTimestamp >= ts && b.last >= part.logStartOffset {
			return kafka.OffsetAndTimestamp{Offset: max(b.base, part.logStartOffset), Timestamp: b.maxTimestamp}, nil
		}
	}
	return kafka.OffsetAndTimestamp{Offset: -1, Timestamp: -1}, nil
}

// DeleteRecords implements kafka.LogCore.
func (c *Core) DeleteRecords(_ context.Context, name string, p int32, before int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, part, err := c.partitionLocked(name, p)
	if err != nil {
		return -1, err
	}
	if before == -1 {
		before = part.highWatermark
	}
	if before < 0 || before > part.highWatermark {
		return -1, fmt.Errorf("%w: %d is above the high watermark %d", kafka.ErrOffsetOutOfRange, before, part.highWatermark)
	}
	if before > part.logStartOffset {
		part.logStartOffset = before
		part.batches = slices.DeleteFunc(part.batches, func(b storedBatch) bool { return b.last < before })
	}
	return part.logStartOffset, nil
}

// InitProducerID implements kafka.ProducerCore.
func (c *Core) InitProducerID(_ context.Context, req kafka.InitProducer) (int64, int16, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if req.TransactionalID != "" {
		return c.initTxnLocked(req)
	}
	if req.ProducerID >= 0 {
		epoch, ok := c.producers[req.ProducerID]
		if !ok {
			return -1, -1, fmt.Errorf("%w: %d", kafka.ErrUnknownProducerID, req.ProducerID)
		}
		if req.ProducerEpoch != epoch {
			return -1, -1, fmt.Errorf("%w: %d, current %d", kafka.ErrInvalidProducerEpoch, req.ProducerEpoch, epoch)
		}
		c.producers[req.ProducerID] = epoch + 1
		return req.ProducerID, epoch + 1, nil
	}
	c.nextPID++
	c.producers[c.nextPID] = 0
	return c.nextPID, 0, nil
}

var _ kafka.Core = (*Core)(nil)

// StoredBatches returns the raw batches stored for a topic, partition by
// partition, as a fetch would return them: for tests that check what was
// stored byte for byte.
func (c *Core) StoredBatches(name string) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[name]
	if !ok {
		return nil
	}
	var out [][]byte
	for _, p := range t.partitions {
		for _, b := range p.batches {
			out = append(out, slices.Clone(b.raw))
		}
	}
	return out
}
