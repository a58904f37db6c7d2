package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
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
// talk to two agents; a third member joins, and the agent coordinating the
// group (FindCoordinator's answer) is killed with SIGKILL during the
// rebalance. The members find the other agent, the rebalance completes
// there (its state is in the index), every partition is owned by exactly
// one member, and every record is consumed.
func TestKafkaGroupRebalanceSurvivesAgentKill(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	kafkaA, kafkaB := freeAddr(t), freeAddr(t)
	agents := map[string]*server{
		kafkaA: d.startAgent(t, "agent-a", "--kafka-listen", kafkaA),
		kafkaB: d.startAgent(t, "agent-b", "--kafka-listen", kafkaB),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const partitions, perPartition = 12, 10
	topic, group := "kill-group-"+randomHex(3), "kill-"+randomHex(3)
	prod := kafkaGroupTopic(t, ctx, []string{kafkaA, kafkaB}, topic, partitions)
	produceRound(t, ctx, prod, 0, partitions, perPartition)

	var mu sync.Mutex
	owner := map[int32]string{}
	seen := map[string]bool{}
	var clients []*kgo.Client
	start := func(name string) {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(kafkaA, kafkaB),
			kgo.ClientID(name),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.Balancers(kgo.CooperativeStickyBalancer()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(6*time.Second),
			kgo.HeartbeatInterval(300*time.Millisecond),
			kgo.RebalanceTimeout(20*time.Second),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.MetadataMinAge(250*time.Millisecond),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m[topic] {
					if o, ok := owner[p]; ok && o != name {
						t.Errorf("partition %d assigned to %s while %s owns it", p, name, o)
					}
					owner[p] = name
				}
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m[topic] {
					if owner[p] == name {
						delete(owner, p)
					}
				}
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m[topic] {
					if owner[p] == name {
						delete(owner, p)
					}
				}
			}),
		)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
		go func() {
			for ctx.Err() == nil {
				cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
					mu.Lock()
					seen[string(r.Value)] = true
					mu.Unlock()
				})
			}
		}()
	}
	defer func() {
		cancel()
		for _, cl := range clients {
			cl.Close()
		}
	}()
	settled := func(members int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			by := map[string]int{}
			for _, o := range owner {
				by[o]++
			}
			return len(owner) == partitions && len(by) == members
		}
	}
	allSeen := func(round int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for p := range partitions {
				for i := range perPartition {
					if !seen[fmt.Sprintf("%d-%d-%d", round, p, i)] {
						return false
					}
				}
			}
			return true
		}
	}
	start("m0")
	start("m1")
	if !waitFor(60*time.Second, settled(2)) {
		t.Fatalf("two members never settled: %v", owner)
	}
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
	victim.proc.kill()
	produceRound(t, ctx, prodFor(t, agents, coord, topic), 1, partitions, perPartition)
	if !waitFor(120*time.Second, settled(3)) {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the three members never settled after the coordinator was killed: %v", owner)
	}
	if !waitFor(60*time.Second, func() bool { return allSeen(0)() && allSeen(1)() }) {
		t.Fatal("not every record was consumed")
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
