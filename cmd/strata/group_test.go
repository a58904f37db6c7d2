package main

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// groupClient talks to the agent's GroupService directly, for what the
// group commands do not do: commit offsets and join as a member.
func groupClient(addr string) stratav1connect.GroupServiceClient {
	return stratav1connect.NewGroupServiceClient(http.DefaultClient, "http://"+addr)
}

// commit stores offsets for a group from outside it (no member), as a tool
// would while the group is empty.
func commit(t *testing.T, gc stratav1connect.GroupServiceClient, group string, offsets map[topicPartition]int64) {
	t.Helper()
	req := &stratav1.CommitOffsetsRequest{Group: group}
	for tp, off := range offsets {
		req.Offsets = append(req.Offsets, &stratav1.PartitionOffset{Topic: tp.topic, Partition: tp.partition, Offset: off})
	}
	if _, err := gc.CommitOffsets(t.Context(), connect.NewRequest(req)); err != nil {
		t.Fatalf("CommitOffsets(%s): %v", group, err)
	}
}

// tableRows returns the rows of the table whose header starts with first
// (header included), each split into fields.
func tableRows(t *testing.T, out, first string) [][]string {
	t.Helper()
	var rows [][]string
	in := false
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case !in && len(f) > 0 && f[0] == first:
			in = true
		case in && len(f) == 0:
			return rows
		}
		if in {
			rows = append(rows, f)
		}
	}
	if !in {
		t.Fatalf("no table headed %s in:\n%s", first, out)
	}
	return rows
}

func wantRows(t *testing.T, what string, got [][]string, want ...string) {
	t.Helper()
	var w [][]string
	for _, r := range want {
		w = append(w, strings.Fields(r))
	}
	if !slices.EqualFunc(got, w, slices.Equal) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, w)
	}
}

func describeGroup(t *testing.T, addr, group string) groupJSON {
	t.Helper()
	var d groupJSON
	if err := json.Unmarshal([]byte(ok(t, "", "group", "describe", group, "--output", "json", "--addr", addr)), &d); err != nil {
		t.Fatalf("group describe --output json: %v", err)
	}
	return d
}

// committed maps partition to committed offset, from describe.
func committed(d groupJSON) map[int32]int64 {
	m := map[int32]int64{}
	for _, p := range d.Partitions {
		m[p.Partition] = p.CommittedOffset
	}
	return m
}

func TestGroupLifecycle(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	gc := groupClient(addr)

	if out := ok(t, "", "group", "list", "--addr", addr); !strings.Contains(out, "No groups") {
		t.Errorf("empty group list printed %q", out)
	}
	var empty struct {
		Groups []groupSummaryJSON `json:"groups"`
	}
	if err := json.Unmarshal([]byte(ok(t, "", "group", "list", "--output", "json", "--addr", addr)), &empty); err != nil || empty.Groups == nil || len(empty.Groups) != 0 {
		t.Errorf("empty group list --output json: %+v, %v", empty, err)
	}

	// orders: 5 records in partition 0, 3 in 1, 1 in 2.
	beforeRecords := time.Now().Add(-time.Minute)
	ok(t, "", "topic", "create", "orders", "--partitions", "3", "--addr", addr)
	ok(t, "a\nb\nc\nd\ne\n", "produce", "orders", "--partition", "0", "--addr", addr)
	ok(t, "f\ng\nh\n", "produce", "orders", "--partition", "1", "--addr", addr)
	ok(t, "i\n", "produce", "orders", "--partition", "2", "--addr", addr)
	commit(t, gc, "billing", map[topicPartition]int64{{"orders", 0}: 2, {"orders", 1}: 3})
	commit(t, gc, "audit", map[topicPartition]int64{{"orders", 2}: 0})

	// list: sorted by name, lag over the committed partitions.
	wantRows(t, "group list", tableRows(t, ok(t, "", "group", "list", "--addr", addr), "GROUP"),
		"GROUP STATE MEMBERS LAG",
		"audit Empty 0 1",
		"billing Empty 0 3",
	)
	var list struct {
		Groups []groupSummaryJSON `json:"groups"`
	}
	if err := json.Unmarshal([]byte(ok(t, "", "group", "list", "--output", "json", "--addr", addr)), &list); err != nil {
		t.Fatal(err)
	}
	if want := []groupSummaryJSON{{"audit", "Empty", 0, 1}, {"billing", "Empty", 0, 3}}; !slices.Equal(list.Groups, want) {
		t.Errorf("group list --output json: %+v, want %+v", list.Groups, want)
	}

	// describe: without members the group follows no topic, so only the
	// committed partitions show.
	text := ok(t, "", "group", "describe", "billing", "--addr", addr)
	for _, want := range []string{"Group:", "billing", "State:", "Empty", "Epoch:", "Members:", "Total lag:", "No live members."} {
		if !strings.Contains(text, want) {
			t.Errorf("group describe lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(text, "Total lag:  3\n") || !strings.Contains(text, "Members:    0\n") {
		t.Errorf("group describe header:\n%s", text)
	}
	wantRows(t, "group describe partitions", tableRows(t, text, "TOPIC"),
		"TOPIC PARTITION COMMITTED HIGH-WATERMARK LAG OWNER",
		"orders 0 2 5 3 -",
		"orders 1 3 3 0 -",
	)
	d := describeGroup(t, addr, "billing")
	wantParts := []groupPartitionJSON{
		{Topic: "orders", Partition: 0, CommittedOffset: 2, HighWatermark: 5, Lag: 3},
		{Topic: "orders", Partition: 1, CommittedOffset: 3, HighWatermark: 3, Lag: 0},
	}
	if d.Group != "billing" || d.State != "Empty" || d.TotalLag != 3 || len(d.Members) != 0 || !slices.Equal(d.Partitions, wantParts) {
		t.Errorf("group describe --output json: %+v", d)
	}

	// reset --dry-run answers the new positions and stores nothing; the
	// partition without a commit shows "-" as its current offset.
	r := strata(t, "", "group", "reset", "billing", "--to", "earliest", "--topic", "orders", "--dry-run", "--addr", addr)
	if r.code != 0 {
		t.Fatalf("reset --dry-run: exit %d: %s", r.code, r.stderr)
	}
	wantRows(t, "reset --dry-run", tableRows(t, r.stdout, "TOPIC"),
		"TOPIC PARTITION CURRENT NEW",
		"orders 0 2 0",
		"orders 1 3 0",
		"orders 2 - 0",
	)
	if !strings.Contains(r.stderr, "dry run") {
		t.Errorf("reset --dry-run stderr %q", r.stderr)
	}
	if got := committed(describeGroup(t, addr, "billing")); !maps.Equal(got, map[int32]int64{0: 2, 1: 3}) {
		t.Errorf("after a dry run the offsets are %v", got)
	}

	// reset --to latest: every partition of the topic, lag 0.
	r = strata(t, "", "group", "reset", "billing", "--to", "latest", "--topic", "orders", "--addr", addr)
	if r.code != 0 {
		t.Fatalf("reset --to latest: exit %d: %s", r.code, r.stderr)
	}
	wantRows(t, "reset --to latest", tableRows(t, r.stdout, "TOPIC"),
		"TOPIC PARTITION CURRENT NEW",
		"orders 0 2 5",
		"orders 1 3 3",
		"orders 2 - 1",
	)
	if !strings.Contains(r.stderr, `reset 3 offsets of group "billing"`) {
		t.Errorf("reset stderr %q", r.stderr)
	}
	wantRows(t, "describe after reset --to latest", tableRows(t, ok(t, "", "group", "describe", "billing", "--addr", addr), "TOPIC"),
		"TOPIC PARTITION COMMITTED HIGH-WATERMARK LAG OWNER",
		"orders 0 5 5 0 -",
		"orders 1 3 3 0 -",
		"orders 2 1 1 0 -",
	)
	if d := describeGroup(t, addr, "billing"); d.TotalLag != 0 {
		t.Errorf("total lag after reset --to latest: %d", d.TotalLag)
	}

	// reset --to an offset, per partition, clamped to the partition's bounds.
	var reset struct {
		Group   string            `json:"group"`
		DryRun  bool              `json:"dry_run"`
		Offsets []resetOffsetJSON `json:"offsets"`
	}
	out := ok(t, "", "group", "reset", "billing", "--to", "1", "--partition", "orders:0", "--partition", "orders:1", "--output", "json", "--addr", addr)
	if err := json.Unmarshal([]byte(out), &reset); err != nil {
		t.Fatal(err)
	}
	if want := []resetOffsetJSON{{"orders", 0, 5, 1}, {"orders", 1, 3, 1}}; reset.Group != "billing" || reset.DryRun || !slices.Equal(reset.Offsets, want) {
		t.Errorf("reset --to 1 --output json: %+v, want offsets %+v", reset, want)
	}
	ok(t, "", "group", "reset", "billing", "--to", "100", "--partition", "orders:2", "--addr", addr)
	if got := committed(describeGroup(t, addr, "billing")); !maps.Equal(got, map[int32]int64{0: 1, 1: 1, 2: 1}) {
		t.Errorf("after reset --to 1 (0, 1) and --to 100 (2): offsets %v, want 1, 1 and 1 (clamped)", got)
	}
	if d := describeGroup(t, addr, "billing"); d.TotalLag != 4+2+0 {
		t.Errorf("total lag after reset --to 1: %d, want 6", d.TotalLag)
	}

	// reset --to a time: before every record is the log start, after every
	// record the high watermark.
	ok(t, "", "group", "reset", "billing", "--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--topic", "orders", "--addr", addr)
	if got := committed(describeGroup(t, addr, "billing")); !maps.Equal(got, map[int32]int64{0: 5, 1: 3, 2: 1}) {
		t.Errorf("after reset --to a time after every record: %v", got)
	}
	ok(t, "", "group", "reset", "billing", "--to", beforeRecords.Format(time.RFC3339Nano), "--topic", "orders", "--addr", addr)
	if got := committed(describeGroup(t, addr, "billing")); !maps.Equal(got, map[int32]int64{0: 0, 1: 0, 2: 0}) {
		t.Errorf("after reset --to a time before every record: %v", got)
	}

	// delete.
	if out := ok(t, "", "group", "delete", "billing", "--addr", addr); out != "deleted group \"billing\"\n" {
		t.Errorf("delete printed %q", out)
	}
	wantRows(t, "group list after delete", tableRows(t, ok(t, "", "group", "list", "--addr", addr), "GROUP"),
		"GROUP STATE MEMBERS LAG",
		"audit Empty 0 1",
	)
	fails(t, "", []string{"group", "describe", "billing", "--addr", addr}, `group "billing" does not exist`)
	fails(t, "", []string{"group", "delete", "billing", "--addr", addr}, `group "billing" does not exist`)
}

// TestGroupLiveMember: reset and delete are refused while the group has a
// live member, with a hint, and allowed once it left.
func TestGroupLiveMember(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	gc := groupClient(addr)
	ok(t, "", "topic", "create", "orders", "--partitions", "3", "--addr", addr)
	ok(t, "a\nb\n", "produce", "orders", "--partition", "1", "--addr", addr)
	commit(t, gc, "live", map[topicPartition]int64{{"orders", 1}: 1})

	hb, err := gc.Heartbeat(t.Context(), connect.NewRequest(&stratav1.HeartbeatRequest{
		Group: "live", MemberEpoch: 0, Topics: []string{"orders"},
	}))
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	member := hb.Msg.GetMemberId()
	if member == "" {
		t.Fatal("Heartbeat answered no member id")
	}

	wantRows(t, "group list with a member", tableRows(t, ok(t, "", "group", "list", "--addr", addr), "GROUP"),
		"GROUP STATE MEMBERS LAG",
		"live Stable 1 1",
	)
	text := ok(t, "", "group", "describe", "live", "--addr", addr)
	members := tableRows(t, text, "MEMBER")
	if len(members) != 2 || strings.Join(members[0], " ") != "MEMBER EPOCH ASSIGNED REVOKING PENDING SESSION-EXPIRES" {
		t.Fatalf("members table:\n%s", text)
	}
	if m := members[1]; len(m) < 7 || m[0] != member || m[1] != strconv.Itoa(int(hb.Msg.GetMemberEpoch())) || m[2] != "orders:0-2" || m[3] != "-" || m[4] != "-" || m[6] != "(in" {
		t.Errorf("member row %q (member %s, epoch %d)", m, member, hb.Msg.GetMemberEpoch())
	}
	// The subscribed topic's partitions show even without a commit.
	wantRows(t, "describe partitions with a member", tableRows(t, text, "TOPIC"),
		"TOPIC PARTITION COMMITTED HIGH-WATERMARK LAG OWNER",
		"orders 0 - 0 0 "+member,
		"orders 1 1 2 1 "+member,
		"orders 2 - 0 0 "+member,
	)

	// The agent's reason, and what to do about it.
	hint := "session timeout"
	r := fails(t, "", []string{"group", "reset", "live", "--to", "earliest", "--topic", "orders", "--addr", addr}, `cannot reset group "live"`, "live member", hint, "strata group describe live")
	if strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("reset refused: want one line, got %q", r.stderr)
	}
	fails(t, "", []string{"group", "reset", "live", "--to", "earliest", "--topic", "orders", "--dry-run", "--addr", addr}, `cannot reset group "live"`, hint)
	fails(t, "", []string{"group", "delete", "live", "--addr", addr}, `cannot delete group "live"`, hint)
	if got := committed(describeGroup(t, addr, "live")); got[1] != 1 {
		t.Errorf("refused reset moved the offsets: %v", got)
	}

	if _, err := gc.LeaveGroup(t.Context(), connect.NewRequest(&stratav1.LeaveGroupRequest{Group: "live", MemberId: member})); err != nil {
		t.Fatalf("LeaveGroup: %v", err)
	}
	ok(t, "", "group", "reset", "live", "--to", "latest", "--topic", "orders", "--addr", addr)
	ok(t, "", "group", "delete", "live", "--addr", addr)
}

func TestGroupBadCommandLines(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "orders", "--addr", addr)
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"group"}, []string{"missing subcommand"}},
		{[]string{"group", "rename", "x"}, []string{`unknown subcommand "rename"`, "list, describe, reset or delete"}},
		{[]string{"group", "describe"}, []string{"missing the group name", "strata group describe --help"}},
		{[]string{"group", "describe", "a", "b"}, []string{"want one group name"}},
		{[]string{"group", "delete"}, []string{"missing the group name"}},
		{[]string{"group", "reset", "--to", "earliest", "--topic", "orders"}, []string{"missing the group name"}},
		{[]string{"group", "list", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"group", "list", "--output", "xml"}, []string{`--output "xml"`}},
		{[]string{"group", "describe", "g", "--output", "csv"}, []string{`--output "csv"`}},
		{[]string{"group", "reset", "g", "--topic", "orders"}, []string{"missing --to"}},
		{[]string{"group", "reset", "g", "--to", "yesterday", "--topic", "orders"}, []string{`--to "yesterday"`, "RFC 3339", "strata group reset --help"}},
		{[]string{"group", "reset", "g", "--to", "-5", "--topic", "orders"}, []string{"--to -5", "cannot be negative"}},
		{[]string{"group", "reset", "g", "--to", "earliest"}, []string{"--topic", "--partition", "strata group reset --help"}},
		{[]string{"group", "reset", "g", "--to", "earliest", "--partition", "orders"}, []string{"TOPIC:PARTITION"}},
		{[]string{"group", "reset", "g", "--to", "earliest", "--partition", "orders:x"}, []string{"TOPIC:PARTITION"}},
		{[]string{"group", "describe", "nope", "--addr", addr}, []string{`group "nope" does not exist`}},
		{[]string{"group", "delete", "nope", "--addr", addr}, []string{`group "nope" does not exist`}},
	}
	for _, c := range cases {
		r := fails(t, "", c.args, c.want...)
		if r.stdout != "" {
			t.Errorf("strata %v: stdout %q", c.args, r.stdout)
		}
	}
}

func TestGroupHelp(t *testing.T) {
	t.Parallel()
	r := strata(t, "", "help")
	if !strings.Contains(r.stdout, "\n  group ") {
		t.Errorf("strata help lacks group:\n%s", r.stdout)
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"group", "--help"}, []string{"list", "describe", "reset", "delete"}},
		{[]string{"group", "list", "--help"}, []string{"--output", `(default "table")`, "--addr"}},
		{[]string{"group", "describe", "--help"}, []string{"--output", "orders:0-3,7", "Example"}},
		{[]string{"group", "reset", "--help"}, []string{"--to", "--topic", "--partition", "T:P", "--dry-run", "earliest", "latest", "RFC 3339", "Examples", "live members"}},
		{[]string{"group", "delete", "--help"}, []string{"live members", "Example"}},
		{[]string{"help", "group", "reset"}, []string{"--dry-run"}},
	}
	for _, c := range cases {
		r := strata(t, "", c.args...)
		if r.code != 0 {
			t.Errorf("strata %v: exit %d, stderr %s", c.args, r.code, r.stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("strata %v: help lacks %q:\n%s", c.args, w, r.stdout)
			}
		}
	}
}

func TestLiveMembersHint(t *testing.T) {
	t.Parallel()
	// An agent whose reason does not say what to do gets the hint added.
	err := liveMembers("delete", "g", connect.NewError(connect.CodeFailedPrecondition, errors.New(`group "g" has live members`)))
	want := "cannot delete group \"g\": group \"g\" has live members; stop the group's consumers first, or wait for their session timeout to pass (`strata group describe g` shows the members)"
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	// One that does is left as it is.
	err = liveMembers("reset", "g", connect.NewError(connect.CodeFailedPrecondition, errors.New("has 1 live member: stop it or wait for its session timeout")))
	if strings.Count(err.Error(), "session timeout") != 1 {
		t.Errorf("hint repeated: %s", err)
	}
}

func TestCompactPartitions(t *testing.T) {
	t.Parallel()
	tp := func(topic string, ps ...int32) *stratav1.TopicPartitions {
		return &stratav1.TopicPartitions{Topic: topic, Partitions: ps}
	}
	cases := []struct {
		in   []*stratav1.TopicPartitions
		want string
	}{
		{nil, "-"},
		{[]*stratav1.TopicPartitions{tp("orders")}, "-"},
		{[]*stratav1.TopicPartitions{tp("orders", 0)}, "orders:0"},
		{[]*stratav1.TopicPartitions{tp("orders", 0, 1, 2, 3, 7)}, "orders:0-3,7"},
		{[]*stratav1.TopicPartitions{tp("orders", 7, 3, 1, 2, 0, 2)}, "orders:0-3,7"},
		{[]*stratav1.TopicPartitions{tp("orders", 1, 3, 5)}, "orders:1,3,5"},
		{[]*stratav1.TopicPartitions{tp("refunds", 4, 5), tp("orders", 0, 1), tp("orders", 2, 9, 10)}, "orders:0-2,9-10 refunds:4-5"},
	}
	for _, c := range cases {
		if got := compactPartitions(c.in); got != c.want {
			t.Errorf("compactPartitions(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
