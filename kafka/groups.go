package kafka

import (
	"context"
	"errors"
	"time"
)

// GroupCore is the core's consumer groups as the Kafka front-end needs them:
// Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, with client-side assignors) and committed offsets, over the
// same groups as the Connect API's native ones. Protocol metadata and
// assignments are opaque bytes to the core, as to a Kafka broker. Any agent
// serves any group: the state is in the index, so these calls may be made
// on any agent, and a member may move between agents between calls.
//
// Member errors: ErrUnknownMemberID (rejoin with no member id),
// ErrIllegalGeneration, ErrRebalanceInProgress (rejoin),
// ErrFencedInstanceID (KIP-345), ErrInconsistentGroupProtocol (no common
// protocol, or the group is a consumer group of KIP-848 / the native API).
type GroupCore interface {
	// JoinGroup joins a member and waits until the rebalance completes
	// (every known member rejoined, or the rebalance timeout passed). A
	// first join with RequireKnownMemberID answers ErrMemberIDRequired with
	// the member id to join with in the result (KIP-394). Errors also:
	// ErrInvalidSessionTimeout.
	JoinGroup(ctx context.Context, req JoinGroup) (JoinGroupResult, error)
	// SyncGroup stores the leader's assignment, or waits for it
	// (followers), and returns the member's.
	SyncGroup(ctx context.Context, req SyncGroup) (SyncGroupResult, error)
	// Heartbeat renews the member's session; ErrRebalanceInProgress while
	// the group rebalances.
	Heartbeat(ctx context.Context, group, memberID, instanceID string, generation int32) error
	// LeaveGroup removes members, by member id or instance id; it returns
	// one error per member (nil: it left).
	LeaveGroup(ctx context.Context, group string, members []GroupMemberIdentity) ([]error, error)

	// CommitOffsets commits offsets: a simple commit (member "" and
	// generation -1) while the group has no members, else a member's at its
	// generation (a consumer group's members: their member epoch). Partition
	// errors (ErrUnknownTopicOrPartition, ErrOffsetMetadataTooLarge) are per
	// partition, and the others are committed; a member error fails all.
	CommitOffsets(ctx context.Context, req OffsetCommit) (map[TopicPartition]error, error)
	// FetchOffsets returns the committed offsets of tps (all when tps is
	// nil); a partition with none is absent from the map.
	FetchOffsets(ctx context.Context, group string, tps []TopicPartition) (map[TopicPartition]CommittedOffset, error)
	// PendingTxnOffsets returns the group's partitions with offsets staged
	// by a transaction that has not completed (OffsetFetch's RequireStable,
	// KIP-447). Call it before FetchOffsets: a transaction completing in
	// between then reads as pending, never as a stale offset.
	PendingTxnOffsets(ctx context.Context, group string) (map[TopicPartition]bool, error)

	// DescribeGroup describes a group of either kind; a group that does
	// not exist is State "Dead" with no error, as Kafka answers.
	DescribeGroup(ctx context.Context, group string) (GroupDescription, error)
	// ListGroups lists every group with its type and state (no members).
	ListGroups(ctx context.Context) ([]GroupDescription, error)
	// DeleteGroup deletes a group and its offsets: ErrGroupNotEmpty while
	// it has members, ErrGroupIDNotFound when there is none.
	DeleteGroup(ctx context.Context, group string) error
	// DeleteOffsets forgets committed offsets: ErrGroupIDNotFound when the
	// group does not exist.
	DeleteOffsets(ctx context.Context, group string, tps []TopicPartition) error
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// GroupProtocol is one protocol a member supports (for protocol type
// "consumer": an assignor, such as "range" or "cooperative-sticky"), with
// its metadata (the subscription, for consumers).
type GroupProtocol struct {
	Name     string
	Metadata []byte
}

// JoinGroup is a JoinGroup request.
type JoinGroup struct {
	Group            string
	MemberID         string // "" for a first join
	InstanceID       string // group.instance.id (KIP-345), "" for a dynamic member
	ClientID         string
	ClientHost       string
	ProtocolType     string
	Protocols        []GroupProtocol
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration // KIP-62; SessionTimeout for JoinGroup v0
	// RequireKnownMemberID: JoinGroup v4+ (KIP-394).
	RequireKnownMemberID bool
	// Topics is the subscription read from a "consumer" protocol's
	// metadata, for describing the group; nil for other protocol types.
	Topics []string
}

// JoinGroupResult is the answer to a JoinGroup.
type JoinGroupResult struct {
	Generation   int32
	ProtocolType string
	Protocol     string
	LeaderID     string
	MemberID     string
	// Members is set for the leader only.
	Members []GroupMember
}

// GroupMember is a member as the leader and DescribeGroups see it.
type GroupMember struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	Metadata   []byte // for the group's protocol
	Assignment []byte // DescribeGroups only
	// Topics and Assigned: a consumer group's (KIP-848 or native) member's
	// subscription and owned partitions, which DescribeGroups encodes as
	// the consumer protocol's metadata and assignment; nil for classic
	// members.
	Topics   []string
	Assigned []TopicPartition
}

// SyncGroup is a SyncGroup request.
type SyncGroup struct {
	Group        string
	MemberID     string
	InstanceID   string
	Generation   int32
	ProtocolType string // "" before SyncGroup v5
	Protocol     string // "" before SyncGroup v5
	Assignments  map[string][]byte
	// Partitions is the leader's assignment read as the "consumer"
	// protocol's (member id -> partitions), for describing the group; nil
	// for other protocol types.
	Partitions map[string][]TopicPartition
}

// SyncGroupResult is the member's assignment.
type SyncGroupResult struct {
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// GroupMemberIdentity names a leaving member.
type GroupMemberIdentity struct {
	MemberID   string
	InstanceID string
}

// CommittedOffset is one committed offset.
type CommittedOffset struct {
	Offset int64
	// LeaderEpoch is the committed leader epoch (OffsetCommit v6+,
	// TxnOffsetCommit v2+, KIP-320), kept as the client sent it and
	// returned by OffsetFetch v5+; -1 when none was sent.
	LeaderEpoch int32
	Metadata    string
}

// OffsetCommit is an OffsetCommit request.
type OffsetCommit struct {
	Group      string
	MemberID   string
	InstanceID string
	Generation int32
	Offsets    map[TopicPartition]CommittedOffset
}

// GroupDescription is a group as DescribeGroups and ListGroups see it.
type GroupDescription struct {
	Group string
	// Type is "classic" or "consumer" (KIP-848's group types, ListGroups v5).
	Type string
	// State is Kafka's: Empty, PreparingRebalance, CompletingRebalance,
	// Stable, Dead.
	State        string
	ProtocolType string
	Protocol     string
	Members      []GroupMember
}

// The errors of GroupCore, matched with errors.Is; errors.go maps each to
// its Kafka code.
var (
	ErrUnknownMemberID           = errors.New("unknown member id")           // UNKNOWN_MEMBER_ID
	ErrIllegalGeneration         = errors.New("illegal generation")          // ILLEGAL_GENERATION
	ErrRebalanceInProgress       = errors.New("rebalance in progress")       // REBALANCE_IN_PROGRESS
	ErrMemberIDRequired          = errors.New("member id required")          // MEMBER_ID_REQUIRED
	ErrInconsistentGroupProtocol = errors.New("inconsistent group protocol") // INCONSISTENT_GROUP_PROTOCOL
	ErrFencedInstanceID          = errors.New("fenced instance id")          // FENCED_INSTANCE_ID
	ErrUnreleasedInstanceID      = errors.New("unreleased instance id")      // UNRELEASED_INSTANCE_ID (KIP-848)
	ErrUnsupportedAssignor       = errors.New("unsupported assignor")        // UNSUPPORTED_ASSIGNOR (KIP-848)
	ErrInvalidSessionTimeout     = errors.New("invalid session timeout")     // INVALID_SESSION_TIMEOUT
	ErrOffsetMetadataTooLarge    = errors.New("offset metadata too large")   // OFFSET_METADATA_TOO_LARGE
	ErrGroupNotEmpty             = errors.New("group not empty")             // NON_EMPTY_GROUP
	ErrGroupIDNotFound           = errors.New("group id not found")          // GROUP_ID_NOT_FOUND
	ErrInvalidGroupID            = errors.New("invalid group id")            // INVALID_GROUP_ID
)
