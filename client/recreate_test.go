package client_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
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
	// A deleted topic's partition is given up either way: revoked at the
	// heartbeat that sees the topic gone (Kafka revokes the partitions of a
	// deleted topic), or lost when a commit names it first.
	var mu sync.Mutex
	gone := func(_ context.Context, parts []client.TopicPartition) {
		mu.Lock()
		defer mu.Unlock()
		lost = append(lost, parts...)
	}
	cfg.OnLost, cfg.OnRevoked = gone, gone
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
	mu.Lock()
	if len(lost) == 0 {
		t.Error("neither OnRevoked nor OnLost reported the deleted topic's partition")
	}
	mu.Unlock()
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

// beforeCall runs hook once, before the first RPC whose path ends with
// suffix goes out.
type beforeCall struct {
	next   http.RoundTripper
	suffix string
	once   sync.Once
	hook   func()
}

func (b *beforeCall) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, b.suffix) {
		b.once.Do(b.hook)
	}
	return b.next.RoundTrip(req)
}

// TestCommittedOffsetOfDeletedTopicIgnored: a committed offset the agent
// answered for a topic that is deleted and made again before the member
// reads the topic's bounds is of the deleted topic: the member starts the
// new one where the reset policy says, not there.
func TestCommittedOffsetOfDeletedTopicIgnored(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "swap", 1)
	ta.produce(t, "swap", 1, 0, 5)
	if _, err := ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
		Group: "g", Offsets: []*stratav1.PartitionOffset{{Topic: "swap", Partition: 0, Offset: 5}},
	})); err != nil {
		t.Fatal(err)
	}
	cfg := ta.config("g", "swap") // ResetEarliest
	cfg.HTTPClient = h2cClient(t, func(next http.RoundTripper) http.RoundTripper {
		return &beforeCall{next: next, suffix: "/DescribeTopic", hook: func() {
			if _, err := ta.admin.DeleteTopic(t.Context(), connect.NewRequest(&stratav1.DeleteTopicRequest{Name: "swap"})); err != nil {
				t.Error(err)
			}
			ta.createTopic(t, "swap", 1)
			ta.produce(t, "swap", 1, 100, 10)
		}}
	})
	c := newConsumer(t, cfg)
	recs, err := c.Poll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || recs[0].Offset != 0 || string(recs[0].Value) != "0-100" {
		t.Fatalf("first records %v; want the new topic's from offset 0, not from the deleted topic's committed 5", recs)
	}
}
