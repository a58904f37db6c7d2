package integration

// Native and Kafka consumer groups side by side on one topic (issue 13): a
// native group of `strata consume --group` processes (the Connect API,
// server-side assignment) and a Kafka group of franz-go clients (the
// classic protocol) each read every record. `strata group describe` shows
// each with its members, their assignments and the lag of every
// partition, 0 once caught up and the new records' count once more are
// produced while the members hold off, and Kafka's admin API (kadm:
// ListGroups, DescribeGroups, ConsumerGroupDescribe, OffsetFetch, Lag)
// shows the native group as it shows the Kafka one.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupDescribeJSON is `strata group describe --output json`.
type groupDescribeJSON struct {
	Group      string `json:"group"`
	State      string `json:"state"`
	GroupEpoch int32  `json:"group_epoch"`
	TotalLag   int64  `json:"total_lag"`
	Members    []struct {
		MemberID    string   `json:"member_id"`
		MemberEpoch int32    `json:"member_epoch"`
		Topics      []string `json:"topics"`
		Assigned    []struct {
			Topic      string  `json:"topic"`
			Partitions []int32 `json:"partitions"`
		} `json:"assigned"`
	} `json:"members"`
	Partitions []struct {
		Topic           string `json:"topic"`
		Partition       int32  `json:"partition"`
		CommittedOffset int64  `json:"committed_offset"`
		HighWatermark   int64  `json:"high_watermark"`
		Lag             int64  `json:"lag"`
		Owner           string `json:"owner"`
	} `json:"partitions"`
}

func describeGroupCLI(t *testing.T, addr, group string) (groupDescribeJSON, string) {
	t.Helper()
	out := mustCLI(t, nil, "group", "describe", group, "--output", "json", "--addr", addr)
	var d groupDescribeJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("strata group describe %s: %v\n%s", group, err, out)
	}
	return d, out
}

// checkDescribed checks a `strata group describe` of a group of members
// members reading topic's partitions, each committed at committed with the
// high watermark at hwm: every partition is owned by the member assigned
// it, no two members own one, and the lag is hwm-committed everywhere.
func checkDescribed(t *testing.T, d groupDescribeJSON, raw, topic string, partitions int32, members int, committed, hwm int64) (owners map[int32]string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("strata group describe %s: %s\n%s", d.Group, fmt.Sprintf(format, args...), raw)
	}
	if d.State != "Stable" {
		fail("state %q, want Stable", d.State)
	}
	if len(d.Members) != members {
		fail("%d members, want %d", len(d.Members), members)
	}
	owners = map[int32]string{}
	for _, m := range d.Members {
		if !slices.Equal(m.Topics, []string{topic}) {
			fail("member %s follows %v, want [%s]", m.MemberID, m.Topics, topic)
		}
		if len(m.Assigned) == 0 {
			fail("member %s is assigned nothing", m.MemberID)
		}
		for _, a := range m.Assigned {
			if a.Topic != topic {
				fail("member %s is assigned topic %s", m.MemberID, a.Topic)
			}
			for _, p := range a.Partitions {
				if o, dup := owners[p]; dup {
					fail("partition %d is assigned to %s and %s", p, o, m.MemberID)
				}
				owners[p] = m.MemberID
			}
		}
	}
	if len(owners) != int(partitions) {
		fail("%d partitions assigned, want %d", len(owners), partitions)
	}
	if len(d.Partitions) != int(partitions) {
		fail("%d partition rows, want %d", len(d.Partitions), partitions)
	}
	for _, p := range d.Partitions {
		if p.Topic != topic || p.Owner != owners[p.Partition] || p.CommittedOffset != committed || p.HighWatermark != hwm || p.Lag != hwm-committed {
			fail("partition %s/%d: owner %q committed %d high watermark %d lag %d, want owner %q committed %d high watermark %d lag %d",
				p.Topic, p.Partition, p.Owner, p.CommittedOffset, p.HighWatermark, p.Lag, owners[p.Partition], committed, hwm, hwm-committed)
		}
	}
	if want := int64(partitions) * (hwm - committed); d.TotalLag != want {
		fail("total lag %d, want %d", d.TotalLag, want)
	}
	return owners
}

// checkKadmLag checks kadm's Lag of a group (DescribeGroups, OffsetFetch
// and ListOffsets): every partition committed at committed, lag
// hwm-committed.
func checkKadmLag(t *testing.T, ctx context.Context, adm *kadm.Client, group, topic string, partitions int32, committed, hwm int64) {
	t.Helper()
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatalf("kadm Lag %s: %v", group, err)
	}
	l := lags[group]
	if err := l.Error(); err != nil {
		t.Fatalf("kadm Lag %s: %v", group, err)
	}
	for p := range partitions {
		ml, ok := l.Lag.Lookup(topic, p)
		if !ok || ml.Err != nil || ml.Commit.At != committed || ml.End.Offset != hwm || ml.Lag != hwm-committed {
			t.Fatalf("kadm Lag %s, partition %d: %+v (found %v), want committed %d end %d lag %d", group, p, ml, ok, committed, hwm, hwm-committed)
		}
	}
	if got, want := l.Lag.Total(), int64(partitions)*(hwm-committed); got != want {
		t.Fatalf("kadm Lag %s: total %d, want %d", group, got, want)
	}
}

// pollingKafkaMember is a franz-go member of a Kafka group, polling in a
// goroutine and committing what it polled after each poll. Held, it stops
// polling and fetching but stays in the group (heartbeats go on).
type pollingKafkaMember struct {
	t     *testing.T
	cl    *kgo.Client
	topic string
	mu    *sync.Mutex
	seen  map[string]int
	stop  context.CancelFunc
	done  chan struct{}
}

func startPollingKafkaMember(t *testing.T, seeds []string, name, group, topic string, mu *sync.Mutex, seen map[string]int) *pollingKafkaMember {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ClientID(name), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	m := &pollingKafkaMember{t: t, cl: cl, topic: topic, mu: mu, seen: seen}
	t.Cleanup(func() {
		m.hold()
		cl.Close()
	})
	m.resume()
	return m
}

func (m *pollingKafkaMember) resume() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stop, m.done = cancel, make(chan struct{})
	m.cl.ResumeFetchTopics(m.topic)
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := m.cl.PollFetches(ctx)
			fs.EachError(func(topic string, p int32, err error) {
				if ctx.Err() == nil {
					m.t.Logf("kafka member %s: fetch %s/%d: %v", m.cl.OptValue(kgo.ClientID), topic, p, err)
				}
			})
			m.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { m.seen[string(r.Value)]++ })
			m.mu.Unlock()
			if fs.NumRecords() > 0 {
				if err := m.cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
					m.t.Logf("kafka member %s: commit: %v", m.cl.OptValue(kgo.ClientID), err)
				}
			}
		}
	}()
}

// hold stops polling and fetching, the member staying in its group.
func (m *pollingKafkaMember) hold() {
	if m.stop == nil {
		return
	}
	m.stop()
	<-m.done
	m.stop = nil
	m.cl.PauseFetchTopics(m.topic)
}

// TestMixedGroups: a native group (`strata consume --group` processes) and
// a Kafka group (franz-go) read one topic through two agents, each getting
// every record; `strata group describe` and Kafka's admin API show both
// groups' members, assignments, committed offsets and lag, 0 once they
// caught up and the new records once more came while the members held off.
func TestMixedGroups(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	kafkaA, kafkaB := freeAddr(t), freeAddr(t)
	agentA := d.startAgent(t, "agent-a", "--kafka-listen", kafkaA)
	agentB := d.startAgent(t, "agent-b", "--kafka-listen", kafkaB)
	seeds := []string{kafkaA, kafkaB}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const partitions, perPartition, more = 6, 20, 5
	topic, native, kafka := "mixed-"+randomHex(3), "native-"+randomHex(3), "kafka-"+randomHex(3)
	prod := kafkaGroupTopic(t, ctx, seeds, topic, partitions)
	adm := kadm.NewClient(prod)
	produceRound(t, ctx, prod, 0, partitions, perPartition)

	// The native group: two `strata consume --group` processes, one on
	// each agent. A long session: they are frozen (SIGSTOP) below and
	// must stay members meanwhile.
	nativeArgs := []string{topic, "--from", "earliest", "--session-timeout", "2m"}
	natives := []*groupConsumer{
		startGroupConsumer(t, "native-1", agentA.url(), native, nativeArgs...),
		startGroupConsumer(t, "native-2", agentB.url(), native, nativeArgs...),
	}
	nativeSeen := func() map[string]int {
		seen := map[string]int{}
		for _, c := range natives {
			for _, r := range c.readRecords(t) {
				if r.Value != nil {
					seen[*r.Value]++
				}
			}
		}
		return seen
	}
	// The Kafka group: two franz-go members.
	var mu sync.Mutex
	kafkaSeen := map[string]int{}
	kafkas := []*pollingKafkaMember{
		startPollingKafkaMember(t, seeds, "kafka-1", kafka, topic, &mu, kafkaSeen),
		startPollingKafkaMember(t, seeds, "kafka-2", kafka, topic, &mu, kafkaSeen),
	}
	kafkaSeenCopy := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(kafkaSeen)
	}

	// Each group reads every record (at least once: members may repeat
	// what they read but had not committed when partitions moved), and
	// commits up to the high watermark.
	caughtUp := func(round int, committed int64) {
		t.Helper()
		missing := func(seen map[string]int) []string {
			var miss []string
			for p := range partitions {
				for i := range perPartition {
					if round == 1 && i >= more {
						break
					}
					if v := fmt.Sprintf("%d-%d-%d", round, p, i); seen[v] == 0 {
						miss = append(miss, v)
					}
				}
			}
			return miss
		}
		for name, seen := range map[string]func() map[string]int{native: nativeSeen, kafka: kafkaSeenCopy} {
			if !waitFor(90*time.Second, func() bool { return len(missing(seen())) == 0 }) {
				t.Fatalf("group %s: records of round %d not read in 90 s: %v", name, round, missing(seen()))
			}
			if !waitFor(90*time.Second, func() bool {
				r := runCLI(t, nil, "group", "describe", name, "--output", "json", "--addr", agentA.url())
				var d groupDescribeJSON
				if r.err != nil || json.Unmarshal([]byte(r.stdout), &d) != nil {
					return false
				}
				settled := d.State == "Stable" && len(d.Members) == 2 && d.TotalLag == 0
				for _, p := range d.Partitions {
					settled = settled && p.CommittedOffset == committed && p.Owner != ""
				}
				return settled
			}) {
				d, raw := describeGroupCLI(t, agentA.url(), name)
				t.Fatalf("group %s did not settle with 2 members, every partition owned and committed at %d in 90 s: %+v\n%s", name, committed, d, raw)
			}
		}
	}
	caughtUp(0, perPartition)

	// `strata group describe`, on either agent: members, assignments and
	// lag 0.
	dn, raw := describeGroupCLI(t, agentB.url(), native)
	nativeOwners := checkDescribed(t, dn, raw, topic, partitions, 2, perPartition, perPartition)
	dk, raw := describeGroupCLI(t, agentA.url(), kafka)
	kafkaOwners := checkDescribed(t, dk, raw, topic, partitions, 2, perPartition, perPartition)

	// Kafka's admin API shows both: ListGroups, DescribeGroups (the Kafka
	// group's members with their assignments; the native group's
	// members), ConsumerGroupDescribe (the native group's members with
	// their assignments), OffsetFetch and Lag.
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("kadm ListGroups: %v", err)
	}
	for _, c := range []struct{ group, groupType string }{{native, "consumer"}, {kafka, "classic"}} {
		lg, ok := listed[c.group]
		if !ok || lg.State != "Stable" || lg.ProtocolType != "consumer" || lg.GroupType != c.groupType {
			t.Fatalf("kadm ListGroups: group %s is %+v (listed %v), want Stable, protocol type consumer, type %s", c.group, lg, ok, c.groupType)
		}
	}
	described, err := adm.DescribeGroups(ctx, native, kafka)
	if err != nil {
		t.Fatalf("kadm DescribeGroups: %v", err)
	}
	memberIDs := func(owners map[int32]string) []string {
		ids := slices.Collect(maps.Values(owners))
		sort.Strings(ids)
		return slices.Compact(ids)
	}
	for _, c := range []struct {
		group  string
		owners map[int32]string
	}{{native, nativeOwners}, {kafka, kafkaOwners}} {
		g := described[c.group]
		var ids []string
		for _, m := range g.Members {
			ids = append(ids, m.MemberID)
		}
		sort.Strings(ids)
		if g.Err != nil || g.State != "Stable" || g.ProtocolType != "consumer" || !slices.Equal(ids, memberIDs(c.owners)) {
			t.Fatalf("kadm DescribeGroups %s: %+v (err %v), want Stable, protocol type consumer, members %v (as strata group describe)", c.group, g, g.Err, memberIDs(c.owners))
		}
	}
	for _, m := range described[kafka].Members {
		ca, ok := m.Assigned.AsConsumer()
		if !ok {
			t.Fatalf("kadm DescribeGroups %s: member %s has no consumer assignment", kafka, m.MemberID)
		}
		for _, at := range ca.Topics {
			for _, p := range at.Partitions {
				if at.Topic != topic || kafkaOwners[p] != m.MemberID {
					t.Fatalf("kadm DescribeGroups %s: member %s is assigned %s/%d, strata group describe says %s owns it", kafka, m.MemberID, at.Topic, p, kafkaOwners[p])
				}
			}
		}
	}
	cgs, err := adm.DescribeConsumerGroups(ctx, native)
	if err != nil {
		t.Fatalf("kadm DescribeConsumerGroups %s: %v", native, err)
	}
	cg := cgs[native]
	if cg.Err != nil || cg.State != "Stable" || len(cg.Members) != 2 {
		t.Fatalf("kadm DescribeConsumerGroups %s: %+v, want Stable with 2 members", native, cg)
	}
	for _, m := range cg.Members {
		n := 0
		for tp, ps := range m.Assignment {
			for p := range ps {
				n++
				if tp != topic || nativeOwners[p] != m.MemberID {
					t.Fatalf("kadm DescribeConsumerGroups %s: member %s is assigned %s/%d, strata group describe says %s owns it", native, m.MemberID, tp, p, nativeOwners[p])
				}
			}
		}
		if n == 0 {
			t.Fatalf("kadm DescribeConsumerGroups %s: member %s is assigned nothing", native, m.MemberID)
		}
	}
	for _, g := range []string{native, kafka} {
		checkKadmLag(t, ctx, adm, g, topic, partitions, perPartition, perPartition)
	}

	// The members hold off (the native ones frozen, the Kafka ones not
	// polling) and more records come: both groups lag by them, their
	// members and assignments unchanged.
	for _, c := range natives {
		if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range kafkas {
		m.hold()
	}
	var rs []*kgo.Record
	for p := range int32(partitions) {
		for i := range more {
			rs = append(rs, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "1-%d-%d", p, i)})
		}
	}
	if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce more: %v", err)
	}
	for _, c := range []struct {
		group  string
		owners map[int32]string
	}{{native, nativeOwners}, {kafka, kafkaOwners}} {
		d, raw := describeGroupCLI(t, agentA.url(), c.group)
		if owners := checkDescribed(t, d, raw, topic, partitions, 2, perPartition, perPartition+more); !maps.Equal(owners, c.owners) {
			t.Fatalf("strata group describe %s: owners %v, want them unchanged %v", c.group, owners, c.owners)
		}
		checkKadmLag(t, ctx, adm, c.group, topic, partitions, perPartition, perPartition+more)
		// The table a user reads says the same.
		table := mustCLI(t, nil, "group", "describe", c.group, "--addr", agentB.url())
		if !strings.Contains(table, "Stable") || !strings.Contains(table, fmt.Sprintf("Total lag:  %d\n", partitions*more)) {
			t.Fatalf("strata group describe %s (table): want Stable and a total lag of %d:\n%s", c.group, partitions*more, table)
		}
	}

	// Back to work: both read the new records and catch up again.
	for _, c := range natives {
		if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range kafkas {
		m.resume()
	}
	caughtUp(1, perPartition+more)
	dn, raw = describeGroupCLI(t, agentA.url(), native)
	checkDescribed(t, dn, raw, topic, partitions, 2, perPartition+more, perPartition+more)
	dk, raw = describeGroupCLI(t, agentA.url(), kafka)
	checkDescribed(t, dk, raw, topic, partitions, 2, perPartition+more, perPartition+more)
	for _, c := range natives {
		c.stop(t)
	}
}
