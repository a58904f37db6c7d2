package coordinator

// Leases: exclusive, expiring, fenced leases (a compaction job per partition).
//
// A lease is a hash {l:<name>} (holder, token, expires) and a counter
// {l:<name>}:token in the same slot. Expiry is stored as server milliseconds and
// compared with the server's TIME inside the scripts, so agents with skewed
// clocks agree on who holds a lease. No key has a TTL: expiry then means the
// same on miniredis (whose TTLs only move when a test fast-forwards it), in the
// embedded server's snapshots and on Redis. An expired lease's hash stays until
// the name is acquired again; the token counter stays for good, so tokens rise
// across expiry, release and re-acquisition. Lease names are meant to be a
// bounded set (one per partition job), so neither grows without end.

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ Leases = (*Redis)(nil)

// luaNowMs defines now_ms(): the server's clock in milliseconds, as a string
// built from TIME's parts so no float formatting can round it.
const luaNowMs = `
local function now_ms()
  local t = redis.call('TIME')
  local us = t[2]
  return t[1] .. string.sub(string.rep('0', 6 - #us) .. us, 1, 3)
end
`

// leaseAcquireScript: KEYS[1] lease, KEYS[2] token counter; ARGV[1] holder,
// ARGV[2] ttl ms. Returns {1, holder, token, remaining ms} when taken, or
// {0, holder, token, remaining ms} of the current holder.
var leaseAcquireScript = redis.NewScript(luaNowMs + `
local now = tonumber(now_ms())
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expires')
if cur[3] and tonumber(cur[3]) > now then
  return {0, cur[1], tonumber(cur[2]), tonumber(cur[3]) - now}
end
local token = redis.call('INCR', KEYS[2])
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token, 'expires', now + ttl)
return {1, ARGV[1], token, ttl}
`)

// leaseRenewScript: KEYS[1] lease; ARGV[1] token, ARGV[2] ttl ms. Returns
// {0} when the lease is gone, {1, holder, token, remaining} when another
// token holds the record, {2, remaining} when ours expired, {3, ttl} renewed.
var leaseRenewScript = redis.NewScript(luaNowMs + `
local now = tonumber(now_ms())
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expires')
if not cur[2] then return {0} end
if tonumber(cur[2]) ~= tonumber(ARGV[1]) then
  return {1, cur[1], tonumber(cur[2]), tonumber(cur[3]) - now}
end
if tonumber(cur[3]) <= now then return {2, tonumber(cur[3]) - now} end
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'expires', now + ttl)
return {3, ttl}
`)

// leaseReleaseScript: KEYS[1] lease; ARGV[1] token. Returns {0} when there
// was nothing of ours to release and nobody else holds it, {1} released,
// {2, holder, token, remaining} when another token holds it.
var leaseReleaseScript = redis.NewScript(luaNowMs + `
local now = tonumber(now_ms())
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expires')
if not cur[2] then return {0} end
if tonumber(cur[2]) == tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return {1}
end
if tonumber(cur[3]) > now then
  return {2, cur[1], tonumber(cur[2]), tonumber(cur[3]) - now}
end
return {0}
`)

// leaseCheckScript: KEYS[1] lease; ARGV[1] token. Same replies as renew, with
// {3, remaining} for "still held", and writes nothing.
var leaseCheckScript = redis.NewScript(luaNowMs + `
local now = tonumber(now_ms())
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expires')
if not cur[2] then return {0} end
if tonumber(cur[2]) ~= tonumber(ARGV[1]) then
  return {1, cur[1], tonumber(cur[2]), tonumber(cur[3]) - now}
end
if tonumber(cur[3]) <= now then return {2, tonumber(cur[3]) - now} end
return {3, tonumber(cur[3]) - now}
`)

// leaseTokenKey is the never-expiring fencing counter, in the lease's slot.
func (r *Redis) leaseTokenKey(name string) string { return r.leaseKey(name) + ":token" }

// AcquireLease takes the lease if nobody holds it or the holding expired, with
// a token above every token the name had before. A live lease is ErrConflict,
// even when holder already holds it: a holder that lost its token cannot be
// told apart from a second worker using the same name, so it waits for expiry.
// Expires is on the caller's clock: the time the call started plus ttl, which
// is never later than the server's view of the expiry.
func (r *Redis) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error) {
	const op = "acquire lease"
	if err := validLease(name, ttl); err != nil {
		return Lease{}, wrapErr(op, err)
	}
	if holder == "" {
		return Lease{}, wrapErr(op, fmt.Errorf("%w: empty lease holder", ErrInvalid))
	}
	start := time.Now()
	v, err := leaseAcquireScript.Run(ctx, r.client, []string{r.leaseKey(name), r.leaseTokenKey(name)},
		holder, ttl.Milliseconds()).Slice()
	if err != nil {
		return Lease{}, wrapErr(op, err)
	}
	st, err := parseLeaseState(v)
	if err != nil {
		return Lease{}, wrapErr(op, err)
	}
	if st.status == 0 {
		return Lease{}, wrapErr(op, fmt.Errorf("%w: lease %q is held by %q (token %d) for another %v",
			ErrConflict, name, st.holder, st.token, st.remaining))
	}
	if err := r.softWritten(ctx); err != nil {
		return Lease{}, wrapErr(op, err)
	}
	return Lease{Name: name, Holder: holder, Token: st.token, Expires: start.Add(st.remaining)}, nil
}

// RenewLease extends the lease to ttl from now if it is still held with l's
// token and has not expired; ErrFenced otherwise, even when nobody took it in
// the meantime, since the holder cannot know that work done after the expiry
// was safe.
func (r *Redis) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	const op = "renew lease"
	if err := validLease(l.Name, ttl); err != nil {
		return Lease{}, wrapErr(op, err)
	}
	start := time.Now()
	v, err := leaseRenewScript.Run(ctx, r.client, []string{r.leaseKey(l.Name)}, l.Token, ttl.Milliseconds()).Slice()
	if err != nil {
		return Lease{}, wrapErr(op, err)
	}
	st, err := parseLeaseState(v)
	if err != nil {
		return Lease{}, wrapErr(op, err)
	}
	if st.status != 3 {
		return Lease{}, wrapErr(op, st.fenced(l))
	}
	if err := r.softWritten(ctx); err != nil {
		return Lease{}, wrapErr(op, err)
	}
	l.Expires = start.Add(st.remaining)
	return l, nil
}

// ReleaseLease gives the lease up so another holder need not wait for expiry.
// Releasing a lease that is already gone (released, or expired and not taken)
// is nil, so a worker can always release on its way out; releasing one that
// another holder has since taken is ErrFenced and leaves that holder alone.
func (r *Redis) ReleaseLease(ctx context.Context, l Lease) error {
	const op = "release lease"
	if l.Name == "" {
		return wrapErr(op, fmt.Errorf("%w: empty lease name", ErrInvalid))
	}
	v, err := leaseReleaseScript.Run(ctx, r.client, []string{r.leaseKey(l.Name)}, l.Token).Slice()
	if err != nil {
		return wrapErr(op, err)
	}
	st, err := parseLeaseState(v)
	if err != nil {
		return wrapErr(op, err)
	}
	switch st.status {
	case 0:
		return nil
	case 1:
		return wrapErr(op, r.softWritten(ctx))
	default:
		return wrapErr(op, fmt.Errorf("%w: lease %q is now held by %q (token %d), not token %d",
			ErrFenced, l.Name, st.holder, st.token, l.Token))
	}
}

// ValidateLease returns nil while the lease is held with l's token and
// unexpired, ErrFenced otherwise. It answers for the moment the server ran it;
// work that must not outlive the lease also carries the token to where it
// lands, so the check there refuses a stale one.
func (r *Redis) ValidateLease(ctx context.Context, l Lease) error {
	const op = "validate lease"
	if l.Name == "" {
		return wrapErr(op, fmt.Errorf("%w: empty lease name", ErrInvalid))
	}
	v, err := leaseCheckScript.Run(ctx, r.client, []string{r.leaseKey(l.Name)}, l.Token).Slice()
	if err != nil {
		return wrapErr(op, err)
	}
	st, err := parseLeaseState(v)
	if err != nil {
		return wrapErr(op, err)
	}
	if st.status != 3 {
		return wrapErr(op, st.fenced(l))
	}
	return nil
}

func validLease(name string, ttl time.Duration) error {
	if name == "" {
		return fmt.Errorf("%w: empty lease name", ErrInvalid)
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("%w: lease ttl %v is under 1ms", ErrInvalid, ttl)
	}
	return nil
}

// leaseState is a lease script's reply: a status, then either the current
// holder, token and remaining time, or only the remaining time.
type leaseState struct {
	status    int64
	holder    string
	token     int64
	remaining time.Duration
}

func parseLeaseState(v []any) (leaseState, error) {
	var st leaseState
	bad := func() (leaseState, error) {
		return leaseState{}, fmt.Errorf("%w: malformed lease script reply %v", ErrUnavailable, v)
	}
	if len(v) == 0 {
		return bad()
	}
	var ok bool
	if st.status, ok = v[0].(int64); !ok {
		return bad()
	}
	switch len(v) {
	case 1:
	case 2:
		ms, ok := v[1].(int64)
		if !ok {
			return bad()
		}
		st.remaining = time.Duration(ms) * time.Millisecond
	case 4:
		holder, ok1 := v[1].(string)
		token, ok2 := v[2].(int64)
		ms, ok3 := v[3].(int64)
		if !ok1 || !ok2 || !ok3 {
			return bad()
		}
		st.holder, st.token, st.remaining = holder, token, time.Duration(ms)*time.Millisecond
	default:
		return bad()
	}
	return st, nil
}

// fenced explains why l is no longer held, from a renew or check reply.
func (st leaseState) fenced(l Lease) error {
	switch st.status {
	case 0:
		return fmt.Errorf("%w: lease %q (token %d) was released or expired", ErrFenced, l.Name, l.Token)
	case 1:
		return fmt.Errorf("%w: lease %q is held by %q with token %d, not token %d",
			ErrFenced, l.Name, st.holder, st.token, l.Token)
	default:
		return fmt.Errorf("%w: lease %q (token %d) expired %v ago", ErrFenced, l.Name, l.Token, -st.remaining)
	}
}

// deadline turns a remaining time the server measured into a time on the
// caller's clock, counting from before the request so it errs early.
func deadline(start time.Time, remainingMs int64) time.Time {
	return start.Add(time.Duration(remainingMs) * time.Millisecond)
}
