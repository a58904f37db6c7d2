package client_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/client"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// TestTopicRecreatedUnderConsumer: a topic deleted and created again under
// its name while a member reads it is a new topic. The member gives the
// old topic's partition up and reads the new one from where the reset
// policy says, not from its position in the deleted one; the group's
// position ends up in the new topic.
func TestTopicRecreatedUnderConsumer(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "re", 1)
	ta.produce(t, "re", 1, 0, 5)
	var lost []client.TopicPartition
	cfg := ta.config("g", "re") // ResetEarliest
	cfg.OnLost = func(_ context.Context, parts []client.TopicPartition) { lost = append(lost, parts...) }
	c := newConsumer(t, cfg)
	n := 0
	pollUntil(t, c, "the first topic's 5 records", func(recs []client.Record) bool { n += len(recs); return n >= 5 })
	if err := c.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}

	if _, err := ta.admin.DeleteTopic(t.Context(), connect.NewRequest(&stratav1.DeleteTopicRequest{Name: "re"})); err != nil {
		t.Fatal(err)
	}
	ta.createTopic(t, "re", 1)
	ta.produce(t, "re", 1, 100, 10) // values 0-100 to 0-109, offsets 0 to 9
	seen := map[string]int64{}
	pollUntil(t, c, "every record of the new topic", func(recs []client.Record) bool {
		for _, r := range recs {
			if strings.HasPrefix(string(r.Value), "0-1") {
				seen[string(r.Value)] = r.Offset
			}
		}
		return len(seen) == 10
	})
	if seen["0-100"] != 0 || seen["0-109"] != 9 {
		t.Fatalf("new topic's records at offsets %v", seen)
	}
	if len(lost) == 0 {
		t.Error("OnLost never reported the deleted topic's partition")
	}
	if err := c.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	id := describeTopicID(t, ta, "re")
	resp, err := ta.group.FetchOffsets(t.Context(), connect.NewRequest(&stratav1.FetchOffsetsRequest{Group: "g"}))
	if err != nil {
		t.Fatal(err)
	}
	if o := resp.Msg.GetOffsets(); len(o) != 1 || o[0].GetOffset() != 10 || o[0].GetTopicId() != id {
		t.Fatalf("committed %v, want re/0 at 10 in topic %s", o, id)
	}
}

func describeTopicID(t *testing.T, ta *testAgent, name string) string {
	t.Helper()
	resp, err := ta.admin.DescribeTopic(t.Context(), connect.NewRequest(&stratav1.DescribeTopicRequest{Name: name}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.GetTopic().GetId()
}
