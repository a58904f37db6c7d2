package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// groupEvent is one line of consume --events.
type groupEvent struct {
	Time       string `json:"time"`
	Member     string `json:"member"`
	Event      string `json:"event"`
	Partitions []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
	} `json:"partitions"`
	Offsets []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
	} `json:"offsets"`
	Error string `json:"error"`
}

func readEvents(t *testing.T, path string) []groupEvent {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []groupEvent
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e groupEvent
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("events line %q: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
			t.Errorf("events line %q: time: %v", l, err)
		}
		out = append(out, e)
	}
	return out
}

// TestConsumeGroupResumes: two runs of one group in sequence read every
// record once between them, the second from where the first committed;
// the events file tells what happened, in order.
func TestConsumeGroupResumes(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "jobs", "--partitions", "3", "--addr", addr)
	var input strings.Builder
	for i := range 30 {
		fmt.Fprintf(&input, "k%d:job %d\n", i, i)
	}
	ok(t, input.String(), "produce", "jobs", "--key-separator", ":", "--addr", addr)

	events := filepath.Join(t.TempDir(), "events.jsonl")
	first := parseRecords(t, ok(t, "", "consume", "--group", "workers", "jobs", "--from", "earliest", "-n", "12",
		"--output", "json", "--events", events, "--session-timeout", "2s", "--addr", addr))
	if len(first) != 12 {
		t.Fatalf("first run printed %d records, want 12", len(first))
	}
	evs := readEvents(t, events)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Event)
		if e.Member == "" || e.Member != evs[0].Member {
			t.Errorf("event %+v: member %q, want %q throughout", e, e.Member, evs[0].Member)
		}
	}
	// joined, assigned, maybe auto-commits, then Close: committed, revoked, left.
	if len(kinds) < 5 || kinds[0] != "joined" || kinds[1] != "assigned" || !slices.Equal(kinds[len(kinds)-3:], []string{"committed", "revoked", "left"}) {
		t.Fatalf("events %v", kinds)
	}
	if n := len(evs[1].Partitions); n != 3 {
		t.Errorf("assigned %d partitions, want 3", n)
	}
	// The last commit is the position after each partition's last record.
	after := map[int32]int64{}
	for _, r := range first {
		after[r.Partition] = max(after[r.Partition], r.Offset+1)
	}
	last := evs[len(evs)-3]
	for _, o := range last.Offsets {
		if o.Topic != "jobs" || o.Offset != after[o.Partition] {
			t.Errorf("last commit %+v; the run printed up to %v", last.Offsets, after)
		}
	}

	second := parseRecords(t, ok(t, "", "consume", "--group", "workers", "jobs", "-n", "18", "--output", "json", "--addr", addr))
	seen := map[string]int{}
	for _, r := range append(first, second...) {
		seen[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]++
	}
	if len(seen) != 30 {
		t.Errorf("the two runs read %d distinct records, want 30", len(seen))
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("record %s read %d times", k, n)
		}
	}

	// Nothing left: a third run waits until interrupted, and ends with
	// status 0.
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	r := strataCtx(ctx, t, "", "consume", "--group", "workers", "jobs", "--events", events, "--addr", addr)
	if r.code != 0 || r.stdout != "" {
		t.Errorf("third run: exit %d, printed %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	evs = readEvents(t, events)
	if e := evs[len(evs)-1]; e.Event != "left" {
		t.Errorf("the interrupted run's last event is %+v, want left", e)
	}
}

// TestConsumeGroupAtMostOnce: positions are committed before the records
// print, and by a later run's start nothing is read again.
func TestConsumeGroupAtMostOnce(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "once", "--addr", addr)
	ok(t, "a\nb\nc\nd\n", "produce", "once", "--addr", addr)
	events := filepath.Join(t.TempDir(), "events.jsonl")
	if out := ok(t, "", "consume", "--group", "g", "once", "--from", "earliest", "--at-most-once", "-n", "2", "--events", events, "--addr", addr); out != "a\nb\n" {
		t.Errorf("first run printed %q", out)
	}
	var committed int64 = -1
	for _, e := range readEvents(t, events) {
		if e.Event == "committed" {
			committed = e.Offsets[0].Offset
		}
	}
	if committed != 2 {
		t.Errorf("committed up to %d, want 2", committed)
	}
	if out := ok(t, "", "consume", "--group", "g", "once", "--at-most-once", "-n", "2", "--addr", addr); out != "c\nd\n" {
		t.Errorf("second run printed %q", out)
	}
}

// TestConsumeGroupRegex follows topics by a regular expression.
func TestConsumeGroupRegex(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "orders.eu", "--addr", addr)
	ok(t, "", "topic", "create", "orders.us", "--addr", addr)
	ok(t, "", "topic", "create", "other", "--addr", addr)
	ok(t, "eu\n", "produce", "orders.eu", "--addr", addr)
	ok(t, "us\n", "produce", "orders.us", "--addr", addr)
	ok(t, "no\n", "produce", "other", "--addr", addr)
	out := ok(t, "", "consume", "--group", "g", "--topic-regex", `orders\..*`, "--from", "earliest", "-n", "2", "--addr", addr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	if !slices.Equal(lines, []string{"eu", "us"}) {
		t.Errorf("printed %q", out)
	}
}

func TestConsumeGroupUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--group", "g"}, "name the topics to read, or give --topic-regex"},
		{[]string{"--group", "g", "t", "--topic-regex", "t.*"}, "not both"},
		{[]string{"--group", "g", "t", "--partition", "0"}, "--partition does not apply with --group"},
		{[]string{"--group", "g", "t", "--follow"}, "--follow does not apply with --group"},
		{[]string{"--group", "g", "t", "--from", "5"}, "want earliest or latest"},
		{[]string{"--group", "g", "--topic-regex", "("}, "--topic-regex"},
		{[]string{"--group", "g", "t", "-n", "-1"}, "-n -1"},
		{[]string{"t", "--topic-regex", "x"}, "--topic-regex works only with --group"},
		{[]string{"t", "--at-most-once"}, "--at-most-once works only with --group"},
		{[]string{"t", "--events", "f"}, "--events works only with --group"},
	} {
		fails(t, "", append([]string{"consume"}, tc.args...), tc.want, "strata consume --help")
	}
	addr := startAgent(t)
	fails(t, "", []string{"consume", "--group", "g", "missing", "--addr", addr}, `topic "missing" does not exist`)
}

// TestConsumeGroupRecreatedTopic: a topic deleted and created again under
// its name is a new topic. The group's position in the deleted one is not
// applied to it: the next run starts where --from says and prints every
// record of the new topic, and describe shows no lag from the old position.
func TestConsumeGroupRecreatedTopic(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "t", "--addr", addr)
	ok(t, "a0\na1\na2\na3\na4\n", "produce", "t", "--addr", addr)
	if out := ok(t, "", "consume", "--group", "g", "t", "--from", "earliest", "-n", "5", "--addr", addr); out != "a0\na1\na2\na3\na4\n" {
		t.Fatalf("first run printed %q", out)
	}
	ok(t, "", "topic", "delete", "t", "--addr", addr)
	if out := ok(t, "", "group", "describe", "g", "--output", "json", "--addr", addr); strings.Contains(out, `"committed_offset":5`) {
		t.Errorf("describe after the topic was deleted still shows its offset: %s", out)
	}
	ok(t, "", "topic", "create", "t", "--addr", addr)
	var input strings.Builder
	for i := range 10 {
		fmt.Fprintf(&input, "b%d\n", i)
	}
	ok(t, input.String(), "produce", "t", "--addr", addr)
	out := ok(t, "", "group", "describe", "g", "--output", "json", "--addr", addr)
	if strings.Contains(out, `"committed_offset":5`) || strings.Contains(out, `"lag":5`) {
		t.Errorf("describe after the topic was made again shows the deleted topic's offset or lag: %s", out)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r := strataCtx(ctx, t, "", "consume", "--group", "g", "t", "--from", "earliest", "-n", "10", "--addr", addr)
	if r.code != 0 || r.stdout != input.String() {
		t.Fatalf("second run: exit %d, printed %q, want every record of the new topic %q; stderr %s", r.code, r.stdout, input.String(), r.stderr)
	}
	// The group's position is in the new topic now, and reset moves it.
	ok(t, "", "group", "reset", "g", "--to", "earliest", "--topic", "t", "--addr", addr)
	if out := ok(t, "", "consume", "--group", "g", "t", "-n", "10", "--addr", addr); out != input.String() {
		t.Fatalf("run after the reset printed %q", out)
	}
}
