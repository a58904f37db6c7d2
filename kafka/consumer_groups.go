package kafka

import (
	"context"
	"errors"
	"time"
)

// ConsumerGroupCore is the core's consumer groups of KIP-848 (the "consumer"
// group protocol): the coordinator assigns partitions, members reconcile
// by heartbeat, member epochs fence. These are the native server-side
// groups of the Connect API, so a Kafka member and a native member may
// share one group. A group is either classic or consumer, as in Kafka.
//
// Errors: ErrUnknownMemberID (the member left or its session expired:
// rejoin with epoch 0), ErrFencedMemberEpoch (an epoch the member was
// never given), ErrInconsistentGroupProtocol (a classic group with
// members), ErrGroupIDNotFound (ConsumerGroupDescribe of a group that is
// none, or classic), ErrInvalidRequest.
type ConsumerGroupCore interface {
	// ConsumerGroupHeartbeat joins (epoch 0), keeps alive and reconciles
	// (the member's last epoch) or removes (epoch -1 or -2) a member.
	ConsumerGroupHeartbeat(ctx context.Context, req ConsumerHeartbeat) (ConsumerHeartbeatResult, error)
	// DescribeConsumerGroup describes one consumer group.
	DescribeConsumerGroup(ctx context.Context, group string) (ConsumerGroupDescription, error)
}

// ConsumerHeartbeat is a ConsumerGroupHeartbeat request, with topics by name.
type ConsumerHeartbeat struct {
	Group       string
	MemberID    string
	MemberEpoch int32
	// Topics and Regex are the subscription; both nil: unchanged.
	Topics []string
	Regex  *string
	// Owned is what the member owns; nil: unchanged.
	Owned []TopicPartition
	// ClientID and ClientHost: the request header's client id and the
	// connection's peer, for DescribeGroups.
	ClientID   string
	ClientHost string
	// InstanceID is a static member's group.instance.id, "" for a dynamic
	// member (KIP-848 static membership).
	InstanceID string
	// ServerAssignor is the server assignor the member asks for, "" when
	// it names none.
	ServerAssignor string
}

// ConsumerHeartbeatResult is a heartbeat's answer.
type ConsumerHeartbeatResult struct {
	MemberID    string
	MemberEpoch int32
	Interval    time.Duration
	Assigned    []TopicPartition
}

// ConsumerGroupDescription is a consumer group as ConsumerGroupDescribe
// shows it.
type ConsumerGroupDescription struct {
	Group string
	State string // KIP-848's: "Empty", "Reconciling" or "Stable"
	Epoch int32
	// Assignor is the group's server assignor ("uniform" or "range").
	Assignor string
	Members  []ConsumerGroupMember
}

// ConsumerGroupMember is one live member.
type ConsumerGroupMember struct {
	MemberID    string
	MemberEpoch int32
	Topics      []string
	Regex       string
	Assigned    []TopicPartition
	Target      []TopicPartition
	// ClientID, ClientHost ("/" and the address) and InstanceID (a
	// static member's group.instance.id) are "" when not known.
	ClientID, ClientHost, InstanceID string
}

// The consumer group errors a Core returns; each maps to one Kafka error code
// in errors.go.
var (
	ErrFencedMemberEpoch = errors.New("fenced member epoch") // FENCED_MEMBER_EPOCH
)
