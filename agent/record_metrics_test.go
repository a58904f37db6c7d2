package agent_test

import (
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// counter reads a counter of the default registry, the one the admin port
// serves.
func counter(t *testing.T, name string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestRecordCountersEveryPath: strata_produced_records_total and
// strata_fetched_records_total count each record once, whether it goes
// through the core's whole-batch calls (AppendBatch, ReadBatches: the
// Kafka listener and the Connect batch RPCs) or the Connect per-record
// ones, skipping records before the offset asked, control batches, and for
// read_committed records past the last stable offset and aborted ones.
// Not parallel: the counters are the process's.
func TestRecordCountersEveryPath(t *testing.T) {
	ta := startAgent(t, nil)
	ta.createTopic(t, "metrics", 1, nil)
	const produced, fetched = "strata_produced_records_total", "strata_fetched_records_total"
	p0, f0 := counter(t, produced), counter(t, fetched)
	wantDelta := func(name string, base, want float64) {
		t.Helper()
		if got := counter(t, name) - base; got != want {
			t.Fatalf("%s moved by %v, want %v", name, got, want)
		}
	}

	// Offsets 0-2 and 3-4: two batches through AppendBatch.
	raw := append(clientBatch(t, objectlog.NoProducer, valueRecords(1, "a", "b", "c")...),
		clientBatch(t, objectlog.NoProducer, valueRecords(2, "d", "e")...)...)
	if r := produceBatches(t, ta, &stratav1.PartitionRecordBatches{Topic: "metrics", Partition: 0, RecordBatches: raw}); r[0].GetError() != nil {
		t.Fatal(r[0].GetError())
	}
	wantDelta(produced, p0, 5)
	// Offsets 5-6 through the per-record Produce.
	if _, err := produce(t.Context(), ta.producer, "metrics", rec("k", "f"), rec("k", "g")); err != nil {
		t.Fatal(err)
	}
	wantDelta(produced, p0, 7)

	fetchBatches := func(offset int64, level stratav1.IsolationLevel) []byte {
		t.Helper()
		resp, err := ta.consumer.FetchBatches(t.Context(), connect.NewRequest(&stratav1.FetchBatchesRequest{
			Partitions: []*stratav1.FetchBatchesPartition{{Topic: "metrics", Partition: 0, Offset: offset}}, IsolationLevel: level}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.GetPartitions()[0].GetRecordBatches()
	}
	fetchBatches(0, uncommitted)
	wantDelta(fetched, f0, 7)
	// From offset 4 the answer starts with the batch at 3: offset 3 is
	// sent but is not counted.
	if got := len(decodeBatches(t, fetchBatches(4, uncommitted))); got != 4 {
		t.Fatalf("from offset 4: %d records in the batches, want 4 (3 to 6)", got)
	}
	wantDelta(fetched, f0, 10)
	// The per-record Fetch counts what it returns, once.
	if vals, _ := ta.fetchValues(t, "metrics", 0, 0, uncommitted); len(vals) != 7 {
		t.Fatalf("Fetch returned %d records, want 7", len(vals))
	}
	wantDelta(fetched, f0, 17)

	// A transaction aborted (offsets 7-8, marker 9), then one left open
	// (offset 10).
	c := newTxnClient(t, ta, "metrics-txn", 0)
	must(t, c.addPartitions("metrics", 0))
	if _, err := c.produce("metrics", 0, 2, "aborted"); err != nil {
		t.Fatal(err)
	}
	must(t, c.end(false))
	must(t, c.addPartitions("metrics", 0))
	open, err := c.produce("metrics", 0, 1, "open")
	must(t, err)
	wantDelta(produced, p0, 10)

	f1 := counter(t, fetched)
	// read_committed: the aborted batch and the marker go out, the open
	// transaction's record is held back; none of them counts.
	if got := len(decodeBatches(t, fetchBatches(7, committed))); got != 2 {
		t.Fatalf("read_committed from 7: %d records in the batches, want the 2 aborted ones", got)
	}
	wantDelta(fetched, f1, 0)
	// read_uncommitted: all three data records, not the marker.
	fetchBatches(7, uncommitted)
	wantDelta(fetched, f1, 3)
	must(t, c.end(true))
	// Committed: the record at the open offset now counts for read_committed.
	if got := decodeBatches(t, fetchBatches(7, committed)); len(got) != 3 || got[2].Offset != open {
		t.Fatalf("read_committed after the commit: %d records, want 3 ending at %d", len(got), open)
	}
	wantDelta(fetched, f1, 4)
}
