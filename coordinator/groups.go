package coordinator

// Groups: consumer-group storage, the primitives the group protocol builds on.
//
// Every key of a group carries the group's hash tag, so each script touches one
// slot and runs on Redis Cluster:
//
//	{g:<group>}:state          hash: version, data (the protocol's opaque record)
//	{g:<group>}:members        sorted set: member id -> lease expiry (server ms)
//	{g:<group>}:member-epochs  hash: member id -> epoch
//	{g:<group>}:member-data    hash: member id -> opaque member data
//	{g:<group>}:offsets        hash: "<partition>:<topic>" -> "@<topic id>:<offset>:<commit ms>:<metadata>"
//	                           ("<offset>:<commit ms>:<metadata>" when committed without a topic id)
//
// {m}:groups is the index of group names for ListGroups. It is in another slot,
// so it cannot change atomically with a group: every write that may create a
// group adds the name in the same pipeline, and ListGroups drops names whose
// group has no keys. Liveness is judged by the server's TIME inside the
// scripts, never by a caller's clock.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

var _ Groups = (*Redis)(nil)

// groupSaveScript: KEYS[1] state; ARGV[1] expected version, ARGV[2] data.
// Returns {1, new version} or {0, current version}. A group's first version
// is the server's clock in microseconds, not 1, so a group deleted and made
// again never reuses a version its earlier life handed out.
var groupSaveScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur ~= tonumber(ARGV[1]) then return {0, cur} end
local nextv = cur + 1
if cur == 0 then
  local t = redis.call('TIME')
  nextv = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
redis.call('HSET', KEYS[1], 'version', nextv, 'data', ARGV[2])
return {1, nextv}
`)

// memberPutScript: KEYS[1] members, KEYS[2] epochs, KEYS[3] data; ARGV[1] id,
// ARGV[2] epoch, ARGV[3] ttl ms, ARGV[4] data.
var memberPutScript = redis.NewScript(luaNowMs + `
redis.call('ZADD', KEYS[1], tonumber(now_ms()) + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
return {1}
`)

// memberRenewScript: KEYS as memberPutScript; ARGV[1] id, ARGV[2] the
// epoch the lease must be at, ARGV[3] the new epoch, ARGV[4] ttl ms,
// ARGV[5] data. Returns {0} renewed, {1} unknown member, {2, epoch} other
// epoch, {3, remaining ms} lease expired. Expired is judged here, by the
// server's clock, in the same script as the write: the check and the
// renewal cannot be split by another member taking the partitions. An
// epoch that stays is not written again: most renewals are a settled
// group's heartbeats.
var memberRenewScript = redis.NewScript(luaNowMs + `
local now = tonumber(now_ms())
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp then return {1} end
local epoch = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1')
if epoch ~= tonumber(ARGV[2]) then return {2, epoch} end
if tonumber(exp) <= now then return {3, tonumber(exp) - now} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
if epoch ~= tonumber(ARGV[3]) then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
return {0}
`)

// memberListScript: KEYS as memberPutScript. Returns {id, remaining ms,
// epoch, data, ...} for every member, expired ones included. Epochs and
// data are read with one HMGET per hash for up to 1000 members at a time,
// not one HGET per member: every group heartbeat lists the members, and a
// group of 100 members otherwise ran 200 commands per heartbeat (issue 13's
// benchmark). The batch keeps unpack's arguments well under Lua's C stack
// limit (LUAI_MAXCSTACK, 8000).
var memberListScript = redis.NewScript(luaNowMs + `
local now = tonumber(now_ms())
local z = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for first = 1, #z, 2000 do
  local ids = {}
  for i = first, math.min(first + 1999, #z), 2 do ids[#ids + 1] = z[i] end
  local epochs = redis.call('HMGET', KEYS[2], unpack(ids))
  local data = redis.call('HMGET', KEYS[3], unpack(ids))
  for j = 1, #ids do
    out[#out + 1] = ids[j]
    out[#out + 1] = tonumber(z[first + 2 * j - 1]) - now
    out[#out + 1] = tonumber(epochs[j] or '0')
    out[#out + 1] = data[j] or ''
  end
end
return out
`)

// memberRemoveScript: KEYS as memberPutScript; ARGV[1] id. Returns how many
// members it removed (0 or 1).
var memberRemoveScript = redis.NewScript(`
local n = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return n
`)

// memberRemoveExpiredScript: KEYS as memberPutScript; ARGV[1] id. Removes
// the member only while its lease is expired; returns 1 if it did.
var memberRemoveExpiredScript = redis.NewScript(luaNowMs + `
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp or tonumber(exp) > tonumber(now_ms()) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
`)

// offsetCommitScript: KEYS[1] members, KEYS[2] epochs, KEYS[3] offsets;
// ARGV[1] "1" when fenced, ARGV[2] member id, ARGV[3] epoch, then per
// partition: field, prefix ("@<topic id>:" and "#<leader epoch>:", each
// when known, or ""), offset, commit ms ("" = server now), metadata.
// Returns
// {0} committed, {1} unknown member, {2, epoch} other epoch, {3, remaining ms}
// lease expired.
var offsetCommitScript = redis.NewScript(luaNowMs + `
local now = now_ms()
if ARGV[1] == '1' then
  local exp = redis.call('ZSCORE', KEYS[1], ARGV[2])
  if not exp then return {1} end
  local epoch = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '-1')
  if epoch ~= tonumber(ARGV[3]) then return {2, epoch} end
  if tonumber(exp) <= tonumber(now) then return {3, tonumber(exp) - tonumber(now)} end
end
for i = 4, #ARGV, 5 do
  local ts = ARGV[i + 3]
  if ts == '' then ts = now end
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1] .. ARGV[i + 2] .. ':' .. ts .. ':' .. ARGV[i + 4])
end
return {0}
`)

// topicOffsetDeleteScript: KEYS[1] offsets; ARGV[1] the topic id prefix
// ("@<id>:", or "" for offsets committed without an id), ARGV[2..] fields.
// Deletes the fields whose value was committed under that id, so that an
// offset committed to a newer topic of the same name meanwhile stays.
// Returns how many it deleted.
var topicOffsetDeleteScript = redis.NewScript(`
local n = 0
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    local match
    if ARGV[1] == '' then
      match = string.sub(v, 1, 1) ~= '@'
    else
      match = string.sub(v, 1, #ARGV[1]) == ARGV[1]
    end
    if match then
      redis.call('HDEL', KEYS[1], ARGV[i])
      n = n + 1
    end
  end
end
return n
`)

// groupDeleteScript: KEYS[1] state, KEYS[2] members, KEYS[3] epochs,
// KEYS[4] member data, KEYS[5] offsets. Returns {0} no such group,
// {1} deleted, {2, live members} refused.
var groupDeleteScript = redis.NewScript(luaNowMs + `
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[5]) == 0 then return {0} end
local live = redis.call('ZCOUNT', KEYS[2], '(' .. now_ms(), '+inf')
if live > 0 then return {2, live} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return {1}
`)

type groupKeys struct{ state, members, epochs, memberData, offsets string }

func (r *Redis) groupKeys(group string) groupKeys {
	return groupKeys{
		state:      r.groupKey(group, "state"),
		members:    r.groupKey(group, "members"),
		epochs:     r.groupKey(group, "member-epochs"),
		memberData: r.groupKey(group, "member-data"),
		offsets:    r.groupKey(group, "offsets"),
	}
}

func (k groupKeys) memberKeys() []string { return []string{k.members, k.epochs, k.memberData} }

// groupIndexKey is the set of group names behind ListGroups.
func (r *Redis) groupIndexKey() string { return r.metaKey("groups") }

func validGroup(group string) error {
	if group == "" {
		return fmt.Errorf("%w: empty group id", ErrInvalid)
	}
	return nil
}

// runGroupWrite runs a script that may create the group, with the SADD to the
// group index in the same pipeline (one round trip; two slots, so not atomic).
// The SADD goes first: a failure in between leaves a name without a group,
// which ListGroups hides, rather than a group without a name.
func (r *Redis) runGroupWrite(ctx context.Context, group string, s *redis.Script, keys []string, args ...any) ([]any, error) {
	exec := func(full bool) (*redis.IntCmd, *redis.Cmd) {
		pipe := r.client.Pipeline()
		index := pipe.SAdd(ctx, r.groupIndexKey(), group)
		var cmd *redis.Cmd
		if full {
			cmd = s.Eval(ctx, pipe, keys, args...)
		} else {
			cmd = s.EvalSha(ctx, pipe, keys, args...)
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
		return index, cmd
	}
	index, cmd := exec(false)
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		// A pipeline cannot fall back to EVAL by itself (restart, SCRIPT FLUSH,
		// a cluster node that never ran it); the SADD is idempotent.
		index, cmd = exec(true)
	}
	if err := index.Err(); err != nil {
		return nil, err
	}
	return cmd.Slice()
}

// LoadGroup returns the group's protocol state: Version 0 and nil Data when
// none was saved (the group may still have members or offsets).
func (r *Redis) LoadGroup(ctx context.Context, group string) (GroupState, error) {
	const op = "load group"
	if err := validGroup(group); err != nil {
		return GroupState{}, wrapErr(op, err)
	}
	v, err := r.client.HMGet(ctx, r.groupKeys(group).state, "version", "data").Result()
	if err != nil {
		return GroupState{}, wrapErr(op, err)
	}
	var st GroupState
	if s, ok := v[0].(string); ok {
		if st.Version, err = strconv.ParseInt(s, 10, 64); err != nil {
			return GroupState{}, wrapErr(op, fmt.Errorf("group %q has a malformed version %q: %w", group, s, err))
		}
	}
	if s, ok := v[1].(string); ok && s != "" {
		st.Data = []byte(s)
	}
	return st, nil
}

// SaveGroup replaces the group's protocol state if its version is still
// expectVersion (0: no state saved yet) and returns the new version;
// ErrConflict when another writer saved first, so the caller reloads and
// retries. Versions are opaque: they only ever change on a save and a group
// that is deleted and created again never repeats one.
func (r *Redis) SaveGroup(ctx context.Context, group string, expectVersion int64, data []byte) (int64, error) {
	const op = "save group"
	if err := validGroup(group); err != nil {
		return 0, wrapErr(op, err)
	}
	if expectVersion < 0 {
		return 0, wrapErr(op, fmt.Errorf("%w: negative group version %d", ErrInvalid, expectVersion))
	}
	v, err := r.runGroupWrite(ctx, group, groupSaveScript, []string{r.groupKeys(group).state}, expectVersion, data)
	if err != nil {
		return 0, wrapErr(op, err)
	}
	ok, version, err := replyPair(v)
	if err != nil {
		return 0, wrapErr(op, err)
	}
	if ok == 0 {
		return 0, wrapErr(op, fmt.Errorf("%w: group %q is at version %d, not %d", ErrConflict, group, version, expectVersion))
	}
	if err := r.durable(ctx); err != nil {
		return 0, wrapErr(op, err)
	}
	return version, nil
}

// PutMember adds or replaces the member (epoch and data) and sets its lease to
// ttl from the server's now. m.Expires is ignored. It does not compare epochs:
// the protocol decides what a member's epoch is.
func (r *Redis) PutMember(ctx context.Context, group string, m GroupMember, ttl time.Duration) error {
	const op = "put member"
	if err := validGroup(group); err != nil {
		return wrapErr(op, err)
	}
	if m.ID == "" {
		return wrapErr(op, fmt.Errorf("%w: empty member id", ErrInvalid))
	}
	if ttl < time.Millisecond {
		return wrapErr(op, fmt.Errorf("%w: member ttl %v is under 1ms", ErrInvalid, ttl))
	}
	_, err := r.runGroupWrite(ctx, group, memberPutScript, r.groupKeys(group).memberKeys(),
		m.ID, m.Epoch, ttl.Milliseconds(), m.Data)
	if err != nil {
		return wrapErr(op, err)
	}
	return wrapErr(op, r.written(ctx))
}

// RenewMember extends the member's lease to ttl from the server's now and
// moves its epoch from fromEpoch to m.Epoch, in one script that first checks
// the member is still there, at fromEpoch, with an unexpired lease: a
// heartbeat whose lease expired while it was in flight must not bring the
// member back after another member's heartbeat took its partitions. Refused
// with ErrFenced; the member must rejoin (PutMember, epoch 0).
func (r *Redis) RenewMember(ctx context.Context, group string, m GroupMember, fromEpoch int32, ttl time.Duration) error {
	const op = "renew member"
	if err := validGroup(group); err != nil {
		return wrapErr(op, err)
	}
	if m.ID == "" {
		return wrapErr(op, fmt.Errorf("%w: empty member id", ErrInvalid))
	}
	if ttl < time.Millisecond {
		return wrapErr(op, fmt.Errorf("%w: member ttl %v is under 1ms", ErrInvalid, ttl))
	}
	v, err := memberRenewScript.Run(ctx, r.client, r.groupKeys(group).memberKeys(),
		m.ID, fromEpoch, m.Epoch, ttl.Milliseconds(), m.Data).Slice()
	if err != nil {
		return wrapErr(op, err)
	}
	status, detail, err := replyPair(v)
	if err != nil {
		return wrapErr(op, err)
	}
	switch status {
	case 0:
		return wrapErr(op, r.written(ctx))
	case 1:
		return wrapErr(op, fmt.Errorf("%w: member %q is not in group %q", ErrFenced, m.ID, group))
	case 2:
		return wrapErr(op, fmt.Errorf("%w: member %q of group %q is at epoch %d, not %d", ErrFenced, m.ID, group, detail, fromEpoch))
	case 3:
		return wrapErr(op, fmt.Errorf("%w: member %q of group %q: lease expired %v ago",
			ErrFenced, m.ID, group, -time.Duration(detail)*time.Millisecond))
	default:
		return wrapErr(op, fmt.Errorf("%w: member renew reply %v", ErrUnavailable, v))
	}
}

// ListMembers returns every member sorted by id, expired ones included: an
// expired member may still own partitions, and the protocol has to see it to
// take them back (then RemoveMember). Expires is on the caller's clock (the
// server's remaining time added to when the call started), so comparing it
// with time.Now() gives the server's answer give or take a round trip, however
// skewed the caller's clock. Empty Data comes back nil.
func (r *Redis) ListMembers(ctx context.Context, group string) ([]GroupMember, error) {
	const op = "list members"
	if err := validGroup(group); err != nil {
		return nil, wrapErr(op, err)
	}
	start := time.Now()
	v, err := memberListScript.Run(ctx, r.client, r.groupKeys(group).memberKeys()).Slice()
	if err != nil {
		return nil, wrapErr(op, err)
	}
	if len(v)%4 != 0 {
		return nil, wrapErr(op, fmt.Errorf("%w: malformed member list reply of %d elements", ErrUnavailable, len(v)))
	}
	members := make([]GroupMember, 0, len(v)/4)
	for i := 0; i < len(v); i += 4 {
		id, ok1 := v[i].(string)
		ms, ok2 := v[i+1].(int64)
		epoch, ok3 := v[i+2].(int64)
		data, ok4 := v[i+3].(string)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, wrapErr(op, fmt.Errorf("%w: malformed member entry %v", ErrUnavailable, v[i:i+4]))
		}
		m := GroupMember{ID: id, Epoch: int32(epoch), Expires: deadline(start, ms)}
		if data != "" {
			m.Data = []byte(data)
		}
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b GroupMember) int { return strings.Compare(a.ID, b.ID) })
	return members, nil
}

// RemoveMember deletes the member, live or expired; ErrNotFound if it is not
// there, which a caller tidying up may ignore. Its committed offsets stay:
// they belong to the group.
func (r *Redis) RemoveMember(ctx context.Context, group, memberID string) error {
	const op = "remove member"
	if err := validGroup(group); err != nil {
		return wrapErr(op, err)
	}
	if memberID == "" {
		return wrapErr(op, fmt.Errorf("%w: empty member id", ErrInvalid))
	}
	n, err := memberRemoveScript.Run(ctx, r.client, r.groupKeys(group).memberKeys(), memberID).Int64()
	if err != nil {
		return wrapErr(op, err)
	}
	if n == 0 {
		return wrapErr(op, fmt.Errorf("%w: member %q of group %q", ErrNotFound, memberID, group))
	}
	return wrapErr(op, r.written(ctx))
}

// RemoveExpiredMember removes the member if, and only if, its lease has
// expired by the server's clock, in one script, and reports whether it did.
// A heartbeat that found the member expired tidies up with it: a plain
// RemoveMember arriving after the member rejoined would delete its new
// lease behind its back, and the next heartbeat of another member would
// take partitions the member was just told it owns.
func (r *Redis) RemoveExpiredMember(ctx context.Context, group, memberID string) (bool, error) {
	const op = "remove expired member"
	if err := validGroup(group); err != nil {
		return false, wrapErr(op, err)
	}
	if memberID == "" {
		return false, wrapErr(op, fmt.Errorf("%w: empty member id", ErrInvalid))
	}
	n, err := memberRemoveExpiredScript.Run(ctx, r.client, r.groupKeys(group).memberKeys(), memberID).Int64()
	if err != nil {
		return false, wrapErr(op, err)
	}
	if n == 0 {
		return false, nil
	}
	return true, wrapErr(op, r.written(ctx))
}

// CommitOffsets stores the offsets, all or none. With a fence, the commit is
// refused with ErrFenced unless the member is in the group, at exactly that
// epoch, with an unexpired lease, checked in the same script as the write;
// a nil fence commits unconditionally (admin tools, simple consumers without
// a generation). A zero CommitTime becomes the server's now. Committing no
// offsets does nothing, the fence unchecked, as an empty Kafka OffsetCommit.
func (r *Redis) CommitOffsets(ctx context.Context, group string, fence *MemberFence, offsets map[TopicPartition]CommittedOffset) error {
	const op = "commit offsets"
	if err := validGroup(group); err != nil {
		return wrapErr(op, err)
	}
	if len(offsets) == 0 {
		return nil
	}
	args := make([]any, 0, 3+5*len(offsets))
	if fence != nil {
		if fence.MemberID == "" {
			return wrapErr(op, fmt.Errorf("%w: empty member id in fence", ErrInvalid))
		}
		args = append(args, "1", fence.MemberID, fence.Epoch)
	} else {
		args = append(args, "0", "", 0)
	}
	args, err := appendOffsetArgs(args, offsets)
	if err != nil {
		return wrapErr(op, err)
	}
	k := r.groupKeys(group)
	v, err := r.runGroupWrite(ctx, group, offsetCommitScript, []string{k.members, k.epochs, k.offsets}, args...)
	if err != nil {
		return wrapErr(op, err)
	}
	if len(v) == 0 {
		return wrapErr(op, fmt.Errorf("%w: empty offset commit reply", ErrUnavailable))
	}
	status, _ := v[0].(int64)
	var detail int64
	if len(v) > 1 {
		detail, _ = v[1].(int64)
	}
	switch status {
	case 0:
		return wrapErr(op, r.durable(ctx))
	case 1, 2, 3:
		return wrapErr(op, memberFenceError(group, fence, status, detail))
	default:
		return wrapErr(op, fmt.Errorf("%w: offset commit reply %v", ErrUnavailable, v))
	}
}

// memberFenceError is the ErrMemberFenced of a fence check's status (as
// offsetCommitScript returns it: 1 not in the group, 2 at epoch detail, 3
// lease expired detail ms ago, negative).
func memberFenceError(group string, fence *MemberFence, status, detail int64) error {
	switch status {
	case 1:
		return fmt.Errorf("%w: member %q is not in group %q", ErrMemberFenced, fence.MemberID, group)
	case 2:
		return fmt.Errorf("%w: member %q of group %q is at epoch %d, not %d",
			ErrMemberFenced, fence.MemberID, group, detail, fence.Epoch)
	default:
		return fmt.Errorf("%w: member %q of group %q: lease expired %v ago",
			ErrMemberFenced, fence.MemberID, group, -time.Duration(detail)*time.Millisecond)
	}
}

// FetchOffsets returns the committed offsets of tps, or of every partition
// when tps is empty. A partition with no committed offset is absent from the
// map (Kafka answers -1 for it); an unknown group gives an empty map.
func (r *Redis) FetchOffsets(ctx context.Context, group string, tps []TopicPartition) (map[TopicPartition]CommittedOffset, error) {
	const op = "fetch offsets"
	if err := validGroup(group); err != nil {
		return nil, wrapErr(op, err)
	}
	key := r.groupKeys(group).offsets
	out := make(map[TopicPartition]CommittedOffset)
	if len(tps) == 0 {
		all, err := r.client.HGetAll(ctx, key).Result()
		if err != nil {
			return nil, wrapErr(op, err)
		}
		for f, v := range all {
			tp, err := parseOffsetField(f)
			if err != nil {
				return nil, wrapErr(op, err)
			}
			if out[tp], err = parseOffsetValue(v); err != nil {
				return nil, wrapErr(op, err)
			}
		}
		return out, nil
	}
	fields := make([]string, len(tps))
	for i, tp := range tps {
		if err := validTopicPartition(tp); err != nil {
			return nil, wrapErr(op, err)
		}
		fields[i] = offsetField(tp)
	}
	vals, err := r.client.HMGet(ctx, key, fields...).Result()
	if err != nil {
		return nil, wrapErr(op, err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // never committed
		}
		if out[tps[i]], err = parseOffsetValue(s); err != nil {
			return nil, wrapErr(op, err)
		}
	}
	return out, nil
}

// DeleteOffsets forgets the committed offsets of tps (Kafka OffsetDelete);
// partitions without one are skipped. An empty tps deletes nothing, never
// everything. Whether the group may drop them (Kafka refuses while the group
// consumes the topic) is the protocol's decision, not the index's.
func (r *Redis) DeleteOffsets(ctx context.Context, group string, tps []TopicPartition) error {
	const op = "delete offsets"
	if err := validGroup(group); err != nil {
		return wrapErr(op, err)
	}
	if len(tps) == 0 {
		return nil
	}
	fields := make([]string, len(tps))
	for i, tp := range tps {
		if err := validTopicPartition(tp); err != nil {
			return wrapErr(op, err)
		}
		fields[i] = offsetField(tp)
	}
	if err := r.client.HDel(ctx, r.groupKeys(group).offsets, fields...).Err(); err != nil {
		return wrapErr(op, err)
	}
	return wrapErr(op, r.durable(ctx))
}

// DeleteTopicOffsets forgets those of tps' committed offsets that were
// committed to the topic with id topicID (uuid.Nil: those committed without
// an id), in one script: an offset committed meanwhile to a topic made
// again under the same name has another id and stays. It returns how many
// it deleted. Used when a topic is deleted, and by readers that find an
// offset of a deleted topic (Kafka deletes a group's offsets of a deleted
// topic).
func (r *Redis) DeleteTopicOffsets(ctx context.Context, group string, topicID uuid.UUID, tps []TopicPartition) (int, error) {
	const op = "delete topic offsets"
	if err := validGroup(group); err != nil {
		return 0, wrapErr(op, err)
	}
	if len(tps) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 1+len(tps))
	args = append(args, topicIDPrefix(topicID))
	for _, tp := range tps {
		if err := validTopicPartition(tp); err != nil {
			return 0, wrapErr(op, err)
		}
		args = append(args, offsetField(tp))
	}
	n, err := topicOffsetDeleteScript.Run(ctx, r.client, []string{r.groupKeys(group).offsets}, args...).Int()
	if err != nil {
		return 0, wrapErr(op, err)
	}
	if n > 0 {
		if err := r.durable(ctx); err != nil {
			return n, wrapErr(op, err)
		}
	}
	return n, nil
}

// ListGroups returns, sorted, the groups that have protocol state, members
// (expired ones too) or committed offsets. The name index lives apart from
// the groups, so a group being deleted can still be listed for a moment, and
// one written while it was being deleted may be missing until its next write
// (the next heartbeat or commit adds it back).
func (r *Redis) ListGroups(ctx context.Context) ([]string, error) {
	const op = "list groups"
	names, err := r.client.SMembers(ctx, r.groupIndexKey()).Result()
	if err != nil {
		return nil, wrapErr(op, err)
	}
	// The index also keeps names whose first write failed (a fenced commit
	// to a group that never existed): only groups with keys count.
	pipe := r.client.Pipeline()
	exists := make([]*redis.IntCmd, len(names))
	for i, g := range names {
		k := r.groupKeys(g)
		exists[i] = pipe.Exists(ctx, k.state, k.members, k.offsets)
	}
	if len(names) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, wrapErr(op, err)
		}
	}
	groups := make([]string, 0, len(names))
	for i, g := range names {
		if exists[i].Val() > 0 {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	return groups, nil
}

// DeleteGroup removes the group: state, members and offsets. It is refused
// with ErrGroupNotEmpty (an ErrConflict) while any member's lease is live;
// expired members go with the group. ErrNotFound when there is no such group.
func (r *Redis) DeleteGroup(ctx context.Context, group string) error {
	const op = "delete group"
	if err := validGroup(group); err != nil {
		return wrapErr(op, err)
	}
	k := r.groupKeys(group)
	v, err := groupDeleteScript.Run(ctx, r.client, []string{k.state, k.members, k.epochs, k.memberData, k.offsets}).Slice()
	if err != nil {
		return wrapErr(op, err)
	}
	status, live, err := replyPair(v)
	if err != nil {
		return wrapErr(op, err)
	}
	switch status {
	case 0:
		// Left in the index: a first write may have added the name and not
		// yet run its script; ListGroups hides the name meanwhile.
		return wrapErr(op, fmt.Errorf("%w: group %q", ErrGroupNotFound, group))
	case 2:
		return wrapErr(op, fmt.Errorf("%w: group %q has %d live members", ErrGroupNotEmpty, group, live))
	}
	// Removed from the index after the keys, so a delete that fails halfway
	// leaves a hidden name, never an unlisted group.
	if err := r.client.SRem(ctx, r.groupIndexKey(), group).Err(); err != nil {
		return wrapErr(op, err)
	}
	return wrapErr(op, r.durable(ctx))
}

// replyPair reads a script reply {status} or {status, value}.
func replyPair(v []any) (status, value int64, err error) {
	if len(v) == 0 || len(v) > 2 {
		return 0, 0, fmt.Errorf("%w: malformed script reply %v", ErrUnavailable, v)
	}
	var ok bool
	if status, ok = v[0].(int64); !ok {
		return 0, 0, fmt.Errorf("%w: malformed script reply %v", ErrUnavailable, v)
	}
	if len(v) == 2 {
		if value, ok = v[1].(int64); !ok {
			return 0, 0, fmt.Errorf("%w: malformed script reply %v", ErrUnavailable, v)
		}
	}
	return status, value, nil
}

func validTopicPartition(tp TopicPartition) error {
	if tp.Topic == "" {
		return fmt.Errorf("%w: empty topic name", ErrInvalid)
	}
	if tp.Partition < 0 {
		return fmt.Errorf("%w: negative partition %d of %q", ErrInvalid, tp.Partition, tp.Topic)
	}
	return nil
}

// CompareTopicPartitions orders partitions by topic, then number.
func CompareTopicPartitions(a, b TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// offsetField puts the partition first, so the topic name after the first
// colon may hold any byte.
func offsetField(tp TopicPartition) string {
	return strconv.Itoa(int(tp.Partition)) + ":" + tp.Topic
}

var errBadOffsetEntry = errors.New("malformed committed offset")

func parseOffsetField(f string) (TopicPartition, error) {
	p, topic, ok := strings.Cut(f, ":")
	n, err := strconv.ParseInt(p, 10, 32)
	if !ok || err != nil || topic == "" {
		return TopicPartition{}, fmt.Errorf("%w: field %q", errBadOffsetEntry, f)
	}
	return TopicPartition{Topic: topic, Partition: int32(n)}, nil
}

// topicIDPrefix is what a committed offset's value starts with: "@<id>:",
// or nothing for an offset committed without a topic id.
func topicIDPrefix(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return "@" + id.String() + ":"
}

// leaderEpochPrefix is what follows the topic id prefix of an offset
// committed with a leader epoch: "#<epoch>:", or nothing. Agents from
// before it cannot read such a value: an offset Kafka clients commit with
// an epoch needs every agent at this version or later.
func leaderEpochPrefix(epoch *int32) string {
	if epoch == nil {
		return ""
	}
	return "#" + strconv.FormatInt(int64(*epoch), 10) + ":"
}

// parseOffsetValue reads
// "[@<topic id>:][#<leader epoch>:]<offset>:<commit ms>:<metadata>"; the
// metadata is last so it may hold colons.
func parseOffsetValue(v string) (CommittedOffset, error) {
	orig := v
	var topicID uuid.UUID
	if rest, ok := strings.CutPrefix(v, "@"); ok {
		id, tail, found := strings.Cut(rest, ":")
		parsed, err := uuid.Parse(id)
		if !found || err != nil {
			return CommittedOffset{}, fmt.Errorf("%w: value %q", errBadOffsetEntry, orig)
		}
		topicID, v = parsed, tail
	}
	var leaderEpoch *int32
	if rest, ok := strings.CutPrefix(v, "#"); ok {
		e, tail, found := strings.Cut(rest, ":")
		n, err := strconv.ParseInt(e, 10, 32)
		if !found || err != nil {
			return CommittedOffset{}, fmt.Errorf("%w: value %q", errBadOffsetEntry, orig)
		}
		epoch := int32(n)
		leaderEpoch, v = &epoch, tail
	}
	parts := strings.SplitN(v, ":", 3)
	if len(parts) != 3 {
		return CommittedOffset{}, fmt.Errorf("%w: value %q", errBadOffsetEntry, orig)
	}
	off, err1 := strconv.ParseInt(parts[0], 10, 64)
	ms, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return CommittedOffset{}, fmt.Errorf("%w: value %q", errBadOffsetEntry, orig)
	}
	return CommittedOffset{Offset: off, Metadata: parts[2], CommitTime: time.UnixMilli(ms), TopicID: topicID, LeaderEpoch: leaderEpoch}, nil
}

// appendOffsetArgs appends each offset as the scripts read it (field, topic
// id and leader epoch prefixes, offset, commit time in ms or "", metadata),
// sorted so a commit writes in the same order every time; a bad partition
// is ErrInvalid. A negative offset is stored as given (see CommittedOffset).
func appendOffsetArgs(args []any, offsets map[TopicPartition]CommittedOffset) ([]any, error) {
	for _, tp := range slices.SortedFunc(maps.Keys(offsets), CompareTopicPartitions) {
		o := offsets[tp]
		if err := validTopicPartition(tp); err != nil {
			return nil, err
		}
		ts := ""
		if !o.CommitTime.IsZero() {
			ts = strconv.FormatInt(o.CommitTime.UnixMilli(), 10)
		}
		if o.LeaderEpoch != nil && *o.LeaderEpoch < 0 {
			return nil, fmt.Errorf("%w: leader epoch %d for %s-%d: want nil for none", ErrInvalid, *o.LeaderEpoch, tp.Topic, tp.Partition)
		}
		args = append(args, offsetField(tp), topicIDPrefix(o.TopicID)+leaderEpochPrefix(o.LeaderEpoch), o.Offset, ts, o.Metadata)
	}
	return args, nil
}
