package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/minio/minio-go/v7"

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

// TestJanitorDeletesSegmentsOnMinIO lets the janitor of a real agent process
// delete, on MinIO, the segments DeleteRecords released and an orphan
// upload, once they are past the shortest grace the agent accepts, while
// the segments of another topic stay and read back through an agent that
// never cached them.
func TestJanitorDeletesSegmentsOnMinIO(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	// The shortest orphan grace allowed: commit-timeout plus a minute, and a bit.
	gc := []string{"--janitor-interval", "500ms", "--commit-timeout", "1s", "--orphan-grace", "62s", "--unreferenced-grace", "0s"}
	a1 := d.startAgent(t, "agent-1", gc...)
	mustCLI(t, nil, "topic", "create", "gone", "--addr", a1.url())
	mustCLI(t, nil, "topic", "create", "kept", "--addr", a1.url())
	for i := range 3 {
		mustCLI(t, strings.NewReader(fmt.Sprintf("g%d\n", i)), "produce", "gone", "--addr", a1.url())
		mustCLI(t, strings.NewReader(fmt.Sprintf("k%d\n", i)), "produce", "kept", "--addr", a1.url())
	}
	keys := d.objectKeys(t)
	if len(keys) != 6 {
		t.Fatalf("%d objects after 6 produces, want 6: %v", len(keys), keys)
	}
	// An upload whose commit never happened: a copy of a real segment.
	orphan := d.prefix + "/segments/01ORPHAN00000000000000000000.seg"
	if _, err := d.minio.CopyObject(t.Context(), minio.CopyDestOptions{Bucket: d.bucket, Object: orphan},
		minio.CopySrcOptions{Bucket: d.bucket, Object: keys[0]}); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, nil, "topic", "delete-records", "gone", "--before-offset", "-1", "--addr", a1.url())

	// Three segments of "gone" and the orphan go once 62 s old.
	var left []string
	if !waitFor(3*time.Minute, func() bool {
		left = d.objectKeys(t)
		return len(left) == 3
	}) {
		t.Fatalf("objects left: %v, want the 3 of \"kept\"\nagent-1:\n%s", left, a1.log())
	}
	// A second agent never saw these segments: it reads them from MinIO.
	a2 := d.startAgent(t, "agent-2", "--janitor-interval", "0")
	out := mustCLI(t, nil, "consume", "kept", "--from", "earliest", "-n", "3", "--addr", a2.url())
	if out != "k0\nk1\nk2\n" {
		t.Fatalf("consume kept printed %q", out)
	}
}
