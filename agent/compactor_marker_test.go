package agent

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// TestCompactionLagIgnoresATrailingMarker: a partition whose log ends in a
// transaction marker (an idle transactional producer) has nothing left for
// compaction, so its lag gauge goes back to 0 and later passes do nothing;
// once later data follows the marker, the marker's entry is archived with
// it and its segment released.
func TestCompactionLagIgnoresATrailingMarker(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	topic := env.createTopic(t, 1)
	lag := func() float64 {
		var m dto.Metric
		if err := metricCompactionLag.WithLabelValues(topic.Name, "0").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	txn := objectlog.BatchSpec{ProducerID: 5, ProducerEpoch: 0, BaseSequence: 0, Transactional: true}
	control := objectlog.BatchSpec{ProducerID: 5, ProducerEpoch: 0, BaseSequence: -1, Transactional: true, Control: true}
	write(t, a, topic, 0, txn, values(1, "a", "b")...) // 0-1
	// The commit marker, as EndTxn writes it.
	pending, err := a.batcher.append(t.Context(), []partitionBatch{{key: partitionKey{topic.ID, 0}, spec: control,
		records: []objectlog.Record{controlRecord(coordinator.ControlCommit, 1)}, controlType: coordinator.ControlCommit}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pending[0].wait(t.Context()); err != nil {
		t.Fatal(err)
	}

	if rep, err := a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Records != 2 {
		t.Fatalf("compaction: %+v, %v", rep, err)
	}
	if l := lag(); l != 0 {
		t.Fatalf("lag %v after archiving all but the trailing marker, want 0", l)
	}
	if rep, err := a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Partitions != 0 || rep.Skipped != 0 {
		t.Fatalf("second pass: %+v, %v; want nothing to do", rep, err)
	}
	if l := lag(); l != 0 {
		t.Fatalf("lag %v on an idle partition ending in a marker, want 0", l)
	}
	entries, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	if len(entries) != 2 || entries[1].Archived() {
		t.Fatalf("entries %+v: want the marker hot", entries)
	}
	markerSegment := entries[1].SegmentKey

	// Later data lets the marker go with it.
	write(t, a, topic, 0, objectlog.NoProducer, values(1, "c")...) // 3
	if rep, err := a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Records != 1 {
		t.Fatalf("compaction after later data: %+v, %v", rep, err)
	}
	entries, _, _ = env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	for _, e := range entries {
		if !e.Archived() || e.SegmentKey == markerSegment {
			t.Fatalf("entries %+v: want all archived, none in the marker's segment %s", entries, markerSegment)
		}
	}
	released, err := env.redis.ReleasedSegments(t.Context(), topic.ID, 0, time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range released {
		found = found || r.Key == markerSegment
	}
	if !found {
		t.Fatalf("released %+v: want the marker's segment %s", released, markerSegment)
	}
	if l := lag(); l != 0 {
		t.Fatalf("lag %v with everything archived, want 0", l)
	}
	resp, err := doFetch(t.Context(), a, fetchReq(topic, 0, 0))
	if err != nil || offsetsOf(resp.Records) != "0,1,3" || resp.NextOffset != 4 {
		t.Fatalf("fetch after compaction: %v, %v; want offsets 0,1,3 and next offset 4", resp, err)
	}
}
