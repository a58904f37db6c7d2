package agent

// Classic consumer groups: the group protocol of Kafka's JoinGroup,
// SyncGroup, Heartbeat and LeaveGroup (KIP-62 rebalance timeouts, KIP-345
// static membership, KIP-394 MEMBER_ID_REQUIRED), where the members bring
// their own assignor and the coordinator only collects their protocols,
// picks a leader and hands the leader's assignment to everyone. This file is
// the core's Go API for it; the Kafka front-end (kafka/agentcore) is its
// caller. It knows no Kafka frames: protocol metadata and assignments are
// opaque bytes, as they are to a Kafka broker.
//
// Where the state lives. A classic group is a group like the native ones, in
// the same index keys (coordinator.Groups, all under the group's hash tag, so
// one slot on Redis Cluster): its record is the group's state (compare-and-set
// by version, so any agent can serve any member's request), marked
// "classic" so that the native heartbeat refuses it (a group is classic or
// consumer, as in Kafka: INCONSISTENT_GROUP_PROTOCOL) and this code refuses a
// native group with members. Member liveness is the same lease as for native
// members (the members sorted set, judged by the index's clock), whose epoch
// is the member's generation: a commit fenced by (member, generation) is
// atomic with the lease check in the index, so a commit of a generation
// that a rebalance already replaced fails ILLEGAL_GENERATION even when it
// raced the rebalance. Committed offsets are the group's offsets, shared
// with the native API.
//
// The state machine is Kafka's (GroupCoordinator, classic):
//
//	Empty -> PreparingRebalance      a member joins
//	PreparingRebalance -> CompletingRebalance
//	                                 every member has rejoined, or the
//	                                 rebalance timeout passed (those that did
//	                                 not rejoin are removed); generation + 1
//	CompletingRebalance -> Stable    the leader's SyncGroup brings assignments
//	Stable/Completing -> Preparing   a member joins, leaves, changes its
//	                                 protocols or misses its session
//
// Nothing runs in the background: whichever agent serves a request of the
// group does what is due (expires members whose lease is gone, completes a
// rebalance whose members have all rejoined or whose deadline passed), and
// requests that wait (JoinGroup until the rebalance completes, a follower's
// SyncGroup until the leader's) poll the record, renewing the waiting
// member's lease, so a waiting member never expires and an agent killed
// mid-wait leaves nothing that the member's retry on another agent cannot
// pick up. The rebalance deadline is on the agents' clocks (wall time in
// the record); leases are on the index's.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/stratabroker/strata/coordinator"
)

// Errors of the classic group protocol; each is the Kafka error of the same
// name (org.apache.kafka.common.protocol.Errors).
var (
	// ErrUnknownMemberID: the member is not in the group (never joined,
	// left, or its session expired): rejoin with an empty member id.
	ErrUnknownMemberID = errors.New("unknown member id")
	// ErrIllegalGeneration: the request's generation is not the group's.
	ErrIllegalGeneration = errors.New("illegal generation")
	// ErrRebalanceInProgress: the group is rebalancing: rejoin.
	ErrRebalanceInProgress = errors.New("rebalance in progress")
	// ErrMemberIDRequired: a new member must join again with the member id
	// it was given (KIP-394), so that a retried join is not a new member.
	ErrMemberIDRequired = errors.New("member id required")
	// ErrInconsistentGroupProtocol: the member's protocol type or
	// protocols have nothing in common with the group's, or the group is a
	// group of the other kind (classic vs consumer).
	// Over the Connect API (a native heartbeat of a classic group) it is
	// FAILED_PRECONDITION: the request is sound, the group is of the
	// other kind.
	ErrInconsistentGroupProtocol = errors.New("inconsistent group protocol")
	// ErrFencedInstanceID: another member joined with the same
	// group.instance.id since (KIP-345).
	ErrFencedInstanceID = errors.New("fenced instance id")
	// ErrUnreleasedInstanceID: a KIP-848 static member joined with a
	// group.instance.id that a live member holds and has not released by
	// leaving with epoch -2 (Kafka's UNRELEASED_INSTANCE_ID).
	ErrUnreleasedInstanceID = errors.New("unreleased instance id")
	// ErrUnsupportedAssignor: a KIP-848 member asked for a server assignor
	// the agents do not have (Kafka's UNSUPPORTED_ASSIGNOR).
	ErrUnsupportedAssignor = errors.New("unsupported assignor")
	// ErrInvalidSessionTimeout: outside the agent's
	// --group-min-session-timeout and --group-max-session-timeout.
	ErrInvalidSessionTimeout = errors.New("invalid session timeout")
	// ErrGroupNotEmpty and ErrGroupNotFound: DeleteGroup's refusals.
	ErrGroupNotEmpty = coordinator.ErrGroupNotEmpty
	ErrGroupNotFound = coordinator.ErrGroupNotFound
)

// Classic group states, Kafka's names (DescribeGroups, ListGroups).
const (
	GroupEmpty               = "Empty"
	GroupPreparingRebalance  = "PreparingRebalance"
	GroupCompletingRebalance = "CompletingRebalance"
	GroupStable              = "Stable"
	GroupDead                = "Dead"
	// GroupReconciling is a KIP-848 consumer group whose members are still
	// taking or releasing partitions of the target assignment.
	GroupReconciling = "Reconciling"
)

// Group types (KIP-848's group.type), as ListGroups v5 reports them.
const (
	GroupTypeClassic  = "classic"
	GroupTypeConsumer = "consumer"
)

// classicPoll is how often a waiting join or sync reads the record.
const classicPoll = 50 * time.Millisecond

// pendingMemberTTL bounds how long a member id handed out with
// MEMBER_ID_REQUIRED is kept for the member's second join.
const pendingMemberTTL = 5 * time.Minute

// ClassicProtocol is one protocol a member supports (an assignor for the
// "consumer" protocol type), with its opaque metadata.
type ClassicProtocol struct {
	Name     string `json:"name"`
	Metadata []byte `json:"metadata,omitempty"`
}

// JoinRequest is a JoinGroup.
type JoinRequest struct {
	Group string
	// MemberID is "" for a member's first join.
	MemberID string
	// InstanceID is the static member's group.instance.id (KIP-345), "" for
	// a dynamic member.
	InstanceID   string
	ClientID     string
	ClientHost   string
	ProtocolType string
	Protocols    []ClassicProtocol
	// SessionTimeout is how long the member may stay silent; it must be
	// within the agent's --group-min/max-session-timeout.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the rebalance waits for the member to
	// rejoin (KIP-62); SessionTimeout when zero.
	RebalanceTimeout time.Duration
	// RequireKnownMemberID makes a first join answer ErrMemberIDRequired
	// with the new member id (JoinGroup v4+, KIP-394).
	RequireKnownMemberID bool
	// Topics is the member's subscription when the front-end can read it
	// from the protocol metadata (Kafka's "consumer" protocol type); it is
	// only described, never used to assign.
	Topics []string
}

// JoinResult is a JoinGroup's answer. With ErrMemberIDRequired only
// MemberID is set.
type JoinResult struct {
	Generation   int32
	ProtocolType string
	Protocol     string
	LeaderID     string
	MemberID     string
	// Members is set for the leader only: every member with its metadata
	// for the chosen protocol, to assign from.
	Members []ClassicMember
}

// ClassicMember is one member as the leader and DescribeGroups see it.
type ClassicMember struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	// Metadata is the member's metadata for the group's protocol.
	Metadata []byte
	// Assignment is what the leader assigned it (DescribeGroups).
	Assignment []byte
	// Topics and Assigned are a consumer group's member's subscription
	// and the partitions it owns (or is releasing), which the front-end
	// encodes as Kafka's consumer protocol metadata and assignment; nil for
	// classic members, whose Metadata and Assignment are the members' own.
	Topics   []string
	Assigned []coordinator.TopicPartition
}

// SyncRequest is a SyncGroup.
type SyncRequest struct {
	Group        string
	MemberID     string
	InstanceID   string
	Generation   int32
	ProtocolType string // "" when the client did not say (SyncGroup < v5)
	Protocol     string
	// Assignments is the leader's: member id -> assignment. Ignored from
	// followers.
	Assignments map[string][]byte
	// Partitions is the leader's assignment as partitions, member id ->
	// partitions, when the front-end can read it (Kafka's "consumer"
	// protocol type): what describing the group shows as owned.
	Partitions map[string][]coordinator.TopicPartition
}

// MemberIdentity names a member leaving: by member id, by instance id, or
// both (LeaveGroup v3+).
type MemberIdentity struct {
	MemberID   string
	InstanceID string
}

// classicRecord is a classic group's state, stored as the group record.
type classicRecord struct {
	// Type is "classic": what tells it from a native (consumer) record.
	Type         string                    `json:"type"`
	State        string                    `json:"state"`
	Generation   int32                     `json:"generation"`
	ProtocolType string                    `json:"protocol_type,omitempty"`
	Protocol     string                    `json:"protocol,omitempty"`
	Leader       string                    `json:"leader,omitempty"`
	Deadline     int64                     `json:"rebalance_deadline_ms,omitempty"`
	Members      map[string]*classicMember `json:"classic_members"`
	// Pending are member ids handed out with MEMBER_ID_REQUIRED, with
	// when they lapse (unix ms).
	Pending map[string]int64 `json:"pending,omitempty"`
}

type classicMember struct {
	InstanceID  string            `json:"instance_id,omitempty"`
	ClientID    string            `json:"client_id,omitempty"`
	ClientHost  string            `json:"client_host,omitempty"`
	SessionMs   int64             `json:"session_ms"`
	RebalanceMs int64             `json:"rebalance_ms"`
	Protocols   []ClassicProtocol `json:"protocols"`
	// Joined: rejoined in the rebalance in progress.
	Joined     bool   `json:"joined,omitempty"`
	Assignment []byte `json:"assignment,omitempty"`
	// Topics and Owned are the subscription and the assignment as the
	// front-end decoded them (JoinRequest.Topics, SyncRequest.Partitions),
	// for describing the group with the native API's view.
	Topics []string     `json:"topics,omitempty"`
	Owned  partitionSet `json:"owned,omitempty"`
}

// groupKind is a peek at a group record's type.
type groupKind struct {
	Type    string         `json:"type"`
	Members map[string]any `json:"members"`
	Classic map[string]any `json:"classic_members"`
}

// recordKind says what kind of group a record is: "" none (no record, or
// a record with no members), GroupTypeClassic or GroupTypeConsumer.
func recordKind(data []byte) string {
	if len(data) == 0 {
		return ""
	}
	var k groupKind
	if json.Unmarshal(data, &k) != nil {
		return ""
	}
	if k.Type == GroupTypeClassic {
		if len(k.Classic) == 0 {
			return ""
		}
		return GroupTypeClassic
	}
	if len(k.Members) == 0 {
		return ""
	}
	return GroupTypeConsumer
}

// refuseClassic is the native protocol's check: a classic group with
// members cannot be joined by a consumer-protocol member. An empty classic
// group is taken over, as Kafka converts an empty group.
func refuseClassic(group string, st coordinator.GroupState) error {
	if recordKind(st.Data) == GroupTypeClassic {
		return fmt.Errorf("%w: group %q is a classic group (JoinGroup/SyncGroup) with members", ErrInconsistentGroupProtocol, group)
	}
	return nil
}

// loadClassic reads the group as a classic group. A record of a native group
// with members is ErrInconsistentGroupProtocol; no record, or a group with no
// members of either kind, is an empty classic group at the version read.
func (a *Agent) loadClassic(ctx context.Context, group string) (*classicRecord, int64, error) {
	st, err := a.index.LoadGroup(ctx, group)
	if err != nil {
		return nil, 0, err
	}
	rec := &classicRecord{Type: GroupTypeClassic, State: GroupEmpty, Members: map[string]*classicMember{}}
	switch recordKind(st.Data) {
	case GroupTypeConsumer:
		return nil, 0, fmt.Errorf("%w: group %q is a consumer group (KIP-848 / Strata's native groups) with members", ErrInconsistentGroupProtocol, group)
	case GroupTypeClassic:
		if err := json.Unmarshal(st.Data, rec); err != nil {
			return nil, 0, fmt.Errorf("classic group record is corrupt: %w", err)
		}
	default:
		// An empty record of either kind: a classic one is kept (its
		// generation, its pending member ids), a native one replaced.
		var old classicRecord
		if json.Unmarshal(st.Data, &old) == nil && old.Type == GroupTypeClassic {
			rec = &old
		}
	}
	if rec.Members == nil {
		rec.Members = map[string]*classicMember{}
	}
	if rec.Pending == nil {
		rec.Pending = map[string]int64{}
	}
	return rec, st.Version, nil
}

func (rec *classicRecord) encode() []byte {
	data, err := json.Marshal(rec)
	if err != nil {
		panic(fmt.Sprintf("encode classic group record: %v", err)) // plain data: cannot fail
	}
	return data
}

// expire removes the members whose lease is gone by the index's clock and
// the pending ids that lapsed, and starts a rebalance if a member went
// from a settled group. It reports whether it changed rec.
func (a *Agent) expire(ctx context.Context, group string, rec *classicRecord, now time.Time) (bool, error) {
	changed := false
	for id, until := range rec.Pending {
		if until <= now.UnixMilli() {
			delete(rec.Pending, id)
			changed = true
		}
	}
	if len(rec.Members) == 0 {
		return changed, nil
	}
	live, err := a.liveLeases(ctx, group)
	if err != nil {
		return false, err
	}
	removed := false
	for id := range rec.Members {
		if _, ok := live[id]; !ok {
			delete(rec.Members, id)
			removed = true
		}
	}
	if removed {
		changed = true
		rec.memberGone(now)
	}
	return changed, nil
}

// loadClassicExpired is loadClassic with the members whose session expired
// removed and the removal saved (generation bumped when the group became
// Empty), as Kafka's coordinator does when a member's heartbeat expires:
// what describing the group or an admin commit sees must be what a
// JoinGroup would see, and must stay so after the read (issue 13).
func (a *Agent) loadClassicExpired(ctx context.Context, group string) (*classicRecord, error) {
	var rec *classicRecord
	err := retryConflicts(ctx, func() error {
		r, version, err := a.loadClassic(ctx, group)
		if err != nil {
			return err
		}
		changed, err := a.expire(ctx, group, r, time.Now())
		if err != nil {
			return err
		}
		if changed {
			if _, err := a.saveClassic(ctx, group, version, r); err != nil {
				return err
			}
		}
		rec = r
		return nil
	})
	return rec, err
}

// memberGone updates the state after members left or expired.
func (rec *classicRecord) memberGone(now time.Time) {
	if len(rec.Members) == 0 {
		rec.toEmpty()
		return
	}
	if _, ok := rec.Members[rec.Leader]; !ok && rec.State != GroupPreparingRebalance {
		rec.prepareRebalance(now)
		return
	}
	if rec.State == GroupStable || rec.State == GroupCompletingRebalance {
		rec.prepareRebalance(now)
	}
}

// toEmpty is the state of a group with no members left: a new generation,
// so that a commit of the old one is refused (Kafka bumps it too).
func (rec *classicRecord) toEmpty() {
	if rec.State != GroupEmpty {
		rec.Generation++
	}
	rec.State, rec.Protocol, rec.Leader, rec.Deadline = GroupEmpty, "", "", 0
}

// prepareRebalance starts a rebalance: every member must rejoin within the
// longest rebalance timeout of the members.
func (rec *classicRecord) prepareRebalance(now time.Time) {
	rec.State = GroupPreparingRebalance
	var longest int64
	for _, m := range rec.Members {
		m.Joined = false
		longest = max(longest, m.RebalanceMs)
	}
	rec.Deadline = now.UnixMilli() + longest
}

// tryComplete completes a rebalance that is due: every member rejoined, or
// the deadline passed (members that did not rejoin are dropped). It
// reports whether it did.
func (rec *classicRecord) tryComplete(now time.Time) bool {
	if rec.State != GroupPreparingRebalance {
		return false
	}
	all := true
	for _, m := range rec.Members {
		all = all && m.Joined
	}
	if !all && now.UnixMilli() < rec.Deadline {
		return false
	}
	for id, m := range rec.Members {
		if !m.Joined {
			delete(rec.Members, id)
		}
	}
	if len(rec.Members) == 0 {
		rec.toEmpty()
		return true
	}
	rec.Generation++
	rec.State = GroupCompletingRebalance
	rec.Protocol = rec.chooseProtocol()
	if _, ok := rec.Members[rec.Leader]; !ok {
		rec.Leader = slices.Sorted(maps.Keys(rec.Members))[0]
	}
	for _, m := range rec.Members {
		m.Joined = false
		m.Assignment, m.Owned = nil, nil
	}
	rec.Deadline = 0
	return true
}

// candidates is the protocols every member supports.
func (rec *classicRecord) candidates(except string) map[string]bool {
	var out map[string]bool
	for id, m := range rec.Members {
		if id == except {
			continue
		}
		names := map[string]bool{}
		for _, p := range m.Protocols {
			if out == nil || out[p.Name] {
				names[p.Name] = true
			}
		}
		out = names
	}
	return out
}

// chooseProtocol is Kafka's vote: of the protocols every member supports,
// each member votes for the first in its own order of preference; the most
// votes win, ties going to the name first in the leader's order.
func (rec *classicRecord) chooseProtocol() string {
	cands := rec.candidates("")
	votes := map[string]int{}
	for _, m := range rec.Members {
		for _, p := range m.Protocols {
			if cands[p.Name] {
				votes[p.Name]++
				break
			}
		}
	}
	best, bestVotes := "", -1
	order := slices.Sorted(maps.Keys(rec.Members))
	if _, ok := rec.Members[rec.Leader]; ok {
		order = append([]string{rec.Leader}, order...)
	}
	for _, id := range order {
		for _, p := range rec.Members[id].Protocols {
			if cands[p.Name] && votes[p.Name] > bestVotes {
				best, bestVotes = p.Name, votes[p.Name]
			}
		}
	}
	return best
}

func (m *classicMember) metadataFor(protocol string) []byte {
	for _, p := range m.Protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// sameProtocols says whether member b, rejoining as member a did, changes
// nothing the group's assignment rests on: the same protocols (assignors)
// in the same order with the same metadata byte for byte, as Kafka's
// MemberMetadata.matches compares a known member's rejoin. A cooperative
// (KIP-429) member rejoins after revoking partitions precisely so that
// its changed owned partitions start the rebalance that hands them on, so
// the metadata must count for it.
//
// With restarted true, b is a static member (KIP-345) coming back as
// itself under a new member id: then, for protocol type "consumer" when
// the front-end read both subscriptions (JoinRequest.Topics), only the
// protocol names and the subscribed topics (in any order) are compared.
// The rest of a consumer's metadata (owned partitions, the generation of
// ConsumerProtocol v2+) always differs after a restart, and Kafka's
// GroupCoordinator rebalances a stable group for a returning static member
// only when what the group would select changes.
func sameProtocols(protocolType string, a, b *classicMember, restarted bool) bool {
	if !slices.EqualFunc(a.Protocols, b.Protocols, func(x, y ClassicProtocol) bool { return x.Name == y.Name }) {
		return false
	}
	if restarted && protocolType == "consumer" && a.Topics != nil && b.Topics != nil {
		return slices.Equal(slices.Sorted(slices.Values(a.Topics)), slices.Sorted(slices.Values(b.Topics)))
	}
	return slices.EqualFunc(a.Protocols, b.Protocols, func(x, y ClassicProtocol) bool {
		return string(x.Metadata) == string(y.Metadata)
	})
}

// saveClassic writes rec if the group is still at version.
func (a *Agent) saveClassic(ctx context.Context, group string, version int64, rec *classicRecord) (int64, error) {
	rec.Type = GroupTypeClassic
	return a.index.SaveGroup(ctx, group, version, rec.encode())
}

// lease sets the member's lease: its generation as epoch, its session as ttl.
func (a *Agent) lease(ctx context.Context, group, id string, generation int32, m *classicMember) error {
	return a.index.PutMember(ctx, group, coordinator.GroupMember{ID: id, Epoch: generation}, time.Duration(m.SessionMs)*time.Millisecond)
}

// leaseAll gives every member of a new generation a lease at that
// generation, so that commits of the old one are fenced by the index.
func (a *Agent) leaseAll(ctx context.Context, group string, rec *classicRecord) error {
	for _, id := range slices.Sorted(maps.Keys(rec.Members)) {
		if err := a.lease(ctx, group, id, rec.Generation, rec.Members[id]); err != nil {
			return err
		}
	}
	return nil
}

func (a *Agent) validateJoin(req *JoinRequest) error {
	if err := validGroupName(req.Group); err != nil {
		return err
	}
	if len(req.MemberID) > maxMemberIDLen {
		return invalidf("member id is %d bytes long; the limit is %d", len(req.MemberID), maxMemberIDLen)
	}
	if req.ProtocolType == "" {
		return fmt.Errorf("%w: empty protocol type", ErrInconsistentGroupProtocol)
	}
	if len(req.Protocols) == 0 {
		return fmt.Errorf("%w: the member names no protocols", ErrInconsistentGroupProtocol)
	}
	if req.SessionTimeout < a.cfg.GroupMinSessionTimeout || req.SessionTimeout > a.cfg.GroupMaxSessionTimeout {
		return fmt.Errorf("%w: session timeout %v is outside [%v, %v] (group-min-session-timeout, group-max-session-timeout)",
			ErrInvalidSessionTimeout, req.SessionTimeout, a.cfg.GroupMinSessionTimeout, a.cfg.GroupMaxSessionTimeout)
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	return nil
}

// JoinClassicGroup joins (or rejoins) a member and waits until the
// rebalance it takes part in completes, or ctx ends. See the file comment.
func (a *Agent) JoinClassicGroup(ctx context.Context, req JoinRequest) (JoinResult, error) {
	if err := a.validateJoin(&req); err != nil {
		return JoinResult{}, err
	}
	var (
		res     JoinResult
		done    bool
		id      string
		fromGen int32
	)
	err := retryConflicts(ctx, func() error {
		res, done, id, fromGen = JoinResult{}, false, "", 0
		rec, version, err := a.loadClassic(ctx, req.Group)
		if err != nil {
			return err
		}
		now := time.Now()
		if _, err := a.expire(ctx, req.Group, rec, now); err != nil {
			return err
		}
		if len(rec.Members) > 0 && rec.ProtocolType != req.ProtocolType {
			return fmt.Errorf("%w: protocol type %q, the group's is %q", ErrInconsistentGroupProtocol, req.ProtocolType, rec.ProtocolType)
		}
		// Its protocols must meet everyone else's (checked first, as
		// Kafka does, so a first join learns it before MEMBER_ID_REQUIRED).
		except := req.MemberID
		if req.InstanceID != "" && except == "" {
			except = rec.instance(req.InstanceID)
		}
		if others := rec.candidates(except); others != nil && !slices.ContainsFunc(req.Protocols, func(p ClassicProtocol) bool { return others[p.Name] }) {
			return fmt.Errorf("%w: none of the member's protocols is supported by every other member", ErrInconsistentGroupProtocol)
		}
		id = req.MemberID
		var oldStatic string // a static member's previous member id
		switch {
		case id == "" && req.InstanceID != "":
			id = newMemberID(req.InstanceID)
			for mid, m := range rec.Members {
				if m.InstanceID == req.InstanceID {
					oldStatic = mid
				}
			}
		case id == "":
			id = newMemberID(req.ClientID)
			if req.RequireKnownMemberID {
				rec.Pending[id] = now.Add(pendingMemberTTL).UnixMilli()
				if _, err := a.saveClassic(ctx, req.Group, version, rec); err != nil {
					return err
				}
				res.MemberID = id
				return fmt.Errorf("%w: join again with member id %q", ErrMemberIDRequired, id)
			}
		default:
			m, known := rec.Members[id]
			_, pending := rec.Pending[id]
			switch {
			case known && req.InstanceID != "" && m.InstanceID != req.InstanceID:
				return fmt.Errorf("%w: member %q is not instance %q", ErrFencedInstanceID, id, req.InstanceID)
			case !known && req.InstanceID != "" && rec.instance(req.InstanceID) != "":
				return fmt.Errorf("%w: instance %q joined since as member %q", ErrFencedInstanceID, req.InstanceID, rec.instance(req.InstanceID))
			case !known && !pending:
				return fmt.Errorf("%w: member %q is not in group %q (it left or its session expired): rejoin without a member id", ErrUnknownMemberID, id, req.Group)
			}
		}
		m := &classicMember{
			InstanceID: req.InstanceID, ClientID: req.ClientID, ClientHost: req.ClientHost,
			SessionMs: req.SessionTimeout.Milliseconds(), RebalanceMs: req.RebalanceTimeout.Milliseconds(),
			Protocols: req.Protocols, Topics: req.Topics,
		}
		old, known := rec.Members[id]
		if oldStatic != "" {
			old, known = rec.Members[oldStatic], true
			delete(rec.Members, oldStatic)
			if err := a.index.RemoveMember(ctx, req.Group, oldStatic); err != nil && !errors.Is(err, coordinator.ErrNotFound) {
				return err
			}
			if rec.Leader == oldStatic {
				rec.Leader = id
			}
		}
		delete(rec.Pending, id)
		if known {
			m.Assignment, m.Owned, m.Joined = old.Assignment, old.Owned, old.Joined
		}
		rec.Members[id] = m
		rec.ProtocolType = req.ProtocolType
		fromGen = rec.Generation
		// A settled follower rejoining with the same protocols (or a static
		// member coming back as itself) gets the current generation at
		// once, as in Kafka: nothing to rebalance.
		// The lease goes first: a member in the record without one is
		// taken for expired by the next request of the group (expire).
		// A lease whose save then loses the race is harmless: only the
		// record's members count.
		if err := a.lease(ctx, req.Group, id, fromGen, m); err != nil {
			return err
		}
		if known && rec.State == GroupStable && id != rec.Leader && sameProtocols(rec.ProtocolType, old, m, oldStatic != "") {
			if _, err := a.saveClassic(ctx, req.Group, version, rec); err != nil {
				return err
			}
			res, done = rec.joinResult(id), true
			return nil
		}
		if rec.State != GroupPreparingRebalance {
			rec.prepareRebalance(now)
		}
		m.Joined = true
		rec.tryComplete(now)
		if _, err := a.saveClassic(ctx, req.Group, version, rec); err != nil {
			return err
		}
		if rec.Generation != fromGen {
			if err := a.leaseAll(ctx, req.Group, rec); err != nil {
				return err
			}
			res, done = rec.joinResult(id), true
		}
		return nil
	})
	if err != nil || done {
		return res, err
	}
	return a.awaitJoin(ctx, req.Group, id, fromGen)
}

// instance is the member id of a static member, "" when none.
func (rec *classicRecord) instance(instanceID string) string {
	for id, m := range rec.Members {
		if m.InstanceID == instanceID {
			return id
		}
	}
	return ""
}

func newMemberID(prefix string) string {
	if len(prefix) > 128 {
		prefix = prefix[:128]
	}
	return prefix + "-" + strings.ToLower(ulid.Make().String())
}

// joinResult is the answer to a member of a completed rebalance.
func (rec *classicRecord) joinResult(id string) JoinResult {
	res := JoinResult{Generation: rec.Generation, ProtocolType: rec.ProtocolType, Protocol: rec.Protocol, LeaderID: rec.Leader, MemberID: id}
	if id == rec.Leader {
		for _, mid := range slices.Sorted(maps.Keys(rec.Members)) {
			m := rec.Members[mid]
			res.Members = append(res.Members, ClassicMember{MemberID: mid, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost, Metadata: m.metadataFor(rec.Protocol)})
		}
	}
	return res
}

// awaitJoin waits for the rebalance the member joined to complete,
// completing it itself when it is due.
func (a *Agent) awaitJoin(ctx context.Context, group, id string, fromGen int32) (JoinResult, error) {
	for {
		var res JoinResult
		done := false
		err := retryConflicts(ctx, func() error {
			rec, version, err := a.loadClassic(ctx, group)
			if err != nil {
				return err
			}
			if rec.Generation != fromGen {
				m, ok := rec.Members[id]
				if !ok {
					return fmt.Errorf("%w: member %q was dropped from group %q's rebalance: rejoin", ErrUnknownMemberID, id, group)
				}
				res, done = rec.joinResult(id), true
				// Our own lease at the new generation: a renewal of ours at
				// the old one may have landed after the completing agent's.
				return a.lease(ctx, group, id, rec.Generation, m)
			}
			m, ok := rec.Members[id]
			if !ok {
				return fmt.Errorf("%w: member %q left group %q or its session expired: rejoin", ErrUnknownMemberID, id, group)
			}
			// Waiting keeps the member alive.
			if err := a.lease(ctx, group, id, rec.Generation, m); err != nil {
				return err
			}
			now := time.Now()
			changed, err := a.expire(ctx, group, rec, now)
			if err != nil {
				return err
			}
			if _, ok := rec.Members[id]; !ok {
				changed = true // its lease lapsed meanwhile; the save below drops it
			}
			if rec.tryComplete(now) {
				changed = true
			}
			if !changed {
				return nil
			}
			if _, err := a.saveClassic(ctx, group, version, rec); err != nil {
				return err
			}
			if rec.Generation != fromGen {
				if err := a.leaseAll(ctx, group, rec); err != nil {
					return err
				}
				if _, ok := rec.Members[id]; ok {
					res, done = rec.joinResult(id), true
				}
			}
			return nil
		})
		if err != nil || done {
			return res, err
		}
		if err := sleepCtx(ctx, classicPoll); err != nil {
			return JoinResult{}, err
		}
	}
}

// checkMember is the checks every request of a member makes, in Kafka's
// order: known member, its instance, then its generation.
func (rec *classicRecord) checkMember(group, id, instanceID string, generation int32) (*classicMember, error) {
	m, ok := rec.Members[id]
	if !ok {
		if instanceID != "" && rec.instance(instanceID) != "" {
			return nil, fmt.Errorf("%w: instance %q joined since as member %q", ErrFencedInstanceID, instanceID, rec.instance(instanceID))
		}
		return nil, fmt.Errorf("%w: member %q is not in group %q (it left or its session expired): rejoin", ErrUnknownMemberID, id, group)
	}
	if instanceID != "" && m.InstanceID != instanceID {
		return nil, fmt.Errorf("%w: member %q is not instance %q", ErrFencedInstanceID, id, instanceID)
	}
	if generation != rec.Generation && rec.State != GroupPreparingRebalance {
		return nil, fmt.Errorf("%w: generation %d, the group is at %d: rejoin", ErrIllegalGeneration, generation, rec.Generation)
	}
	return m, nil
}

// SyncClassicGroup hands out the leader's assignment: the leader's call
// stores it, a follower's waits for it. It returns the member's assignment
// and the group's protocol type and protocol.
func (a *Agent) SyncClassicGroup(ctx context.Context, req SyncRequest) (assignment []byte, protocolType, protocol string, err error) {
	if err := validGroupName(req.Group); err != nil {
		return nil, "", "", err
	}
	for {
		done := false
		err := retryConflicts(ctx, func() error {
			rec, version, err := a.loadClassic(ctx, req.Group)
			if err != nil {
				return err
			}
			now := time.Now()
			changed, err := a.expire(ctx, req.Group, rec, now)
			if err != nil {
				return err
			}
			if changed {
				if _, err := a.saveClassic(ctx, req.Group, version, rec); err != nil {
					return err
				}
			}
			m, err := rec.checkMember(req.Group, req.MemberID, req.InstanceID, req.Generation)
			if err != nil {
				return err
			}
			if (req.ProtocolType != "" && req.ProtocolType != rec.ProtocolType) || (req.Protocol != "" && req.Protocol != rec.Protocol) {
				return fmt.Errorf("%w: sync with protocol %s/%s, the group's is %s/%s", ErrInconsistentGroupProtocol, req.ProtocolType, req.Protocol, rec.ProtocolType, rec.Protocol)
			}
			switch {
			case rec.State == GroupPreparingRebalance || req.Generation != rec.Generation:
				return fmt.Errorf("%w: group %q is rebalancing", ErrRebalanceInProgress, req.Group)
			case rec.State == GroupStable:
				assignment, protocolType, protocol, done = m.Assignment, rec.ProtocolType, rec.Protocol, true
				return nil
			case req.MemberID == rec.Leader:
				for id, mm := range rec.Members {
					mm.Assignment = req.Assignments[id]
					mm.Owned = nil
					if ps := req.Partitions[id]; len(ps) > 0 {
						mm.Owned = newPartitionSet(ps)
					}
				}
				rec.State = GroupStable
				if _, err := a.saveClassic(ctx, req.Group, version, rec); err != nil {
					return err
				}
				assignment, protocolType, protocol, done = m.Assignment, rec.ProtocolType, rec.Protocol, true
				return nil
			}
			// A follower waits for the leader; waiting keeps it alive.
			return a.lease(ctx, req.Group, req.MemberID, rec.Generation, m)
		})
		if err != nil || done {
			return assignment, protocolType, protocol, err
		}
		if err := sleepCtx(ctx, classicPoll); err != nil {
			return nil, "", "", err
		}
	}
}

// HeartbeatClassicGroup renews the member's session. During a rebalance
// it answers ErrRebalanceInProgress: the member must rejoin.
func (a *Agent) HeartbeatClassicGroup(ctx context.Context, group, memberID, instanceID string, generation int32) error {
	if err := validGroupName(group); err != nil {
		return err
	}
	return retryConflicts(ctx, func() error {
		rec, version, err := a.loadClassic(ctx, group)
		if err != nil {
			return err
		}
		now := time.Now()
		changed, err := a.expire(ctx, group, rec, now)
		if err != nil {
			return err
		}
		if rec.tryComplete(now) {
			changed = true
		}
		if changed {
			if _, err := a.saveClassic(ctx, group, version, rec); err != nil {
				return err
			}
			if rec.State == GroupCompletingRebalance {
				if err := a.leaseAll(ctx, group, rec); err != nil {
					return err
				}
			}
		}
		m, err := rec.checkMember(group, memberID, instanceID, generation)
		if err != nil {
			return err
		}
		if generation != rec.Generation {
			return fmt.Errorf("%w: group %q is rebalancing", ErrRebalanceInProgress, group)
		}
		ttl := time.Duration(m.SessionMs) * time.Millisecond
		err = a.index.RenewMember(ctx, group, coordinator.GroupMember{ID: memberID, Epoch: rec.Generation}, rec.Generation, ttl)
		if errors.Is(err, coordinator.ErrFenced) {
			return fmt.Errorf("%w: member %q's session expired: rejoin", ErrUnknownMemberID, memberID)
		}
		if err != nil {
			return err
		}
		if rec.State == GroupPreparingRebalance {
			return fmt.Errorf("%w: group %q is rebalancing: rejoin", ErrRebalanceInProgress, group)
		}
		return nil
	})
}

// LeaveClassicGroup removes members (LeaveGroup; v3+ batches them, by
// member id or by instance id). It returns one error per member (nil: it
// left), and an error for the whole request.
func (a *Agent) LeaveClassicGroup(ctx context.Context, group string, members []MemberIdentity) ([]error, error) {
	if err := validGroupName(group); err != nil {
		return nil, err
	}
	var errs []error
	var gone []string
	err := retryConflicts(ctx, func() error {
		errs, gone = make([]error, len(members)), nil
		rec, version, err := a.loadClassic(ctx, group)
		if err != nil {
			return err
		}
		for i, who := range members {
			id := who.MemberID
			if who.InstanceID != "" {
				cur := rec.instance(who.InstanceID)
				switch {
				case cur == "":
					errs[i] = fmt.Errorf("%w: no member of group %q is instance %q", ErrUnknownMemberID, group, who.InstanceID)
					continue
				case id != "" && id != cur:
					errs[i] = fmt.Errorf("%w: member %q is not instance %q", ErrFencedInstanceID, id, who.InstanceID)
					continue
				}
				id = cur
			}
			if _, ok := rec.Members[id]; !ok {
				errs[i] = fmt.Errorf("%w: member %q is not in group %q", ErrUnknownMemberID, id, group)
				continue
			}
			delete(rec.Members, id)
			gone = append(gone, id)
		}
		if len(gone) == 0 {
			return nil
		}
		rec.memberGone(time.Now())
		_, err = a.saveClassic(ctx, group, version, rec)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, id := range gone {
		if err := a.index.RemoveMember(ctx, group, id); err != nil && !errors.Is(err, coordinator.ErrNotFound) {
			return nil, err
		}
	}
	return errs, nil
}
