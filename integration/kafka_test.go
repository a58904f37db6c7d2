package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// TestKafkaKillAgentUnderProducer: two agent processes over real MinIO and
// redis-server, each a Kafka broker. A franz-go idempotent producer writes
// through both (partition leaders are spread over them); one agent is
// killed with SIGKILL. The client recovers through the other agent, and
// every record it was acked is in the log at exactly its acked offset.
func TestKafkaKillAgentUnderProducer(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	kafkaA, kafkaB := freeAddr(t), freeAddr(t)
	victim := d.startAgent(t, "agent-a", "--kafka-listen", kafkaA, "--zone", "zone-a")
	survivor := d.startAgent(t, "agent-b", "--kafka-listen", kafkaB, "--zone", "zone-b")
	cb := newClients(survivor.url(), protoConnect)
	ctx := t.Context()

	const partitions = 4
	topic := "kafka-kill-" + randomHex(3)
	if _, err := cb.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: topic, Partitions: partitions})); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(kafkaA, kafkaB),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(500),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.MetadataMinAge(250*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// Both agents are brokers, and partitions are led by each of them.
	var brokers []string
	if !waitFor(30*time.Second, func() bool {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := cl.Request(ctx, req)
		if err != nil {
			return false
		}
		md := resp.(*kmsg.MetadataResponse)
		brokers = brokers[:0]
		for _, b := range md.Brokers {
			brokers = append(brokers, fmt.Sprintf("%s:%d", b.Host, b.Port))
		}
		return len(brokers) == 2
	}) {
		t.Fatalf("Metadata lists brokers %v, want both agents %s and %s", brokers, kafkaA, kafkaB)
	}
	slices.Sort(brokers)
	if want := slices.Sorted(slices.Values([]string{kafkaA, kafkaB})); !slices.Equal(brokers, want) {
		t.Fatalf("Metadata lists brokers %v, want %v", brokers, want)
	}

	// A client naming its zone in its client id sees its zone's agent alone.
	zoned, err := kgo.NewClient(kgo.SeedBrokers(kafkaA), kgo.ClientID("billing,zone=zone-b"))
	if err != nil {
		t.Fatal(err)
	}
	defer zoned.Close()
	resp, err := zoned.Request(ctx, kmsg.NewPtrMetadataRequest())
	if err != nil {
		t.Fatal(err)
	}
	if md := resp.(*kmsg.MetadataResponse); len(md.Brokers) != 1 || fmt.Sprintf("%s:%d", md.Brokers[0].Host, md.Brokers[0].Port) != kafkaB ||
		md.Brokers[0].Rack == nil || *md.Brokers[0].Rack != "zone-b" {
		t.Fatalf("a client of zone-b sees brokers %+v, want agent-b (%s) alone, rack zone-b", md.Brokers, kafkaB)
	}

	type ack struct {
		partition int32
		offset    int64
		value     string
	}
	var (
		mu         sync.Mutex
		acks       []ack
		failures   []error
		killed     atomic.Bool
		afterKill  [partitions]atomic.Int64
		stop       = make(chan struct{})
		producerWG sync.WaitGroup
	)
	producerWG.Go(func() {
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			p := int32(seq % partitions)
			v := fmt.Sprintf("r%07d", seq)
			cl.Produce(ctx, &kgo.Record{Partition: p, Value: []byte(v)}, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err)
					return
				}
				acks = append(acks, ack{r.Partition, r.Offset, string(r.Value)})
				if killed.Load() {
					afterKill[r.Partition].Add(1)
				}
			})
		}
	})
	ackCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acks)
	}
	stopped := false
	stopProducing := func() {
		if !stopped {
			stopped = true
			close(stop)
			producerWG.Wait()
		}
	}
	defer stopProducing()

	if !waitFor(60*time.Second, func() bool { return ackCount() >= 2000 }) {
		t.Fatalf("only %d records acked in 60s", ackCount())
	}
	beforeKill := ackCount()
	killed.Store(true)
	victim.kill()
	t.Logf("killed agent-a (SIGKILL) after %d acked records", beforeKill)
	// The victim stays in the registry until its registration expires
	// (15s); the client retries until then, and every partition must move
	// on through agent-b.
	allMoved := func() bool {
		for p := range partitions {
			if afterKill[p].Load() < 200 {
				return false
			}
		}
		return true
	}
	if !waitFor(90*time.Second, allMoved) {
		for p := range partitions {
			t.Logf("partition %d: %d acked after the kill", p, afterKill[p].Load())
		}
		t.Fatalf("the producer did not recover on every partition within 90s of the kill")
	}
	stopProducing()
	flushCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := cl.Flush(flushCtx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("%d records failed, first: %v", len(failures), failures[0])
	}
	t.Logf("%d records acked, %d after the kill", len(acks), len(acks)-beforeKill)

	// Everything acked is in the log, read over the Connect API through the
	// survivor, at its acked offset.
	logs := make([][]*stratav1.ConsumedRecord, partitions)
	for p := range int32(partitions) {
		logs[p] = readPartition(t, cb, topic, p, 0)
	}
	for _, a := range acks {
		l := logs[a.partition]
		if a.offset >= int64(len(l)) {
			t.Errorf("acked %q at %d/%d, but the partition ends at %d: an acked record is lost", a.value, a.partition, a.offset, len(l))
			continue
		}
		if got := string(l[a.offset].GetValue()); got != a.value {
			t.Errorf("acked %q at %d/%d, the log has %q there", a.value, a.partition, a.offset, got)
		}
	}
	dups := 0
	seen := map[string]bool{}
	for _, l := range logs {
		for _, r := range l {
			if seen[string(r.GetValue())] {
				dups++
			}
			seen[string(r.GetValue())] = true
		}
	}
	t.Logf("%d records stored, %d of them duplicates", len(seen)+dups, dups)
}
