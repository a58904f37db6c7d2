package agentcore

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDeleteRecordsOffsetsOutOfRange: over an agent, DeleteRecords before a
// negative offset other than -1 (the high watermark) or past the high
// watermark is OFFSET_OUT_OF_RANGE, as Kafka's Partition.deleteRecordsOnLeader
// answers, and -1 moves the log start to the high watermark.
func TestDeleteRecordsOffsetsOutOfRange(t *testing.T) {
	t.Parallel()
	addrs, _ := kafkaAgentsOf(t, 1)
	ctx := t.Context()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic("dr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, "dr"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for _, off := range []int64{-5, -2, 4} {
		var del kadm.Offsets
		del.AddOffset("dr", 0, off, -1)
		dr, err := adm.DeleteRecords(ctx, del)
		if err != nil {
			t.Fatal(err)
		}
		if r := dr["dr"][0]; r.Err != kerr.OffsetOutOfRange {
			t.Errorf("DeleteRecords before %d: %+v, want OFFSET_OUT_OF_RANGE", off, r)
		}
	}
	var del kadm.Offsets
	del.AddOffset("dr", 0, -1, -1)
	dr, err := adm.DeleteRecords(ctx, del)
	if err != nil {
		t.Fatal(err)
	}
	if r := dr["dr"][0]; r.Err != nil || r.LowWatermark != 3 {
		t.Errorf("DeleteRecords before -1 (the high watermark): %+v, want low watermark 3", r)
	}
}
