package main

// strata group list|describe|reset|delete: the operator's side of
// GroupService. Members join, heartbeat and commit through package client
// (strata consume --group); these commands only look and, while a group has
// no live members, move or forget its offsets.

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

const groupUsage = `Usage:
  strata group list [--output table|json]
  strata group describe GROUP [--output table|json]
  strata group reset GROUP --to POSITION (--topic T | --partition T:P)... [--dry-run]
  strata group delete GROUP

Run 'strata group <subcommand> --help' for a subcommand's flags.
`

// liveMembers explains the agent's FAILED_PRECONDITION for reset and
// delete, which are refused while the group has live members. The agent's
// message says why; the hint says what to do, unless the message does
// already.
func liveMembers(verb, group string, err error) error {
	msg := connectMessage(err)
	if !strings.Contains(msg, "session timeout") {
		msg += "; stop the group's consumers first, or wait for their session timeout to pass"
	}
	return fmt.Errorf("cannot %s group %q: %s (`strata group describe %s` shows the members)", verb, group, msg, group)
}

func runGroup(ctx context.Context, c *cli, args []string) error {
	return runSubcommand(ctx, c, "strata group", groupUsage, []command{
		{name: "list", run: runGroupList},
		{name: "describe", run: runGroupDescribe},
		{name: "reset", run: runGroupReset},
		{name: "delete", run: runGroupDelete},
	}, args)
}

// oneGroup checks that exactly one positional argument, the group name, was
// given.
func oneGroup(cmd string, positional []string) (string, error) {
	return oneArg(cmd, "group name", positional)
}

func groupNotFound(group string) error {
	return fmt.Errorf("group %q does not exist (`strata group list` shows the groups)", group)
}

func runGroupList(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata group list"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	output := fs.String("output", "table", "output format: table or json")
	positional, err := c.parseFlags(fs, `Usage: strata group list [--output table|json]

Lists every consumer group: its state (Empty: no live members; Stable:
every member owns its share; Reconciling: partitions are moving), its live
members and its lag: the records between each partition's committed offset
(its log start when none is committed) and its high watermark, summed over
the partitions of the subscribed topics and those with a committed offset.
--output json prints {"groups":[{"group","state","members","lag"}]}.
`, args)
	if err != nil {
		return err
	}
	if err := noArgs(cmd, positional); err != nil {
		return err
	}
	if err := oneOf(cmd, "output", *output, "table", "json"); err != nil {
		return err
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	resp, err := cl.group.ListGroups(ctx, connect.NewRequest(&stratav1.ListGroupsRequest{}))
	if err != nil {
		return cl.explain(err, "")
	}
	groups := slices.SortedFunc(slices.Values(resp.Msg.GetGroups()), func(a, b *stratav1.GroupSummary) int {
		return strings.Compare(a.GetGroup(), b.GetGroup())
	})
	if *output == "json" {
		out := struct {
			Groups []groupSummaryJSON `json:"groups"`
		}{Groups: make([]groupSummaryJSON, len(groups))}
		for i, g := range groups {
			out.Groups[i] = groupSummaryJSON{Group: g.GetGroup(), State: g.GetState(), Members: g.GetMembers(), Lag: g.GetLag()}
		}
		return writeJSON(c.stdout, out)
	}
	if len(groups) == 0 {
		fmt.Fprintln(c.stdout, "No groups. A group appears when a consumer joins it (`strata consume TOPIC --group GROUP`).")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tMEMBERS\tLAG")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", g.GetGroup(), g.GetState(), g.GetMembers(), g.GetLag())
	}
	return tw.Flush()
}

func runGroupDescribe(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata group describe"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	output := fs.String("output", "table", "output format: table or json")
	positional, err := c.parseFlags(fs, `Usage: strata group describe GROUP [--output table|json]

Shows a group's state, epoch and total lag; each live member with its
epoch, the partitions it owns (ASSIGNED), those it must hand over
(REVOKING), those waiting for their old owner to release them (PENDING)
and when its session expires without a heartbeat; and each partition of
the subscribed topics and with a committed offset: the committed offset
("-" when none), the high watermark, the lag and the owning member.
Partitions are written compactly: orders:0-3,7 is partitions 0, 1, 2, 3
and 7 of topic orders.

--output json prints {"group","state","group_epoch","total_lag",
"members":[{"member_id","member_epoch","topics","topic_regex","assigned",
"revoking","pending","session_expires"}],"partitions":[{"topic",
"partition","committed_offset","high_watermark","lag","owner","metadata"}]}
with committed_offset -1 when none and partition sets as
[{"topic","partitions":[...]}].

Example:
  strata group describe billing
`, args)
	if err != nil {
		return err
	}
	group, err := oneGroup(cmd, positional)
	if err != nil {
		return err
	}
	if err := oneOf(cmd, "output", *output, "table", "json"); err != nil {
		return err
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	resp, err := cl.group.DescribeGroup(ctx, connect.NewRequest(&stratav1.DescribeGroupRequest{Group: group}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return groupNotFound(group)
	}
	if err != nil {
		return cl.explain(err, "")
	}
	d := resp.Msg
	if *output == "json" {
		return writeJSON(c.stdout, toGroupJSON(d))
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Group:\t%s\n", d.GetGroup())
	fmt.Fprintf(tw, "State:\t%s\n", d.GetState())
	fmt.Fprintf(tw, "Epoch:\t%d\n", d.GetGroupEpoch())
	fmt.Fprintf(tw, "Members:\t%d\n", len(d.GetMembers()))
	fmt.Fprintf(tw, "Total lag:\t%d\n", d.GetTotalLag())
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	if len(d.GetMembers()) == 0 {
		fmt.Fprintln(c.stdout, "No live members.")
	} else {
		now := time.Now()
		tw = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tEPOCH\tASSIGNED\tREVOKING\tPENDING\tSESSION-EXPIRES")
		for _, m := range d.GetMembers() {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", m.GetMemberId(), m.GetMemberEpoch(),
				compactPartitions(m.GetAssigned()), compactPartitions(m.GetRevoking()), compactPartitions(m.GetPending()),
				sessionExpires(m.GetSessionExpires(), now))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(c.stdout)
	if len(d.GetPartitions()) == 0 {
		fmt.Fprintln(c.stdout, "No partitions: the group follows no topic and has no committed offsets.")
		return nil
	}
	tw = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tHIGH-WATERMARK\tLAG\tOWNER")
	for _, p := range d.GetPartitions() {
		committed := "-"
		if p.GetCommittedOffset() >= 0 {
			committed = strconv.FormatInt(p.GetCommittedOffset(), 10)
		}
		owner := p.GetOwner()
		if owner == "" {
			owner = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", p.GetTopic(), p.GetPartition(), committed, p.GetHighWatermark(), p.GetLag(), owner)
	}
	return tw.Flush()
}

func runGroupReset(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata group reset"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	to := fs.String("to", "", "new `POSITION`: earliest, latest, an offset or an RFC 3339 time (required)")
	var topics stringList
	fs.Var(&topics, "topic", "reset every partition of topic `T`; repeat for several")
	var partitions topicPartitionList
	fs.Var(&partitions, "partition", "reset partition `T:P` (topic T, partition P); repeat for several")
	dryRun := fs.Bool("dry-run", false, "print the new offsets without storing them")
	output := fs.String("output", "table", "output format: table or json")
	positional, err := c.parseFlags(fs, `Usage: strata group reset GROUP --to POSITION (--topic T | --partition T:P)... [--dry-run]

Moves a group's committed offsets, which is where its consumers start
reading. Only while the group has no live members: stop its consumers
first, or wait for their session timeout to pass.

New position (--to), in every partition named:
  earliest         the first record still kept
  latest           the high watermark: skip everything so far
  <offset>         this offset (e.g. 42), clamped to each partition's bounds
  <RFC 3339 time>  the first record at or after this time (the high
                   watermark when there is none), e.g. 2025-06-01T12:00:00Z

Which partitions: every partition of each --topic, and each --partition
T:P; at least one of them is required.

The command prints each partition's offset before (CURRENT, "-" when none
was committed) and after the reset (NEW). --output json prints
{"group","dry_run","offsets":[{"topic","partition","previous_offset",
"offset"}]} with previous_offset -1 when none was committed.

Examples:
  strata group reset billing --to earliest --topic orders --dry-run
  strata group reset billing --to latest --topic orders --topic refunds
  strata group reset billing --to 1000 --partition orders:0 --partition orders:3
  strata group reset billing --to 2025-06-01T00:00:00Z --topic orders
`, args)
	if err != nil {
		return err
	}
	group, err := oneGroup(cmd, positional)
	if err != nil {
		return err
	}
	if err := oneOf(cmd, "output", *output, "table", "json"); err != nil {
		return err
	}
	if *to == "" {
		return usagef(cmd, "missing --to: say where to move the offsets (earliest, latest, an offset or an RFC 3339 time)")
	}
	pos, err := parseResetTo(*to)
	if err != nil {
		return usagef(cmd, "%v", err)
	}
	if len(topics) == 0 && len(partitions) == 0 {
		return usagef(cmd, "no partitions named: give --topic T and/or --partition T:P")
	}
	req := &stratav1.ResetOffsetsRequest{
		Group:      group,
		Topics:     slices.Compact(slices.Sorted(slices.Values(topics))),
		Partitions: partitions.byTopic(),
		DryRun:     *dryRun,
	}
	switch pos.kind {
	case "earliest":
		req.To = &stratav1.ResetOffsetsRequest_Earliest{Earliest: true}
	case "latest":
		req.To = &stratav1.ResetOffsetsRequest_Latest{Latest: true}
	case "offset":
		req.To = &stratav1.ResetOffsetsRequest_Offset{Offset: pos.offset}
	case "time":
		req.To = &stratav1.ResetOffsetsRequest_Timestamp{Timestamp: timestamppb.New(pos.time)}
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	// The positions before, to show what moves. Nothing stops a commit
	// landing between this read and the reset, but the agent refuses the
	// reset while the group has members, and only members commit then.
	before, err := cl.group.FetchOffsets(ctx, connect.NewRequest(&stratav1.FetchOffsetsRequest{Group: group}))
	if err != nil && connect.CodeOf(err) != connect.CodeNotFound {
		return cl.explain(err, "")
	}
	previous := map[topicPartition]int64{}
	if err == nil {
		for _, o := range before.Msg.GetOffsets() {
			previous[topicPartition{o.GetTopic(), o.GetPartition()}] = o.GetOffset()
		}
	}
	resp, err := cl.group.ResetOffsets(ctx, connect.NewRequest(req))
	switch connect.CodeOf(err) {
	case connect.CodeFailedPrecondition:
		return liveMembers("reset", group, err)
	case connect.CodeNotFound:
		// The group, or a topic or partition named.
		return fmt.Errorf("cannot reset group %q: %s", group, connectMessage(err))
	}
	if err != nil {
		return cl.explain(err, "")
	}
	offsets := slices.SortedFunc(slices.Values(resp.Msg.GetOffsets()), func(a, b *stratav1.PartitionOffset) int {
		return cmp.Or(strings.Compare(a.GetTopic(), b.GetTopic()), cmp.Compare(a.GetPartition(), b.GetPartition()))
	})
	prev := func(o *stratav1.PartitionOffset) int64 {
		if p, ok := previous[topicPartition{o.GetTopic(), o.GetPartition()}]; ok {
			return p
		}
		return -1
	}
	if *output == "json" {
		out := struct {
			Group   string            `json:"group"`
			DryRun  bool              `json:"dry_run"`
			Offsets []resetOffsetJSON `json:"offsets"`
		}{Group: group, DryRun: *dryRun, Offsets: make([]resetOffsetJSON, len(offsets))}
		for i, o := range offsets {
			out.Offsets[i] = resetOffsetJSON{Topic: o.GetTopic(), Partition: o.GetPartition(), PreviousOffset: prev(o), Offset: o.GetOffset()}
		}
		if err := writeJSON(c.stdout, out); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tNEW")
		for _, o := range offsets {
			current := "-"
			if p := prev(o); p >= 0 {
				current = strconv.FormatInt(p, 10)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", o.GetTopic(), o.GetPartition(), current, o.GetOffset())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	n := int32(len(offsets))
	if *dryRun {
		fmt.Fprintf(c.stderr, "dry run: the %d offset%s above %s not stored; run again without --dry-run to reset group %q\n", n, plural(n), wasWere(n), group)
	} else {
		fmt.Fprintf(c.stderr, "reset %d offset%s of group %q\n", n, plural(n), group)
	}
	return nil
}

func runGroupDelete(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata group delete"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	positional, err := c.parseFlags(fs, `Usage: strata group delete GROUP

Deletes a consumer group and its committed offsets. Only while the group
has no live members: stop its consumers first, or wait for their session
timeout to pass. A consumer joining a group of that name again starts
afresh, as with a new group.

Example:
  strata group delete billing
`, args)
	if err != nil {
		return err
	}
	group, err := oneGroup(cmd, positional)
	if err != nil {
		return err
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	_, err = cl.group.DeleteGroup(ctx, connect.NewRequest(&stratav1.DeleteGroupRequest{Group: group}))
	switch connect.CodeOf(err) {
	case connect.CodeNotFound:
		return groupNotFound(group)
	case connect.CodeFailedPrecondition:
		return liveMembers("delete", group, err)
	}
	if err != nil {
		return cl.explain(err, "")
	}
	fmt.Fprintf(c.stdout, "deleted group %q\n", group)
	return nil
}

// parseResetTo reads --to, which takes what consume's --from takes.
func parseResetTo(s string) (startPosition, error) {
	pos, err := parseFrom(s)
	if err == nil {
		return pos, nil
	}
	if n, perr := strconv.ParseInt(s, 10, 64); perr == nil && n < 0 {
		return startPosition{}, fmt.Errorf("--to %d: an offset cannot be negative", n)
	}
	return startPosition{}, fmt.Errorf("--to %q: want earliest, latest, an offset (e.g. 42) or an RFC 3339 time (e.g. 2025-06-01T12:00:00Z)", s)
}

// topicPartition names one partition.
type topicPartition struct {
	topic     string
	partition int32
}

// topicPartitionList collects repeated --partition T:P flags.
type topicPartitionList []topicPartition

func (l *topicPartitionList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(*l))
	for i, tp := range *l {
		parts[i] = tp.topic + ":" + strconv.Itoa(int(tp.partition))
	}
	return strings.Join(parts, ",")
}

func (l *topicPartitionList) Set(s string) error {
	// Topic names cannot hold ':', so the last one separates.
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return fmt.Errorf("want TOPIC:PARTITION (e.g. orders:0), got %q", s)
	}
	p, err := parsePartition(s[i+1:])
	if err != nil {
		return fmt.Errorf("want TOPIC:PARTITION (e.g. orders:0), got %q", s)
	}
	*l = append(*l, topicPartition{s[:i], p})
	return nil
}

// byTopic groups the partitions by topic, topics by name and partitions
// ascending, without repeats.
func (l topicPartitionList) byTopic() []*stratav1.TopicPartitions {
	m := map[string][]int32{}
	for _, tp := range l {
		m[tp.topic] = append(m[tp.topic], tp.partition)
	}
	out := make([]*stratav1.TopicPartitions, 0, len(m))
	for _, topic := range slices.Sorted(maps.Keys(m)) {
		ps := m[topic]
		slices.Sort(ps)
		out = append(out, &stratav1.TopicPartitions{Topic: topic, Partitions: slices.Compact(ps)})
	}
	return out
}

// stringList collects a repeated string flag.
type stringList []string

func (l *stringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *stringList) Set(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	*l = append(*l, s)
	return nil
}

// compactPartitions writes partition sets as topic:ranges, topics by name
// and separated by spaces: "orders:0-3,7 refunds:1". "-" is the empty set.
func compactPartitions(sets []*stratav1.TopicPartitions) string {
	m := map[string][]int32{}
	for _, s := range sets {
		m[s.GetTopic()] = append(m[s.GetTopic()], s.GetPartitions()...)
	}
	var b strings.Builder
	for _, topic := range slices.Sorted(maps.Keys(m)) {
		ps := m[topic]
		if len(ps) == 0 {
			continue
		}
		slices.Sort(ps)
		ps = slices.Compact(ps)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(topic)
		b.WriteByte(':')
		for i := 0; i < len(ps); {
			j := i
			for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
				j++
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(ps[i])))
			if j > i {
				b.WriteByte('-')
				b.WriteString(strconv.Itoa(int(ps[j])))
			}
			i = j + 1
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// sessionExpires writes a session's end as a UTC time and how far off it is.
func sessionExpires(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil {
		return "-"
	}
	t := ts.AsTime()
	d := t.Sub(now).Round(time.Second)
	when := fmt.Sprintf("in %s", d)
	if d < 0 {
		when = fmt.Sprintf("%s ago", -d)
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), when)
}

func wasWere(n int32) string {
	if n == 1 {
		return "was"
	}
	return "were"
}

// groupSummaryJSON is one group in `group list --output json`.
type groupSummaryJSON struct {
	Group   string `json:"group"`
	State   string `json:"state"`
	Members int32  `json:"members"`
	Lag     int64  `json:"lag"`
}

// groupJSON is `group describe --output json`.
type groupJSON struct {
	Group      string               `json:"group"`
	State      string               `json:"state"`
	GroupEpoch int32                `json:"group_epoch"`
	TotalLag   int64                `json:"total_lag"`
	Members    []groupMemberJSON    `json:"members"`
	Partitions []groupPartitionJSON `json:"partitions"`
}

type groupMemberJSON struct {
	MemberID       string                `json:"member_id"`
	MemberEpoch    int32                 `json:"member_epoch"`
	Topics         []string              `json:"topics"`
	TopicRegex     string                `json:"topic_regex"`
	Assigned       []topicPartitionsJSON `json:"assigned"`
	Revoking       []topicPartitionsJSON `json:"revoking"`
	Pending        []topicPartitionsJSON `json:"pending"`
	SessionExpires string                `json:"session_expires,omitempty"`
}

type topicPartitionsJSON struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

type groupPartitionJSON struct {
	Topic           string `json:"topic"`
	Partition       int32  `json:"partition"`
	CommittedOffset int64  `json:"committed_offset"`
	HighWatermark   int64  `json:"high_watermark"`
	Lag             int64  `json:"lag"`
	Owner           string `json:"owner"`
	Metadata        string `json:"metadata"`
}

// resetOffsetJSON is one partition in `group reset --output json`.
type resetOffsetJSON struct {
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition"`
	PreviousOffset int64  `json:"previous_offset"`
	Offset         int64  `json:"offset"`
}

func toGroupJSON(d *stratav1.DescribeGroupResponse) groupJSON {
	out := groupJSON{
		Group:      d.GetGroup(),
		State:      d.GetState(),
		GroupEpoch: d.GetGroupEpoch(),
		TotalLag:   d.GetTotalLag(),
		Members:    make([]groupMemberJSON, len(d.GetMembers())),
		Partitions: make([]groupPartitionJSON, len(d.GetPartitions())),
	}
	for i, m := range d.GetMembers() {
		gm := groupMemberJSON{
			MemberID:    m.GetMemberId(),
			MemberEpoch: m.GetMemberEpoch(),
			Topics:      m.GetTopics(),
			TopicRegex:  m.GetTopicRegex(),
			Assigned:    toTopicPartitionsJSON(m.GetAssigned()),
			Revoking:    toTopicPartitionsJSON(m.GetRevoking()),
			Pending:     toTopicPartitionsJSON(m.GetPending()),
		}
		if gm.Topics == nil {
			gm.Topics = []string{}
		}
		if ts := m.GetSessionExpires(); ts != nil {
			gm.SessionExpires = ts.AsTime().UTC().Format(time.RFC3339Nano)
		}
		out.Members[i] = gm
	}
	for i, p := range d.GetPartitions() {
		out.Partitions[i] = groupPartitionJSON{
			Topic:           p.GetTopic(),
			Partition:       p.GetPartition(),
			CommittedOffset: p.GetCommittedOffset(),
			HighWatermark:   p.GetHighWatermark(),
			Lag:             p.GetLag(),
			Owner:           p.GetOwner(),
			Metadata:        p.GetMetadata(),
		}
	}
	return out
}

func toTopicPartitionsJSON(sets []*stratav1.TopicPartitions) []topicPartitionsJSON {
	out := make([]topicPartitionsJSON, len(sets))
	for i, s := range sets {
		out[i] = topicPartitionsJSON{Topic: s.GetTopic(), Partitions: s.GetPartitions()}
		if out[i].Partitions == nil {
			out[i].Partitions = []int32{}
		}
	}
	return out
}
