package integration

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratabroker/strata/internal/testenv"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// TestKafkaTransactions: a franz-go transactional producer commits and
// aborts transactions over 3 partitions through two agent processes (real
// MinIO and redis-server). A read_committed franz-go consumer, kcat with
// isolation.level=read_committed and a native (Connect) read_committed
// reader all read exactly the committed records; a second producer with the
// same transactional id fences the first, whose records never appear.
func TestKafkaTransactions(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	kafkaA, kafkaB := freeAddr(t), freeAddr(t)
	agentA := d.startAgent(t, "agent-a", "--kafka-listen", kafkaA)
	d.startAgent(t, "agent-b", "--kafka-listen", kafkaB)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const partitions, perPartition, rounds = 3, 4, 6
	topic := "kafka-txn-" + randomHex(3)
	kafkaGroupTopic(t, ctx, []string{kafkaA, kafkaB}, topic, partitions)

	newProducer := func() *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaA, kafkaB), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID("kafka-txn-app"),
			kgo.TransactionTimeout(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	prod := newProducer()
	var committed []string
	for round := range rounds {
		commit := round%2 == 0
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var rs []*kgo.Record
		for p := range int32(partitions) {
			for i := range perPartition {
				v := fmt.Sprintf("%d-%d-%d", round, p, i)
				rs = append(rs, &kgo.Record{Partition: p, Value: []byte(v)})
				if commit {
					committed = append(committed, v)
				}
			}
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("round %d: transactional produce: %v", round, err)
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("round %d: EndTransaction(commit %v): %v", round, commit, err)
		}
	}

	// Fencing: a second producer of the transactional id takes it over;
	// the first can no longer add partitions or produce.
	newer := newProducer()
	if err := newer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := newer.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte("newer")}).FirstErr(); err != nil {
		t.Fatalf("the newer producer: %v", err)
	}
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	err := prod.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte("zombie")}).FirstErr()
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("the fenced producer's produce: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	if err := newer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("the newer producer's commit: %v", err)
	}
	committed = append(committed, "newer")
	slices.Sort(committed)

	// franz-go, read_committed.
	cons, err := kgo.NewClient(kgo.SeedBrokers(kafkaA, kafkaB), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for len(got) < len(committed) {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("kgo read_committed after %d records: %v", len(got), err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	cons.PollFetches(short).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	cancelShort()
	slices.Sort(got)
	if !slices.Equal(got, committed) {
		t.Fatalf("kgo read_committed read %d records %q,\nwant the %d committed %q", len(got), got, len(committed), committed)
	}

	// The native API, read_committed, agrees.
	native := readAll(t, newClients(agentA.url(), protoConnect), topic, partitions, stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED)
	slices.Sort(native)
	if !slices.Equal(native, committed) {
		t.Fatalf("native read_committed read %q, want %q", native, committed)
	}

	// kcat (librdkafka), read_committed, to the end of each partition.
	out, err := exec.CommandContext(ctx, testenv.KcatBin(t), "-b", kafkaA, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
		"-X", "isolation.level=read_committed", "-f", "%s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	kc := strings.Fields(string(out))
	slices.Sort(kc)
	if !slices.Equal(kc, committed) {
		t.Fatalf("kcat read_committed read %q, want %q", kc, committed)
	}

	// read_uncommitted sees the aborted records too.
	all := readAll(t, newClients(agentA.url(), protoConnect), topic, partitions, stratav1.IsolationLevel_ISOLATION_LEVEL_READ_UNCOMMITTED)
	if want := rounds*partitions*perPartition + 1; len(all) != want {
		t.Fatalf("read_uncommitted read %d records, want %d", len(all), want)
	}
}

// TestKafkaGroupTransactSession: franz-go's GroupTransactSession consumes
// an input topic in a group and writes each record to an output topic in
// transactions that commit the group's offsets with them (KIP-98's
// consume-transform-produce, TxnOffsetCommit), through an agent process.
// The output, read with read_committed, holds every input record exactly
// once, and the group's committed offsets are the input's ends.
func TestKafkaGroupTransactSession(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	kafkaA := freeAddr(t)
	d.startAgent(t, "agent-a", "--kafka-listen", kafkaA)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const partitions, perPartition = 3, 30
	in, out, group := "ctp-in-"+randomHex(3), "ctp-out-"+randomHex(3), "ctp-"+randomHex(3)
	prod := kafkaGroupTopic(t, ctx, []string{kafkaA}, in, partitions)
	kafkaGroupTopic(t, ctx, []string{kafkaA}, out, partitions)
	produceRound(t, ctx, prod, 0, partitions, perPartition)

	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(kafkaA), kgo.TransactionalID("ctp-"+randomHex(3)),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DefaultProduceTopic(out),
		kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	consumed := 0
	for consumed < partitions*perPartition {
		fs := sess.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("poll after %d records: %v", consumed, err)
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Partition: r.Partition, Value: append([]byte("out-"), r.Value...)}, nil)
		})
		ok, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			t.Fatalf("End after %d records: %v", consumed, err)
		}
		if ok {
			consumed += fs.NumRecords()
		}
	}

	adm := kadm.NewClient(prod)
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(partitions) {
		if o, ok := offsets.Lookup(in, p); !ok || o.At != perPartition {
			t.Errorf("group %s partition %d: committed %+v, want %d", group, p, o, perPartition)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(kafkaA), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]int{}
	total := 0
	for total < partitions*perPartition {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read the output after %d records: %v", total, err)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	cons.PollFetches(short).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
	cancelShort()
	for p := range partitions {
		for i := range perPartition {
			if v := fmt.Sprintf("out-0-%d-%d", p, i); seen[v] != 1 {
				t.Errorf("output holds %s %d times, want once", v, seen[v])
			}
		}
	}
	if total != partitions*perPartition {
		t.Errorf("output holds %d records, want %d", total, partitions*perPartition)
	}
}
