package kafka

import (
	"context"
	"errors"
	"time"
)

// Core is everything the Kafka front-end needs from the protocol-agnostic agent
// core. It is split by concern (cluster, topics, the log, producers) so that a
// test or an adapter can implement one part at a time. Every method is safe for
// concurrent use and honours ctx: a cancelled ctx makes a waiting call return
// ctx.Err() promptly (see Produce for the one exception).
//
// Errors are matched with errors.Is against the sentinel errors of this package
// (ErrUnknownTopicOrPartition and the rest, see errors.go), wrapped with
// context by %w; an error that matches none of them reaches the client as
// UNKNOWN_SERVER_ERROR with its text as the error message where the API has one.
// A core that knows the precise Kafka code may also return a *kerr.Error.
type Core interface {
	ClusterCore
	TopicCore
	LogCore
	ProducerCore
	GroupCore         // groups.go
	TxnCore           // txn.go
	ConsumerGroupCore // consumer_groups.go
	StorageCore
	TxnDescribeCore
}

// ClusterCore describes the cluster: the live agents, each of them a Kafka broker.
type ClusterCore interface {
	// ClusterID is the cluster's id, as Metadata (v2+) and DescribeCluster
	// report it. It is the same on every agent and never changes.
	ClusterID() string

	// Brokers returns the live agents (those whose registration has not
	// expired), in any order. The list may be briefly stale: a stale leader view
	// never fails a client because any agent accepts any produce and fetch.
	// An empty list is not an error; the front-end then answers with this
	// agent's own advertised address (Config.Advertise) alone.
	Brokers(ctx context.Context) ([]Broker, error)

	// NodeID is the node id of the broker this front-end answers as: this
	// agent's own entry in Brokers. DescribeLogDirs reports the partitions
	// it leads, so a client that asks every broker counts each partition
	// once.
	NodeID() int32
}

// Broker is one live agent as Kafka clients see it.
type Broker struct {
	// ID is the agent's Kafka node id: unique among live agents and stable for
	// the life of the agent process (Kafka's node.id / broker.id).
	ID int32
	// Host and Port are the agent's advertised Kafka listener (--kafka-advertise).
	Host string
	Port int32
	// Zone is the agent's availability zone, reported as the broker's rack
	// (Kafka's broker.rack); "" when unknown.
	Zone string
}

// TopicID is a topic's 16-byte id (a UUID), Kafka's topic id (KIP-516). A
// recreated topic of the same name gets a new id.
type TopicID [16]byte

// Topic is a topic as the core describes it.
type Topic struct {
	Name       string
	ID         TopicID
	Partitions int32 // the number of partitions, 0..Partitions-1
}

// TopicSpec is a topic to create.
type TopicSpec struct {
	Name string
	// Partitions is the number of partitions; -1 asks for the core's default
	// (Kafka's num.partitions).
	Partitions int32
	// Configs are topic configs set explicitly (Kafka names: retention.ms,
	// max.message.bytes, cleanup.policy, ...). Unknown names or bad values
	// are ErrInvalidConfig.
	Configs map[string]string
}

// ConfigSource says where a config value comes from. The values are Kafka's
// DescribeConfigs ConfigSource numbers (KIP-226).
type ConfigSource int8

const (
	// ConfigSourceTopic is a value set on the topic (DYNAMIC_TOPIC_CONFIG).
	ConfigSourceTopic ConfigSource = 1
	// ConfigSourceStaticBroker is a value from the agent's own configuration
	// (STATIC_BROKER_CONFIG): the default every topic without its own value gets.
	ConfigSourceStaticBroker ConfigSource = 4
	// ConfigSourceDefault is the built-in default (DEFAULT_CONFIG).
	ConfigSourceDefault ConfigSource = 5
)

// ConfigType is a config's value type; the values are Kafka's DescribeConfigs
// ConfigType numbers (KIP-336).
type ConfigType int8

// Config value types (Kafka's ConfigDef types).
const (
	ConfigTypeUnknown  ConfigType = 0
	ConfigTypeBoolean  ConfigType = 1
	ConfigTypeString   ConfigType = 2
	ConfigTypeInt      ConfigType = 3
	ConfigTypeShort    ConfigType = 4
	ConfigTypeLong     ConfigType = 5
	ConfigTypeDouble   ConfigType = 6
	ConfigTypeList     ConfigType = 7
	ConfigTypeClass    ConfigType = 8
	ConfigTypePassword ConfigType = 9
)

// TopicConfig is one config of a topic with its effective value.
type TopicConfig struct {
	Name string
	// Value is the effective value; nil when it has none or is sensitive.
	Value         *string
	Source        ConfigSource
	Type          ConfigType
	ReadOnly      bool
	Sensitive     bool
	Documentation string
}

// ConfigChange is one change of a topic config. A nil Value deletes the
// topic's own value, so the default applies again (Kafka's DELETE operation).
type ConfigChange struct {
	Name  string
	Value *string
}

// TopicCore creates, describes and changes topics. Topic names follow Kafka's
// rules (1..249 characters of [a-zA-Z0-9._-], not "." or ".."); a name that
// breaks them is ErrInvalidTopic.
type TopicCore interface {
	// Topics returns every topic, sorted by name.
	Topics(ctx context.Context) ([]Topic, error)
	// Topic returns one topic by name; ErrUnknownTopicOrPartition if none.
	Topic(ctx context.Context, name string) (Topic, error)
	// TopicByID returns one topic by id; ErrUnknownTopicID if none.
	TopicByID(ctx context.Context, id TopicID) (Topic, error)

	// CreateTopic creates a topic with a fresh id. With validateOnly it checks
	// everything (name, partitions, configs, that the name is free) and
	// creates nothing, returning the topic it would create (zero ID).
	// Errors: ErrTopicAlreadyExists, ErrInvalidTopic, ErrInvalidPartitions
	// (0 or fewer than -1 partitions, or over the core's limit), ErrInvalidConfig.
	CreateTopic(ctx context.Context, spec TopicSpec, validateOnly bool) (Topic, error)
	// DeleteTopic deletes a topic and, in time, its data; it returns the topic
	// that was deleted. ErrUnknownTopicOrPartition if there is none.
	DeleteTopic(ctx context.Context, name string) (Topic, error)
	// CreatePartitions grows a topic to count partitions in total (Kafka's
	// CreatePartitions). ErrInvalidPartitions if count is not more than the
	// current count; ErrUnknownTopicOrPartition if the topic does not exist.
	CreatePartitions(ctx context.Context, name string, count int32, validateOnly bool) error

	// TopicConfigs returns every config of a topic, its own values and the
	// defaults, sorted by name. ErrUnknownTopicOrPartition if none.
	TopicConfigs(ctx context.Context, name string) ([]TopicConfig, error)
	// AlterTopicConfigs applies the changes atomically: all or none.
	// ErrInvalidConfig names the first bad change.
	AlterTopicConfigs(ctx context.Context, name string, changes []ConfigChange, validateOnly bool) error
}

// Batch is one Kafka RecordBatch (magic 2) as a client sent it, with the fields
// of its header the core needs. The front-end has checked its framing, magic
// and CRC-32C before handing it over.
type Batch struct {
	// Raw is the whole batch, byte for byte as it arrived, base offset
	// included (clients send 0). The core stores it unchanged apart from the
	// base offset and partition leader epoch fields, which the CRC does not cover,
	// and (for message.timestamp.type=LogAppendTime topics) the max timestamp
	// with a recomputed CRC, as Kafka does. Raw belongs to the core from the call on.
	Raw []byte
	// Records is the number of offsets the batch takes: lastOffsetDelta+1.
	Records int32
	// Idempotence (KIP-98): ProducerID -1 for producers without idempotence.
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	Transactional bool
	Control       bool
	// TransactionalID is the Produce request's transactional id (v3+), ""
	// when it has none. A transactional batch is appended only if its
	// partition was added to that id's open transaction at the batch's
	// producer id and epoch (ErrInvalidTxnState, ErrProducerFenced,
	// ErrInvalidProducerEpoch otherwise).
	TransactionalID string
	// FirstTimestamp and MaxTimestamp are the batch's timestamps, ms since
	// the Unix epoch.
	FirstTimestamp int64
	MaxTimestamp   int64
}

// ProduceResult is the outcome of one batch's append.
type ProduceResult struct {
	// BaseOffset is the offset of the batch's first record.
	BaseOffset int64
	// LogAppendTime is the append time (ms) for topics with
	// message.timestamp.type=LogAppendTime, -1 otherwise.
	LogAppendTime int64
	// LogStartOffset is the partition's log start offset after the append.
	LogStartOffset int64
	Err            error
}

// FetchRequest is one Fetch over many partitions.
type FetchRequest struct {
	Partitions []FetchPartition
	// MaxWait is how long to wait for MinBytes to be available (long poll).
	MaxWait time.Duration
	// MinBytes is the number of bytes of batches that ends the wait early;
	// 0 or 1 answer as soon as any data (or none, for 0) is there.
	MinBytes int32
	// MaxBytes bounds the whole answer's batches (Kafka's fetch.max.bytes).
	MaxBytes int32
	// ReadCommitted reads up to the last stable offset and reports the aborted
	// transactions in range (isolation.level=read_committed, KIP-98).
	ReadCommitted bool
}

// FetchPartition is one partition of a fetch.
type FetchPartition struct {
	Topic     string
	Partition int32
	Offset    int64 // the first offset wanted
	MaxBytes  int32 // bounds this partition's batches (max.partition.fetch.bytes)
}

// AbortedTransaction is an aborted transaction in a read_committed fetch.
type AbortedTransaction struct {
	ProducerID  int64
	FirstOffset int64
}

// FetchResult is one partition's answer to a fetch.
type FetchResult struct {
	// Err is this partition's error: ErrUnknownTopicOrPartition,
	// ErrOffsetOutOfRange (Offset below the log start or above the high
	// watermark), ErrUnavailable, ...
	Err              error
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	// AbortedTransactions is set for read_committed fetches only.
	AbortedTransactions []AbortedTransaction
	// Batches are whole stored record batches, concatenated, with their
	// absolute base offsets, starting with the batch that holds Offset. Never
	// a partial batch. Empty (not nil) when there is nothing to return.
	Batches []byte
}

// Special timestamps of ListOffset, as Kafka's ListOffsets defines them.
const (
	// ListLatest asks for the high watermark (the last stable offset for
	// read_committed).
	ListLatest int64 = -1
	// ListEarliest asks for the log start offset.
	ListEarliest int64 = -2
	// ListMaxTimestamp asks for the offset of the record with the largest
	// timestamp (KIP-734).
	ListMaxTimestamp int64 = -3
)

// OffsetAndTimestamp is ListOffset's answer.
type OffsetAndTimestamp struct {
	Offset    int64 // -1 when no record has a timestamp at or after the one asked
	Timestamp int64 // the record's timestamp (ms); -1 for ListLatest and ListEarliest
}

// LogCore appends and reads partitions' logs. Partition errors:
// ErrUnknownTopicOrPartition for a topic or partition that does not exist.
type LogCore interface {
	// Produce appends one batch to a partition. It returns as soon as the
	// batch's place in the partition's order is fixed: a batch given to a later
	// Produce call for the same partition is appended after it (or fails). The
	// returned channel then receives exactly one result, once the batch is
	// durable in the store and the index (or has failed); only then is it
	// visible to fetches. ctx bounds only the wait before Produce returns: a
	// batch already queued is committed or failed whatever ctx does. The
	// channel must be buffered (capacity 1): the front-end stops listening
	// when its client goes away, and the core must never block on that.
	//
	// Errors: ErrUnknownTopicOrPartition, ErrMessageTooLarge (over the topic's
	// max.message.bytes), ErrCorruptMessage, ErrOutOfOrderSequence,
	// ErrInvalidProducerEpoch, ErrUnknownProducerID, ErrUnavailable. A
	// duplicate of an idempotent batch already appended succeeds with the
	// offset it got the first time (KIP-98).
	Produce(ctx context.Context, topic string, partition int32, b Batch) <-chan ProduceResult

	// Fetch reads many partitions at once. It waits up to MaxWait until
	// MinBytes of batches are available over all partitions, then returns one
	// result per requested partition, in the request's order. Each partition
	// gets whole batches up to its MaxBytes and the whole answer up to
	// MaxBytes, except that the first partition with data always gets at least
	// one whole batch, however large, so consumers make progress (KIP-74).
	// A partition error goes in its result; the error return is for the
	// whole request (ctx cancelled).
	Fetch(ctx context.Context, req FetchRequest) ([]FetchResult, error)

	// ListOffset looks an offset up by timestamp (ms) or by one of ListLatest,
	// ListEarliest, ListMaxTimestamp: for a timestamp, the first offset whose
	// record's timestamp is at or after it (Kafka's offsetsForTimes).
	ListOffset(ctx context.Context, topic string, partition int32, timestamp int64, readCommitted bool) (OffsetAndTimestamp, error)

	// DeleteRecords moves a partition's log start offset up to before (-1: the
	// high watermark), making older records unreadable (Kafka's DeleteRecords).
	// It returns the new log start offset. ErrOffsetOutOfRange if before is
	// above the high watermark. Moving it down is a no-op.
	DeleteRecords(ctx context.Context, topic string, partition int32, before int64) (int64, error)
}

// StorageCore reports what partitions take in the store (DescribeLogDirs).
type StorageCore interface {
	// PartitionBytes returns, in the order of partitions, the bytes each of
	// the topic's partitions holds: the record batches its live index
	// entries point at, hot segments' chunks and archive files alike (the
	// Connect API's DescribeTopic reports the same bytes per partition).
	// Records below the log start offset whose objects are not yet
	// collected are not counted. ErrUnknownTopicOrPartition if the topic of
	// that id is gone or has no such partition.
	PartitionBytes(ctx context.Context, topic TopicID, partitions []int32) ([]int64, error)
}

// TxnDescription is a transactional id's state, as DescribeTransactions
// (KIP-664) reports it.
type TxnDescription struct {
	// State is Kafka's name of the transaction state: Empty, Ongoing,
	// PrepareCommit, PrepareAbort, CompleteCommit or CompleteAbort.
	State string
	// ProducerID and ProducerEpoch are the id's current producer.
	ProducerID    int64
	ProducerEpoch int16
	// Timeout is the producer's transaction.timeout.ms.
	Timeout time.Duration
	// Started is when the open transaction began; zero when none is open.
	Started time.Time
	// Partitions are those added to the open transaction, sorted; a
	// partition of a topic deleted since is left out.
	Partitions []TopicPartition
}

// TxnDescribeCore describes transactions for admin tools
// (kafka-transactions.sh describe, consoles).
type TxnDescribeCore interface {
	// DescribeTransaction returns a transactional id's state.
	// ErrTransactionalIDNotFound if the id has no state (never initialized,
	// or expired).
	DescribeTransaction(ctx context.Context, transactionalID string) (TxnDescription, error)
}

// InitProducer is an InitProducerId request (KIP-98, KIP-360).
type InitProducer struct {
	// TransactionalID is "" for an idempotent producer without transactions.
	TransactionalID    string
	TransactionTimeout time.Duration
	// ProducerID and ProducerEpoch are -1, or the producer's current id and
	// epoch when it asks to bump its epoch (KIP-360).
	ProducerID    int64
	ProducerEpoch int16
}

// ProducerCore hands out producer ids for idempotence and transactions.
type ProducerCore interface {
	// InitProducerID returns a producer id and epoch. A new producer gets a
	// fresh id with epoch 0; a known one (KIP-360) gets its epoch bumped.
	// A transactional id makes the new epoch its current producer and fences
	// every older one; a transaction an older one left open is aborted (or,
	// already committing, committed) first, as Kafka does. Errors:
	// ErrInvalidProducerEpoch for a stale epoch, ErrInvalidTxnTimeout for a
	// transaction timeout of 0 or over the core's maximum (Kafka's
	// transaction.max.timeout.ms), ErrConcurrentTransactions.
	InitProducerID(ctx context.Context, req InitProducer) (id int64, epoch int16, err error)
}

// The errors a Core returns, matched with errors.Is. Each maps to one Kafka
// error code in errors.go; the comment names it.
var (
	ErrUnknownTopicOrPartition = errors.New("unknown topic or partition")        // UNKNOWN_TOPIC_OR_PARTITION
	ErrUnknownTopicID          = errors.New("unknown topic id")                  // UNKNOWN_TOPIC_ID
	ErrTopicAlreadyExists      = errors.New("topic already exists")              // TOPIC_ALREADY_EXISTS
	ErrInvalidTopic            = errors.New("invalid topic name")                // INVALID_TOPIC_EXCEPTION
	ErrInvalidPartitions       = errors.New("invalid number of partitions")      // INVALID_PARTITIONS
	ErrInvalidConfig           = errors.New("invalid config")                    // INVALID_CONFIG
	ErrPolicyViolation         = errors.New("policy violation")                  // POLICY_VIOLATION
	ErrMessageTooLarge         = errors.New("record batch too large")            // MESSAGE_TOO_LARGE
	ErrCorruptMessage          = errors.New("corrupt record batch")              // CORRUPT_MESSAGE
	ErrInvalidRecord           = errors.New("invalid record")                    // INVALID_RECORD
	ErrOffsetOutOfRange        = errors.New("offset out of range")               // OFFSET_OUT_OF_RANGE
	ErrOutOfOrderSequence      = errors.New("out of order sequence number")      // OUT_OF_ORDER_SEQUENCE_NUMBER
	ErrInvalidProducerEpoch    = errors.New("invalid producer epoch")            // INVALID_PRODUCER_EPOCH
	ErrUnknownProducerID       = errors.New("unknown producer id")               // UNKNOWN_PRODUCER_ID
	ErrUnavailable             = errors.New("store or index unavailable")        // KAFKA_STORAGE_ERROR (retriable)
	ErrTimeout                 = errors.New("request timed out")                 // REQUEST_TIMED_OUT (retriable)
	ErrUnsupported             = errors.New("not supported by this broker")      // UNSUPPORTED_VERSION
	ErrInvalidRequest          = errors.New("invalid request")                   // INVALID_REQUEST
	ErrThrottled               = errors.New("overloaded, retry after a backoff") // THROTTLING_QUOTA_EXCEEDED (retriable)
	ErrTransactionalIDNotFound = errors.New("transactional id not found")        // TRANSACTIONAL_ID_NOT_FOUND
)
