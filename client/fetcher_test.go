package client_test

import (
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/client"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// TestFetcherTellsRecreatedTopicsApart (KIP-516): a member reading a topic
// that is deleted and created again does not go on in the new topic from
// its position in the old one, which would skip the new topic's first
// records; it starts the new topic where the reset policy says.
func TestFetcherTellsRecreatedTopicsApart(t *testing.T) {
	t.Parallel()
	// The agent's topic metadata lives a minute, so the group's view of
	// the topic (one partition, same name) does not change across the
	// deletion: only the fetcher can notice it.
	ta := startAgentWith(t, func(c *agent.Config) { c.TopicCacheTTL = time.Minute })
	ta.createTopic(t, "again", 1)
	ta.produce(t, "again", 1, 0, 6) // values 0-0 .. 0-5
	c := newConsumer(t, ta.config("g", "again"))
	var old []client.Record
	pollUntil(t, c, "the old topic's records", func(recs []client.Record) bool {
		old = append(old, recs...)
		return len(old) >= 6
	})

	if _, err := ta.admin.DeleteTopic(t.Context(), connect.NewRequest(&stratav1.DeleteTopicRequest{Name: "again"})); err != nil {
		t.Fatal(err)
	}
	ta.createTopic(t, "again", 1)
	ta.produce(t, "again", 1, 100, 8) // values 0-100 .. 0-107, offsets 0..7

	var fresh []client.Record
	pollUntil(t, c, "the new topic's records", func(recs []client.Record) bool {
		fresh = append(fresh, recs...)
		return len(fresh) > 0 && fresh[len(fresh)-1].Offset >= 7
	})
	for i, r := range fresh {
		if want := fmt.Sprintf("0-%d", 100+i); r.Offset != int64(i) || string(r.Value) != want {
			t.Fatalf("record %d of the new topic: offset %d value %q, want offset %d value %q (read from offset 0, as the reset policy says)",
				i, r.Offset, r.Value, i, want)
		}
	}
	if len(fresh) != 8 {
		t.Fatalf("%d records of the new topic, want 8", len(fresh))
	}
}
