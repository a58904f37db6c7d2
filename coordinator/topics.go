package coordinator

// Topics. Layout, all in the metadata slot {m} except the partition metas:
//
//	{m}:topics            hash  name -> topic id
//	{m}:topic:<id>        hash  name, partitions, created (ms), the Kafka config
//	                            keys, and deleted (ms) once deleted
//	{m}:topics:deleted    set   ids of deleted topics, for garbage collection
//	{t:<id>:<p>}:meta     hash  s = "live" | "deleted" (plus the partition's
//	                            counters, see log.go)
//
// The commit script cannot read {m} on Redis Cluster, so each partition's
// own meta key says whether it takes commits. Create writes the metas before
// the name appears; delete removes the name before it marks the metas: a
// visible topic always accepts commits, and after DeleteTopic returns none
// succeeds.

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

// Topic limits and defaults.
const (
	MaxTopicNameLength     = 249
	MaxPartitions          = 10000
	DefaultRetentionMs     = 7 * 24 * 60 * 60 * 1000
	DefaultMaxMessageBytes = 1 << 20
	// DefaultArchiveAfterMs keeps ten minutes of records hot (in flush
	// segments) before the compactor moves them to the archive.
	DefaultArchiveAfterMs = 10 * 60 * 1000
	// DefaultDeleteRetentionMs is Kafka's delete.retention.ms default: a
	// tombstone stays a day after the cleaner first found it cleanable.
	DefaultDeleteRetentionMs = 24 * 60 * 60 * 1000
	// DefaultMinCleanableDirtyRatio is Kafka's min.cleanable.dirty.ratio
	// default.
	DefaultMinCleanableDirtyRatio = 0.5
)

// Kafka names of the configuration keys UpdateTopicConfig accepts.
const (
	ConfigRetentionMs     = "retention.ms"
	ConfigRetentionBytes  = "retention.bytes"
	ConfigMaxMessageBytes = "max.message.bytes"
	ConfigCleanupPolicy   = "cleanup.policy"
	ConfigCompression     = "compression.type"
	ConfigArchiveAfterMs  = "archive.after.ms"
	// The log cleaner's (cleanup.policy compact; KIP-58, KIP-354).
	ConfigDeleteRetentionMs      = "delete.retention.ms"
	ConfigMinCompactionLagMs     = "min.compaction.lag.ms"
	ConfigMinCleanableDirtyRatio = "min.cleanable.dirty.ratio"
)

var compressionTypes = []string{"none", "gzip", "snappy", "lz4", "zstd", "producer"}

// ValidateTopicName checks a name with Kafka's rules.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: topic name is empty", ErrInvalidTopicName)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic name cannot be %q", ErrInvalidTopicName, name)
	case len(name) > MaxTopicNameLength:
		return &LimitError{Err: ErrInvalidTopicName, Name: "topic name length", Limit: MaxTopicNameLength, Actual: int64(len(name)),
			Msg: fmt.Sprintf("topic name is %d characters, the limit is %d", len(name), MaxTopicNameLength)}
	}
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: topic name %q has %q at byte %d; allowed are ASCII letters, digits, '.', '_' and '-'", ErrInvalidTopicName, name, c, i)
		}
	}
	return nil
}

// withDefaults fills zero values and checks every field.
func (r *Redis) withDefaults(cfg TopicConfig) (TopicConfig, error) {
	if cfg.Partitions == 0 {
		cfg.Partitions = 1
	}
	if cfg.RetentionMs == 0 {
		cfg.RetentionMs = DefaultRetentionMs
	}
	if cfg.RetentionBytes == 0 {
		cfg.RetentionBytes = -1
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = min(DefaultMaxMessageBytes, r.opts.MaxMessageBytesCap)
	}
	if cfg.CleanupPolicy == "" {
		cfg.CleanupPolicy = "delete"
	}
	if cfg.Compression == "" {
		cfg.Compression = "producer"
	}
	if cfg.ArchiveAfterMs == 0 {
		cfg.ArchiveAfterMs = DefaultArchiveAfterMs
	}
	if cfg.DeleteRetentionMs == 0 {
		cfg.DeleteRetentionMs = DefaultDeleteRetentionMs
	}
	if cfg.MinCleanableDirtyRatio == 0 {
		cfg.MinCleanableDirtyRatio = DefaultMinCleanableDirtyRatio
	}
	if cfg.Partitions > MaxPartitions {
		return cfg, &LimitError{Err: ErrInvalidPartitions, Name: "partitions", Limit: MaxPartitions, Actual: int64(cfg.Partitions),
			Msg: fmt.Sprintf("partitions must be between 1 and %d, got %d", MaxPartitions, cfg.Partitions)}
	}
	if cfg.Partitions < 1 {
		return cfg, fmt.Errorf("%w: partitions must be between 1 and %d, got %d", ErrInvalidPartitions, MaxPartitions, cfg.Partitions)
	}
	if err := r.validateConfig(cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// validateConfig checks the Kafka config keys of a complete config.
func (r *Redis) validateConfig(cfg TopicConfig) error {
	// 0 would read back as "the default" on create, so it is refused here
	// rather than meaning "delete everything at once".
	if cfg.RetentionMs < -1 || cfg.RetentionMs == 0 {
		return fmt.Errorf("%w: %s must be -1 (forever) or positive, got %d", ErrInvalidConfig, ConfigRetentionMs, cfg.RetentionMs)
	}
	if cfg.RetentionBytes < -1 || cfg.RetentionBytes == 0 {
		return fmt.Errorf("%w: %s must be -1 (unlimited) or positive, got %d", ErrInvalidConfig, ConfigRetentionBytes, cfg.RetentionBytes)
	}
	if cfg.MaxMessageBytes <= 0 || cfg.MaxMessageBytes > r.opts.MaxMessageBytesCap {
		return fmt.Errorf("%w: %s must be between 1 and the broker's cap %d, got %d", ErrInvalidConfig, ConfigMaxMessageBytes, r.opts.MaxMessageBytesCap, cfg.MaxMessageBytes)
	}
	switch cfg.CleanupPolicy {
	case "delete", "compact", "compact,delete", "delete,compact":
	default:
		return fmt.Errorf("%w: %s must be \"delete\", \"compact\" or both (\"compact,delete\"), got %q", ErrInvalidConfig, ConfigCleanupPolicy, cfg.CleanupPolicy)
	}
	// Kafka's bounds: both at least 0. A zero delete.retention.ms reads back
	// as the default on create, as retention.ms's does, so it is refused.
	if cfg.DeleteRetentionMs < 1 {
		return fmt.Errorf("%w: %s must be positive (ms), got %d", ErrInvalidConfig, ConfigDeleteRetentionMs, cfg.DeleteRetentionMs)
	}
	if cfg.MinCompactionLagMs < 0 {
		return fmt.Errorf("%w: %s must be 0 or more (ms), got %d", ErrInvalidConfig, ConfigMinCompactionLagMs, cfg.MinCompactionLagMs)
	}
	if !(cfg.MinCleanableDirtyRatio > 0 && cfg.MinCleanableDirtyRatio <= 1) {
		return fmt.Errorf("%w: %s must be above 0 and at most 1, got %v", ErrInvalidConfig, ConfigMinCleanableDirtyRatio, cfg.MinCleanableDirtyRatio)
	}
	if !slices.Contains(compressionTypes, cfg.Compression) {
		return fmt.Errorf("%w: %s must be one of %v, got %q", ErrInvalidConfig, ConfigCompression, compressionTypes, cfg.Compression)
	}
	if cfg.ArchiveAfterMs < -1 || cfg.ArchiveAfterMs == 0 {
		return fmt.Errorf("%w: %s must be -1 (never archive) or positive, got %d", ErrInvalidConfig, ConfigArchiveAfterMs, cfg.ArchiveAfterMs)
	}
	return nil
}

func (r *Redis) topicNamesKey() string                      { return r.metaKey("topics") }
func (r *Redis) deletedTopicsKey() string                   { return r.metaKey("topics:deleted") }
func (r *Redis) topicKey(id uuid.UUID) string               { return r.metaKey("topic:" + id.String()) }
func (r *Redis) partitionMeta(id uuid.UUID, p int32) string { return r.partitionKey(id, p, "meta") }

// configFields is the record form of a config.
func configFields(cfg TopicConfig) []any {
	fields := []any{
		"partitions", strconv.Itoa(int(cfg.Partitions)),
		ConfigRetentionMs, strconv.FormatInt(cfg.RetentionMs, 10),
		ConfigRetentionBytes, strconv.FormatInt(cfg.RetentionBytes, 10),
		ConfigMaxMessageBytes, strconv.Itoa(int(cfg.MaxMessageBytes)),
		ConfigCleanupPolicy, cfg.CleanupPolicy,
		ConfigCompression, cfg.Compression,
		ConfigArchiveAfterMs, strconv.FormatInt(cfg.ArchiveAfterMs, 10),
		ConfigDeleteRetentionMs, strconv.FormatInt(cfg.DeleteRetentionMs, 10),
		ConfigMinCompactionLagMs, strconv.FormatInt(cfg.MinCompactionLagMs, 10),
		ConfigMinCleanableDirtyRatio, FormatDirtyRatio(cfg.MinCleanableDirtyRatio),
	}
	passive := cfg.Passive.Map()
	for _, k := range slices.Sorted(maps.Keys(passive)) {
		fields = append(fields, k, passive[k])
	}
	return fields
}

// FormatDirtyRatio is min.cleanable.dirty.ratio as the index keeps and
// the APIs report it ("0.5").
func FormatDirtyRatio(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// parseTopic reads a topic record; corrupt numbers are ErrUnavailable
// because they mean the index was written by something else.
func parseTopic(id uuid.UUID, f map[string]string) (Topic, error) {
	t := Topic{Name: f["name"], ID: id}
	ints := []struct {
		key string
		dst *int64
	}{{"partitions", new(int64)}, {ConfigRetentionMs, &t.Config.RetentionMs}, {ConfigRetentionBytes, &t.Config.RetentionBytes},
		{ConfigMaxMessageBytes, new(int64)}, {"created", new(int64)}}
	for _, i := range ints {
		v, err := strconv.ParseInt(f[i.key], 10, 64)
		if err != nil {
			return Topic{}, fmt.Errorf("%w: topic %s field %s: %q", ErrUnavailable, id, i.key, f[i.key])
		}
		*i.dst = v
	}
	t.Config.Partitions = int32(*ints[0].dst)
	t.Config.MaxMessageBytes = int32(*ints[3].dst)
	t.CreatedAt = time.UnixMilli(*ints[4].dst)
	t.Config.CleanupPolicy = f[ConfigCleanupPolicy]
	t.Config.Compression = f[ConfigCompression]
	// Topics created before archive.after.ms existed have the default.
	t.Config.ArchiveAfterMs = DefaultArchiveAfterMs
	if v, ok := f[ConfigArchiveAfterMs]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Topic{}, fmt.Errorf("%w: topic %s field %s: %q", ErrUnavailable, id, ConfigArchiveAfterMs, v)
		}
		t.Config.ArchiveAfterMs = n
	}
	// Topics created before the cleaner's keys existed have the defaults.
	t.Config.DeleteRetentionMs = DefaultDeleteRetentionMs
	t.Config.MinCleanableDirtyRatio = DefaultMinCleanableDirtyRatio
	for _, k := range []struct {
		key string
		dst *int64
	}{{ConfigDeleteRetentionMs, &t.Config.DeleteRetentionMs}, {ConfigMinCompactionLagMs, &t.Config.MinCompactionLagMs}} {
		if v, ok := f[k.key]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Topic{}, fmt.Errorf("%w: topic %s field %s: %q", ErrUnavailable, id, k.key, v)
			}
			*k.dst = n
		}
	}
	if v, ok := f[ConfigMinCleanableDirtyRatio]; ok {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return Topic{}, fmt.Errorf("%w: topic %s field %s: %q", ErrUnavailable, id, ConfigMinCleanableDirtyRatio, v)
		}
		t.Config.MinCleanableDirtyRatio = n
	}
	// Passive keys are in the record once set; the default reads as unset.
	passive := map[string]string{}
	for _, p := range passiveConfigs {
		if v, ok := f[p.Name]; ok && v != p.Default {
			passive[p.Name] = v
		}
	}
	t.Config.Passive = passiveValuesOf(passive)
	return t, nil
}

// CreateTopic creates a topic with a new immutable id.
func (r *Redis) CreateTopic(ctx context.Context, name string, cfg TopicConfig) (Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return Topic{}, err
	}
	cfg, err := r.withDefaults(cfg)
	if err != nil {
		return Topic{}, err
	}
	t := Topic{Name: name, ID: uuid.New(), Config: cfg, CreatedAt: time.UnixMilli(time.Now().UnixMilli())}
	if err := r.setPartitionsLive(ctx, t.ID, 0, cfg.Partitions); err != nil {
		return Topic{}, wrapErr("create topic "+name, err)
	}
	fields := append([]any{"name", name, "created", strconv.FormatInt(t.CreatedAt.UnixMilli(), 10)}, configFields(cfg)...)
	reply, err := r.run(ctx, topicCreateScript, []string{r.topicNamesKey(), r.topicKey(t.ID)},
		append([]any{name, t.ID.String()}, fields...)...).Result()
	if err != nil {
		return Topic{}, wrapErr("create topic "+name, err)
	}
	if reply != int64(1) {
		// Taken, or colliding: our metas were never visible.
		if err := r.deletePartitionMetas(ctx, t.ID, 0, cfg.Partitions); err != nil {
			return Topic{}, wrapErr("create topic "+name, err)
		}
		other, _ := reply.(string)
		switch {
		case reply == int64(0):
			return Topic{}, fmt.Errorf("create topic: %w: topic %q", ErrAlreadyExists, name)
		case strings.HasPrefix(other, "C"):
			// Kafka's CreateTopics answers INVALID_TOPIC_EXCEPTION.
			return Topic{}, fmt.Errorf("create topic: %w: topic %q collides with existing topic %q: Kafka's metric names make '.' and '_' the same",
				ErrInvalidTopicName, name, other[1:])
		}
		return Topic{}, fmt.Errorf("create topic %s: %w: script reply %v", name, ErrUnavailable, reply)
	}
	return t, wrapErr("create topic "+name, r.durable(ctx))
}

// setPartitionsLive marks partitions [from, to) as taking commits. HSETNX
// never revives a deleted partition nor touches a live one.
func (r *Redis) setPartitionsLive(ctx context.Context, id uuid.UUID, from, to int32) error {
	pipe := r.client.Pipeline()
	for p := from; p < to; p++ {
		pipe.HSetNX(ctx, r.partitionMeta(id, p), "s", "live")
	}
	_, err := pipe.Exec(ctx)
	return err
}

func (r *Redis) markPartitionsDeleted(ctx context.Context, id uuid.UUID, from, to int32) error {
	pipe := r.client.Pipeline()
	for p := from; p < to; p++ {
		pipe.HSet(ctx, r.partitionMeta(id, p), "s", "deleted")
	}
	_, err := pipe.Exec(ctx)
	return err
}

func (r *Redis) deletePartitionMetas(ctx context.Context, id uuid.UUID, from, to int32) error {
	pipe := r.client.Pipeline()
	for p := from; p < to; p++ {
		pipe.Del(ctx, r.partitionMeta(id, p))
	}
	_, err := pipe.Exec(ctx)
	return err
}

// resolve maps a name to its topic id.
func (r *Redis) resolve(ctx context.Context, name string) (uuid.UUID, error) {
	if err := ValidateTopicName(name); err != nil {
		return uuid.Nil, err
	}
	s, err := r.client.HGet(ctx, r.topicNamesKey(), name).Result()
	if errors.Is(err, redis.Nil) {
		return uuid.Nil, fmt.Errorf("%w: topic %q", ErrNotFound, name)
	}
	if err != nil {
		return uuid.Nil, err
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, fmt.Errorf("%w: topic %q maps to %q", ErrUnavailable, name, s)
	}
	return id, nil
}

// DeleteTopic removes the name, then marks every partition deleted so that
// commits to it fail with ErrTopicDeleted. The record stays (marked deleted,
// listed in {m}:topics:deleted) for garbage collection. If a previous
// DeleteTopic died between the two steps, this call finishes its marking.
func (r *Redis) DeleteTopic(ctx context.Context, name string) error {
	id, err := r.resolve(ctx, name)
	if err != nil {
		return wrapErr("delete topic", err)
	}
	n, err := r.run(ctx, topicDeleteScript, []string{r.topicNamesKey(), r.topicKey(id), r.deletedTopicsKey()},
		name, id.String(), time.Now().UnixMilli()).Int()
	if err != nil {
		return wrapErr("delete topic "+name, err)
	}
	if n < 0 {
		// Deleted (and maybe recreated) concurrently: the topic this call
		// resolved is gone either way.
		return fmt.Errorf("delete topic: %w: topic %q", ErrNotFound, name)
	}
	if err := r.sealDeleted(ctx, id, int32(n)); err != nil {
		return wrapErr("delete topic "+name, err)
	}
	if err := r.sealPendingDeletes(ctx); err != nil {
		return wrapErr("delete topic "+name, err)
	}
	if err := r.durable(ctx); err != nil {
		return wrapErr("delete topic "+name, err)
	}
	r.forgetTopicOffsets(ctx, name, id, int32(n))
	return nil
}

// forgetTopicOffsets deletes every group's committed offsets of the deleted
// topic id, as Kafka does when a topic is deleted. It is best effort: the
// groups live in other slots, so this cannot be atomic with the delete, and
// a group committing while it runs, or a failure part way, may leave some.
// What guarantees that no offset of the deleted topic is ever applied to a
// new topic of the same name is the topic id stored with every offset,
// checked by the readers of offsets; this only saves them the work and
// keeps `group describe` tidy.
func (r *Redis) forgetTopicOffsets(ctx context.Context, name string, id uuid.UUID, partitions int32) {
	groups, err := r.client.SMembers(ctx, r.groupIndexKey()).Result()
	if err != nil {
		return
	}
	tps := make([]TopicPartition, partitions)
	for p := range partitions {
		tps[p] = TopicPartition{Topic: name, Partition: p}
	}
	for _, g := range groups {
		if _, err := r.DeleteTopicOffsets(ctx, g, id, tps); err != nil && ctx.Err() != nil {
			return
		}
	}
}

// sealDeleted marks a deleted topic's partitions and then its record.
func (r *Redis) sealDeleted(ctx context.Context, id uuid.UUID, partitions int32) error {
	if err := r.markPartitionsDeleted(ctx, id, 0, partitions); err != nil {
		return err
	}
	return r.client.HSet(ctx, r.topicKey(id), "sealed", "1").Err()
}

// sealPendingDeletes finishes deletions whose caller died after hiding the
// name: their partitions would otherwise keep accepting commits.
func (r *Redis) sealPendingDeletes(ctx context.Context) error {
	ids, err := r.client.SMembers(ctx, r.deletedTopicsKey()).Result()
	if err != nil || len(ids) == 0 {
		return err
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, s := range ids {
		id, err := uuid.Parse(s)
		if err != nil {
			return fmt.Errorf("%w: deleted topic id %q", ErrUnavailable, s)
		}
		cmds[i] = pipe.HMGet(ctx, r.topicKey(id), "sealed", "partitions")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for i, c := range cmds {
		v := c.Val()
		if v[0] != nil || v[1] == nil {
			continue // sealed, or already collected
		}
		n, err := strconv.Atoi(v[1].(string))
		if err != nil {
			return fmt.Errorf("%w: deleted topic %s partitions %q", ErrUnavailable, ids[i], v[1])
		}
		if err := r.sealDeleted(ctx, uuid.MustParse(ids[i]), int32(n)); err != nil {
			return err
		}
	}
	return nil
}

// DescribeTopic returns a live topic.
func (r *Redis) DescribeTopic(ctx context.Context, name string) (Topic, error) {
	return r.describeTopic(ctx, "describe topic", name)
}

// describeTopic is DescribeTopic with its errors prefixed by op, the
// operation the caller performs (an error of CreatePartitions says so).
func (r *Redis) describeTopic(ctx context.Context, op, name string) (Topic, error) {
	id, err := r.resolve(ctx, name)
	if err != nil {
		return Topic{}, wrapErr(op, err)
	}
	f, err := r.client.HGetAll(ctx, r.topicKey(id)).Result()
	if err != nil {
		return Topic{}, wrapErr(op+" "+name, err)
	}
	if len(f) == 0 || f["deleted"] != "" || f["name"] != name {
		return Topic{}, fmt.Errorf("%s: %w: topic %q", op, ErrNotFound, name)
	}
	t, err := parseTopic(id, f)
	return t, wrapErr(op+" "+name, err)
}

// ListTopics returns the live topics sorted by name.
func (r *Redis) ListTopics(ctx context.Context) ([]Topic, error) {
	names, err := r.client.HGetAll(ctx, r.topicNamesKey()).Result()
	if err != nil {
		return nil, wrapErr("list topics", err)
	}
	type pending struct {
		id  uuid.UUID
		cmd *redis.MapStringStringCmd
	}
	pipe := r.client.Pipeline()
	var ps []pending
	for _, s := range names {
		id, err := uuid.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("list topics: %w: topic id %q", ErrUnavailable, s)
		}
		ps = append(ps, pending{id, pipe.HGetAll(ctx, r.topicKey(id))})
	}
	if len(ps) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, wrapErr("list topics", err)
		}
	}
	out := make([]Topic, 0, len(ps))
	for _, p := range ps {
		f := p.cmd.Val()
		if len(f) == 0 || f["deleted"] != "" {
			continue // deleted between the two reads
		}
		t, err := parseTopic(p.id, f)
		if err != nil {
			return nil, wrapErr("list topics", err)
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Topic) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// UpdateTopicConfig sets Kafka-named keys; an empty value restores the
// default. The whole resulting config is validated before anything is
// written.
func (r *Redis) UpdateTopicConfig(ctx context.Context, name string, set map[string]string) (Topic, error) {
	t, err := r.describeTopic(ctx, "update topic", name)
	if err != nil {
		return Topic{}, err
	}
	cfg, err := r.ApplyConfig(t.Config, set)
	if err != nil {
		return Topic{}, fmt.Errorf("update topic %q: %w", name, err)
	}
	var fields []any
	all := configFields(cfg)
	for i := 0; i < len(all); i += 2 {
		if _, ok := set[all[i].(string)]; ok {
			fields = append(fields, all[i], all[i+1])
		}
	}
	// configFields leaves out passive keys at their default; one put back
	// to it is written as the default, which parseTopic reads as unset.
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if _, ok := passiveConfig(k); ok {
			if _, own := cfg.Passive.Get(k); !own {
				fields = append(fields, k, cfg.PassiveValue(k))
			}
		}
	}
	out, err := r.casTopic(ctx, t, "", fields)
	if err != nil {
		return Topic{}, wrapErr("update topic "+name, err)
	}
	return out, wrapErr("update topic config "+name, r.durable(ctx))
}

// ApplyConfig returns cfg with the Kafka-named keys in set applied, validated
// as a whole; an empty value restores the key's default. CreateTopic callers
// use it to turn a request's key/value config into a TopicConfig.
func (r *Redis) ApplyConfig(cfg TopicConfig, set map[string]string) (TopicConfig, error) {
	defaults, err := r.withDefaults(TopicConfig{Partitions: max(cfg.Partitions, 1)})
	if err != nil {
		return TopicConfig{}, err
	}
	// Fields the base leaves zero take their defaults before the keys apply,
	// so a zero in set is refused rather than read as "default".
	if cfg, err = r.withDefaults(cfg); err != nil {
		return TopicConfig{}, err
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		v := set[k]
		var perr error
		switch k {
		case ConfigRetentionMs:
			cfg.RetentionMs, perr = parseConfigInt(k, v, defaults.RetentionMs)
		case ConfigRetentionBytes:
			cfg.RetentionBytes, perr = parseConfigInt(k, v, defaults.RetentionBytes)
		case ConfigMaxMessageBytes:
			var n int64
			n, perr = parseConfigInt(k, v, int64(defaults.MaxMessageBytes))
			if perr == nil && (n < 1 || n > int64(r.opts.MaxMessageBytesCap)) {
				// Checked here, before the int32 conversion, so the error
				// names the range rather than a wrapped value.
				perr = fmt.Errorf("%w: %s must be between 1 and the broker's cap %d, got %d", ErrInvalidConfig, k, r.opts.MaxMessageBytesCap, n)
			}
			cfg.MaxMessageBytes = int32(n)
		case ConfigCleanupPolicy:
			// Kafka's list type allows spaces around the commas.
			cfg.CleanupPolicy = cmp.Or(strings.ReplaceAll(v, " ", ""), defaults.CleanupPolicy)
		case ConfigCompression:
			cfg.Compression = cmp.Or(v, defaults.Compression)
		case ConfigArchiveAfterMs:
			cfg.ArchiveAfterMs, perr = parseConfigInt(k, v, defaults.ArchiveAfterMs)
		case ConfigDeleteRetentionMs:
			cfg.DeleteRetentionMs, perr = parseConfigInt(k, v, defaults.DeleteRetentionMs)
		case ConfigMinCompactionLagMs:
			cfg.MinCompactionLagMs, perr = parseConfigInt(k, v, defaults.MinCompactionLagMs)
		case ConfigMinCleanableDirtyRatio:
			cfg.MinCleanableDirtyRatio = defaults.MinCleanableDirtyRatio
			if v != "" {
				if cfg.MinCleanableDirtyRatio, perr = strconv.ParseFloat(v, 64); perr != nil {
					perr = fmt.Errorf("%w: %s must be a number between 0 and 1, got %q", ErrInvalidConfig, k, v)
				}
			}
		default:
			p, ok := passiveConfig(k)
			if !ok {
				perr = fmt.Errorf("%w: unknown config key %q; settable are %s", ErrInvalidConfig, k, strings.Join(ConfigKeys(), ", "))
				break
			}
			var pv string
			if pv, perr = p.parse(v); perr != nil {
				break
			}
			passive := cfg.Passive.Map()
			if pv == p.Default {
				delete(passive, k)
			} else {
				if passive == nil {
					passive = map[string]string{}
				}
				passive[k] = pv
			}
			cfg.Passive = passiveValuesOf(passive)
		}
		if perr != nil {
			return TopicConfig{}, perr
		}
	}
	return cfg, r.validateConfig(cfg)
}

// CreatePartitions raises the partition count. New partitions' metas are
// written before the count rises (a CAS on the record), so every partition
// a reader can see takes commits.
func (r *Redis) CreatePartitions(ctx context.Context, name string, total int32) (Topic, error) {
	for {
		t, err := r.describeTopic(ctx, "create partitions", name)
		if err != nil {
			return Topic{}, err
		}
		if total <= t.Config.Partitions {
			s := "s"
			if t.Config.Partitions == 1 {
				s = ""
			}
			return Topic{}, fmt.Errorf("create partitions: %w: topic %q has %d partition%s; the count can only rise", ErrInvalidPartitions, name, t.Config.Partitions, s)
		}
		if total > MaxPartitions {
			return Topic{}, fmt.Errorf("create partitions: %w", &LimitError{Err: ErrInvalidPartitions, Name: "partitions", Limit: MaxPartitions, Actual: int64(total),
				Msg: fmt.Sprintf("at most %d partitions, asked for %d", MaxPartitions, total)})
		}
		if err := r.setPartitionsLive(ctx, t.ID, t.Config.Partitions, total); err != nil {
			return Topic{}, wrapErr("create partitions", err)
		}
		out, err := r.casTopic(ctx, t, strconv.Itoa(int(t.Config.Partitions)), []any{"partitions", strconv.Itoa(int(total))})
		if errors.Is(err, ErrConflict) {
			continue // another CreatePartitions moved first; our metas are harmless
		}
		if errors.Is(err, ErrNotFound) {
			// Deleted meanwhile: the sweep saw the old count, so the metas we
			// added are ours to mark.
			if merr := r.markPartitionsDeleted(ctx, t.ID, t.Config.Partitions, total); merr != nil {
				return Topic{}, wrapErr("create partitions", merr)
			}
		}
		if err != nil {
			return Topic{}, wrapErr("create partitions "+name, err)
		}
		return out, wrapErr("create partitions "+name, r.durable(ctx))
	}
}

// casTopic sets fields on t's record if the name still maps to t.ID and,
// when partitions is not "", the partition count is still that.
func (r *Redis) casTopic(ctx context.Context, t Topic, partitions string, fields []any) (Topic, error) {
	v, err := r.run(ctx, topicUpdateScript, []string{r.topicNamesKey(), r.topicKey(t.ID)},
		append([]any{t.Name, t.ID.String(), partitions}, fields...)...).Result()
	if err != nil {
		return Topic{}, err
	}
	arr, _ := v.([]any)
	if len(arr) == 0 {
		return Topic{}, fmt.Errorf("%w: topic update reply %v", ErrUnavailable, v)
	}
	switch arr[0] {
	case int64(0):
		return Topic{}, fmt.Errorf("%w: topic %q", ErrNotFound, t.Name)
	case int64(-1):
		return Topic{}, fmt.Errorf("%w: topic %q changed partitions concurrently", ErrConflict, t.Name)
	}
	flat, err := replyStrings(arr[1:])
	if err != nil {
		return Topic{}, err
	}
	return parseTopic(t.ID, hashFields(flat))
}

// ConfigKeys returns the Kafka-named config keys a topic has, sorted: the
// ones Strata acts on and the PassiveConfigs it keeps without effect.
func ConfigKeys() []string {
	keys := []string{ConfigArchiveAfterMs, ConfigCleanupPolicy, ConfigCompression, ConfigDeleteRetentionMs, ConfigMaxMessageBytes,
		ConfigMinCleanableDirtyRatio, ConfigMinCompactionLagMs, ConfigRetentionBytes, ConfigRetentionMs}
	for _, p := range passiveConfigs {
		keys = append(keys, p.Name)
	}
	slices.Sort(keys)
	return keys
}

func parseConfigInt(key, v string, def int64) (int64, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s must be an integer, got %q", ErrInvalidConfig, key, v)
	}
	return n, nil
}

// The Redis index implements these interfaces; the checks keep it so.
var (
	_ Topics    = (*Redis)(nil)
	_ Log       = (*Redis)(nil)
	_ Producers = (*Redis)(nil)
	_ Notifier  = (*Redis)(nil)
)
