// Package agentcore implements kafka.Core over the agent core (package
// agent): it is what makes every agent a Kafka broker. It is an adapter
// only: each method converts between the kafka package's types and the
// agent's Go API and maps the core's errors (agent's, coordinator's,
// objectlog's) to the kafka package's sentinels, in one table (kafkaErr).
// Appends, reads, long polls, topics and producer ids are the agent's own
// code paths, shared with the Connect API.
//
// Why a package of its own: the dependency direction is cmd -> front-ends ->
// agent core -> {objectlog, coordinator}. The core must not know Kafka, so the
// adapter cannot live in agent; package kafka keeps to Kafka frames and its
// Core interface and imports neither agent nor coordinator (its tests run
// over an in-memory fake core), so the one place that knows both sides is
// this package, on the front-end's side of the line. cmd/strata wires it:
// agentcore.New(agent) handed to kafka.NewServer.
package agentcore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/kafka"
	"github.com/stratabroker/strata/objectlog"
)

// DefaultPartitions is what a CreateTopics asking for the default (-1) gets:
// Kafka's num.partitions default, and the Connect API's default.
const DefaultPartitions = 1

// Core is kafka.Core over one agent.
type Core struct {
	a         *agent.Agent
	clusterID string
	self      kafka.Broker
	log       *slog.Logger
	probes    prober
}

var (
	_ kafka.Core             = (*Core)(nil)
	_ kafka.BrokerConfigCore = (*Core)(nil)
)

// New returns the Kafka core of an agent started with a Kafka advertise
// address (agent.Config.KafkaAdvertise). It reads the cluster id once.
func New(ctx context.Context, a *agent.Agent, log *slog.Logger) (*Core, error) {
	if log == nil {
		log = slog.Default()
	}
	self, err := broker(a.NodeID(), a.KafkaAdvertise(), a.Zone())
	if err != nil {
		return nil, fmt.Errorf("kafka advertise address: %w", err)
	}
	id, err := a.ClusterID(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the cluster id: %w", err)
	}
	return &Core{a: a, clusterID: id, self: self, log: log, probes: prober{dial: dialProbe, every: probeEvery, state: map[string]*probe{}}}, nil
}

// broker is a Broker for an advertised host:port.
func broker(id int32, addr, zone string) (kafka.Broker, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return kafka.Broker{}, fmt.Errorf("%q: %w", addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || host == "" {
		return kafka.Broker{}, fmt.Errorf("%q: want host:port", addr)
	}
	return kafka.Broker{ID: id, Host: host, Port: int32(n), Zone: zone}, nil
}

// ClusterID implements kafka.ClusterCore.
func (c *Core) ClusterID() string { return c.clusterID }

// Brokers implements kafka.ClusterCore: the live agents that registered a
// Kafka listener. This agent is always listed, even before its first
// registration is visible or while the registry cannot be read, so a client
// always has a broker to go to (any agent serves any partition).
//
// An agent killed without deregistering stays in the registry until its
// registration expires (15 s); so that clients move off it sooner, other
// agents' Kafka listeners are probed (a TCP connect, at most once per
// probeEvery each, in the background) and one that refused or timed out
// on its last probe is left out until a probe reaches it again.
func (c *Core) Brokers(ctx context.Context) ([]kafka.Broker, error) {
	live, err := c.a.LiveAgents(ctx)
	if err != nil {
		c.log.Warn("Kafka brokers: listing the live agents failed; listing this agent alone", "err", err)
		return []kafka.Broker{c.self}, nil
	}
	out := make([]kafka.Broker, 0, len(live)+1)
	seenSelf := false
	for _, ag := range live {
		if ag.KafkaAddr == "" || ag.NodeID == 0 {
			continue // no Kafka listener, or an agent of an older version
		}
		if ag.ID == c.a.ID() {
			seenSelf = true
			out = append(out, c.self)
			continue
		}
		b, err := broker(ag.NodeID, ag.KafkaAddr, ag.Zone)
		if err != nil {
			c.log.Warn("Kafka brokers: agent registered a bad Kafka address", "agent", ag.ID, "err", err)
			continue
		}
		if !c.probes.reachable(ag.KafkaAddr) {
			continue
		}
		out = append(out, b)
	}
	if !seenSelf {
		out = append(out, c.self)
	}
	return out, nil
}

// probeEvery is how often another agent's Kafka listener is probed at most.
const probeEvery = time.Second

// dialProbe connects to a Kafka listener and hangs up.
func dialProbe(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// prober remembers, per Kafka address, whether its last probe reached it.
type prober struct {
	dial  func(addr string) error
	every time.Duration

	mu    sync.Mutex
	state map[string]*probe
}

type probe struct {
	down    bool      // the last probe failed
	last    time.Time // when the last probe started
	running bool
	seen    time.Time // when reachable last asked: addresses not asked for are forgotten
}

// reachable reports whether addr's last probe reached it (true before the
// first probe ends), and starts a probe in the background if the last one
// is older than every.
func (p *prober) reachable(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for a, st := range p.state {
		if now.Sub(st.seen) > time.Minute && !st.running {
			delete(p.state, a)
		}
	}
	st := p.state[addr]
	if st == nil {
		st = &probe{}
		p.state[addr] = st
	}
	st.seen = now
	if !st.running && now.Sub(st.last) >= p.every {
		st.running, st.last = true, now
		go func() {
			err := p.dial(addr)
			p.mu.Lock()
			st.running, st.down = false, err != nil
			p.mu.Unlock()
		}()
	}
	return !st.down
}

func topicOf(t coordinator.Topic) kafka.Topic {
	return kafka.Topic{Name: t.Name, ID: kafka.TopicID(t.ID), Partitions: t.Config.Partitions}
}

// NodeID implements kafka.ClusterCore: the agent's node id.
func (c *Core) NodeID() int32 { return c.self.ID }

// PartitionBytes implements kafka.StorageCore over the index's byte counts
// (agent.Agent.PartitionBytes).
func (c *Core) PartitionBytes(ctx context.Context, id kafka.TopicID, partitions []int32) ([]int64, error) {
	sizes, err := c.a.PartitionBytes(ctx, uuid.UUID(id), partitions)
	return sizes, kafkaErr(err)
}

// DescribeTransaction implements kafka.TxnDescribeCore over the index's
// transaction state (agent.Agent.DescribeTransaction), naming topics by
// their names; partitions of topics deleted since are left out.
func (c *Core) DescribeTransaction(ctx context.Context, transactionalID string) (kafka.TxnDescription, error) {
	txn, err := c.a.DescribeTransaction(ctx, transactionalID)
	if errors.Is(err, agent.ErrUnknownTransactionalID) {
		return kafka.TxnDescription{}, fmt.Errorf("%w: %w", kafka.ErrTransactionalIDNotFound, err)
	}
	if err != nil {
		return kafka.TxnDescription{}, kafkaErr(err)
	}
	d := kafka.TxnDescription{State: string(txn.State), ProducerID: txn.ProducerID, ProducerEpoch: txn.ProducerEpoch,
		Timeout: txn.Timeout, Started: txn.Started}
	if len(txn.Partitions) > 0 {
		topics, err := c.a.AllTopics(ctx)
		if err != nil {
			return kafka.TxnDescription{}, kafkaErr(err)
		}
		names := make(map[uuid.UUID]string, len(topics))
		for _, t := range topics {
			names[t.ID] = t.Name
		}
		for _, p := range txn.Partitions {
			if name, ok := names[p.TopicID]; ok {
				d.Partitions = append(d.Partitions, kafka.TopicPartition{Topic: name, Partition: p.Partition})
			}
		}
		slices.SortFunc(d.Partitions, func(a, b kafka.TopicPartition) int {
			return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		})
	}
	return d, nil
}

// Topics implements kafka.TopicCore.
func (c *Core) Topics(ctx context.Context) ([]kafka.Topic, error) {
	ts, err := c.a.AllTopics(ctx)
	if err != nil {
		return nil, kafkaErr(err)
	}
	out := make([]kafka.Topic, len(ts))
	for i, t := range ts {
		out[i] = topicOf(t)
	}
	return out, nil
}

// Topic implements kafka.TopicCore.
func (c *Core) Topic(ctx context.Context, name string) (kafka.Topic, error) {
	t, err := c.a.ReadTopic(ctx, name)
	if err != nil {
		return kafka.Topic{}, kafkaErr(err)
	}
	return topicOf(t), nil
}

// TopicByID implements kafka.TopicCore. The index keys topics by name, so
// this lists them.
func (c *Core) TopicByID(ctx context.Context, id kafka.TopicID) (kafka.Topic, error) {
	ts, err := c.a.AllTopics(ctx)
	if err != nil {
		return kafka.Topic{}, kafkaErr(err)
	}
	for _, t := range ts {
		if t.ID == uuid.UUID(id) {
			return topicOf(t), nil
		}
	}
	return kafka.Topic{}, fmt.Errorf("%w: %s", kafka.ErrUnknownTopicID, uuid.UUID(id))
}

// CreateTopic implements kafka.TopicCore.
func (c *Core) CreateTopic(ctx context.Context, spec kafka.TopicSpec, validateOnly bool) (kafka.Topic, error) {
	n := spec.Partitions
	switch {
	case n == -1:
		n = DefaultPartitions
	case n < 1:
		return kafka.Topic{}, fmt.Errorf("%w: %d partitions: want at least 1, or -1 for the default", kafka.ErrInvalidPartitions, n)
	}
	t, err := c.a.NewTopic(ctx, spec.Name, n, spec.Configs, validateOnly)
	if err != nil {
		return kafka.Topic{}, kafkaErr(err)
	}
	return topicOf(t), nil
}

// DeleteTopic implements kafka.TopicCore.
func (c *Core) DeleteTopic(ctx context.Context, name string) (kafka.Topic, error) {
	t, err := c.a.RemoveTopic(ctx, name)
	if err != nil {
		return kafka.Topic{}, kafkaErr(err)
	}
	return topicOf(t), nil
}

// CreatePartitions implements kafka.TopicCore.
func (c *Core) CreatePartitions(ctx context.Context, name string, count int32, validateOnly bool) error {
	return kafkaErr(c.a.AddPartitions(ctx, name, count, validateOnly))
}

// configInfo describes the configs the core has, with Kafka's types.
var configInfo = map[string]struct {
	typ kafka.ConfigType
	doc string
}{
	coordinator.ConfigRetentionMs:     {kafka.ConfigTypeLong, "How long records are kept, in ms; -1 keeps them forever."},
	coordinator.ConfigRetentionBytes:  {kafka.ConfigTypeLong, "How many bytes a partition keeps before its oldest segments go; -1 for no limit."},
	coordinator.ConfigMaxMessageBytes: {kafka.ConfigTypeInt, "The largest record batch a producer may send, in bytes."},
	coordinator.ConfigCleanupPolicy:   {kafka.ConfigTypeList, "How old records go: delete (retention), compact (the latest record per key), or both."},
	coordinator.ConfigCompression:     {kafka.ConfigTypeString, "The codec records are stored with; producer keeps the producer's."},
	coordinator.ConfigArchiveAfterMs:  {kafka.ConfigTypeLong, "Records older than this, in ms, move from hot segments into the partition's Parquet archive; -1 never archives."},
	coordinator.ConfigDeleteRetentionMs: {kafka.ConfigTypeLong,
		"How long, in ms, a compacted topic keeps a tombstone after the cleaner first found it cleanable."},
	coordinator.ConfigMinCompactionLagMs: {kafka.ConfigTypeLong, "Records newer than this, in ms, are never cleaned."},
	coordinator.ConfigMinCleanableDirtyRatio: {kafka.ConfigTypeDouble,
		"The share of a compacted partition's cleanable archive written since its last cleaning at which it is cleaned again."},
}

// passiveConfigInfo describes the configs Strata keeps without effect; the
// documentation says why they change nothing.
var passiveConfigInfo = func() map[string]struct {
	typ kafka.ConfigType
	doc string
} {
	types := map[string]kafka.ConfigType{"int": kafka.ConfigTypeInt, "long": kafka.ConfigTypeLong,
		"boolean": kafka.ConfigTypeBoolean, "string": kafka.ConfigTypeString, "list": kafka.ConfigTypeList}
	out := map[string]struct {
		typ kafka.ConfigType
		doc string
	}{}
	for _, p := range coordinator.PassiveConfigs() {
		out[p.Name] = struct {
			typ kafka.ConfigType
			doc string
		}{types[p.Type], "Accepted for Kafka compatibility, no effect on Strata: " + p.NoEffect + "."}
	}
	return out
}()

// BrokerConfigs implements kafka.BrokerConfigCore: the broker configs a
// console shows, each true of this agent and read-only (agents take their
// configuration from flags). The topic defaults are what a topic created
// without configs gets; auto.create.topics.enable is false because Metadata
// never creates topics; replication is the object store's, so the factor
// is 1 and one in-sync replica is all there is.
func (c *Core) BrokerConfigs() []kafka.TopicConfig {
	defaults, err := c.a.TopicDefaults()
	if err != nil {
		// The built-in defaults always validate; nothing to report otherwise.
		return nil
	}
	id := strconv.Itoa(int(c.NodeID()))
	entry := func(name, value string, typ kafka.ConfigType, doc string) kafka.TopicConfig {
		return kafka.TopicConfig{Name: name, Value: &value, Source: kafka.ConfigSourceStaticBroker, Type: typ, ReadOnly: true, Documentation: doc}
	}
	return []kafka.TopicConfig{
		entry("auto.create.topics.enable", "false", kafka.ConfigTypeBoolean, "Metadata never creates topics; create them with CreateTopics or strata topic create."),
		entry("broker.id", id, kafka.ConfigTypeInt, "This agent's node id."),
		entry("compression.type", defaults.Compression, kafka.ConfigTypeString, "The compression.type of a topic without its own."),
		entry("default.replication.factor", "1", kafka.ConfigTypeInt, "Replication is the object store's; a topic's requested factor is accepted and has no effect."),
		entry("log.cleanup.policy", defaults.CleanupPolicy, kafka.ConfigTypeList, "The cleanup.policy of a topic without its own."),
		entry("log.message.timestamp.type", "CreateTime", kafka.ConfigTypeString, "Batches are stored as producers wrote them."),
		entry("log.retention.bytes", strconv.FormatInt(defaults.RetentionBytes, 10), kafka.ConfigTypeLong, "The retention.bytes of a topic without its own."),
		entry("log.retention.ms", strconv.FormatInt(defaults.RetentionMs, 10), kafka.ConfigTypeLong, "The retention.ms of a topic without its own."),
		entry("message.max.bytes", strconv.Itoa(int(defaults.MaxMessageBytes)), kafka.ConfigTypeInt, "The max.message.bytes of a topic without its own."),
		entry("min.insync.replicas", "1", kafka.ConfigTypeInt, "An acknowledged record is in the object store; there are no replicas to count."),
		entry("node.id", id, kafka.ConfigTypeInt, "This agent's node id (KRaft's name for broker.id)."),
		entry("num.partitions", strconv.Itoa(DefaultPartitions), kafka.ConfigTypeInt, "The partitions of a topic created with the default count (-1)."),
	}
}

// TopicConfigs implements kafka.TopicCore. The index keeps a topic's
// effective values, not which were set on it, so a value equal to the
// default is reported as the default (DEFAULT_CONFIG) and any other as the
// topic's own (DYNAMIC_TOPIC_CONFIG).
func (c *Core) TopicConfigs(ctx context.Context, name string) ([]kafka.TopicConfig, error) {
	t, err := c.a.ReadTopic(ctx, name)
	if err != nil {
		return nil, kafkaErr(err)
	}
	defaults, err := c.a.TopicDefaults()
	if err != nil {
		return nil, kafkaErr(err)
	}
	values, dvalues := agent.TopicConfigMap(t.Config), agent.TopicConfigMap(defaults)
	out := make([]kafka.TopicConfig, 0, len(values))
	for _, k := range coordinator.ConfigKeys() { // sorted by name
		v := values[k]
		src := kafka.ConfigSourceTopic
		if v == dvalues[k] {
			src = kafka.ConfigSourceDefault
		}
		info, ok := configInfo[k]
		if !ok {
			info = passiveConfigInfo[k]
		}
		out = append(out, kafka.TopicConfig{Name: k, Value: &v, Source: src, Type: info.typ, Documentation: info.doc})
	}
	return out, nil
}

// AlterTopicConfigs implements kafka.TopicCore: all the changes or none;
// a deleted value restores the default.
func (c *Core) AlterTopicConfigs(ctx context.Context, name string, changes []kafka.ConfigChange, validateOnly bool) error {
	set := make(map[string]string, len(changes))
	for _, ch := range changes {
		if ch.Value == nil {
			set[ch.Name] = ""
		} else {
			set[ch.Name] = *ch.Value
		}
	}
	return kafkaErr(c.a.SetTopicConfigs(ctx, name, set, validateOnly))
}

// Produce implements kafka.LogCore: the batch goes to the agent's open
// segment byte for byte; the result comes once its segment is committed.
// LogStartOffset is the partition's log start offset as the commit read it
// (no extra index round trip), as Kafka's Produce v5+ answers; -1 on errors.
func (c *Core) Produce(ctx context.Context, topic string, partition int32, b kafka.Batch) <-chan kafka.ProduceResult {
	out := make(chan kafka.ProduceResult, 1)
	appendBatch := c.a.AppendRecordBatch
	if b.Transactional {
		// Checked against the transaction first, as the Connect API's
		// transactional Produce is.
		appendBatch = func(ctx context.Context, topic string, partition int32, raw []byte) (func(context.Context) (agent.BatchAppended, error), error) {
			return c.a.AppendTxnBatch(ctx, b.TransactionalID, topic, partition, raw)
		}
	}
	wait, err := appendBatch(ctx, topic, partition, b.Raw)
	if err != nil {
		out <- kafka.ProduceResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1, Err: kafkaErr(err)}
		return out
	}
	go func() {
		// The batch is queued: it is committed or failed whatever ctx does.
		r, err := wait(context.Background())
		if err != nil {
			r, err = agent.BatchAppended{BaseOffset: -1, LogStartOffset: -1}, withoutSegmentKeys(err)
		}
		out <- kafka.ProduceResult{BaseOffset: r.BaseOffset, LogAppendTime: -1, LogStartOffset: r.LogStartOffset, Err: kafkaErr(err)}
	}()
	return out
}

// Fetch implements kafka.LogCore over agent.ReadBatches. A read_committed
// fetch answers batches below the last stable offset only, with the aborted
// transactions among them (agent.StableRead); read_uncommitted reports the
// high watermark as the LSO.
func (c *Core) Fetch(ctx context.Context, req kafka.FetchRequest) ([]kafka.FetchResult, error) {
	reads := make([]agent.BatchRead, len(req.Partitions))
	for i, p := range req.Partitions {
		reads[i] = agent.BatchRead{Topic: p.Topic, Partition: p.Partition, Offset: p.Offset, MaxBytes: int64(p.MaxBytes),
			ReadCommitted: req.ReadCommitted}
	}
	res, err := c.a.ReadBatches(ctx, reads, req.MaxWait, int64(req.MinBytes), int64(req.MaxBytes))
	if err != nil {
		return nil, kafkaErr(err)
	}
	out := make([]kafka.FetchResult, len(res))
	cut := false // batches past a last stable offset were held back
	for i, r := range res {
		fr := kafka.FetchResult{HighWatermark: r.HighWatermark, LastStableOffset: r.HighWatermark, LogStartOffset: r.LogStartOffset, Batches: r.Batches}
		if r.Err != nil {
			fr.Err = readErr(r.Err)
			if !errors.Is(r.Err, coordinator.ErrOffsetOutOfRange) {
				fr.HighWatermark, fr.LastStableOffset, fr.LogStartOffset = -1, -1, -1
			}
		}
		if req.ReadCommitted && r.Err == nil {
			n := len(fr.Batches)
			if err := c.stable(ctx, req.Partitions[i], &fr); err != nil {
				fr = kafka.FetchResult{Err: readErr(err), HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1}
			}
			cut = cut || len(fr.Batches) < n
		}
		if fr.Batches == nil {
			fr.Batches = []byte{}
		}
		out[i] = fr
	}
	if cut && req.MaxWait > 0 && emptyAnswer(out) {
		// Data past the last stable offset woke the read, but none of it
		// may go out yet: wait as a broker does for MinBytes, so a
		// read_committed consumer parked at the LSO does not spin.
		t := time.NewTimer(req.MaxWait)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return out, nil
}

// ListOffset implements kafka.LogCore over agent.ListOffset, whose special
// timestamps are Kafka's.
func (c *Core) ListOffset(ctx context.Context, topic string, partition int32, timestamp int64, readCommitted bool) (kafka.OffsetAndTimestamp, error) {
	off, ts, err := c.a.ListOffset(ctx, topic, partition, timestamp, readCommitted)
	if err != nil {
		return kafka.OffsetAndTimestamp{}, readErr(err)
	}
	return kafka.OffsetAndTimestamp{Offset: off, Timestamp: ts}, nil
}

// DeleteRecords implements kafka.LogCore over agent.DeleteRecordsBefore.
func (c *Core) DeleteRecords(ctx context.Context, topic string, partition int32, before int64) (int64, error) {
	low, err := c.a.DeleteRecordsBefore(ctx, topic, partition, before)
	if errors.Is(err, agent.ErrNotSupported) {
		return 0, fmt.Errorf("%w: %w", kafka.ErrUnsupported, err)
	}
	return low, kafkaErr(err)
}

// InitProducerID implements kafka.ProducerCore: idempotent producers over
// agent.NewProducerEpoch, transactional ones over agent.InitTxnProducer
// (the epoch bump that fences the older ones), or, when the client sends
// the producer id and epoch it has (KIP-360), agent.InitKnownTxnProducer,
// which bumps only the transactional id's current pair and fences any
// other (ErrProducerFenced).
func (c *Core) InitProducerID(ctx context.Context, req kafka.InitProducer) (int64, int16, error) {
	if req.TransactionalID != "" {
		if req.TransactionTimeout <= 0 || req.TransactionTimeout > coordinator.MaxTxnTimeout {
			return 0, 0, fmt.Errorf("%w: transaction timeout %s: want more than 0 and at most %s (transaction.max.timeout.ms)",
				kafka.ErrInvalidTxnTimeout, req.TransactionTimeout, coordinator.MaxTxnTimeout)
		}
		var id int64
		var epoch int16
		var err error
		if req.ProducerID >= 0 && req.ProducerEpoch >= 0 {
			id, epoch, err = c.a.InitKnownTxnProducer(ctx, req.TransactionalID, req.TransactionTimeout, req.ProducerID, req.ProducerEpoch)
		} else {
			id, epoch, err = c.a.InitTxnProducer(ctx, req.TransactionalID, req.TransactionTimeout)
		}
		if err != nil {
			return 0, 0, txnErr(err)
		}
		return id, epoch, nil
	}
	id, epoch, err := c.a.NewProducerEpoch(ctx, req.ProducerID, req.ProducerEpoch)
	if err != nil {
		return 0, 0, kafkaErr(err)
	}
	return id, epoch, nil
}

// segmentNames matches what the batcher and the index put before a failed
// upload's or commit's reason: "commit segment segments/<ulid>.seg: ".
var segmentNames = regexp.MustCompile(`(?:commit|upload) segment \S+: `)

// clientError is an error worded for a Kafka client but still its cause
// for errors.Is (the error table keeps working on it).
type clientError struct {
	msg string
	err error
}

func (e *clientError) Error() string { return e.msg }
func (e *clientError) Unwrap() error { return e.err }

// withoutSegmentKeys words a produce's commit error without the segment
// object keys and ids it names: they are the broker's internals (the agent
// logs them with the failure), and a client's error message is no place for
// them (issue 12).
func withoutSegmentKeys(err error) error {
	msg := segmentNames.ReplaceAllString(err.Error(), "")
	if msg == err.Error() {
		return err
	}
	return &clientError{msg: msg, err: err}
}

// readErr is kafkaErr for reads: bytes the store holds that do not parse are
// the storage's fault (retriable), not a client's corrupt message.
func readErr(err error) error {
	if errors.Is(err, objectlog.ErrCorrupt) {
		return fmt.Errorf("%w: %w", kafka.ErrUnavailable, err)
	}
	return kafkaErr(err)
}

// errTable maps the core's errors to the kafka package's sentinels, most
// specific first: the one place where that mapping lives. The text of the
// core's error is kept (it names the limit, the topic, the offsets).
var errTable = []struct {
	core, kafka error
}{
	{context.Canceled, nil},
	{context.DeadlineExceeded, nil},
	// Transactions (txn.go): before the generic rows they wrap.
	{agent.ErrUnknownTransactionalID, kafka.ErrInvalidProducerIDMapping},
	{coordinator.ErrInvalidTxnState, kafka.ErrInvalidTxnState},
	{coordinator.ErrConcurrentTransactions, kafka.ErrConcurrentTransactions},
	// Consumer groups (groups.go): before the generic rows they wrap.
	{agent.ErrUnknownMemberID, kafka.ErrUnknownMemberID},
	{agent.ErrIllegalGeneration, kafka.ErrIllegalGeneration},
	{agent.ErrRebalanceInProgress, kafka.ErrRebalanceInProgress},
	{agent.ErrMemberIDRequired, kafka.ErrMemberIDRequired},
	{agent.ErrInconsistentGroupProtocol, kafka.ErrInconsistentGroupProtocol},
	{agent.ErrFencedInstanceID, kafka.ErrFencedInstanceID},
	{agent.ErrUnreleasedInstanceID, kafka.ErrUnreleasedInstanceID},
	{agent.ErrUnsupportedAssignor, kafka.ErrUnsupportedAssignor},
	{agent.ErrInvalidSessionTimeout, kafka.ErrInvalidSessionTimeout},
	{agent.ErrOffsetMetadataTooLarge, kafka.ErrOffsetMetadataTooLarge},
	{agent.ErrGroupNotEmpty, kafka.ErrGroupNotEmpty},
	{agent.ErrGroupNotFound, kafka.ErrGroupIDNotFound},
	{agent.ErrTopicRecreated, kafka.ErrUnknownTopicOrPartition}, // retriable: the client refreshes metadata
	{agent.ErrUnknownTopicOrPartition, kafka.ErrUnknownTopicOrPartition},
	{agent.ErrInvalidTopicName, kafka.ErrInvalidTopic},
	{agent.ErrInvalidPartitions, kafka.ErrInvalidPartitions},
	{agent.ErrTooLarge, kafka.ErrMessageTooLarge},
	{agent.ErrOverloaded, kafka.ErrThrottled},
	{agent.ErrClosed, kafka.ErrUnavailable},
	{agent.ErrInvalidRecord, kafka.ErrInvalidRecord},
	{agent.ErrCorruptBatch, kafka.ErrCorruptMessage}, // a record that does not parse (Kafka's LogValidator)
	{agent.ErrInvalid, kafka.ErrInvalidRequest},
	{coordinator.ErrOffsetOutOfRange, kafka.ErrOffsetOutOfRange},
	{coordinator.ErrOutOfOrderSequence, kafka.ErrOutOfOrderSequence},
	{coordinator.ErrFenced, kafka.ErrInvalidProducerEpoch},
	{coordinator.ErrAlreadyExists, kafka.ErrTopicAlreadyExists},
	{coordinator.ErrTopicDeleted, kafka.ErrUnknownTopicOrPartition},
	{coordinator.ErrNotFound, kafka.ErrUnknownTopicOrPartition},
	// Only a topic config is INVALID_CONFIG; any other rule the index
	// enforces is the request's fault.
	{coordinator.ErrInvalidConfig, kafka.ErrInvalidConfig},
	{coordinator.ErrInvalidTopicName, kafka.ErrInvalidTopic}, // a metric-name collision too (issue 12)
	{coordinator.ErrInvalidPartitions, kafka.ErrInvalidPartitions},
	{coordinator.ErrInvalid, kafka.ErrInvalidRequest},
	{coordinator.ErrUnavailable, kafka.ErrUnavailable},
	{objectlog.ErrUnavailable, kafka.ErrUnavailable},
	{objectlog.ErrCorrupt, kafka.ErrCorruptMessage},
}

// kafkaErr returns err wrapped with its kafka sentinel (nil for nil;
// context errors and unknown errors as they are: the front-end maps the
// former to REQUEST_TIMED_OUT and the rest to UNKNOWN_SERVER_ERROR).
func kafkaErr(err error) error {
	if err == nil {
		return nil
	}
	for _, e := range errTable {
		if errors.Is(err, e.core) {
			if e.kafka == nil {
				return err
			}
			if strings.HasPrefix(err.Error(), e.kafka.Error()+":") {
				// The agent's message starts with the same words
				// ("invalid number of partitions: ..."): say them once.
				return &kafkaTagged{err: err, kafka: e.kafka}
			}
			return fmt.Errorf("%w: %w", e.kafka, err)
		}
	}
	return err
}

// kafkaTagged is err carrying its Kafka sentinel for errors.Is, with err's
// message alone.
type kafkaTagged struct{ err, kafka error }

func (e *kafkaTagged) Error() string   { return e.err.Error() }
func (e *kafkaTagged) Unwrap() []error { return []error{e.kafka, e.err} }

// stable cuts a read_committed answer at the partition's last stable offset
// and adds the aborted transactions the consumer must drop (KIP-98).
func (c *Core) stable(ctx context.Context, p kafka.FetchPartition, fr *kafka.FetchResult) error {
	// StableBatches also counts the records kept (agent.BatchRead.ReadCommitted).
	kept, lso, aborted, err := c.a.StableBatches(ctx, agent.BatchRead{Topic: p.Topic, Partition: p.Partition, Offset: p.Offset, ReadCommitted: true}, fr.Batches)
	if err != nil {
		return err
	}
	fr.LastStableOffset = lso
	fr.Batches = kept
	for _, t := range aborted {
		fr.AbortedTransactions = append(fr.AbortedTransactions, kafka.AbortedTransaction{ProducerID: t.ProducerID, FirstOffset: t.FirstOffset})
	}
	return nil
}

// emptyAnswer reports whether no partition of a fetch answer has batches or
// an error.
func emptyAnswer(out []kafka.FetchResult) bool {
	for _, fr := range out {
		if len(fr.Batches) > 0 || fr.Err != nil {
			return false
		}
	}
	return true
}
