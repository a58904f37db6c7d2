package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

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
	// retry returns the same offsets). On Redis Cluster WAIT is per node:
	// each shard waits for its own replicas. Not for the embedded index,
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
