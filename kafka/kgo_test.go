package kafka_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Real franz-go clients (kgo, kadm) against the server over the fake core.

func newClient(t *testing.T, c *cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs[0])}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestKgoProduceConsumeIdempotent(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "", "", "")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	topic := topicName(t)
	adm := kadm.NewClient(newClient(t, c))
	if _, err := adm.CreateTopic(ctx, 4, -1, nil, topic); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}

	// Idempotence is kgo's default: the producer asks InitProducerId and
	// sends sequence numbers; pipelining of up to 5 requests per broker.
	prod := newClient(t, c, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond))
	const n = 300
	var want []*kgo.Record
	for i := range n {
		want = append(want, &kgo.Record{
			Key:     fmt.Appendf(nil, "key-%d", i%17),
			Value:   fmt.Appendf(nil, "value-%d", i),
			Headers: []kgo.RecordHeader{{Key: "h", Value: fmt.Appendf(nil, "%d", i)}},
		})
	}
	results := prod.ProduceSync(ctx, want...)
	if err := results.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	for _, r := range results {
		if r.Record.ProducerID < 0 {
			t.Fatalf("record produced without a producer id: idempotence not negotiated")
		}
	}

	cons := newClient(t, c, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	got := map[string]*kgo.Record{}
	nextOffset := map[int32]int64{}
	for len(got) < n {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(got), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != nextOffset[r.Partition] {
				t.Fatalf("partition %d: offset %d, want %d (offsets must be dense)", r.Partition, r.Offset, nextOffset[r.Partition])
			}
			nextOffset[r.Partition]++
			got[string(r.Value)] = r
		})
	}
	for _, w := range want {
		g, ok := got[string(w.Value)]
		if !ok {
			t.Fatalf("record %s not consumed", w.Value)
		}
		if string(g.Key) != string(w.Key) || len(g.Headers) != 1 || string(g.Headers[0].Value) != string(w.Headers[0].Value) {
			t.Fatalf("record %s: key %q headers %v, want key %q headers %v", w.Value, g.Key, g.Headers, w.Key, w.Headers)
		}
		if g.Partition != w.Partition || g.Offset != w.Offset {
			t.Fatalf("record %s at %d/%d, produce said %d/%d", w.Value, g.Partition, g.Offset, w.Partition, w.Offset)
		}
	}

	// The leaders are spread over the three brokers. Rendezvous hashing
	// puts 4 partitions on one broker 1 time in 27, so the spread is
	// checked on a topic of 32, where that is 1 in 6e14.
	spread := topic + "-spread"
	if _, err := adm.CreateTopic(ctx, 32, -1, nil, spread); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	leaders := map[int32]bool{}
	md, err := adm.Metadata(ctx, topic, spread)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(md.Topics[topic].Partitions.Sorted(), md.Topics[spread].Partitions.Sorted()...) {
		leaders[p.Leader] = true
		if p.LeaderEpoch != -1 {
			t.Errorf("partition %d leader epoch %d, want -1", p.Partition, p.LeaderEpoch)
		}
	}
	if len(md.Brokers) != 3 {
		t.Errorf("metadata lists %d brokers, want 3", len(md.Brokers))
	}
	if len(leaders) < 2 {
		t.Errorf("36 partitions led by %d broker(s) of 3; want them spread", len(leaders))
	}
}

func TestKgoAcksAndErrors(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	topic := topicName(t)
	adm := kadm.NewClient(newClient(t, c))
	maxBytes := "2000"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &maxBytes}, topic); err != nil {
		t.Fatal(err)
	}

	for _, acks := range []kgo.Acks{kgo.LeaderAck(), kgo.AllISRAcks()} {
		prod := newClient(t, c, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(acks), kgo.DisableIdempotentWrite())
		if err := prod.ProduceSync(ctx, kgo.StringRecord("x")).FirstErr(); err != nil {
			t.Fatalf("acks %v: %v", acks, err)
		}
		big := make([]byte, 5000) // random: compression must not shrink it under the limit
		rand.Read(big)
		err := prod.ProduceSync(ctx, &kgo.Record{Value: big}).FirstErr()
		if !errors.Is(err, kerr.MessageTooLarge) {
			t.Fatalf("acks %v: a 5000-byte record over max.message.bytes 2000: %v, want MESSAGE_TOO_LARGE", acks, err)
		}
	}

	// acks=0: no response is sent, yet the record is stored.
	prod := newClient(t, c, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	if err := prod.ProduceSync(ctx, kgo.StringRecord("no-ack")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for {
		end, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := end.Lookup(topic, 0); o.Offset == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the acks=0 record never arrived: end offset %v", end)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Producing to a topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION,
	// which kgo retries until its deadline.
	missing := newClient(t, c, kgo.DefaultProduceTopic(topic+"-missing"), kgo.RecordDeliveryTimeout(time.Second),
		kgo.DisableIdempotentWrite())
	if err := missing.ProduceSync(ctx, kgo.StringRecord("x")).FirstErr(); err == nil {
		t.Fatal("produce to a missing topic succeeded")
	}
}

func TestKadmAdmin(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cl := newClient(t, c)
	adm := kadm.NewClient(cl)
	topic := topicName(t)

	// Validate-only creates nothing.
	vo, err := adm.ValidateCreateTopics(ctx, 2, -1, nil, topic)
	if err != nil || vo.Error() != nil {
		t.Fatalf("validate-only create: %v %v", err, vo.Error())
	}
	if ts, _ := adm.ListTopics(ctx); ts.Has(topic) {
		t.Fatal("validate-only create created the topic")
	}

	retention := "3600000"
	created, err := adm.CreateTopic(ctx, 2, -1, map[string]*string{"retention.ms": &retention}, topic)
	if err != nil {
		t.Fatal(err)
	}
	if created.NumPartitions != 2 || created.ID == [16]byte{} {
		t.Fatalf("created %+v; want 2 partitions and a topic id", created)
	}
	again, _ := adm.CreateTopics(ctx, 2, -1, nil, topic)
	if err := again[topic].Err; err != kerr.TopicAlreadyExists {
		t.Fatalf("creating it again: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	rf0, _ := adm.CreateTopics(ctx, 1, 0, nil, topic+"-rf0")
	if err := rf0[topic+"-rf0"].Err; err != kerr.InvalidReplicationFactor {
		t.Fatalf("replication factor 0: %v, want INVALID_REPLICATION_FACTOR", err)
	}
	rf3, _ := adm.CreateTopics(ctx, 1, 3, nil, topic+"-rf3")
	if err := rf3[topic+"-rf3"].Err; err != nil {
		t.Fatalf("replication factor 3 (accepted, durability is the store's): %v", err)
	}
	bad, _ := adm.CreateTopics(ctx, 1, -1, map[string]*string{"no.such.config": &retention}, topic+"-bad")
	if err := bad[topic+"-bad"].Err; err != kerr.InvalidConfig {
		t.Fatalf("unknown config: %v, want INVALID_CONFIG", err)
	}

	// DescribeConfigs: the topic's own value and a default.
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs: %v %v", err, rc.Err)
	}
	cfgs := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		cfgs[c.Key] = c
	}
	if c := cfgs["retention.ms"]; c.Value == nil || *c.Value != retention || c.Source != 1 {
		t.Fatalf("retention.ms: %+v; want %s from the topic (source 1)", c, retention)
	}
	if c := cfgs["cleanup.policy"]; c.Value == nil || *c.Value != "delete" || c.Source != 5 {
		t.Fatalf("cleanup.policy: %+v; want the default delete (source 5)", c)
	}

	// IncrementalAlterConfigs: set, append to a list, delete.
	compact, newRetention := "compact", "7200000"
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: &newRetention},
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: &compact},
	}, topic)
	if err != nil || ar[0].Err != nil {
		t.Fatalf("incremental alter: %v %v", err, ar)
	}
	if got := describeOne(t, adm, topic, "cleanup.policy"); got != "delete,compact" {
		t.Fatalf("cleanup.policy after append: %q", got)
	}
	if got := describeOne(t, adm, topic, "retention.ms"); got != newRetention {
		t.Fatalf("retention.ms after set: %q", got)
	}
	ar, _ = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "retention.ms", Value: &compact}}, topic)
	if ar[0].Err != kerr.InvalidConfig {
		t.Fatalf("append to a non-list config: %v, want INVALID_CONFIG", ar[0].Err)
	}

	// AlterConfigs (the old, whole-set API): what is not named goes back to
	// its default.
	ar, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadmStr("5000")}}, topic)
	if err != nil || ar[0].Err != nil {
		t.Fatalf("alter configs: %v %v", err, ar)
	}
	if got := describeOne(t, adm, topic, "retention.ms"); got != "604800000" {
		t.Fatalf("retention.ms after a whole-set alter that did not name it: %q, want the default", got)
	}
	if got := describeOne(t, adm, topic, "max.message.bytes"); got != "5000" {
		t.Fatalf("max.message.bytes after alter: %q", got)
	}

	// CreatePartitions.
	cp, err := adm.UpdatePartitions(ctx, 3, topic)
	if err != nil || cp.Error() != nil {
		t.Fatalf("grow to 3 partitions: %v %v", err, cp.Error())
	}
	cp, _ = adm.UpdatePartitions(ctx, 2, topic)
	if err := cp[topic].Err; err != kerr.InvalidPartitions {
		t.Fatalf("shrink: %v, want INVALID_PARTITIONS", err)
	}

	// Produce, then list offsets by position and by time, then DeleteRecords.
	prod := newClient(t, c, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 5 {
		r := &kgo.Record{Value: []byte{byte(i)}, Partition: 1, Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := end.Lookup(topic, 1); o.Offset != 5 || o.Err != nil {
		t.Fatalf("end offset of partition 1: %+v, want 5", o)
	}
	after, err := adm.ListOffsetsAfterMilli(ctx, base.Add(150*time.Second).UnixMilli(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := after.Lookup(topic, 1); o.Offset != 3 || o.Timestamp != base.Add(3*time.Minute).UnixMilli() {
		t.Fatalf("offset after +150s: %+v, want offset 3 at +3m", o)
	}
	var del kadm.Offsets
	del.AddOffset(topic, 1, 2, -1)
	dr, err := adm.DeleteRecords(ctx, del)
	if err != nil {
		t.Fatal(err)
	}
	if r := dr[topic][1]; r.Err != nil || r.LowWatermark != 2 {
		t.Fatalf("delete records: %+v, want low watermark 2", r)
	}
	start, _ := adm.ListStartOffsets(ctx, topic)
	if o, _ := start.Lookup(topic, 1); o.Offset != 2 {
		t.Fatalf("start offset after DeleteRecords: %+v, want 2", o)
	}
	del = nil
	del.AddOffset(topic, 1, 99, -1)
	dr, _ = adm.DeleteRecords(ctx, del)
	if r := dr[topic][1]; r.Err != kerr.OffsetOutOfRange {
		t.Fatalf("delete records above the high watermark: %v, want OFFSET_OUT_OF_RANGE", r.Err)
	}

	// DescribeCluster via kadm's BrokerMetadata.
	bm, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bm.Cluster != "strata-test" || len(bm.Brokers) != 1 || bm.Controller != 1 {
		t.Fatalf("broker metadata: %+v", bm)
	}

	// DeleteTopics.
	dt, err := adm.DeleteTopics(ctx, topic)
	if err != nil || dt.Error() != nil {
		t.Fatalf("delete topic: %v %v", err, dt.Error())
	}
	// A fresh client: kgo caches metadata for a few seconds.
	ts, err := kadm.NewClient(newClient(t, c)).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Has(topic) {
		t.Fatalf("topic still listed after delete: %v", slices.Collect(func(yield func(string) bool) {
			for n := range ts {
				if !yield(n) {
					return
				}
			}
		}))
	}
	dt, _ = adm.DeleteTopics(ctx, topic)
	if err := dt[topic].Err; err != kerr.UnknownTopicOrPartition {
		t.Fatalf("deleting it again: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
}

func kadmStr(s string) *string { return &s }

func describeOne(t *testing.T, adm *kadm.Client, topic, name string) string {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == name && c.Value != nil {
			return *c.Value
		}
	}
	return ""
}
