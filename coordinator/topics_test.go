package coordinator_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/stratabroker/strata/coordinator"
)

func TestTopicsCRUD(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		a, err := r.CreateTopic(ctx, "orders", coordinator.TopicConfig{Partitions: 3})
		if err != nil {
			t.Fatal(err)
		}
		want := coordinator.TopicConfig{Partitions: 3, RetentionMs: 604800000, RetentionBytes: -1,
			MaxMessageBytes: 1048576, CleanupPolicy: "delete", Compression: "producer", ArchiveAfterMs: 600000,
			DeleteRetentionMs: 86400000, MinCompactionLagMs: 0, MinCleanableDirtyRatio: 0.5}
		if a.Config != want {
			t.Fatalf("defaults: got %+v, want %+v", a.Config, want)
		}
		if _, err := r.CreateTopic(ctx, "orders", coordinator.TopicConfig{}); !errors.Is(err, coordinator.ErrAlreadyExists) {
			t.Fatalf("second create: %v, want ErrAlreadyExists", err)
		}
		createTopic(t, r, "billing.v1", 1)

		d, err := r.DescribeTopic(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != a.ID || d.Config != a.Config || d.Name != "orders" || !d.CreatedAt.Equal(a.CreatedAt) {
			t.Fatalf("describe: got %+v, want %+v", d, a)
		}
		list, err := r.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Name != "billing.v1" || list[1].Name != "orders" {
			t.Fatalf("list: %+v", list)
		}

		u, err := r.UpdateTopicConfig(ctx, "orders", map[string]string{"retention.ms": "-1", "compression.type": "zstd"})
		if err != nil {
			t.Fatal(err)
		}
		if u.Config.RetentionMs != -1 || u.Config.Compression != "zstd" || u.Config.Partitions != 3 {
			t.Fatalf("update: %+v", u.Config)
		}
		u, err = r.UpdateTopicConfig(ctx, "orders", map[string]string{"compression.type": ""})
		if err != nil || u.Config.Compression != "producer" || u.Config.RetentionMs != -1 {
			t.Fatalf("reset to default: %+v, %v", u.Config, err)
		}

		p, err := r.CreatePartitions(ctx, "orders", 5)
		if err != nil || p.Config.Partitions != 5 {
			t.Fatalf("create partitions: %+v, %v", p.Config, err)
		}
		for _, total := range []int32{5, 4} {
			if _, err := r.CreatePartitions(ctx, "orders", total); !errors.Is(err, coordinator.ErrInvalidPartitions) {
				t.Fatalf("CreatePartitions(%d): %v, want ErrInvalidPartitions", total, err)
			}
		}
		// The new partitions take commits at once.
		res := commit(t, r, segment(a.ID, 4, plain(0, 10, 2, 1)))
		wantOffsets(t, res[0], 0)

		if err := r.DeleteTopic(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{
			r.DeleteTopic(ctx, "orders"),
			func() error { _, err := r.DescribeTopic(ctx, "orders"); return err }(),
			func() error { _, err := r.UpdateTopicConfig(ctx, "orders", nil); return err }(),
			func() error { _, err := r.CreatePartitions(ctx, "orders", 9); return err }(),
		} {
			wantErr(t, err, coordinator.ErrNotFound)
		}
		list, _ = r.ListTopics(ctx)
		if len(list) != 1 || list[0].Name != "billing.v1" {
			t.Fatalf("list after delete: %+v", list)
		}
		b := createTopic(t, r, "orders", 1)
		if b.ID == a.ID {
			t.Fatal("a recreated topic kept its old id")
		}
	})
}

func TestTopicValidation(t *testing.T) {
	forEachBackend(t, coordinator.Options{MaxMessageBytesCap: 8 << 20}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		for _, tc := range []struct {
			name string
			cfg  coordinator.TopicConfig
			rule string // a piece of the message
			kind error  // the finer sentinel, also an ErrInvalid
		}{
			{"", coordinator.TopicConfig{}, "empty", coordinator.ErrInvalidTopicName},
			{".", coordinator.TopicConfig{}, "cannot be", coordinator.ErrInvalidTopicName},
			{"..", coordinator.TopicConfig{}, "cannot be", coordinator.ErrInvalidTopicName},
			{strings.Repeat("a", 250), coordinator.TopicConfig{}, "limit is 249", coordinator.ErrInvalidTopicName},
			{"with space", coordinator.TopicConfig{}, "allowed are", coordinator.ErrInvalidTopicName},
			{"caf\u00e9", coordinator.TopicConfig{}, "allowed are", coordinator.ErrInvalidTopicName},
			{"a/b", coordinator.TopicConfig{}, "allowed are", coordinator.ErrInvalidTopicName},
			{"ok", coordinator.TopicConfig{Partitions: -1}, "partitions", coordinator.ErrInvalidPartitions},
			{"ok", coordinator.TopicConfig{Partitions: 10001}, "partitions", coordinator.ErrInvalidPartitions},
			{"ok", coordinator.TopicConfig{RetentionMs: -2}, "retention.ms", coordinator.ErrInvalidConfig},
			{"ok", coordinator.TopicConfig{RetentionBytes: -5}, "retention.bytes", coordinator.ErrInvalidConfig},
			{"ok", coordinator.TopicConfig{MaxMessageBytes: 9 << 20}, "max.message.bytes", coordinator.ErrInvalidConfig},
			{"ok", coordinator.TopicConfig{MaxMessageBytes: -1}, "max.message.bytes", coordinator.ErrInvalidConfig},
			{"ok", coordinator.TopicConfig{CleanupPolicy: "compact,compact"}, "cleanup.policy", coordinator.ErrInvalidConfig},
			{"ok", coordinator.TopicConfig{CleanupPolicy: "shred"}, "cleanup.policy", coordinator.ErrInvalidConfig},
			{"ok", coordinator.TopicConfig{DeleteRetentionMs: -1}, "delete.retention.ms", coordinator.ErrInvalidConfig},
			{"ok", coordinator.TopicConfig{MinCompactionLagMs: -1}, "min.compaction.lag.ms", coordinator.ErrInvalidConfig},
			{"ok", coordinator.TopicConfig{MinCleanableDirtyRatio: 1.5}, "min.cleanable.dirty.ratio", coordinator.ErrInvalidConfig},
			{"ok", coordinator.TopicConfig{MinCleanableDirtyRatio: -0.1}, "min.cleanable.dirty.ratio", coordinator.ErrInvalidConfig},
			{"ok", coordinator.TopicConfig{Compression: "brotli"}, "compression.type", coordinator.ErrInvalidConfig},
		} {
			_, err := r.CreateTopic(ctx, tc.name, tc.cfg)
			if !errors.Is(err, coordinator.ErrInvalid) || !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.rule) {
				t.Errorf("CreateTopic(%.20q, %+v): %v, want %v about %q", tc.name, tc.cfg, err, tc.kind, tc.rule)
			}
		}
		// The edges that are allowed.
		for _, name := range []string{strings.Repeat("x", 249), "a.b_c-D9", "..."} {
			createTopic(t, r, name, 1)
		}
		tp, err := r.CreateTopic(ctx, "capped", coordinator.TopicConfig{Partitions: 10000, MaxMessageBytes: 8 << 20})
		if err != nil || tp.Config.MaxMessageBytes != 8<<20 {
			t.Fatalf("edge config: %+v, %v", tp, err)
		}
		for _, set := range []map[string]string{
			{"retention.ms": "soon"},
			{"retention.ms": "0"},
			{"retention.bytes": "-2"},
			{"max.message.bytes": "9999999999"},
			{"max.message.bytes": "8388609"},
			{"cleanup.policy": "compact,shred"},
			{"delete.retention.ms": "0"},
			{"min.compaction.lag.ms": "-5"},
			{"min.cleanable.dirty.ratio": "half"},
			{"min.cleanable.dirty.ratio": "0"},
			{"compression.type": "LZ4"},
			{"segment.ms": "0"},
			{"segment.bytes": "1048575"},
			{"message.timestamp.type": "LogAppendTime"},
			{"min.insync.replicas": "0"},
			{"preallocate": "yes"},
			{"no.such.key": "1"},
			{"partitions": "4"},
		} {
			if _, err := r.UpdateTopicConfig(ctx, "capped", set); !errors.Is(err, coordinator.ErrInvalidConfig) {
				t.Errorf("UpdateTopicConfig(%v): %v, want ErrInvalidConfig", set, err)
			}
		}
		after, err := r.DescribeTopic(ctx, "capped")
		if err != nil || after.Config != tp.Config {
			t.Fatalf("refused updates changed the topic: %+v, %v", after.Config, err)
		}
		_, err = r.CreatePartitions(ctx, "capped", 100000)
		wantLimit(t, err, coordinator.ErrInvalidPartitions, coordinator.LimitError{Name: "partitions", Limit: 10000, Actual: 100000})
		_, err = r.CreateTopic(ctx, "ok", coordinator.TopicConfig{Partitions: 10001})
		wantLimit(t, err, coordinator.ErrInvalidPartitions, coordinator.LimitError{Name: "partitions", Limit: 10000, Actual: 10001})
		_, err = r.CreateTopic(ctx, strings.Repeat("a", 250), coordinator.TopicConfig{})
		wantLimit(t, err, coordinator.ErrInvalidTopicName, coordinator.LimitError{Name: "topic name length", Limit: 249, Actual: 250})
	})
}

func TestConcurrentCreateTopic(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		won, lost := 0, 0
		for range 8 {
			wg.Go(func() {
				_, err := r.CreateTopic(t.Context(), "race", coordinator.TopicConfig{Partitions: 4})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case errors.Is(err, coordinator.ErrAlreadyExists):
					lost++
				default:
					t.Errorf("CreateTopic: %v", err)
				}
			})
		}
		wg.Wait()
		if won != 1 || lost != 7 {
			t.Fatalf("%d creates won and %d lost, want 1 and 7", won, lost)
		}
		// Concurrent increases: each either raises the count or finds it
		// already at least as high; the final count is the highest asked.
		for i := range int32(6) {
			wg.Go(func() {
				_, err := r.CreatePartitions(t.Context(), "race", 5+i)
				if err != nil && !errors.Is(err, coordinator.ErrInvalid) {
					t.Errorf("CreatePartitions(%d): %v", 5+i, err)
				}
			})
		}
		wg.Wait()
		tp, err := r.DescribeTopic(t.Context(), "race")
		if err != nil || tp.Config.Partitions != 10 {
			t.Fatalf("after concurrent increases: %+v, %v", tp.Config, err)
		}
		for p := range tp.Config.Partitions {
			if _, err := r.PartitionState(t.Context(), tp.ID, p); err != nil {
				t.Errorf("partition %d: %v", p, err)
			}
		}
		if _, err := r.PartitionState(t.Context(), tp.ID, tp.Config.Partitions); !errors.Is(err, coordinator.ErrNotFound) {
			t.Errorf("partition past the count: %v", err)
		}
	})
}

// TestDeleteTopicFinishesInterruptedDelete: a DeleteTopic that died after
// hiding the name left live partitions; the next DeleteTopic marks them, so
// commits to them fail from then on.
func TestDeleteTopicFinishesInterruptedDelete(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		half := createTopic(t, r, "half", 2)
		createTopic(t, r, "other", 1)
		// What topic_delete.lua does, without the marking that follows it.
		pre := r.Options().Prefix + "{m}:"
		c := r.Client()
		if err := errors.Join(
			c.HDel(ctx, pre+"topics", "half").Err(),
			c.HSet(ctx, pre+"topic:"+half.ID.String(), "deleted", "1").Err(),
			c.SAdd(ctx, pre+"topics:deleted", half.ID.String()).Err(),
		); err != nil {
			t.Fatal(err)
		}
		wantOffsets(t, commit(t, r, segment(half.ID, 1, plain(0, 1, 1, 1)))[0], 0)
		if err := r.DeleteTopic(ctx, "other"); err != nil {
			t.Fatal(err)
		}
		for p := range int32(2) {
			res := commit(t, r, segment(half.ID, p, plain(0, 1, 1, 1)))[0]
			wantErr(t, res.Batches[0].Err, coordinator.ErrTopicDeleted)
		}
	})
}

// TestTopicUpdateErrorsNameTheirOperation: CreatePartitions and
// UpdateTopicConfig read the topic first; an error of that read is said as
// theirs, not as a describe the caller never made.
func TestTopicUpdateErrorsNameTheirOperation(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	r, err := coordinator.Open(t.Context(), "redis://"+m.Addr(), coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	createTopic(t, r, "cp", 1)
	for _, c := range []struct {
		op   string
		call func() error
	}{
		{"create partitions", func() error { _, err := r.CreatePartitions(t.Context(), "nope", 2); return err }},
		{"update topic", func() error {
			_, err := r.UpdateTopicConfig(t.Context(), "nope", map[string]string{"retention.ms": "1000"})
			return err
		}},
	} {
		if err := c.call(); !errors.Is(err, coordinator.ErrNotFound) || !strings.HasPrefix(err.Error(), c.op+": ") {
			t.Errorf("%s of a missing topic: %v, want NotFound said as %q", c.op, err, c.op)
		}
	}
	m.SetError("LOADING the index is loading")
	for _, c := range []struct {
		op   string
		call func() error
	}{
		{"create partitions", func() error { _, err := r.CreatePartitions(t.Context(), "cp", 2); return err }},
		{"update topic", func() error {
			_, err := r.UpdateTopicConfig(t.Context(), "cp", map[string]string{"retention.ms": "1000"})
			return err
		}},
	} {
		err := c.call()
		if err == nil || !strings.HasPrefix(err.Error(), c.op) || strings.Contains(err.Error(), "describe topic") {
			t.Errorf("%s with the index failing: %v, want an error said as %q", c.op, err, c.op)
		}
	}
}

// wantLimit checks that err is kind and a LimitError with want's limit.
func wantLimit(t *testing.T, err, kind error, want coordinator.LimitError) {
	t.Helper()
	var le *coordinator.LimitError
	if !errors.Is(err, kind) || !errors.Is(err, coordinator.ErrInvalid) || !errors.As(err, &le) {
		t.Fatalf("error %v, want a LimitError that is %v", err, kind)
	}
	if le.Name != want.Name || le.Limit != want.Limit || le.Actual != want.Actual {
		t.Errorf("limit %q %d, actual %d; want %q %d, actual %d", le.Name, le.Limit, le.Actual, want.Name, want.Limit, want.Actual)
	}
}

// TestCleanupPolicyAndCleanerConfigs: cleanup.policy takes Kafka's list
// values, and the log cleaner's keys are kept, read back and reset.
func TestCleanupPolicyAndCleanerConfigs(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp, err := r.CreateTopic(ctx, "state", coordinator.TopicConfig{CleanupPolicy: "compact", DeleteRetentionMs: 1000,
			MinCompactionLagMs: 5, MinCleanableDirtyRatio: 0.25})
		if err != nil {
			t.Fatal(err)
		}
		if !tp.Config.Compacted() || tp.Config.DeletesByRetention() {
			t.Fatalf("compact: compacted %v, deletes %v", tp.Config.Compacted(), tp.Config.DeletesByRetention())
		}
		got, err := r.DescribeTopic(ctx, "state")
		if err != nil || got.Config != tp.Config {
			t.Fatalf("read back %+v %v, want %+v", got.Config, err, tp.Config)
		}
		for _, c := range []struct {
			set               string
			want              string
			compacted, delete bool
		}{
			{"compact,delete", "compact,delete", true, true},
			{"delete, compact", "delete,compact", true, true},
			{"delete", "delete", false, true},
			{"", "delete", false, true},
			{"compact", "compact", true, false},
		} {
			tp, err := r.UpdateTopicConfig(ctx, "state", map[string]string{"cleanup.policy": c.set})
			if err != nil || tp.Config.CleanupPolicy != c.want || tp.Config.Compacted() != c.compacted || tp.Config.DeletesByRetention() != c.delete {
				t.Fatalf("cleanup.policy %q: %+v %v", c.set, tp.Config, err)
			}
		}
		tp, err = r.UpdateTopicConfig(ctx, "state", map[string]string{"delete.retention.ms": "60000",
			"min.compaction.lag.ms": "100", "min.cleanable.dirty.ratio": "0.9"})
		if err != nil || tp.Config.DeleteRetentionMs != 60000 || tp.Config.MinCompactionLagMs != 100 || tp.Config.MinCleanableDirtyRatio != 0.9 {
			t.Fatalf("set cleaner keys: %+v %v", tp.Config, err)
		}
		tp, err = r.UpdateTopicConfig(ctx, "state", map[string]string{"delete.retention.ms": "",
			"min.compaction.lag.ms": "", "min.cleanable.dirty.ratio": ""})
		if err != nil || tp.Config.DeleteRetentionMs != 86400000 || tp.Config.MinCompactionLagMs != 0 || tp.Config.MinCleanableDirtyRatio != 0.5 {
			t.Fatalf("reset cleaner keys: %+v %v", tp.Config, err)
		}
	})
}

// issue 12: names that are one in Kafka's metric names ('.' and '_' the
// same) cannot both be topics, as Kafka's CreateTopics refuses
// (INVALID_TOPIC_EXCEPTION "collides with existing topic"); the name is
// free again once the other topic is deleted.
func TestCreateTopicRefusesMetricNameCollision(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		cfg := coordinator.TopicConfig{Partitions: 1}
		if _, err := r.CreateTopic(ctx, "col.a", cfg); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"col_a", "col.a"} {
			_, err := r.CreateTopic(ctx, name, cfg)
			if name == "col.a" {
				if !errors.Is(err, coordinator.ErrAlreadyExists) {
					t.Fatalf("create col.a again: %v, want ErrAlreadyExists", err)
				}
				continue
			}
			if !errors.Is(err, coordinator.ErrInvalidTopicName) || !strings.Contains(err.Error(), `collides with existing topic "col.a"`) {
				t.Fatalf("create %s: %v, want ErrInvalidTopicName naming col.a", name, err)
			}
			if _, err := r.DescribeTopic(ctx, name); !errors.Is(err, coordinator.ErrNotFound) {
				t.Fatalf("refused %s is visible: %v", name, err)
			}
		}
		// Names that differ otherwise are free.
		if _, err := r.CreateTopic(ctx, "col-a", cfg); err != nil {
			t.Fatalf("col-a: %v", err)
		}
		if err := r.DeleteTopic(ctx, "col.a"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CreateTopic(ctx, "col_a", cfg); err != nil {
			t.Fatalf("col_a after col.a was deleted: %v", err)
		}
	})
}

// Kafka's standard topic configs that tune a broker's local log or its
// replicas are accepted with Kafka's validation, kept and read back, but
// change nothing (issue 12: Kafka Streams sets message.timestamp.type and
// segment.bytes/segment.ms on its internal topics).
func TestPassiveTopicConfigs(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		set := map[string]string{
			"segment.bytes":                         "52428800",
			"segment.ms":                            "600000",
			"message.timestamp.type":                "CreateTime",
			"min.insync.replicas":                   "2",
			"unclean.leader.election.enable":        "TRUE",
			"message.downconversion.enable":         "false",
			"local.retention.ms":                    "-2",
			"remote.storage.enable":                 "true",
			"max.compaction.lag.ms":                 "86400000",
			"leader.replication.throttled.replicas": "0:1, 1:2",
		}
		cfg, err := r.ApplyConfig(coordinator.TopicConfig{Partitions: 2}, set)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := r.CreateTopic(ctx, "streams-repartition", cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"segment.bytes":                         "52428800",
			"segment.ms":                            "600000",
			"min.insync.replicas":                   "2",
			"unclean.leader.election.enable":        "true",
			"message.downconversion.enable":         "false",
			"remote.storage.enable":                 "true",
			"max.compaction.lag.ms":                 "86400000",
			"leader.replication.throttled.replicas": "0:1,1:2",
			// At their defaults: reported, not kept as the topic's own.
			"message.timestamp.type": "CreateTime",
			"local.retention.ms":     "-2",
			"flush.messages":         "9223372036854775807",
		}
		d, err := r.DescribeTopic(ctx, "streams-repartition")
		if err != nil || d.Config != tp.Config {
			t.Fatalf("describe: %+v, %v; created %+v", d.Config, err, tp.Config)
		}
		for k, v := range want {
			if got := d.Config.PassiveValue(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if own := d.Config.Passive.Map(); len(own) != 8 {
			t.Errorf("own passive values %v, want the 8 set to other than the default", own)
		}
		// The acted-on configs are untouched.
		if d.Config.RetentionMs != coordinator.DefaultRetentionMs || d.Config.Partitions != 2 {
			t.Errorf("config %+v", d.Config)
		}

		// SET one, DELETE (empty value) another, as IncrementalAlterConfigs does.
		up, err := r.UpdateTopicConfig(ctx, "streams-repartition", map[string]string{"segment.ms": "1", "min.insync.replicas": ""})
		if err != nil {
			t.Fatal(err)
		}
		d, err = r.DescribeTopic(ctx, "streams-repartition")
		if err != nil || d.Config != up.Config {
			t.Fatalf("describe after update: %+v, %v; update returned %+v", d.Config, err, up.Config)
		}
		if got := d.Config.PassiveValue("segment.ms"); got != "1" {
			t.Errorf("segment.ms after SET = %q, want 1", got)
		}
		if _, own := d.Config.Passive.Get("min.insync.replicas"); own || d.Config.PassiveValue("min.insync.replicas") != "1" {
			t.Errorf("min.insync.replicas after DELETE: %v, want the default 1, not the topic's own", d.Config.Passive.Map())
		}
		if got := d.Config.PassiveValue("segment.bytes"); got != "52428800" {
			t.Errorf("segment.bytes not named by the update = %q, want it kept", got)
		}

		for _, c := range []struct{ key, value, msg string }{
			{"segment.bytes", "1000", "segment.bytes must be an integer between 1048576 and 2147483647"},
			{"segment.ms", "0", "segment.ms must be an integer between 1 and"},
			{"min.insync.replicas", "x", "min.insync.replicas must be an integer between 1 and 2147483647"},
			{"local.retention.bytes", "-3", "between -2 and"},
			{"preallocate", "yes", "preallocate must be true or false"},
			{"message.timestamp.type", "LogAppendTime", "LogAppendTime is not supported"},
			{"message.timestamp.type", "Whenever", "must be one of [CreateTime]"},
			{"follower.replication.throttled.replicas", "0-1", `"*" or a list of partition:broker pairs`},
			{"max.message.bytes", "-1", "max.message.bytes must be between 1 and the broker's cap"},
			{"max.message.bytes", "9999999999", "max.message.bytes must be between 1 and the broker's cap"},
		} {
			_, err := r.ApplyConfig(coordinator.TopicConfig{Partitions: 1}, map[string]string{c.key: c.value})
			if !errors.Is(err, coordinator.ErrInvalidConfig) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("%s=%s: %v, want ErrInvalidConfig saying %q", c.key, c.value, err, c.msg)
			}
		}
	})
}
