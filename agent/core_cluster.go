package agent

// The core's cluster, topic and producer Go API in plain Go and coordinator
// types, for front-ends whose protocol does not speak the public API's
// messages (the Kafka listener). Everything goes through the same index
// calls and topic cache as the AdminService methods, so both protocols see
// one set of topics and rules.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// NodeID is the agent's Kafka node id: derived from its agent id, unique
// among the live agents when the agent started, and fixed for the life of
// the process. 0 when the agent serves no Kafka listener.
func (a *Agent) NodeID() int32 { return a.nodeID }

// ID is the agent's id in the registry (--agent-id).
func (a *Agent) ID() string { return a.cfg.AgentID }

// KafkaAdvertise is the Kafka address this agent registers (--kafka-advertise).
func (a *Agent) KafkaAdvertise() string { return a.cfg.KafkaAdvertise }

// Zone is the agent's availability zone (--zone); "" when unknown.
func (a *Agent) Zone() string { return a.cfg.Zone }

// nodeIDFor is the candidate node id of an agent id on try n: a 31-bit hash,
// never 0 (AgentInfo's "none") nor negative (Kafka's "no broker").
func nodeIDFor(agentID string, n int) int32 {
	h := fnv.New32a()
	h.Write([]byte(agentID))
	if n > 0 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(n))
		h.Write(b[:])
	}
	return int32(h.Sum32()%(1<<31-1)) + 1
}

// pickNodeID derives the agent's node id from its id, so that an agent
// restarted under the same --agent-id keeps it; if a live agent of another
// id holds it already (a hash collision, about one in 2^31 per pair), it
// hashes again until the id is free. Two agents colliding while both start
// at the same instant would still collide; that needs both a hash
// collision and the same second, and is not handled.
func (a *Agent) pickNodeID(ctx context.Context) (int32, error) {
	live, err := a.index.ListAgents(ctx)
	if err != nil {
		return 0, fmt.Errorf("list live agents for a Kafka node id: %w", err)
	}
	taken := map[int32]bool{}
	for _, ag := range live {
		if ag.ID != a.cfg.AgentID && ag.NodeID != 0 {
			taken[ag.NodeID] = true
		}
	}
	for n := 0; ; n++ {
		if id := nodeIDFor(a.cfg.AgentID, n); !taken[id] {
			return id, nil
		}
	}
}

// LiveAgents returns the live agents of the registry (those whose
// registration has not expired), sorted by id, with their Kafka listeners.
func (a *Agent) LiveAgents(ctx context.Context) ([]coordinator.AgentInfo, error) {
	return a.index.ListAgents(ctx)
}

// clusterIDCache holds the cluster id once read.
type clusterIDCache struct {
	mu sync.Mutex
	id string
}

// clusterIDer is an index that keeps a cluster id (coordinator.Redis).
type clusterIDer interface {
	ClusterID(ctx context.Context, fresh string) (string, error)
}

// ClusterID is the deployment's cluster id, the same on every agent of the
// index and never changing: the first agent to ask stores a random UUID in
// the index. An index that keeps none (test fakes) gets one per agent.
func (a *Agent) ClusterID(ctx context.Context) (string, error) {
	c := &a.clusterID
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != "" {
		return c.id, nil
	}
	fresh := uuid.NewString()
	if ix, ok := a.index.(clusterIDer); ok {
		id, err := ix.ClusterID(ctx, fresh)
		if err != nil {
			return "", err
		}
		fresh = id
	}
	c.id = fresh
	return c.id, nil
}

// ReadTopic returns a topic as the index has it now (not the cache's copy);
// ErrUnknownTopicOrPartition if there is none.
func (a *Agent) ReadTopic(ctx context.Context, name string) (coordinator.Topic, error) {
	t, err := a.index.DescribeTopic(ctx, name)
	if err != nil {
		return coordinator.Topic{}, unknownTopic(name, err)
	}
	a.topics.put(t)
	return t, nil
}

// AllTopics returns every topic, sorted by name.
func (a *Agent) AllTopics(ctx context.Context) ([]coordinator.Topic, error) {
	return a.index.ListTopics(ctx)
}

// TopicDefaults is the config a topic created with no configs gets.
func (a *Agent) TopicDefaults() (coordinator.TopicConfig, error) {
	return a.index.ApplyConfig(coordinator.TopicConfig{Partitions: 1}, nil)
}

// checkMetricNameCollision is the index's create-time check that no topic's
// name is name in Kafka's metric names ('.' and '_' the same), for a
// validate-only create, which writes nothing (issue 12): Kafka's
// CreateTopics with validate_only answers the same INVALID_TOPIC_EXCEPTION.
// It lists the topics, so only names holding '.' or '_' pay for it.
func (a *Agent) checkMetricNameCollision(ctx context.Context, name string) error {
	if !strings.ContainsAny(name, "._") {
		return nil
	}
	topics, err := a.index.ListTopics(ctx)
	if err != nil {
		return err
	}
	metric := strings.ReplaceAll(name, ".", "_")
	for _, t := range topics {
		if t.Name != name && strings.ReplaceAll(t.Name, ".", "_") == metric {
			return fmt.Errorf("create topic: %w: %w: topic %q collides with existing topic %q: Kafka's metric names make '.' and '_' the same",
				ErrInvalidTopicName, coordinator.ErrInvalidTopicName, name, t.Name)
		}
	}
	return nil
}

// NewTopic creates a topic with partitions partitions and the Kafka-named
// configs (the keys AdminService.CreateTopic accepts, parsed the same way).
// With validateOnly it checks the name, the partitions, the configs and that
// the name is free, creates nothing, and returns the topic it would create
// with a zero ID. Errors: coordinator.ErrInvalid naming the bad part
// (ErrInvalidTopicName for the name), coordinator.ErrAlreadyExists.
func (a *Agent) NewTopic(ctx context.Context, name string, partitions int32, configs map[string]string, validateOnly bool) (coordinator.Topic, error) {
	if err := coordinator.ValidateTopicName(name); err != nil {
		return coordinator.Topic{}, fmt.Errorf("%w: %w", ErrInvalidTopicName, err)
	}
	between := fmt.Sprintf("partitions must be between 1 and %d, got %d", coordinator.MaxPartitions, partitions)
	if err := checkPartitionCount(partitions, 1, between, between); err != nil {
		return coordinator.Topic{}, err
	}
	cfg, err := a.index.ApplyConfig(coordinator.TopicConfig{Partitions: partitions}, configs)
	if err != nil {
		return coordinator.Topic{}, fmt.Errorf("create topic %q: %w", name, err)
	}
	if validateOnly {
		_, err := a.index.DescribeTopic(ctx, name)
		switch {
		case err == nil:
			return coordinator.Topic{}, fmt.Errorf("create topic %q: %w", name, coordinator.ErrAlreadyExists)
		case !errors.Is(err, coordinator.ErrNotFound):
			return coordinator.Topic{}, err
		}
		if err := a.checkMetricNameCollision(ctx, name); err != nil {
			return coordinator.Topic{}, err
		}
		return coordinator.Topic{Name: name, Config: cfg}, nil
	}
	t, err := a.index.CreateTopic(ctx, name, cfg)
	if err != nil {
		return coordinator.Topic{}, err
	}
	a.topics.put(t)
	a.groupTopics.invalidate()
	return t, nil
}

// Errors of NewTopic and AddPartitions, telling which part of a request
// was refused; they come joined with coordinator.ErrInvalid (for
// partitions, with coordinator.ErrInvalidPartitions, and a
// coordinator.LimitError over coordinator.MaxPartitions, so the Connect
// front-end answers them as it answers the index's).
var (
	ErrInvalidTopicName  = errors.New("invalid topic name")
	ErrInvalidPartitions = errors.New("invalid number of partitions")
)

// checkPartitionCount refuses a partition count n below least (saying
// tooFew) or over coordinator.MaxPartitions (saying tooMany).
func checkPartitionCount(n, least int32, tooFew, tooMany string) error {
	// The message names the sentinel once: the wrapped sentinels' own
	// texts ("invalid argument") would repeat it.
	switch {
	case n > coordinator.MaxPartitions:
		return &hintError{msg: ErrInvalidPartitions.Error() + ": " + tooMany, err: errors.Join(ErrInvalidPartitions,
			&coordinator.LimitError{Err: coordinator.ErrInvalidPartitions, Name: "partitions", Limit: coordinator.MaxPartitions, Actual: int64(n), Msg: tooMany})}
	case n < least:
		return &hintError{msg: ErrInvalidPartitions.Error() + ": " + tooFew, err: errors.Join(ErrInvalidPartitions, coordinator.ErrInvalidPartitions)}
	}
	return nil
}

// RemoveTopic deletes a topic (its data goes to garbage collection) and
// returns it as it was; this agent's long polls and streams of the topic
// wake at once and answer that it is gone. Both front-ends' topic deletes
// are this. ErrUnknownTopicOrPartition if there is none.
func (a *Agent) RemoveTopic(ctx context.Context, name string) (coordinator.Topic, error) {
	t, err := a.index.DescribeTopic(ctx, name)
	if err == nil {
		err = a.index.DeleteTopic(ctx, name)
	}
	if err != nil {
		if errors.Is(err, coordinator.ErrNotFound) {
			// The index's answer is final: UNKNOWN_TOPIC_OR_PARTITION, as
			// Kafka's DeleteTopics answers.
			return coordinator.Topic{}, &hintError{msg: fmt.Sprintf("delete topic: topic %q does not exist", name),
				err: errors.Join(err, errUnknownTopicOrPartition)}
		}
		return coordinator.Topic{}, err
	}
	a.topics.invalidate(name)
	a.groupTopics.invalidate()
	a.hub.forgetTopic(t.ID)
	return t, nil
}

// AddPartitions raises a topic's partition count to total (Kafka's
// CreatePartitions). ErrInvalidPartitions if total is not above the current
// count or over coordinator.MaxPartitions; ErrUnknownTopicOrPartition if
// the topic does not exist. With validateOnly it checks and changes nothing.
func (a *Agent) AddPartitions(ctx context.Context, name string, total int32, validateOnly bool) error {
	_, err := a.growTopic(ctx, name, total, validateOnly)
	return err
}

// growTopic is AddPartitions, returning the topic as it is after (as it is
// now, with validateOnly): both front-ends' CreatePartitions are this.
func (a *Agent) growTopic(ctx context.Context, name string, total int32, validateOnly bool) (coordinator.Topic, error) {
	t, err := a.index.DescribeTopic(ctx, name)
	if err != nil {
		return coordinator.Topic{}, unknownTopic(name, err)
	}
	if err := checkPartitionCount(total, t.Config.Partitions+1,
		fmt.Sprintf("topic %q has %s; the count can only rise, got %d", name, partitionCount(t.Config.Partitions), total),
		fmt.Sprintf("at most %d partitions, asked for %d", coordinator.MaxPartitions, total)); err != nil {
		return coordinator.Topic{}, err
	}
	if validateOnly {
		return t, nil
	}
	t, err = a.index.CreatePartitions(ctx, name, total)
	if err != nil {
		return coordinator.Topic{}, unknownTopic(name, err)
	}
	a.topics.put(t)
	a.groupTopics.invalidate()
	return t, nil
}

// SetTopicConfigs applies Kafka-named configs to a topic, all or none (an
// empty value restores the default), as AdminService.UpdateTopicConfig
// does. With validateOnly it checks them against the topic and changes
// nothing. Errors: coordinator.ErrInvalid naming the bad key,
// ErrUnknownTopicOrPartition.
func (a *Agent) SetTopicConfigs(ctx context.Context, name string, set map[string]string, validateOnly bool) error {
	if validateOnly {
		t, err := a.index.DescribeTopic(ctx, name)
		if err != nil {
			return unknownTopic(name, err)
		}
		_, err = a.index.ApplyConfig(t.Config, set)
		return err
	}
	t, err := a.index.UpdateTopicConfig(ctx, name, set)
	if err != nil {
		return unknownTopic(name, err)
	}
	a.topics.put(t)
	return nil
}

// TopicConfigMap is a topic's configs by their Kafka names, as
// AdminService reports them: the ones Strata acts on and the
// coordinator.PassiveConfigs it keeps without effect (their own values or
// Kafka's defaults).
func TopicConfigMap(c coordinator.TopicConfig) map[string]string {
	m := map[string]string{
		coordinator.ConfigRetentionMs:     strconv.FormatInt(c.RetentionMs, 10),
		coordinator.ConfigRetentionBytes:  strconv.FormatInt(c.RetentionBytes, 10),
		coordinator.ConfigMaxMessageBytes: strconv.FormatInt(int64(c.MaxMessageBytes), 10),
		coordinator.ConfigCleanupPolicy:   c.CleanupPolicy,
		coordinator.ConfigCompression:     c.Compression,
		coordinator.ConfigArchiveAfterMs:  strconv.FormatInt(c.ArchiveAfterMs, 10),
		// The log cleaner's (cleaner.go).
		coordinator.ConfigDeleteRetentionMs:      strconv.FormatInt(c.DeleteRetentionMs, 10),
		coordinator.ConfigMinCompactionLagMs:     strconv.FormatInt(c.MinCompactionLagMs, 10),
		coordinator.ConfigMinCleanableDirtyRatio: coordinator.FormatDirtyRatio(c.MinCleanableDirtyRatio),
	}
	for _, p := range coordinator.PassiveConfigs() {
		m[p.Name] = c.PassiveValue(p.Name)
	}
	return m
}

// NewProducerEpoch is Kafka's InitProducerId for an idempotent producer
// (KIP-98, KIP-360), the same as ProducerService.InitProducerId: with id -1
// (or 0) it allocates a new producer id with epoch 0; with a known id it
// bumps the epoch, fencing the older ones; an expired id or one whose
// epochs are used up gets a new id. Errors: ErrUnavailable (retryable).
func (a *Agent) NewProducerEpoch(ctx context.Context, id int64, _ int16) (int64, int16, error) {
	return a.initProducerID(ctx, &stratav1.InitProducerIdRequest{ProducerId: max(id, 0)})
}

// DeleteRecordsBefore moves a partition's log start offset up to before
// (-1: the high watermark), as AdminService.DeleteRecords does (Kafka's
// DeleteRecords, KIP-107), and returns the new log start offset; it never
// moves back. Errors: coordinator.ErrOffsetOutOfRange for an offset above
// the high watermark, ErrUnknownTopicOrPartition, ErrInvalid for an
// offset below -1, ErrNotSupported from an index without lifecycle support.
func (a *Agent) DeleteRecordsBefore(ctx context.Context, topic string, partition int32, before int64) (int64, error) {
	lc, ok := a.index.(coordinator.Lifecycle)
	if !ok {
		return 0, fmt.Errorf("%w: delete records: the index %T cannot move log start offsets", ErrNotSupported, a.index)
	}
	if before < -1 {
		return 0, invalidf("delete records of topic %q partition %d: offset %d; want -1 (the high watermark) or at least 0", topic, partition, before)
	}
	t, err := a.partitionTopic(ctx, topic, partition)
	if err != nil {
		return 0, err
	}
	res, err := lc.DeleteRecords(ctx, t.ID, partition, before)
	if err != nil {
		return 0, fmt.Errorf("topic %q: %w", topic, err)
	}
	return res.LogStartOffset, nil
}

// ErrNotSupported: the index lacks what the call needs.
var ErrNotSupported = errors.New("not supported by the index")

// PartitionBytes returns, in the order of partitions, the bytes each
// partition of the topic of that id holds in the store: the index's count
// of the bytes its live entries point at (hot segments' chunks and archive
// files alike), the figure DescribeTopic reports per partition. It is what
// Kafka's DescribeLogDirs reports as a partition's size. Errors:
// ErrUnknownTopicOrPartition (with coordinator.ErrNotFound) for a deleted
// topic or a partition it does not have.
func (a *Agent) PartitionBytes(ctx context.Context, id uuid.UUID, partitions []int32) ([]int64, error) {
	out := make([]int64, len(partitions))
	for i, p := range partitions {
		st, err := a.index.PartitionState(ctx, id, p)
		if errors.Is(err, coordinator.ErrNotFound) {
			return nil, &hintError{msg: err.Error(), err: errors.Join(err, errUnknownTopicOrPartition)}
		}
		if err != nil {
			return nil, err
		}
		out[i] = st.Bytes
	}
	return out, nil
}

// DescribeTransaction returns a transactional id's state as the index
// keeps it (Kafka's DescribeTransactions, KIP-664): its current producer,
// state, timeout, and the partitions of its open transaction. Errors:
// ErrUnknownTransactionalID (a coordinator.ErrNotFound) for an id with no
// state.
func (a *Agent) DescribeTransaction(ctx context.Context, transactionalID string) (coordinator.Txn, error) {
	txn, err := a.index.DescribeTxn(ctx, transactionalID)
	if errors.Is(err, coordinator.ErrNotFound) {
		return coordinator.Txn{}, fmt.Errorf("%w %q", ErrUnknownTransactionalID, transactionalID)
	}
	return txn, err
}
