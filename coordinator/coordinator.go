package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Sentinel errors, wrapped with context via %w and tested with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalid: a request breaks a rule (name, config value, partition count).
	ErrInvalid = errors.New("invalid argument")
	// ErrFenced: a stale producer epoch, lease token or member epoch.
	ErrFenced = errors.New("fenced")
	// ErrOffsetOutOfRange: an offset below the log start or above the high watermark.
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrOutOfOrderSequence: an idempotent producer's batch left a sequence gap.
	ErrOutOfOrderSequence = errors.New("out of order sequence number")
	// ErrConflict: a compare-and-set lost to a concurrent writer.
	ErrConflict = errors.New("conflict")
	// ErrTopicDeleted: a commit named a partition of a deleted topic.
	ErrTopicDeleted = errors.New("topic deleted")
	// ErrUnavailable: the index could not be reached or failed the call; retryable.
	ErrUnavailable = errors.New("index unavailable")
)

// Finer kinds of the sentinels above, for callers that answer with a more
// precise error (the agent names Kafka's error for each). Each is its
// parent too (errors.Is(ErrInvalidConfig, ErrInvalid) holds) and reads
// the same, so messages and older checks are unchanged.
var (
	// ErrInvalidTopicName: a topic name breaks Kafka's rules (empty, "." or
	// "..", over MaxTopicNameLength, a character other than [a-zA-Z0-9._-]).
	ErrInvalidTopicName = fmt.Errorf("%w", ErrInvalid)
	// ErrInvalidPartitions: a partition count below 1, over MaxPartitions,
	// or not above the topic's count in CreatePartitions.
	ErrInvalidPartitions = fmt.Errorf("%w", ErrInvalid)
	// ErrInvalidConfig: an unknown topic config key or a bad value.
	ErrInvalidConfig = fmt.Errorf("%w", ErrInvalid)
	// ErrGroupNotFound: no such consumer group (no members, no committed
	// offsets, no record).
	ErrGroupNotFound = fmt.Errorf("%w", ErrNotFound)
	// ErrNotEnoughReplicas: a commit was applied on the primary but fewer
	// replicas than Options.WaitReplicas acknowledged it (Redis WAIT) in
	// time. Retryable: the retried commit returns the same offsets.
	ErrNotEnoughReplicas = fmt.Errorf("%w", ErrUnavailable)
)

// LimitError is a request over a named limit of the index (a partition
// count, a topic name's length). It is its sentinel Err (errors.Is), and
// carries the limit for callers that report it (the agent's LimitExceeded
// error detail).
type LimitError struct {
	Err    error  // the sentinel: ErrInvalidPartitions, ErrInvalidTopicName
	Name   string // the limit's name, e.g. "partitions", "topic name length"
	Limit  int64  // the limit, in the limit's unit
	Actual int64  // what the request had, in the same unit
	Msg    string // what broke the limit, in words
}

func (e *LimitError) Error() string { return e.Err.Error() + ": " + e.Msg }
func (e *LimitError) Unwrap() error { return e.Err }

// TopicConfig is a topic's configuration. Zero values mean "the default" on create.
type TopicConfig struct {
	Partitions      int32
	RetentionMs     int64 // retention.ms, -1 = forever; default 7 days
	RetentionBytes  int64 // retention.bytes per partition, -1 = unlimited (default)
	MaxMessageBytes int32 // max.message.bytes; default 1 MiB, capped broker-wide
	// CleanupPolicy is cleanup.policy, Kafka's list: "delete" (default),
	// "compact", or both ("compact,delete" or "delete,compact"). Compact
	// keeps the latest record per key in the archive (agent/cleaner.go,
	// Kafka's log cleaner, KIP-58/KIP-354); only a policy with delete
	// enforces retention.ms and retention.bytes.
	CleanupPolicy string
	Compression   string // compression.type: "none", "gzip", "snappy", "lz4", "zstd", "producer" (default)
	// ArchiveAfterMs is archive.after.ms: committed records older than this
	// (by their entry's max timestamp) are compacted into the Parquet
	// archive; -1 never archives; default 10 minutes (DefaultArchiveAfterMs).
	ArchiveAfterMs int64
	// DeleteRetentionMs is delete.retention.ms: how long, in ms, the cleaner
	// keeps a tombstone (a keyed record with a null value) after the pass
	// that first found it cleanable; default 1 day (DefaultDeleteRetentionMs).
	DeleteRetentionMs int64
	// MinCompactionLagMs is min.compaction.lag.ms (KIP-58): records newer
	// than this, in ms by their row group's newest timestamp, are never
	// cleaned; default 0.
	MinCompactionLagMs int64
	// MinCleanableDirtyRatio is min.cleanable.dirty.ratio: the cleaner
	// rewrites a partition's archive only once the bytes archived since its
	// last pass are at least this share of the cleanable bytes (or a
	// tombstone's delete.retention.ms has passed); 0 to 1, default 0.5.
	MinCleanableDirtyRatio float64
	// Passive holds the Kafka configs accepted without effect
	// (PassiveConfigs) that are set to other than Kafka's default; the
	// zero value has none. A value, so TopicConfig stays comparable.
	Passive PassiveValues
}

// Compacted reports whether the topic's cleanup.policy has compact.
func (c TopicConfig) Compacted() bool { return policyHas(c.CleanupPolicy, "compact") }

// DeletesByRetention reports whether the topic's cleanup.policy has delete:
// only then do retention.ms and retention.bytes remove records.
func (c TopicConfig) DeletesByRetention() bool { return policyHas(c.CleanupPolicy, "delete") }

func policyHas(policy, want string) bool {
	for p := range strings.SplitSeq(policy, ",") {
		if strings.TrimSpace(p) == want {
			return true
		}
	}
	return false
}

// Topic is a topic as the index knows it.
type Topic struct {
	Name      string
	ID        uuid.UUID // immutable; a recreated topic gets a new one
	Config    TopicConfig
	CreatedAt time.Time
}

// Topics manages topics and their configuration.
type Topics interface {
	// CreateTopic creates a topic with a new immutable id. Errors:
	// ErrAlreadyExists for a taken name; ErrInvalidTopicName for a name
	// that breaks Kafka's rules or collides with an existing topic's in
	// Kafka's metric names ("col.a" and "col_a"; checked atomically with
	// the create, as Kafka's CreateTopics answers INVALID_TOPIC_EXCEPTION);
	// ErrInvalidPartitions, ErrInvalidConfig.
	CreateTopic(ctx context.Context, name string, cfg TopicConfig) (Topic, error)
	// DeleteTopic removes the name at once; the partitions' data is left for
	// garbage collection and no commit to them succeeds afterwards. Every
	// group's committed offsets of the topic are deleted too, best effort
	// (groups live in other slots; readers of offsets check topic ids).
	DeleteTopic(ctx context.Context, name string) error
	ListTopics(ctx context.Context) ([]Topic, error)
	DescribeTopic(ctx context.Context, name string) (Topic, error)
	// UpdateTopicConfig sets the given Kafka-named keys (retention.ms, ...).
	UpdateTopicConfig(ctx context.Context, name string, set map[string]string) (Topic, error)
	// CreatePartitions raises the partition count to total; it never lowers it.
	CreatePartitions(ctx context.Context, name string, total int32) (Topic, error)
	// ApplyConfig returns cfg with the Kafka-named keys applied and
	// validated, as UpdateTopicConfig would; it writes nothing.
	ApplyConfig(cfg TopicConfig, set map[string]string) (TopicConfig, error)
}

// BatchCommit describes one record batch of a chunk in a segment.
type BatchCommit struct {
	ByteOffset   int64 // in the segment object
	ByteLength   int64
	Records      int32 // offsets the batch takes: LastOffsetDelta+1
	MaxTimestamp int64 // ms
	// Idempotence; ProducerID < 0 for a plain producer.
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	// Transactions (issue 11, KIP-98). Transactional is the batch
	// attributes' transactional bit: the first such batch of a producer with
	// no open transaction on the partition starts one there, holding back the
	// last stable offset. Control is the control bit: the batch is a
	// transaction marker (one record) whose ControlType, the control
	// record's type, is ControlAbort or ControlCommit; it closes the
	// producer's open transaction on the partition. Markers are not subject
	// to sequence checks (Kafka writes them with sequence -1) but are to
	// epoch fencing: a marker of an older epoch is ErrFenced, and one of a
	// newer epoch fences the older epoch's later batches on the partition.
	// Both kinds need ProducerID >= 0.
	Transactional bool
	Control       bool
	ControlType   int16
}

// ChunkCommit is the part of a segment that belongs to one partition.
type ChunkCommit struct {
	TopicID   uuid.UUID
	Partition int32
	Batches   []BatchCommit // in segment order
}

// SegmentCommit commits one uploaded segment.
type SegmentCommit struct {
	SegmentID  string // unique (ULID); the commit is idempotent by (SegmentID, partition)
	SegmentKey string // object key in the bucket
	Chunks     []ChunkCommit
}

// BatchResult is the outcome of one batch.
type BatchResult struct {
	BaseOffset int64 // valid when Err == nil
	// Duplicate: the producer had sent this batch before; BaseOffset is the
	// offset it got then and the bytes of this copy are not part of the log.
	Duplicate bool
	Err       error // ErrFenced, ErrOutOfOrderSequence, ErrTopicDeleted
}

// ChunkResult is the outcome of one chunk, Batches in the order of the commit.
type ChunkResult struct {
	Batches       []BatchResult
	HighWatermark int64 // after the commit, visible once CommitSegment returned
	// LogStartOffset is the partition's log start offset when the commit
	// ran (read in the same script: no extra round trip), what Kafka's
	// Produce v5+ answers; -1 for a deleted topic.
	LogStartOffset int64
}

// IndexEntry points at a run of offsets stored in an object.
type IndexEntry struct {
	BaseOffset   int64
	Records      int64 // offsets covered: [BaseOffset, BaseOffset+Records)
	SegmentKey   string
	ByteOffset   int64
	ByteLength   int64
	MaxTimestamp int64
}

// LastOffset is the last offset the entry covers.
func (e IndexEntry) LastOffset() int64 { return e.BaseOffset + e.Records - 1 }

// PartitionState is a partition's bounds and size.
type PartitionState struct {
	LogStartOffset int64
	// HighWatermark ends the log readers may see: every offset below it
	// is durable (commits past it are not yet).
	HighWatermark int64
	Bytes         int64 // bytes referenced by live index entries
	// LastStableOffset (issue 11): the first offset of the oldest open
	// transaction on the partition, or the high watermark when none is open;
	// read_committed consumers read below it (Kafka's LSO). Filled by
	// Log.PartitionState; Lookup leaves it 0.
	LastStableOffset int64
}

// Log commits segments and looks up offsets. Keys are per partition, so it runs
// on Redis Cluster sharded by partition.
type Log interface {
	// CommitSegment assigns offsets to every chunk in one round trip (and
	// makes them visible in a second). Per-chunk
	// failures (deleted topic) come back in the result; err is for the call.
	// Retrying a commit with the same SegmentID returns the same offsets.
	// It returns only once the commit is durable (Options.WaitReplicas, or
	// the embedded index's snapshot) and its offsets are visible to readers;
	// before that, readers do not see them (DESIGN.md write path step 6).
	CommitSegment(ctx context.Context, c SegmentCommit) ([]ChunkResult, error)
	// FinishSegment makes a commit that ran but failed to become durable
	// (CommitSegment's ErrUnavailable after WAIT or the snapshot failed)
	// durable and visible, without committing anything new: for each chunk
	// of c whose commit ran (its segment id is recorded on the partition),
	// it waits for the replicas (or the snapshot) and raises the high
	// watermark to the log end offset that commit returned, like Kafka's
	// high watermark advancing once the followers caught up. It returns the
	// watermarks it raised (none when no chunk's commit ran, or a later
	// commit covered them already). ErrUnavailable: still not durable; call
	// again later.
	FinishSegment(ctx context.Context, c SegmentCommit) ([]Watermark, error)
	// Lookup returns the entry holding offset and the entries after it while
	// their bytes add up to at most maxBytes (always at least one entry).
	// offset == high watermark returns no entries and no error; offsets outside
	// [log start, high watermark] are ErrOffsetOutOfRange.
	Lookup(ctx context.Context, topicID uuid.UUID, partition int32, offset int64, maxBytes int64) ([]IndexEntry, PartitionState, error)
	PartitionState(ctx context.Context, topicID uuid.UUID, partition int32) (PartitionState, error)
	// OffsetForTimestamp returns the first entry that may hold a record with
	// timestamp >= ts (Kafka ListOffsets); found is false when none does. The
	// caller scans the entry's batches for the exact offset.
	OffsetForTimestamp(ctx context.Context, topicID uuid.UUID, partition int32, ts int64) (entry IndexEntry, found bool, err error)
	// SegmentRefs is how many partition chunks still point at the segment.
	SegmentRefs(ctx context.Context, segmentID string) (int64, error)
}

// Producers allocates producer ids for idempotent producers. Sequence checks
// happen inside CommitSegment. Ids and transactional ids are forgotten
// ProducerIDExpiry after their last InitProducer, BumpEpoch or
// InitTransactionalProducer.
type Producers interface {
	// InitProducer allocates a new producer id with epoch 0.
	InitProducer(ctx context.Context) (id int64, epoch int16, err error)
	// BumpEpoch fences every older epoch of the producer and returns the
	// new one; ErrNotFound for an unknown (or expired) id, ErrFenced when
	// its epochs are used up.
	BumpEpoch(ctx context.Context, id int64) (int16, error)
	// InitTransactionalProducer binds transactionalID to a producer id (a
	// new one on first use, or when the bound one used up its epochs) and
	// raises its epoch on every call, fencing the callers before (Kafka's
	// InitProducerId with a transactional.id). timeout is stored for
	// transactions. ErrInvalid for an empty id, one over 255 bytes or with
	// braces.
	InitTransactionalProducer(ctx context.Context, transactionalID string, timeout time.Duration) (id int64, epoch int16, err error)
	// BumpTransactionalProducer is InitTransactionalProducer for the
	// producer that holds (producerID, epoch) (InitProducerId v3+ with its
	// pair, KIP-360): the epoch is bumped only if the pair is the id's
	// current one (or the id is unbound); the pair that the holder's own
	// last bump or FenceTransactionalProducer replaced gets the current
	// pair back unchanged (a retry whose answer was lost, or a producer
	// recovering from a transaction timeout, KIP-588); any other pair is
	// ErrFenced, so a zombie cannot take the id back from a new producer.
	BumpTransactionalProducer(ctx context.Context, transactionalID string, timeout time.Duration, producerID int64, epoch int16) (int64, int16, error)
	// FenceTransactionalProducer is InitTransactionalProducer for the
	// reaper of a timed-out transaction: the bump fences the producer, and
	// BumpTransactionalProducer still knows it (KIP-588).
	FenceTransactionalProducer(ctx context.Context, transactionalID string, timeout time.Duration) (int64, int16, error)
}

// Watermark is one notification: a partition's high watermark moved.
type Watermark struct {
	TopicID       uuid.UUID
	Partition     int32
	HighWatermark int64
}

// Notifier delivers watermark notifications published by commits.
type Notifier interface {
	// SubscribeWatermarks calls fn for every commit until ctx ends, over one
	// connection. It returns once the subscription is live.
	SubscribeWatermarks(ctx context.Context, fn func(Watermark)) error
}

// Lease is a held lease; Token rises with every acquisition of the name, so
// work carrying an old token can be refused.
type Lease struct {
	Name    string
	Holder  string
	Token   int64
	Expires time.Time
}

// Leases hands out exclusive, expiring, fenced leases (compaction jobs).
type Leases interface {
	// AcquireLease takes the lease if it is free or expired; ErrConflict if held.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error)
	// RenewLease extends a lease still held with the same token; ErrFenced if lost.
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	ReleaseLease(ctx context.Context, l Lease) error
	// ValidateLease returns nil while the lease is still held with l's token,
	// ErrFenced otherwise.
	ValidateLease(ctx context.Context, l Lease) error
}

// AgentInfo is a live agent.
type AgentInfo struct {
	ID   string
	Addr string // the API address (--advertise-addr)
	// KafkaAddr is the advertised Kafka listener, host:port
	// (--kafka-advertise); "" when the agent serves no Kafka listener.
	KafkaAddr string
	// NodeID is the agent's Kafka node id (broker.id), unique among live
	// agents and stable for the agent process's life; 0 when KafkaAddr is "".
	NodeID int32
	// Zone is the agent's availability zone (Kafka's broker.rack); "" when unknown.
	Zone    string
	Expires time.Time
}

// Agents is the registry of live agents.
type Agents interface {
	// RegisterAgent adds or refreshes the agent for ttl.
	RegisterAgent(ctx context.Context, a AgentInfo, ttl time.Duration) error
	DeregisterAgent(ctx context.Context, id string) error
	ListAgents(ctx context.Context) ([]AgentInfo, error)
}

// ErrGroupNotEmpty: DeleteGroup found live members. It is an ErrConflict too.
var ErrGroupNotEmpty = fmt.Errorf("%w: group has live members", ErrConflict)

// ErrMemberFenced is a commit a MemberFence refused: the member is not in
// the group, is at another epoch, or its lease expired. It is an ErrFenced;
// it tells a group member's fence from a producer's (Transactions).
var ErrMemberFenced = fmt.Errorf("%w: group member", ErrFenced)

// TopicPartition names one partition of a topic by the topic's name, as Kafka
// keys committed offsets.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// CommittedOffset is a group's committed position in one partition.
type CommittedOffset struct {
	// Offset is the next offset to consume. A negative one is stored as
	// given: Kafka's OffsetCommit takes any value, and admin tools commit
	// -1 (latest) and -2 (earliest) for clients to resolve on fetch
	// (kafkajs's admin.resetOffsets); readers other than Kafka's
	// OffsetFetch take it for "no committed offset".
	Offset   int64
	Metadata string
	// TopicID is the id of the topic the offset was committed to: a topic
	// deleted and created again under the same name is another topic
	// (Kafka's topic ids, KIP-516), and an offset whose TopicID is not the
	// topic's current id belongs to the deleted one. uuid.Nil: not known
	// (committed without one).
	TopicID uuid.UUID
	// CommitTime is set by the index's clock when zero on commit.
	CommitTime time.Time
	// LeaderEpoch is the committed leader epoch a Kafka client sent with
	// the offset (committed_leader_epoch of OffsetCommit v6+ and
	// TxnOffsetCommit v2+, KIP-320), kept as sent and returned by
	// OffsetFetch v5+; nil when none was sent (Kafka's -1), as for every
	// offset the native API commits.
	LeaderEpoch *int32
}

// GroupState is the group protocol's own record (assignment, target, epochs),
// opaque to the index and replaced by compare-and-set on Version.
type GroupState struct {
	// Version is 0 for a group with no state; otherwise opaque, compared for
	// equality only.
	Version int64
	Data    []byte
}

// GroupMember is one member of a group, alive while its lease lasts.
type GroupMember struct {
	ID    string
	Epoch int32
	// Expires is on the caller's clock (see Groups.ListMembers); PutMember
	// ignores it and takes a ttl instead.
	Expires time.Time
	Data    []byte
}

// MemberFence makes a commit conditional on the member still holding its
// lease with this epoch. A commit it refuses is ErrMemberFenced.
type MemberFence struct {
	MemberID string
	Epoch    int32
}

// Groups stores consumer groups: an opaque protocol state, members with
// leased liveness, and committed offsets. All of one group lives in one slot.
type Groups interface {
	// LoadGroup returns Version 0 and nil Data when no state was saved.
	LoadGroup(ctx context.Context, group string) (GroupState, error)
	// SaveGroup replaces the state if it is still at expectVersion (0: none);
	// ErrConflict when another writer saved first.
	SaveGroup(ctx context.Context, group string, expectVersion int64, data []byte) (newVersion int64, err error)
	// PutMember upserts the member with a lease of ttl from the index's now:
	// the explicit create path of a member joining (or rejoining).
	PutMember(ctx context.Context, group string, m GroupMember, ttl time.Duration) error
	// RenewMember extends the member's lease by ttl from the index's now and
	// sets its epoch to m.Epoch, only while the member is there with an
	// unexpired lease at fromEpoch; ErrFenced otherwise, so a renewal that
	// arrives after the lease expired never brings the member back.
	RenewMember(ctx context.Context, group string, m GroupMember, fromEpoch int32, ttl time.Duration) error
	// ListMembers returns every member, expired ones included, by id.
	ListMembers(ctx context.Context, group string) ([]GroupMember, error)
	// RemoveMember is ErrNotFound for a member that is not there.
	RemoveMember(ctx context.Context, group, memberID string) error
	// RemoveExpiredMember removes the member only if its lease has expired
	// by the index's clock, and reports whether it did: a member that
	// rejoined meanwhile keeps its new lease.
	RemoveExpiredMember(ctx context.Context, group, memberID string) (bool, error)
	// CommitOffsets stores all the offsets or none; with a fence, only while
	// the member holds an unexpired lease at that epoch, else ErrFenced.
	CommitOffsets(ctx context.Context, group string, fence *MemberFence, offsets map[TopicPartition]CommittedOffset) error
	// FetchOffsets returns those of tps (all when empty) that were committed.
	FetchOffsets(ctx context.Context, group string, tps []TopicPartition) (map[TopicPartition]CommittedOffset, error)
	// DeleteOffsets forgets the offsets of tps; an empty tps deletes nothing.
	DeleteOffsets(ctx context.Context, group string, tps []TopicPartition) error
	// DeleteTopicOffsets forgets those of tps' committed offsets that were
	// committed to the topic with id topicID (uuid.Nil: without an id), and
	// keeps any committed to another incarnation of the name. It returns
	// how many it deleted.
	DeleteTopicOffsets(ctx context.Context, group string, topicID uuid.UUID, tps []TopicPartition) (int, error)
	// ListGroups returns the groups with state, members or offsets.
	ListGroups(ctx context.Context) ([]string, error)
	// DeleteGroup removes everything of the group; ErrGroupNotEmpty while a
	// member's lease is live, ErrNotFound when there is no such group.
	DeleteGroup(ctx context.Context, group string) error
}
