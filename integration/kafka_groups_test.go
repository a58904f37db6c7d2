package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratabroker/strata/internal/testenv"
)

// Kafka consumer groups (the classic protocol) with real clients against
// agent processes over MinIO and redis-server.

// kafkaGroupTopic creates a topic through the Kafka admin API and fills
// each partition with perPartition records (values "<round>-<p>-<i>").
func kafkaGroupTopic(t *testing.T, ctx context.Context, seeds []string, topic string, partitions int32) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	return cl
}

func produceRound(t *testing.T, ctx context.Context, cl *kgo.Client, round int, partitions int32, perPartition int) {
	t.Helper()
	var rs []*kgo.Record
	for p := range partitions {
		for i := range perPartition {
			rs = append(rs, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%d-%d-%d", round, p, i)})
		}
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce round %d: %v", round, err)
	}
}

// kcatMember is one `kcat -G` balanced consumer process.
type kcatMember struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// TestKafkaGroupKcatBalanced: three kcat balanced consumers (librdkafka's
// classic group client) share a 12-partition topic through two agents; one
// is killed with SIGKILL, and the other two take over its partitions once
// its session expires: every record is consumed.
func TestKafkaGroupKcatBalanced(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	kafkaA, kafkaB := freeAddr(t), freeAddr(t)
	agentA := d.startAgent(t, "agent-a", "--kafka-listen", kafkaA)
	d.startAgent(t, "agent-b", "--kafka-listen", kafkaB)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const partitions, perPartition = 12, 10
	topic, group := "kcat-group-"+randomHex(3), "kcat-"+randomHex(3)
	prod := kafkaGroupTopic(t, ctx, []string{kafkaA, kafkaB}, topic, partitions)
	produceRound(t, ctx, prod, 0, partitions, perPartition)

	var mu sync.Mutex
	seen := map[string]map[string]bool{} // value -> members that printed it
	start := func(name string) *kcatMember {
		cmd := exec.CommandContext(ctx, testenv.KcatBin(t), "-b", kafkaA+","+kafkaB, "-G", group,
			"-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=300",
			"-X", "client.id="+name, "-f", "%s\n", "-u", "-q", topic)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		m := &kcatMember{cmd: cmd, done: make(chan struct{})}
		go func() {
			defer close(m.done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				mu.Lock()
				if seen[sc.Text()] == nil {
					seen[sc.Text()] = map[string]bool{}
				}
				seen[sc.Text()][name] = true
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-m.done
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("%s stderr:\n%s", name, tailLines(stderr.String(), 40))
			}
		})
		return m
	}
	allSeen := func(round int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for p := range partitions {
				for i := range perPartition {
					if len(seen[fmt.Sprintf("%d-%d-%d", round, p, i)]) == 0 {
						return false
					}
				}
			}
			return true
		}
	}
	members := []*kcatMember{start("kcat-0"), start("kcat-1"), start("kcat-2")}
	adm := kadm.NewClient(prod)
	if !waitFor(90*time.Second, func() bool {
		dg, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false
		}
		g := dg[group]
		return g.State == "Stable" && len(g.Members) == 3 && len(g.AssignedPartitions()[topic]) == partitions
	}) {
		dg, _ := adm.DescribeGroups(ctx, group)
		t.Fatalf("the three kcat members never settled: %+v", dg[group])
	}
	if !waitFor(60*time.Second, allSeen(0)) {
		t.Fatal("the three kcat members did not consume every record")
	}
	// Each partition is assigned to exactly one member.
	dg, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[int32]string{}
	for _, m := range dg[group].Members {
		ca, ok := m.Assigned.AsConsumer()
		if !ok {
			t.Fatalf("member %s has no consumer assignment", m.MemberID)
		}
		for _, at := range ca.Topics {
			for _, p := range at.Partitions {
				if o, dup := owners[p]; dup {
					t.Fatalf("partition %d assigned to %s and %s", p, o, m.MemberID)
				}
				owners[p] = m.MemberID
			}
		}
	}

	// SIGKILL one: no LeaveGroup. Its session expires and the others take
	// its partitions.
	_ = members[0].cmd.Process.Kill()
	produceRound(t, ctx, prod, 1, partitions, perPartition)
	if !waitFor(90*time.Second, allSeen(1)) {
		dg, _ := adm.DescribeGroups(ctx, group)
		t.Fatalf("records of the killed member's partitions were not consumed by the others; group %+v", dg[group])
	}
	if !waitFor(60*time.Second, func() bool {
		dg, err := adm.DescribeGroups(ctx, group)
		return err == nil && dg[group].State == "Stable" && len(dg[group].Members) == 2
	}) {
		t.Fatal("the group did not settle with the two live members")
	}

	// `strata group describe` shows the Kafka group: its two members with
	// the partitions the leader assigned them, and every partition's lag.
	var described struct {
		State   string `json:"state"`
		Members []struct {
			MemberID string   `json:"member_id"`
			Topics   []string `json:"topics"`
			Assigned []struct {
				Topic      string  `json:"topic"`
				Partitions []int32 `json:"partitions"`
			} `json:"assigned"`
		} `json:"members"`
		Partitions []struct {
			Partition     int32  `json:"partition"`
			HighWatermark int64  `json:"high_watermark"`
			Owner         string `json:"owner"`
		} `json:"partitions"`
	}
	out := mustCLI(t, nil, "group", "describe", group, "--output", "json", "--addr", agentA.url())
	if err := json.Unmarshal([]byte(out), &described); err != nil {
		t.Fatalf("group describe: %v\n%s", err, out)
	}
	assigned := 0
	for _, m := range described.Members {
		if len(m.Topics) != 1 || m.Topics[0] != topic {
			t.Errorf("member %s: topics %v, want [%s]", m.MemberID, m.Topics, topic)
		}
		for _, a := range m.Assigned {
			assigned += len(a.Partitions)
		}
	}
	if described.State != "Stable" || len(described.Members) != 2 || assigned != partitions || len(described.Partitions) != partitions {
		t.Fatalf("group describe: %s", out)
	}
	for _, p := range described.Partitions {
		if p.Owner == "" || p.HighWatermark != 2*perPartition {
			t.Fatalf("group describe, partition %d: %s", p.Partition, out)
		}
	}
}

// TestKafkaGroupRebalanceSurvivesAgentKill: franz-go members of one group
// (range and cooperative-sticky balancers) talk to two agent processes. A
// third member joins and the agent coordinating the group (FindCoordinator's
// answer) is killed with SIGKILL during the rebalance: the members find the
// other agent and the rebalance completes there, its state being in the
// index. Then one member leaves (LeaveGroup), one is killed (its
// connections cut, never leaving: its session expires), and the last one
// commits and closes; a new member resumes from the committed offsets.
// Throughout, no partition is owned by two live members at once, and every
// record is consumed.
func TestKafkaGroupRebalanceSurvivesAgentKill(t *testing.T) {
	t.Parallel()
	for _, bal := range []struct {
		name string
		b    func() kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer},
	} {
		t.Run(bal.name, func(t *testing.T) {
			t.Parallel()
			testGroupAgentKill(t, bal.b)
		})
	}
}

// cutDialer dials until cut, then closes what it dialed and refuses more:
// a member process killed, as the agents see it.
type cutDialer struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (c *cutDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return nil, errors.New("member killed")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, host)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

func (c *cutDialer) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	for _, conn := range c.conns {
		conn.Close()
	}
}

func testGroupAgentKill(t *testing.T, balancer func() kgo.GroupBalancer) {
	d := newDeployment(t)
	kafkaA, kafkaB := freeAddr(t), freeAddr(t)
	agents := map[string]*server{
		kafkaA: d.startAgent(t, "agent-a", "--kafka-listen", kafkaA),
		kafkaB: d.startAgent(t, "agent-b", "--kafka-listen", kafkaB),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	const partitions, perPartition = 12, 10
	topic, group := "kill-group-"+randomHex(3), "kill-"+randomHex(3)
	prod := kafkaGroupTopic(t, ctx, []string{kafkaA, kafkaB}, topic, partitions)
	produceRound(t, ctx, prod, 0, partitions, perPartition)

	var mu sync.Mutex
	owner := map[int32]string{}
	dead := map[string]bool{}
	seen := map[string]string{} // value -> member
	type member struct {
		cl     *kgo.Client
		dialer *cutDialer
		stop   context.CancelFunc
		done   chan struct{}
	}
	members := map[string]*member{}
	release := func(name string, m map[string][]int32) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range m[topic] {
			if owner[p] == name {
				delete(owner, p)
			}
		}
	}
	start := func(name string) {
		dl := &cutDialer{}
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(kafkaA, kafkaB),
			kgo.Dialer(dl.dial),
			kgo.ClientID(name),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.Balancers(balancer()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(6*time.Second),
			kgo.HeartbeatInterval(300*time.Millisecond),
			kgo.RebalanceTimeout(20*time.Second),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.MetadataMinAge(250*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				if dead[name] {
					return
				}
				for _, p := range m[topic] {
					if o, ok := owner[p]; ok && o != name && !dead[o] {
						t.Errorf("partition %d assigned to %s while %s owns it", p, name, o)
					}
					owner[p] = name
				}
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { release(name, m) }),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { release(name, m) }),
		)
		if err != nil {
			t.Fatal(err)
		}
		mctx, stop := context.WithCancel(ctx)
		m := &member{cl: cl, dialer: dl, stop: stop, done: make(chan struct{})}
		members[name] = m
		go func() {
			defer close(m.done)
			for mctx.Err() == nil {
				cl.PollFetches(mctx).EachRecord(func(r *kgo.Record) {
					mu.Lock()
					if !dead[name] {
						seen[string(r.Value)] = name
					}
					mu.Unlock()
				})
			}
		}()
	}
	gone := func(name string) {
		mu.Lock()
		defer mu.Unlock()
		dead[name] = true
		for p, o := range owner {
			if o == name {
				delete(owner, p)
			}
		}
	}
	defer func() {
		cancel()
		for _, m := range members {
			m.cl.Close()
		}
	}()
	settled := func(n int, what string) {
		t.Helper()
		if !waitFor(120*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			by := map[string]int{}
			for _, o := range owner {
				by[o]++
			}
			return len(owner) == partitions && len(by) == n
		}) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("%s: the group never settled with %d members: %v", what, n, owner)
		}
	}
	allSeen := func(round int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for p := range partitions {
				for i := range perPartition {
					if _, ok := seen[fmt.Sprintf("%d-%d-%d", round, p, i)]; !ok {
						return false
					}
				}
			}
			return true
		}
	}
	start("m0")
	start("m1")
	settled(2, "two members")
	// The coordinator the clients were told.
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey = group
	resp, err := req.RequestWith(ctx, prod)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("FindCoordinator: %v %+v", err, resp)
	}
	coord := fmt.Sprintf("%s:%d", resp.Host, resp.Port)
	victim, ok := agents[coord]
	if !ok {
		t.Fatalf("coordinator %s is not one of the agents", coord)
	}
	// A third member joins; the coordinating agent dies mid-rebalance.
	start("m2")
	time.Sleep(300 * time.Millisecond)
	victim.kill()
	prod = prodFor(t, agents, coord, topic)
	produceRound(t, ctx, prod, 1, partitions, perPartition)
	settled(3, "after the coordinating agent was killed")
	if !waitFor(60*time.Second, func() bool { return allSeen(0)() && allSeen(1)() }) {
		t.Fatal("not every record was consumed")
	}

	// One leaves, one is killed.
	m0 := members["m0"]
	m0.stop()
	<-m0.done
	m0.cl.Close()
	gone("m0")
	settled(2, "after m0 left")
	members["m1"].dialer.kill()
	gone("m1")
	settled(1, "after m1 was killed")
	produceRound(t, ctx, prod, 2, partitions, perPartition)
	if !waitFor(60*time.Second, allSeen(2)) {
		t.Fatal("the last member did not consume every record of its new partitions")
	}

	// Committed offsets resume after a restart.
	m2 := members["m2"]
	if err := m2.cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	m2.stop()
	<-m2.done
	m2.cl.Close()
	gone("m2")
	mu.Lock()
	clear(seen)
	mu.Unlock()
	produceRound(t, ctx, prod, 3, partitions, perPartition)
	start("m3")
	if !waitFor(90*time.Second, allSeen(3)) {
		t.Fatal("the restarted member did not consume the new records")
	}
	mu.Lock()
	defer mu.Unlock()
	for v := range seen {
		if !strings.HasPrefix(v, "3-") {
			t.Errorf("the restarted member read %q, from before its group's committed offsets", v)
		}
	}
}

// prodFor is a producer seeded with the agents other than the dead one.
func prodFor(t *testing.T, agents map[string]*server, dead, topic string) *kgo.Client {
	t.Helper()
	var seeds []string
	for addr := range agents {
		if addr != dead {
			seeds = append(seeds, addr)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
