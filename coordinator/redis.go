package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Options tune a Redis index.
type Options struct {
	// Prefix goes in front of every key, so several deployments (or tests)
	// share one Redis. It must not contain '{' or '}'.
	Prefix string
	// WaitReplicas > 0 makes every segment commit wait (Redis WAIT) until
	// that many replicas acknowledged it, for up to WaitTimeout; fewer fails
	// the commit with ErrUnavailable and leaves its offsets invisible (the
	// retry returns the same offsets; FinishSegment shows them once
	// durable). Every other acknowledged write waits too (see durable). On
	// Redis Cluster WAIT is per node: each shard waits for its own replicas. Not for the embedded index,
	// whose durability point is its snapshot. A client passed to NewRedis
	// needs a read timeout above WaitTimeout (Open sees to it).
	WaitReplicas int
	// WaitTimeout is WAIT's timeout in milliseconds; 0 means 1000.
	WaitTimeout int64
	// MaxMessageBytesCap is the broker-wide cap on a topic's max.message.bytes.
	MaxMessageBytesCap int32
	// EmbeddedAsyncWrites applies to the embedded index (OpenEmbedded) with a
	// data directory. By default (false) a mutating call returns only after
	// a snapshot taken after its write is on disk, so killing the process
	// loses nothing acknowledged. True acknowledges first and relies on the
	// periodic snapshot (every second): faster, but a crash loses up to a
	// second of acknowledged writes.
	EmbeddedAsyncWrites bool
}

func (o Options) checkWait() error {
	if o.WaitReplicas < 0 || o.WaitTimeout < 0 {
		return fmt.Errorf("%w: wait replicas %d and wait timeout %d ms must not be negative", ErrInvalid, o.WaitReplicas, o.WaitTimeout)
	}
	return nil
}

// Redis is the index on a Redis-compatible server: a single redis-server,
// Valkey, a managed service, Redis Cluster, or embedded miniredis.
type Redis struct {
	client redis.UniversalClient
	opts   Options
	// afterWrite, when set, runs after every successful mutating call before it
	// returns (the embedded server uses it to persist its state).
	afterWrite func(context.Context) error
}

// NewRedis uses client (a *redis.Client or *redis.ClusterClient).
func NewRedis(client redis.UniversalClient, opts Options) (*Redis, error) {
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("%w: key prefix %q must not contain braces", ErrInvalid, opts.Prefix)
	}
	if err := opts.checkWait(); err != nil {
		return nil, err
	}
	if opts.MaxMessageBytesCap <= 0 {
		opts.MaxMessageBytesCap = 64 << 20
	}
	return &Redis{client: client, opts: opts}, nil
}

// Client returns the underlying go-redis client.
func (r *Redis) Client() redis.UniversalClient { return r.client }

// Close closes the client.
func (r *Redis) Close() error { return r.client.Close() }

// Key layout. Every key that belongs to one partition carries the partition's
// hash tag, so one Lua script touches one slot and the index runs unchanged on
// Redis Cluster. Global keys share the {m} (metadata) tag.

// partitionTag is the hash tag of one partition: {t:<topicID>:<partition>}.
func (r *Redis) partitionKey(topicID uuid.UUID, partition int32, name string) string {
	return r.opts.Prefix + "{t:" + topicID.String() + ":" + strconv.Itoa(int(partition)) + "}:" + name
}

// metaKey is a key in the global metadata slot.
func (r *Redis) metaKey(name string) string { return r.opts.Prefix + "{m}:" + name }

// groupKey is a key in one consumer group's slot.
func (r *Redis) groupKey(group, name string) string {
	return r.opts.Prefix + "{g:" + group + "}:" + name
}

// leaseKey is a key in one lease's slot.
func (r *Redis) leaseKey(name string) string { return r.opts.Prefix + "{l:" + name + "}" }

// segmentKey is a key in one segment's slot.
func (r *Redis) segmentKey(segmentID, name string) string {
	return r.opts.Prefix + "{s:" + segmentID + "}:" + name
}

// written runs the after-write hook.
func (r *Redis) written(ctx context.Context) error {
	if r.afterWrite == nil {
		return nil
	}
	return r.afterWrite(ctx)
}

// softWritten ends a write of state that a crash may lose because whoever
// depends on it redoes it: the garbage collector's bookkeeping (a lost
// ForgetSegment or DeleteSegmentRefs is found again by the janitor's next
// pass, and deleting a deleted object is a no-op) and the janitor's and
// reaper's lease (time-bounded, and on the embedded index lost only with
// the process that held it). It skips the after-write hook: on the
// embedded index such a write is saved by the next periodic snapshot
// (within a second, the state being marked dirty) instead of waiting for
// a snapshot of the whole index of its own, which on a large index took
// the janitor minutes per pass. On a Redis server it is written already.
func (r *Redis) softWritten(context.Context) error { return nil }

// durable is the durability point of every acknowledged index write other
// than a segment commit (which ends its own pipeline in WAIT, see
// execCommit): group offset commits and deletes, group state saves, topic
// create/delete/config/partitions, producer id allocation and epoch bumps,
// and DeleteRecords/retention trims. It runs the embedded index's
// after-write hook and then, with Options.WaitReplicas, waits for the
// replicas (Redis WAIT), as Kafka acknowledges these writes only once the
// in-sync replicas have them (offsets.commit.required.acks=-1, and the
// controller's quorum for topics and producer ids). Too few replicas fail
// the call with ErrUnavailable, "only 0 of 1 replicas acknowledged ...".
// The write itself happened and may survive, so a retry may find it done
// (a topic create then answers ErrAlreadyExists, as Kafka's retried
// CreateTopics does); offset commits and epoch bumps simply apply again.
//
// WAIT covers the writes of the connection it is sent on, and a call's
// writes may have gone out on several pooled connections. So durable sends,
// on one connection, a marker write (INCR of a counter key) and WAIT: the
// replication stream of a master is one ordered log, the call's writes were
// answered before the marker was sent, so a replica that acknowledged the
// marker has them all. On Redis Cluster WAIT is per shard: durable marks
// and waits on every master in parallel (each for its own replicas), since
// a call's writes may span slots; the marker key of each master is a hash
// tag that maps to it.
//
// Soft state does not wait (it calls written only): member leases and
// epochs (PutMember, RenewMember, RemoveMember; a failover that loses one
// makes the member rejoin, which fences it safely), agent registrations,
// janitor leases (time-bounded; the work they guard is idempotent), and
// the garbage collector's bookkeeping (lost work is redone). The leases
// and the bookkeeping do not even wait for the embedded index's snapshot
// (softWritten).
func (r *Redis) durable(ctx context.Context) error {
	if err := r.written(ctx); err != nil {
		return err
	}
	if r.opts.WaitReplicas <= 0 {
		return nil
	}
	cc, ok := r.client.(*redis.ClusterClient)
	if !ok {
		return r.markAndWait(ctx, r.client, r.metaKey("durable"))
	}
	var mu sync.Mutex
	var errs []error
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		key, err := r.markerKey(ctx, cc, c.Options().Addr)
		if err == nil {
			err = r.markAndWait(ctx, c, key)
		}
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		return nil
	})
	err = errors.Join(append(errs, err)...)
	if redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK") {
		cc.ReloadState(ctx)
	}
	return err
}

// markAndWait writes key and runs WAIT in one pipeline (one connection).
func (r *Redis) markAndWait(ctx context.Context, c redis.Cmdable, key string) error {
	pipe := c.Pipeline()
	pipe.Incr(ctx, key)
	wait := r.pipeWait(ctx, pipe)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	return r.checkWait(wait)
}

// markerKey returns a key that the cluster's slot map puts on the master at
// addr: {w:<n>}:durable for the smallest such n (a few tries per master).
func (r *Redis) markerKey(ctx context.Context, cc *redis.ClusterClient, addr string) (string, error) {
	for n := 0; n < 1<<16; n++ {
		key := r.opts.Prefix + "{w:" + strconv.Itoa(n) + "}:durable"
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return "", err
		}
		if m.Options().Addr == addr {
			return key, nil
		}
	}
	return "", fmt.Errorf("%w: no marker key maps to master %s", ErrUnavailable, addr)
}

// wrapErr turns transport and server failures into ErrUnavailable, keeping
// domain errors as they are.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	for _, domain := range []error{ErrUnavailable, ErrNotFound, ErrAlreadyExists, ErrInvalid, ErrFenced, ErrOffsetOutOfRange,
		ErrOutOfOrderSequence, ErrConflict, ErrTopicDeleted, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, domain) {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}
