package integration

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// TestRetentionAndDeleteRecords runs two agent processes on MinIO and a
// real redis-server, each with a fast janitor: retention.ms moves a
// partition's log start on its own, and `strata topic delete-records` moves
// another's, after which a fetch below it is OUT_OF_RANGE with both bounds.
func TestRetentionAndDeleteRecords(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	a1 := d.startAgent(t, "agent-1", "--janitor-interval", "200ms")
	a2 := d.startAgent(t, "agent-2", "--janitor-interval", "200ms")

	mustCLI(t, nil, "topic", "create", "expiring", "--config", "retention.ms=1000", "--addr", a1.url())
	mustCLI(t, nil, "topic", "create", "trimmed", "--addr", a1.url())
	mustCLI(t, strings.NewReader("a\nb\nc\n"), "produce", "expiring", "--addr", a1.url())
	mustCLI(t, strings.NewReader("a\nb\nc\n"), "produce", "trimmed", "--addr", a2.url())

	out := mustCLI(t, nil, "topic", "delete-records", "trimmed", "--partition", "0", "--before-offset", "2", "--addr", a2.url())
	if f := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1]); strings.Join(f, " ") != "0 2 3" {
		t.Fatalf("delete-records printed:\n%s", out)
	}
	c := newClients(a1.url(), protoConnect)
	_, err := c.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "trimmed", Offset: 1}))
	if connect.CodeOf(err) != connect.CodeOutOfRange || !strings.Contains(err.Error(), "log start 2") || !strings.Contains(err.Error(), "high watermark 3") {
		t.Fatalf("fetch below the log start: %v, want OUT_OF_RANGE with both bounds", err)
	}
	resp, err := c.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "trimmed", Offset: 2}))
	if err != nil || len(resp.Msg.Records) != 1 || string(resp.Msg.Records[0].Value) != "c" {
		t.Fatalf("fetch at the log start: %v, %v", resp, err)
	}

	// The records of "expiring" are older than a second soon; a janitor
	// (whichever agent holds the lease) then moves its log start to the end.
	var last *stratav1.PartitionInfo
	if !waitFor(30*time.Second, func() bool {
		desc, err := c.admin.DescribeTopic(t.Context(), connect.NewRequest(&stratav1.DescribeTopicRequest{Name: "expiring"}))
		if err != nil {
			t.Fatal(err)
		}
		last = desc.Msg.Partitions[0]
		return last.LogStartOffset == 3
	}) {
		t.Fatalf("retention.ms=1000 did not move the log start within 30 s: %+v\nagent-1:\n%s\nagent-2:\n%s", last, a1.log(), a2.log())
	}
	if last.HighWatermark != 3 || last.Records != 0 || last.Bytes != 0 {
		t.Fatalf("after retention: %+v", last)
	}
	// The segments stay until --orphan-grace (1 h by default) has passed.
	if n := len(d.objectKeys(t)); n < 2 {
		t.Fatalf("%d objects in the bucket, want the 2 segments kept through the grace period", n)
	}
}
