package agentcore

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/kafka"
	"github.com/stratabroker/strata/objectlog"
)

// counter reads a counter of the default registry (the admin port's).
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

// TestKafkaPathCountsRecords: Kafka's Produce and Fetch move
// strata_produced_records_total and strata_fetched_records_total by the
// records of the batches, at both isolation levels. Not parallel: the
// counters are the process's.
func TestKafkaPathCountsRecords(t *testing.T) {
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	a := startAgent(t, index, "agent-m", "10.0.0.1:9092", "")
	c, err := New(t.Context(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := index.CreateTopic(t.Context(), "m", coordinator.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	w := objectlog.NewSegmentWriter()
	recs := []objectlog.Record{{Value: []byte("a"), Timestamp: 1}, {Value: []byte("b"), Timestamp: 1}, {Value: []byte("c"), Timestamp: 1}}
	if _, err := w.AppendRecords([16]byte{}, 0, objectlog.NoProducer, recs); err != nil {
		t.Fatal(err)
	}
	data, footer, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	raw := data[footer.Chunks[0].ByteOffset : footer.Chunks[0].ByteOffset+footer.Chunks[0].ByteLength]

	produced, fetched := counter(t, "strata_produced_records_total"), counter(t, "strata_fetched_records_total")
	for range 2 {
		res := <-c.Produce(t.Context(), "m", 0, kafka.Batch{Raw: bytes.Clone(raw), Records: 3, ProducerID: -1})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if d := counter(t, "strata_produced_records_total") - produced; d != 6 {
		t.Fatalf("two produced batches of 3 records moved the produced counter by %v", d)
	}
	for _, committed := range []bool{false, true} {
		before := counter(t, "strata_fetched_records_total")
		out, err := c.Fetch(t.Context(), kafka.FetchRequest{Partitions: []kafka.FetchPartition{{Topic: "m", Partition: 0, Offset: 4}},
			MaxBytes: 1 << 20, ReadCommitted: committed})
		if err != nil || out[0].Err != nil || len(out[0].Batches) != len(raw) {
			t.Fatalf("fetch from 4 (read_committed %v): %v %+v", committed, err, out)
		}
		// The batch at 3 goes out whole; offset 3 is not counted.
		if d := counter(t, "strata_fetched_records_total") - before; d != 2 {
			t.Fatalf("a fetch of offsets 4 and 5 (read_committed %v) moved the fetched counter by %v", committed, d)
		}
	}
	if d := counter(t, "strata_fetched_records_total") - fetched; d != 4 {
		t.Fatalf("fetched counter moved by %v in all, want 4", d)
	}
}
