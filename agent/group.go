package agent

// Consumer groups: the reconciliation behind GroupService.Heartbeat.
//
// A group's record lives in the index (coordinator.Groups state, replaced by
// compare-and-set) and holds, per member, its subscription, its epoch, the
// target the assignor gave it, the partitions the last answer let it own
// (assigned) and the partitions it was told to give up but has not yet
// released (revoking). Member liveness is a lease in the index
// (coordinator.Groups members), renewed by every heartbeat and judged by the
// index's clock.
//
// One heartbeat:
//
//  1. load the record and the leases; drop members whose lease is gone or
//     expired, which frees their partitions;
//  2. release what the member no longer reports as owned;
//  3. recompute the target with coordinator.ComputeAssignment, fed the
//     previous target so a partition in transit stays on course (feeding
//     it what members own would flip it back);
//  4. give the member its target's partitions that nobody else owns or is
//     still revoking; the rest of its target is pending, the partitions it
//     owns beyond its target are revoking;
//  5. save the record if anything changed (compare-and-set, retried on a
//     conflict), renew the lease, answer.
//
// So a partition reaches its new owner only after the old one left it out
// of a heartbeat or lost its lease: two live members never own one
// partition. A steady heartbeat writes nothing but its lease, and only while
// the lease is still live at the epoch the heartbeat read
// (coordinator.Groups.RenewMember): a heartbeat in flight when its lease
// expired cannot bring the member back once another member's heartbeat took
// its partitions.
//
// Partitions are remembered by topic name, and the record says which topic
// each name meant (TopicIDs): a topic deleted and created again under the
// same name is another topic (Kafka's topic ids, KIP-516). When a name's id
// changes or the topic is gone, what members owned of the old topic becomes
// stale: it is not assigned, committed to or counted as owning the new
// topic's partition of the same number, and it blocks that partition until
// the member released it, so nobody reads the new topic from a position of
// the old one.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/oklog/ulid/v2"

	"github.com/stratabroker/strata/coordinator"
)

// groupRecord is a group's protocol state, stored as JSON.
type groupRecord struct {
	// Epoch is the group epoch: it changes whenever the target does.
	Epoch   int32                    `json:"epoch"`
	Members map[string]*memberRecord `json:"members"`
	// TopicIDs is the id of every topic the members' partition sets name,
	// by name.
	TopicIDs map[string]uuid.UUID `json:"topic_ids,omitempty"`
}

// memberRecord is one member. Partition sets are topic -> sorted partitions.
type memberRecord struct {
	Epoch     int32        `json:"epoch"`
	Topics    []string     `json:"topics,omitempty"`
	Regex     string       `json:"regex,omitempty"`
	SessionMs int64        `json:"session_ms"`
	Target    partitionSet `json:"target,omitempty"`
	Assigned  partitionSet `json:"assigned,omitempty"`
	Revoking  partitionSet `json:"revoking,omitempty"`
	// Stale is what the member still owns of deleted topics: it must
	// release them, and may not commit to them.
	Stale partitionSet `json:"stale,omitempty"`
	// ClientID and ClientHost are what the member's last heartbeat that
	// knew them said (a KIP-848 member's request header and peer address),
	// for describing the group; "" when unknown (native Connect members).
	ClientID   string `json:"client_id,omitempty"`
	ClientHost string `json:"client_host,omitempty"`
	// InstanceID is a KIP-848 static member's group.instance.id; Left
	// says it left with epoch -2 (a static member's temporary leave): it
	// keeps its assignment until its session expires, and a member joining
	// with its instance id takes its place (core_consumer_groups.go).
	InstanceID string `json:"instance_id,omitempty"`
	Left       bool   `json:"left,omitempty"`
	// Assignor is the server assignor the member asked for (KIP-848's
	// ServerAssignor: AssignorUniform or AssignorRange), "" for none.
	Assignor string `json:"assignor,omitempty"`
}

// KIP-848's server assignors, as Kafka's coordinator names them
// (group.consumer.assignors): "uniform", the default, is the sticky
// balanced ComputeAssignment; "range" is ComputeRangeAssignment.
const (
	AssignorUniform = "uniform"
	AssignorRange   = "range"
)

// assignor is the group's server assignor, as Kafka picks it: the one most
// members ask for (ties to the first by name), AssignorUniform when none
// asks.
func (rec *groupRecord) assignor() string {
	votes := map[string]int{}
	for _, m := range rec.Members {
		if m.Assignor != "" {
			votes[m.Assignor]++
		}
	}
	best := AssignorUniform
	for _, name := range slices.Sorted(maps.Keys(votes)) {
		if votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// partitionSet is a set of partitions by topic, each list sorted and unique.
type partitionSet map[string][]int32

func newPartitionSet(tps []coordinator.TopicPartition) partitionSet {
	s := partitionSet{}
	for _, tp := range tps {
		s.add(tp)
	}
	return s
}

func (s partitionSet) has(tp coordinator.TopicPartition) bool {
	_, ok := slices.BinarySearch(s[tp.Topic], tp.Partition)
	return ok
}

func (s partitionSet) add(tp coordinator.TopicPartition) {
	ps := s[tp.Topic]
	if i, ok := slices.BinarySearch(ps, tp.Partition); !ok {
		s[tp.Topic] = slices.Insert(ps, i, tp.Partition)
	}
}

func (s partitionSet) list() []coordinator.TopicPartition {
	var out []coordinator.TopicPartition
	for _, t := range slices.Sorted(maps.Keys(s)) {
		for _, p := range s[t] {
			out = append(out, coordinator.TopicPartition{Topic: t, Partition: p})
		}
	}
	return out
}

// forEach calls f for every partition, in no particular order.
func (s partitionSet) forEach(f func(coordinator.TopicPartition)) {
	for t, ps := range s {
		for _, p := range ps {
			f(coordinator.TopicPartition{Topic: t, Partition: p})
		}
	}
}

func (s partitionSet) len() int {
	n := 0
	for _, ps := range s {
		n += len(ps)
	}
	return n
}

// filter is the set of s's partitions for which keep is true.
func (s partitionSet) filter(keep func(coordinator.TopicPartition) bool) partitionSet {
	out := partitionSet{}
	for t, ps := range s {
		var kept []int32
		for _, p := range ps {
			if keep(coordinator.TopicPartition{Topic: t, Partition: p}) {
				kept = append(kept, p)
			}
		}
		if len(kept) > 0 {
			out[t] = kept // ps is sorted, so kept is
		}
	}
	return out
}

func (s partitionSet) equal(o partitionSet) bool {
	if s.len() != o.len() {
		return false
	}
	for t, ps := range s {
		if !slices.Equal(ps, o[t]) {
			return false
		}
	}
	return true
}

// union is the set of partitions in s or o.
func (s partitionSet) union(o partitionSet) partitionSet {
	out := partitionSet{}
	out.addAll(s)
	out.addAll(o)
	return out
}

// addAll adds o's partitions to s.
func (s partitionSet) addAll(o partitionSet) {
	o.forEach(s.add)
}

func decodeGroupRecord(st coordinator.GroupState) (*groupRecord, error) {
	rec := &groupRecord{Members: map[string]*memberRecord{}, TopicIDs: map[string]uuid.UUID{}}
	if st.Version == 0 || len(st.Data) == 0 {
		return rec, nil
	}
	if err := json.Unmarshal(st.Data, rec); err != nil {
		return nil, fmt.Errorf("group record is corrupt: %w", err)
	}
	if rec.Members == nil {
		rec.Members = map[string]*memberRecord{}
	}
	if rec.TopicIDs == nil {
		rec.TopicIDs = map[string]uuid.UUID{}
	}
	return rec, nil
}

func (rec *groupRecord) encode() []byte {
	data, err := json.Marshal(rec)
	if err != nil {
		panic(fmt.Sprintf("encode group record: %v", err)) // plain data: cannot fail
	}
	return data
}

// heartbeat is one validated Heartbeat request.
type heartbeat struct {
	group    string
	memberID string
	epoch    int32
	topics   []string
	regex    string
	owned    partitionSet
	session  time.Duration
	// sameSubscription and sameOwned: a KIP-848 heartbeat left out the
	// subscription or the owned set (unchanged since the last one);
	// tryHeartbeat fills them in from the member's record, which it reads
	// anyway, rather than the heartbeat reading the record twice.
	sameSubscription, sameOwned bool
	// clientID and clientHost, when set, are recorded for describing.
	clientID   string
	clientHost string
	// instanceID is a KIP-848 static member's group.instance.id.
	instanceID string
	// assignor, when set, is the server assignor the member asks for.
	assignor string
}

// heartbeatResult is the answer to a heartbeat.
type heartbeatResult struct {
	memberID   string
	epoch      int32
	groupEpoch int32
	assigned   partitionSet
	pending    partitionSet
	session    time.Duration
	interval   time.Duration
}

const maxMemberIDLen = 255

// validateHeartbeat checks a heartbeat and fills its defaults.
func (a *Agent) validateHeartbeat(h *heartbeat) error {
	if err := validGroupName(h.group); err != nil {
		return err
	}
	if len(h.memberID) > maxMemberIDLen {
		return invalidf("member id is %d bytes long; the limit is %d", len(h.memberID), maxMemberIDLen)
	}
	if h.epoch < 0 {
		return invalidf("member epoch %d is negative: send 0 to join, then the epoch of the last answer", h.epoch)
	}
	if h.epoch > 0 && h.memberID == "" {
		return invalidf("member epoch %d without a member id: send 0 to join", h.epoch)
	}
	if !h.sameSubscription && (len(h.topics) == 0) == (h.regex == "") {
		return errNoSubscription
	}
	for _, t := range h.topics {
		if t == "" {
			return invalidf("empty topic name in the subscription")
		}
	}
	if h.regex != "" {
		if _, err := compileTopicRegex(h.regex); err != nil {
			return err
		}
	}
	// A session outside the agent's bounds is brought within them; the
	// answer tells the member the session that applies.
	if h.session == 0 {
		h.session = a.cfg.GroupSessionTimeout
	}
	h.session = min(max(h.session, a.cfg.GroupMinSessionTimeout), a.cfg.GroupMaxSessionTimeout)
	return nil
}

var errNoSubscription = invalidf("subscribe by topic names or by topic_regex, exactly one of them")

// fillLeftOut fills in what the heartbeat left out (sameSubscription,
// sameOwned) from the member's record in rec. A member the record does not
// hold keeps nothing: joining (epoch 0), it must send a subscription;
// otherwise tryHeartbeat answers it is unknown.
func (h *heartbeat) fillLeftOut(rec *groupRecord) error {
	m := rec.Members[h.memberID]
	if h.sameSubscription {
		if m == nil && h.epoch == 0 {
			return errNoSubscription
		}
		if m != nil {
			h.topics, h.regex = m.Topics, m.Regex
		}
	}
	if h.sameOwned {
		h.owned = partitionSet{}
		if m != nil {
			h.owned = m.Assigned.union(m.Revoking).union(m.Stale)
		}
	}
	return nil
}

func validGroupName(g string) error {
	if g == "" {
		return invalidf("empty group name")
	}
	if len(g) > 249 {
		return invalidf("group name is %d bytes long; the limit is 249", len(g))
	}
	if strings.ContainsFunc(g, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return invalidf("group name %q has a control character", g)
	}
	return nil
}

// compileTopicRegex compiles a subscription's expression, anchored so that
// it matches whole topic names as Kafka's pattern subscriptions do. Every
// heartbeat resolves every member's expression, so compiled ones are kept
// (up to maxCachedRegexes; the cache starts over when full).
func compileTopicRegex(expr string) (*regexp.Regexp, error) {
	regexCache.mu.Lock()
	re, ok := regexCache.m[expr]
	regexCache.mu.Unlock()
	if ok {
		return re, nil
	}
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return nil, invalidf("topic_regex %q: %v", expr, err)
	}
	regexCache.mu.Lock()
	if len(regexCache.m) >= maxCachedRegexes {
		clear(regexCache.m)
	}
	regexCache.m[expr] = re
	regexCache.mu.Unlock()
	return re, nil
}

const maxCachedRegexes = 1024

var regexCache = struct {
	mu sync.Mutex
	m  map[string]*regexp.Regexp
}{m: map[string]*regexp.Regexp{}}

// groupHeartbeat runs one heartbeat against the index, retrying when a
// concurrent heartbeat of the same group saved first.
func (a *Agent) groupHeartbeat(ctx context.Context, h heartbeat) (heartbeatResult, error) {
	if err := a.validateHeartbeat(&h); err != nil {
		return heartbeatResult{}, err
	}
	if h.memberID == "" {
		h.memberID = strings.ToLower(ulid.Make().String())
	}
	var res heartbeatResult
	err := retryConflicts(ctx, func() (err error) {
		res, err = a.tryHeartbeat(ctx, h)
		return err
	})
	return res, err
}

// retryConflicts runs a read-modify-write of a group record until it does
// not lose a compare-and-set to a concurrent writer (100 tries at most),
// pausing a jittered, growing time in between so that members of one group
// heartbeating at once take turns instead of colliding again.
func retryConflicts(ctx context.Context, f func() error) error {
	backoff := time.Millisecond
	for attempt := 0; ; attempt++ {
		err := f()
		if !errors.Is(err, coordinator.ErrConflict) || attempt >= 100 {
			return err
		}
		t := time.NewTimer(time.Duration(rand.Int64N(int64(backoff)) + 1))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, 50*time.Millisecond)
	}
}

func (a *Agent) tryHeartbeat(ctx context.Context, h heartbeat) (heartbeatResult, error) {
	st, err := a.index.LoadGroup(ctx, h.group)
	if err != nil {
		return heartbeatResult{}, err
	}
	if err := refuseClassic(h.group, st); err != nil { // core_groups.go
		return heartbeatResult{}, err
	}
	rec, err := decodeGroupRecord(st)
	if err != nil {
		return heartbeatResult{}, err
	}
	if err := h.fillLeftOut(rec); err != nil {
		return heartbeatResult{}, err
	}
	leases, err := a.liveLeases(ctx, h.group)
	if err != nil {
		return heartbeatResult{}, err
	}
	live := map[string]time.Time{}
	for id, l := range leases {
		live[id] = l.Expires
	}
	topics, err := a.groupTopics.snapshot(ctx, rec.TopicIDs)
	if err != nil {
		return heartbeatResult{}, err
	}
	changed := retireDeletedTopics(rec, topics)
	var expired []string
	for id := range rec.Members {
		if _, ok := live[id]; !ok && id != h.memberID {
			delete(rec.Members, id)
			expired = append(expired, id)
			changed = true
		}
	}

	m, known := rec.Members[h.memberID]
	joining := h.epoch == 0
	holder := rec.instance(h.instanceID) // a static member's current member id
	replaced := ""
	switch {
	case joining && h.instanceID != "" && holder != "" && holder != h.memberID:
		// KIP-848 static membership, as Kafka's GroupMetadataManager: the
		// instance id is held by another member id. While that member has
		// not left with epoch -2 (and its session lasts), the instance is
		// not released; once it has, the new member takes its place, its
		// assignment and epoch included, and the old member id is gone.
		old := rec.Members[holder]
		if !old.Left {
			return heartbeatResult{}, fmt.Errorf("%w: instance %q of group %q is held by member %q, which has not left (epoch -2) and whose session has not expired",
				ErrUnreleasedInstanceID, h.instanceID, h.group, holder)
		}
		m = &memberRecord{Epoch: old.Epoch + 1, Topics: old.Topics, Regex: old.Regex, Target: old.Target, Assigned: old.Assigned,
			Revoking: old.Revoking, Stale: old.Stale, InstanceID: h.instanceID, Assignor: old.Assignor}
		if m.Assigned == nil {
			m.Assigned = partitionSet{}
		}
		delete(rec.Members, holder)
		rec.Members[h.memberID] = m
		replaced, changed = holder, true
	case joining:
		// A (re)joining member owns nothing: whatever it held under an
		// earlier epoch it has dropped.
		epoch := int32(1)
		if known {
			epoch = m.Epoch + 1
		}
		m = &memberRecord{Epoch: epoch, Assigned: partitionSet{}, InstanceID: h.instanceID}
		rec.Members[h.memberID] = m
		changed = true
	case h.instanceID != "" && holder != "" && holder != h.memberID:
		return heartbeatResult{}, fmt.Errorf("%w: instance %q of group %q is member %q since, not %q", ErrFencedInstanceID, h.instanceID, h.group, holder, h.memberID)
	case !known || live[h.memberID].IsZero():
		if known { // its lease is gone: it is out, and so are its partitions
			delete(rec.Members, h.memberID)
			if _, err := a.index.SaveGroup(ctx, h.group, st.Version, rec.encode()); err != nil {
				return heartbeatResult{}, err // a conflict retries the heartbeat
			}
		}
		return heartbeatResult{}, fmt.Errorf("%w: member %q is not in group %q (it left or its session expired): drop its partitions and rejoin with member_epoch 0", errUnknownMember, h.memberID, h.group)
	case h.epoch > m.Epoch:
		return heartbeatResult{}, fmt.Errorf("%w: member %q sent epoch %d, ahead of its epoch %d: rejoin with member_epoch 0", errFencedMemberEpoch, h.memberID, h.epoch, m.Epoch)
	default:
		// Release what the member no longer reports. After a lost answer
		// (its epoch behind) it reports less than it was given: that is
		// released too, and offered again below.
		held := func(tp coordinator.TopicPartition) bool { return h.owned.has(tp) }
		a, r, s := m.Assigned.filter(held), m.Revoking.filter(held), m.Stale.filter(held)
		if !a.equal(m.Assigned) || !r.equal(m.Revoking) || !s.equal(m.Stale) {
			m.Assigned, m.Revoking, m.Stale = a, r, s
			changed = true
		}
	}
	if h.assignor != "" && m.Assignor != h.assignor {
		m.Assignor = h.assignor
		changed = true
	}
	if h.clientID != "" && (m.ClientID != h.clientID || m.ClientHost != h.clientHost) {
		m.ClientID, m.ClientHost = h.clientID, h.clientHost
		changed = true
	}
	if !slices.Equal(m.Topics, h.topics) || m.Regex != h.regex || m.SessionMs != h.session.Milliseconds() {
		m.Topics, m.Regex, m.SessionMs = slices.Clone(h.topics), h.regex, h.session.Milliseconds()
		changed = true
	}

	a.retarget(rec, topics, &changed)

	// Reconcile the member with its target.
	others := map[coordinator.TopicPartition]bool{}
	for id, o := range rec.Members {
		if id != h.memberID {
			o.Assigned.forEach(func(tp coordinator.TopicPartition) { others[tp] = true })
			o.Revoking.forEach(func(tp coordinator.TopicPartition) { others[tp] = true })
			o.Stale.forEach(func(tp coordinator.TopicPartition) { others[tp] = true })
		}
	}
	owned := m.Assigned.union(m.Revoking)
	// A partition the member still owns of a deleted topic waits until it
	// is released, even when the new topic's partition of that number is
	// the member's: given at once, the member would see no change and read
	// the new topic from the old one's position.
	assigned := m.Target.filter(func(tp coordinator.TopicPartition) bool {
		return (owned.has(tp) || !others[tp]) && !m.Stale.has(tp)
	})
	revoking := owned.filter(func(tp coordinator.TopicPartition) bool { return !m.Target.has(tp) })
	pending := m.Target.filter(func(tp coordinator.TopicPartition) bool { return !assigned.has(tp) })
	epochBumped := false
	if !assigned.equal(m.Assigned) {
		if !joining {
			m.Epoch++
			epochBumped = true
		}
		m.Assigned = assigned
		changed = true
	}
	if !revoking.equal(m.Revoking) {
		m.Revoking = revoking
		changed = true
	}

	lease := coordinator.GroupMember{ID: h.memberID, Epoch: m.Epoch}
	// A new lease goes in before the record names the member, so nobody
	// takes the member for expired in between. A new epoch goes into the
	// lease only after the record holds it, so the lease never carries an
	// epoch the record does not (a failed save would leave the member
	// fenced). From the save on, commits must carry the new epoch: a member
	// whose answer was lost is fenced until its next heartbeat, which
	// answers the new epoch again.
	// The lease is renewed only while it is live at the epoch read above:
	// if it expired meanwhile, another member's heartbeat may have taken
	// the partitions, and this member must not come back owning them. Only
	// a join (epoch 0) creates a lease.
	renew := func() error {
		if joining {
			return a.index.PutMember(ctx, h.group, lease, h.session)
		}
		err := a.index.RenewMember(ctx, h.group, lease, leases[h.memberID].Epoch, h.session)
		if errors.Is(err, coordinator.ErrFenced) {
			return fmt.Errorf("%w: member %q of group %q: its session expired while the heartbeat was in flight (%w): drop its partitions and rejoin with member_epoch 0",
				errUnknownMember, h.memberID, h.group, err)
		}
		return err
	}
	if !epochBumped {
		if err := renew(); err != nil {
			return heartbeatResult{}, err
		}
	}
	if changed {
		if _, err := a.index.SaveGroup(ctx, h.group, st.Version, rec.encode()); err != nil {
			return heartbeatResult{}, err
		}
		for _, id := range expired {
			// Only while still expired: the member may have rejoined since.
			if _, err := a.index.RemoveExpiredMember(ctx, h.group, id); err != nil {
				a.log.Warn("remove expired group member", "group", h.group, "member", id, "err", err)
			}
		}
		if replaced != "" {
			// The static member's old member id is fenced: its lease goes.
			if err := a.index.RemoveMember(ctx, h.group, replaced); err != nil && !errors.Is(err, coordinator.ErrNotFound) {
				return heartbeatResult{}, err
			}
		}
	}
	if epochBumped {
		if err := renew(); err != nil {
			return heartbeatResult{}, err
		}
	}
	return heartbeatResult{
		memberID:   h.memberID,
		epoch:      m.Epoch,
		groupEpoch: rec.Epoch,
		assigned:   assigned,
		pending:    pending,
		session:    h.session,
		interval:   min(a.cfg.GroupHeartbeatInterval, h.session/3),
	}, nil
}

// instance is the member id of the static member with instanceID, "" when
// none (or instanceID is "").
func (rec *groupRecord) instance(instanceID string) string {
	if instanceID == "" {
		return ""
	}
	for id, m := range rec.Members {
		if m.InstanceID == instanceID {
			return id
		}
	}
	return ""
}

// retireDeletedTopics makes stale, in every member, the partitions of topics
// the record knew under an id the topic no longer has (deleted, or deleted
// and made again), and reports whether it changed the record.
func retireDeletedTopics(rec *groupRecord, topics topicSnapshot) bool {
	changed := false
	for name, id := range rec.TopicIDs {
		if cur, ok := topics.ids[name]; ok && cur == id {
			continue
		}
		delete(rec.TopicIDs, name)
		changed = true
		for _, m := range rec.Members {
			if m.Stale == nil {
				m.Stale = partitionSet{}
			}
			for _, set := range []partitionSet{m.Assigned, m.Revoking} {
				for _, p := range set[name] {
					m.Stale.add(coordinator.TopicPartition{Topic: name, Partition: p})
				}
				delete(set, name)
			}
			delete(m.Target, name)
		}
	}
	return changed
}

// retarget recomputes every member's target from the subscriptions and the
// topics as they are now, bumps the group epoch when it changed, and
// records the id of every topic the target names.
func (a *Agent) retarget(rec *groupRecord, topics topicSnapshot, changed *bool) {
	counts := map[string]int32{}
	members := make([]coordinator.AssignmentMember, 0, len(rec.Members))
	for id, m := range rec.Members {
		subscribed := resolveSubscription(m, topics.counts)
		for _, t := range subscribed {
			counts[t] = topics.counts[t]
			if _, ok := rec.TopicIDs[t]; !ok {
				rec.TopicIDs[t] = topics.ids[t]
				*changed = true
			}
		}
		members = append(members, coordinator.AssignmentMember{ID: id, Topics: subscribed, Owned: m.Target.list()})
	}
	compute := coordinator.ComputeAssignment
	if rec.assignor() == AssignorRange {
		compute = coordinator.ComputeRangeAssignment
	}
	target := compute(members, counts)
	moved := false
	for id, m := range rec.Members {
		t := newPartitionSet(target[id])
		if !t.equal(m.Target) {
			m.Target = t
			moved = true
		}
	}
	if moved {
		rec.Epoch++
		*changed = true
	}
}

// resolveSubscription is the member's subscribed topics that exist.
func resolveSubscription(m *memberRecord, topics map[string]int32) []string {
	var out []string
	if m.Regex != "" {
		re, err := compileTopicRegex(m.Regex)
		if err != nil {
			return nil // validated on the way in; a record from elsewhere may differ
		}
		for t := range topics {
			if re.MatchString(t) {
				out = append(out, t)
			}
		}
		return out
	}
	for _, t := range m.Topics {
		if _, ok := topics[t]; ok {
			out = append(out, t)
		}
	}
	return out
}

// topicCounts caches the topic list (name -> partition count and id) that
// group heartbeats resolve subscriptions against, for the topic cache's
// TTL: new topics and partitions reach groups within that time.
type topicCounts struct {
	index coordinator.Topics
	ttl   time.Duration

	mu      sync.Mutex
	topics  topicSnapshot
	fetched time.Time
}

// topicSnapshot is the topic list at one moment.
type topicSnapshot struct {
	counts map[string]int32
	ids    map[string]uuid.UUID
}

func (c *topicCounts) list(ctx context.Context) (map[string]int32, error) {
	s, err := c.snapshot(ctx, nil)
	return s.counts, err
}

// invalidate makes the next snapshot re-read the index: a topic was
// created or deleted, or a topic's id was seen to differ from the list's.
func (c *topicCounts) invalidate() {
	c.mu.Lock()
	c.topics = topicSnapshot{}
	c.mu.Unlock()
}

// snapshot is the topic list, re-read from the index when the cached one is
// older than the TTL or gives any name in known another id or none: a
// group record's ids may come from an agent with a fresher list, and an
// older list must not undo what it saw.
func (c *topicCounts) snapshot(ctx context.Context, known map[string]uuid.UUID) (topicSnapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fresh := c.topics.counts != nil && time.Since(c.fetched) < c.ttl
	for name, id := range known {
		if c.topics.ids[name] != id {
			fresh = false
			break
		}
	}
	if fresh {
		return c.topics, nil
	}
	ts, err := c.index.ListTopics(ctx)
	if err != nil {
		return topicSnapshot{}, err
	}
	s := topicSnapshot{counts: make(map[string]int32, len(ts)), ids: make(map[string]uuid.UUID, len(ts))}
	for _, t := range ts {
		s.counts[t.Name] = t.Config.Partitions
		s.ids[t.Name] = t.ID
	}
	c.topics, c.fetched = s, time.Now()
	return s, nil
}

// leaveGroup removes the member and frees its partitions. Leaving twice, or
// after the session expired, is not an error.
func (a *Agent) leaveGroup(ctx context.Context, group, memberID string) error {
	if err := validGroupName(group); err != nil {
		return err
	}
	if memberID == "" {
		return invalidf("empty member id")
	}
	return retryConflicts(ctx, func() error {
		st, err := a.index.LoadGroup(ctx, group)
		if err != nil {
			return err
		}
		rec, err := decodeGroupRecord(st)
		if err != nil {
			return err
		}
		if _, ok := rec.Members[memberID]; ok {
			delete(rec.Members, memberID)
			if _, err := a.index.SaveGroup(ctx, group, st.Version, rec.encode()); err != nil {
				return err
			}
		}
		if err := a.index.RemoveMember(ctx, group, memberID); err != nil && !errors.Is(err, coordinator.ErrNotFound) {
			return err
		}
		return nil
	})
}

// commitGroupOffsets stores offsets for a member, or for nobody while the
// group has no live members. Negative offsets are stored as given (Kafka's
// OffsetCommit); the native CommitOffsets refuses them before. An offset's
// TopicID, when set, is the topic the committer means; every offset is
// stored with the id of the topic it belongs to.
func (a *Agent) commitGroupOffsets(ctx context.Context, group, memberID string, epoch int32, offsets map[coordinator.TopicPartition]coordinator.CommittedOffset) error {
	if err := validGroupName(group); err != nil {
		return err
	}
	if len(offsets) == 0 {
		return invalidf("no offsets to commit")
	}
	for _, tp := range slices.SortedFunc(maps.Keys(offsets), coordinator.CompareTopicPartitions) {
		o := offsets[tp]
		if tp.Topic == "" || tp.Partition < 0 {
			return invalidf("bad partition %q/%d", tp.Topic, tp.Partition)
		}
		if len(o.Metadata) > a.cfg.OffsetMetadataMaxBytes {
			return overLimit(errOffsetMetadataTooLarge, "offset-metadata-max-bytes", int64(a.cfg.OffsetMetadataMaxBytes), int64(len(o.Metadata)),
				"the metadata of %s/%d is %d bytes; the limit is %d (offset-metadata-max-bytes)", tp.Topic, tp.Partition, len(o.Metadata), a.cfg.OffsetMetadataMaxBytes)
		}
	}
	offsets = maps.Clone(offsets)
	if memberID == "" {
		// Only partitions that exist: a member's are checked by ownership.
		for tp, o := range offsets {
			t, err := a.partitionTopic(ctx, tp.Topic, tp.Partition)
			if err == nil && o.TopicID != uuid.Nil && o.TopicID != t.ID {
				// The cache may be behind a delete and create.
				a.topics.invalidate(tp.Topic)
				t, err = a.partitionTopic(ctx, tp.Topic, tp.Partition)
			}
			if err != nil {
				return err
			}
			if o.TopicID != uuid.Nil && o.TopicID != t.ID {
				return wrongTopicID(tp.Topic, t.ID, o.TopicID)
			}
			o.TopicID = t.ID
			offsets[tp] = o
		}
		live, err := a.liveMembers(ctx, group)
		if err != nil {
			return err
		}
		if len(live) > 0 {
			return fmt.Errorf("%w: group %q has %d live members; only they may commit (give member_id and member_epoch)", coordinator.ErrFenced, group, len(live))
		}
		return a.index.CommitOffsets(ctx, group, nil, offsets)
	}
	st, err := a.index.LoadGroup(ctx, group)
	if err != nil {
		return err
	}
	rec, err := decodeGroupRecord(st)
	if err != nil {
		return err
	}
	m, ok := rec.Members[memberID]
	if !ok {
		return fmt.Errorf("%w: member %q is not in group %q (it left or its session expired): rejoin", errUnknownMember, memberID, group)
	}
	if epoch != m.Epoch {
		return fmt.Errorf("%w: member %q committed at epoch %d, its epoch is %d: heartbeat first", memberEpochError(epoch, m.Epoch), memberID, epoch, m.Epoch)
	}
	for _, tp := range slices.SortedFunc(maps.Keys(offsets), coordinator.CompareTopicPartitions) {
		if m.Stale.has(tp) {
			return fmt.Errorf("%w: member %q owned %s/%d of a topic since deleted: drop it", coordinator.ErrFenced, memberID, tp.Topic, tp.Partition)
		}
		if !m.Assigned.has(tp) && !m.Revoking.has(tp) {
			return fmt.Errorf("%w: member %q does not own %s/%d", coordinator.ErrFenced, memberID, tp.Topic, tp.Partition)
		}
		// The member's positions are in the topic it was assigned: that is
		// the id stored with them. A commit naming another id, or one the
		// topic no longer has, is of a deleted topic.
		o := offsets[tp]
		id, known := rec.TopicIDs[tp.Topic]
		t, err := a.topics.get(ctx, tp.Topic)
		if err == nil && known && t.ID != id {
			a.topics.invalidate(tp.Topic)
			t, err = a.topics.get(ctx, tp.Topic)
		}
		switch {
		case errors.Is(err, coordinator.ErrNotFound):
			a.groupTopics.invalidate()
			return fmt.Errorf("%w: topic %q was deleted: member %q's partitions of it are gone", coordinator.ErrFenced, tp.Topic, memberID)
		case err != nil:
			return err
		case !known:
			id = t.ID // a record from before topic ids
		}
		if t.ID != id {
			a.groupTopics.invalidate() // the next heartbeat retires the deleted topic
			return fmt.Errorf("%w: topic %q was deleted and created again: member %q's partitions of the deleted one are gone", coordinator.ErrFenced, tp.Topic, memberID)
		}
		if o.TopicID != uuid.Nil && o.TopicID != id {
			// The member's topic lives: the commit's id is not its.
			return wrongTopicID(tp.Topic, id, o.TopicID)
		}
		o.TopicID = id
		offsets[tp] = o
	}
	err = a.index.CommitOffsets(ctx, group, &coordinator.MemberFence{MemberID: memberID, Epoch: epoch}, offsets)
	if errors.Is(err, coordinator.ErrFenced) {
		return fmt.Errorf("%w: member %q's session expired or its epoch moved on: rejoin", errUnknownMember, memberID)
	}
	return err
}

// committedOffsets is the group's committed offsets of tps (all when empty)
// that belong to the topics as they are now: an offset committed to a topic
// since deleted, even one created again under the same name, is left out
// and deleted (DeleteTopic deletes them too, but cannot do so atomically
// with the groups, which live elsewhere). Offsets committed without a topic
// id count as the current topic's while there is one. Topic ids are read
// from the index, not the cache: a cached id may be one deleted a moment
// ago.
func (a *Agent) committedOffsets(ctx context.Context, group string, tps []coordinator.TopicPartition) (map[coordinator.TopicPartition]coordinator.CommittedOffset, error) {
	got, err := a.index.FetchOffsets(ctx, group, tps)
	if err != nil || len(got) == 0 {
		return got, err
	}
	current := map[string]uuid.UUID{} // uuid.Nil: no such topic
	for tp := range got {
		if _, ok := current[tp.Topic]; ok {
			continue
		}
		a.topics.invalidate(tp.Topic)
		t, err := a.topics.get(ctx, tp.Topic)
		switch {
		case errors.Is(err, coordinator.ErrNotFound):
			current[tp.Topic] = uuid.Nil
		case err != nil:
			return nil, err
		default:
			current[tp.Topic] = t.ID
		}
	}
	stale := map[uuid.UUID][]coordinator.TopicPartition{}
	for tp, o := range got {
		cur := current[tp.Topic]
		if cur != uuid.Nil && (o.TopicID == cur || o.TopicID == uuid.Nil) {
			continue
		}
		delete(got, tp)
		stale[o.TopicID] = append(stale[o.TopicID], tp)
	}
	if len(stale) > 0 {
		a.groupTopics.invalidate() // the heartbeats retire the deleted topics
	}
	for id, tps := range stale {
		if _, err := a.index.DeleteTopicOffsets(ctx, group, id, tps); err != nil {
			a.log.Warn("delete committed offsets of a deleted topic", "group", group, "topic_id", id, "err", err)
		}
	}
	return got, nil
}

// withoutUnsetOffsets leaves out negative committed offsets: Kafka admin
// tools commit -1 (latest) and -2 (earliest) for their clients to resolve
// (kafkajs's admin.resetOffsets), and franz-go and librdkafka take any
// negative committed offset for "none" and apply their reset policy. The
// native API and its lag do the same: no committed offset.
func withoutUnsetOffsets(got map[coordinator.TopicPartition]coordinator.CommittedOffset) map[coordinator.TopicPartition]coordinator.CommittedOffset {
	for tp, o := range got {
		if o.Offset < 0 {
			delete(got, tp)
		}
	}
	return got
}

// liveMembers is the lease expiry of every member whose lease has not
// expired, by member id.
func (a *Agent) liveMembers(ctx context.Context, group string) (map[string]time.Time, error) {
	leases, err := a.liveLeases(ctx, group)
	if err != nil {
		return nil, err
	}
	live := make(map[string]time.Time, len(leases))
	for id, l := range leases {
		live[id] = l.Expires
	}
	return live, nil
}

// liveLeases is the lease (expiry and epoch) of every member whose lease
// had not expired by the index's clock when it answered, by member id. The
// index tells the time left; measured from before the call, a lease is
// taken for expired only once the index says so, never a round trip
// early: a member judged expired here can no longer renew its lease
// (RenewMember refuses an expired one), so its partitions may move.
func (a *Agent) liveLeases(ctx context.Context, group string) (map[string]coordinator.GroupMember, error) {
	start := time.Now()
	leases, err := a.index.ListMembers(ctx, group)
	if err != nil {
		return nil, err
	}
	live := map[string]coordinator.GroupMember{}
	for _, l := range leases {
		if l.Expires.After(start) {
			live[l.ID] = l
		}
	}
	return live, nil
}
