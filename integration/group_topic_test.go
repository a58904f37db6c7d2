package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestConsumerGroupRecreatedTopic: with two agents on one redis-server and
// MinIO, a group reads topic t through one agent; t is deleted and created
// again through the other. The group's position in the deleted t is never
// applied to the new one: a member started on the first agent prints every
// record of the new t, and describe shows no offset of the deleted one.
func TestConsumerGroupRecreatedTopic(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	// Agents pick up other agents' topic changes within the topic cache's
	// TTL; a short one keeps the test quick.
	a := d.startAgent(t, "agent-a", "--topic-cache-ttl", "200ms")
	b := d.startAgent(t, "agent-b", "--topic-cache-ttl", "200ms")
	mustCLI(t, nil, "topic", "create", "t", "--addr", a.url())
	mustCLI(t, strings.NewReader("a0\na1\na2\na3\na4\n"), "produce", "t", "--addr", a.url())
	if out := mustCLI(t, nil, "consume", "--group", "g", "t", "--from", "earliest", "-n", "5", "--addr", a.url()); out != "a0\na1\na2\na3\na4\n" {
		t.Fatalf("first member printed %q", out)
	}

	mustCLI(t, nil, "topic", "delete", "t", "--addr", b.url())
	mustCLI(t, nil, "topic", "create", "t", "--addr", b.url())
	var input strings.Builder
	for i := range 10 {
		fmt.Fprintf(&input, "b%d\n", i)
	}
	mustCLI(t, strings.NewReader(input.String()), "produce", "t", "--addr", b.url())
	time.Sleep(500 * time.Millisecond) // past agent-a's topic cache

	if out := mustCLI(t, nil, "group", "describe", "g", "--output", "json", "--addr", a.url()); strings.Contains(out, `"committed_offset":5`) {
		t.Errorf("describe shows the deleted topic's offset: %s", out)
	}
	if out := mustCLI(t, nil, "consume", "--group", "g", "t", "--from", "earliest", "-n", "10", "--addr", a.url()); out != input.String() {
		t.Fatalf("member after the recreate printed %q, want every record of the new topic %q", out, input.String())
	}
	// Its position is in the new topic: the next member resumes at its end.
	mustCLI(t, strings.NewReader("b10\n"), "produce", "t", "--addr", b.url())
	if out := mustCLI(t, nil, "consume", "--group", "g", "t", "-n", "1", "--addr", b.url()); out != "b10\n" {
		t.Fatalf("next member printed %q, want b10", out)
	}
}
