package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaConsumerReadsCleanedCompactTopic: a topic with cleanup.policy
// compact, written by a franz-go producer over the Kafka listener of a real
// agent process (MinIO, redis-server), is archived and cleaned by the
// agent; a franz-go consumer then reads it from the start over the Kafka
// listener and sees exactly the latest record of every key (tombstones
// included, delete.retention.ms being a day), at the offsets they were
// produced at. A record without a key is refused with INVALID_RECORD.
func TestKafkaConsumerReadsCleanedCompactTopic(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	kafkaAddr := freeAddr(t)
	a := d.startAgent(t, "cleaner", "--kafka-listen", kafkaAddr, "--compaction-interval", "200ms",
		"--janitor-interval", "500ms", "--unreferenced-grace", "0s", "--log-level", "debug", "--log-format", "text")
	c := newClients(a.url(), protoConnect)
	ctx := t.Context()
	topic := "state-" + randomHex(3)
	producer, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	// Kafka's CreateTopics with the cleaner's configs, and the policy list
	// appended to with IncrementalAlterConfigs: compact, then compact,delete
	// and back.
	adm := kadm.NewClient(producer)
	cfg := func(v string) *string { return &v }
	created, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": cfg("compact"),
		"archive.after.ms": cfg("1"), "min.cleanable.dirty.ratio": cfg("0.01"), "delete.retention.ms": cfg("86400000")}, topic)
	if err != nil || created.Err != nil {
		t.Fatalf("CreateTopics: %v %v", err, created.Err)
	}
	alter := func(op kadm.IncrementalOp, value string) {
		t.Helper()
		res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: op, Name: "cleanup.policy", Value: cfg(value)}}, topic)
		if err == nil {
			err = res[0].Err
		}
		if err != nil {
			t.Fatalf("alter cleanup.policy (%v %s): %v", op, value, err)
		}
	}
	describe := func(key string) string {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On(topic, nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("describe configs: %v %v", err, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == key && c.Value != nil {
				return *c.Value
			}
		}
		return ""
	}
	alter(kadm.AppendConfig, "delete")
	if got := describe("cleanup.policy"); got != "compact,delete" {
		t.Fatalf("cleanup.policy after appending delete: %q", got)
	}
	alter(kadm.SetConfig, "compact")
	if got, ratio := describe("cleanup.policy"), describe("min.cleanable.dirty.ratio"); got != "compact" || ratio != "0.01" {
		t.Fatalf("after setting compact: cleanup.policy %q, min.cleanable.dirty.ratio %q", got, ratio)
	}
	type latest struct {
		offset int64
		value  []byte
	}
	want := map[string]latest{}
	const keys, rounds = 20, 5
	for round := range rounds {
		var recs []*kgo.Record
		for k := range keys {
			r := &kgo.Record{Key: []byte(fmt.Sprintf("k%02d", k)), Value: []byte(fmt.Sprintf("v%d-%d", k, round))}
			if round == rounds-1 && k < 3 {
				r.Value = nil // tombstones for k00..k02
			}
			recs = append(recs, r)
		}
		for _, res := range producer.ProduceSync(ctx, recs...) {
			if res.Err != nil {
				t.Fatalf("produce: %v", res.Err)
			}
			want[string(res.Record.Key)] = latest{res.Record.Offset, res.Record.Value}
		}
	}
	// Kafka refuses a record without a key for a compacted topic.
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr(); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("produce without a key: %v, want INVALID_RECORD", err)
	}

	// The agent archives and cleans: reads come down to one record per key.
	if !waitFor(2*time.Minute, func() bool { return len(readAllRecords(t, c, topic)) == keys }) {
		t.Fatalf("never cleaned to %d records: read %d\n%s", keys, len(readAllRecords(t, c, topic)), tailLines(a.log(), 40))
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(1000), kgo.FetchMaxPartitionBytes(200))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := map[string]latest{}
	seen := 0
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for seen < keys {
		fs := consumer.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("consumer saw %d records, want %d: %v", seen, keys, got)
		}
		if err := fs.Err0(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			if _, dup := got[string(r.Key)]; dup {
				t.Errorf("key %s read twice (offset %d)", r.Key, r.Offset)
			}
			got[string(r.Key)] = latest{r.Offset, r.Value}
		})
	}
	if seen != keys || !maps.EqualFunc(got, want, func(a, b latest) bool {
		return a.offset == b.offset && string(a.value) == string(b.value) && (a.value == nil) == (b.value == nil)
	}) {
		t.Fatalf("the consumer read %d records:\n%v\nwant the latest per key:\n%v", seen, got, want)
	}
	// Nothing past them: a poll finds no more records.
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if fs := consumer.PollFetches(short); fs.NumRecords() != 0 {
		t.Fatalf("more records after the latest per key: %d", fs.NumRecords())
	}
	if !strings.Contains(a.log(), "cleaning: partition cleaned") {
		t.Fatalf("the agent never logged a cleaning pass:\n%s", tailLines(a.log(), 40))
	}
}
