package integration

// kafkajs consumer groups through a SIGKILL of the agent coordinating them
// (issue 13): the members must find the surviving agent, the group must
// re-form there, and every acked record must be consumed.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKafkaJSGroupSurvivesAgentKill: three kafkajs members (separate node
// processes running testdata/kafkajs/kafkajs-group-member.js) consume from
// two agents while a producer writes to every partition. The agent that
// FindCoordinator names for the group is killed with SIGKILL: its
// connections are reset and it never deregisters. One member is stopped
// (SIGTERM) while kafkajs still retries the dead agent, and must exit
// cleanly. The others must find the surviving agent (kafkajs asks
// FindCoordinator again only when its consumer restarts after a crash, its
// retry budget spent), the group must re-form there (a new member joins,
// then one leaves cleanly, each a rebalance the surviving agent
// coordinates), and every record the producer was acked must be consumed,
// at least once; a partition is never held by two members at once.
func TestKafkaJSGroupSurvivesAgentKill(t *testing.T) {
	t.Parallel()
	node, check := kafkajsScript(t)
	script := filepath.Join(filepath.Dir(check), "kafkajs-group-member.js")
	// kafkajs keeps the coordinator it found at its last join: when that
	// agent dies, the member retries it until its retry budget is spent,
	// crashes, and restarts (restartOnFailure's default), finding the live
	// agent. A budget of about 5 s (5 retries) under the 10 s session makes
	// that restart, and its rejoin, happen before the session expires
	// (docs/cli.md, "kafkajs groups and a killed agent"). Without the
	// restart (the script's default: exit on any crash) the members exit
	// about 40 s after the kill, their 20 retries spent.
	env := childEnv("KAFKAJS_NO_PARTITIONER_WARNING=1", "KAFKAJS_RETRIES=5", "KAFKAJS_RESTART_ON_CRASH=1")
	if lvl := os.Getenv("KAFKAJS_LOG_LEVEL"); lvl != "" {
		env = append(env, "KAFKAJS_LOG_LEVEL="+lvl)
	}
	client := groupLoadClient{
		start: func(t *testing.T, name, brokers, topic, group, path string) *proc {
			return startBinary(t, node, name, env,
				script, brokers, topic, group, name, path,
				strconv.Itoa(int(loadSession.Milliseconds())), strconv.Itoa(int(loadProcess.Milliseconds())))
		},
	}

	d := newDeployment(t)
	kafkaA, kafkaB := freeAddr(t), freeAddr(t)
	session := "--group-session-timeout=" + loadSession.String()
	agents := map[string]*server{
		kafkaA: d.startAgent(t, "agent-a", "--kafka-listen", kafkaA, session),
		kafkaB: d.startAgent(t, "agent-b", "--kafka-listen", kafkaB, session),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	topic, group := "jskill-"+randomHex(3), "jskill-"+randomHex(3)
	cl := kafkaGroupTopic(t, ctx, []string{kafkaA, kafkaB}, topic, loadPartitions)
	g := &groupLoad{t: t, client: client, brokers: kafkaA + "," + kafkaB, topic: topic, group: group, dir: t.TempDir()}
	g.prod = startLoadProducer(ctx, cl)
	defer func() {
		if !g.prod.stopped() {
			close(g.prod.stop)
		}
		<-g.prod.done
	}()

	m1, m2, m3 := g.start("m1"), g.start("m2"), g.start("m3")
	g.waitStable("three members", m1, m2, m3)

	// The coordinator the members were told, as they asked for it.
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey = group
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("FindCoordinator %s: %v %+v", group, err, resp)
	}
	coord := fmt.Sprintf("%s:%d", resp.Host, resp.Port)
	victim, ok := agents[coord]
	if !ok {
		t.Fatalf("FindCoordinator named %s, not one of the agents", coord)
	}
	t.Logf("killing %s, the coordinator of %s", victim.name, group)
	victim.kill()
	killedAt := time.Now()
	// A member stopped while kafkajs still retries the dead coordinator
	// disconnects and exits 0 within stop's 30 s (its LeaveGroup fails;
	// the session expires instead).
	time.Sleep(time.Second)
	g.stop(m1)

	// The group keeps consuming on the surviving agent: every record acked
	// after the kill is consumed.
	g.waitProgress("after the coordinator was killed", killedAt)
	// It re-forms there: the members left rejoin, a new one joins, and one
	// leaves cleanly, each a rebalance the surviving agent coordinates.
	m4 := g.start("m4")
	g.waitStable("m4 joined after the kill", m2, m3, m4)
	g.stop(m2)
	g.waitStable("m2 left after the kill", m3, m4)

	acked := g.prod.finish(t)
	g.waitConsumed(acked)
	for _, m := range []*loadMember{m3, m4} {
		g.stop(m)
	}
	for _, m := range g.members {
		m.poll(t)
	}
	g.checkOwnership(acked, true)
	total := 0
	for _, offs := range acked {
		total += len(offs)
	}
	t.Logf("%d records produced and acked over %d partitions", total, loadPartitions)
}

// waitProgress waits until every record the producer was acked for by
// since, and some more acked after it, has been consumed by a member.
func (g *groupLoad) waitProgress(what string, since time.Time) {
	g.t.Helper()
	began := time.Now()
	// What was acked a little after since: produced while the members
	// were finding the surviving agent.
	time.Sleep(2 * time.Second)
	g.prod.mu.Lock()
	want := map[int32][]int64{}
	for p, offs := range g.prod.acked {
		for o := range offs {
			want[p] = append(want[p], o)
		}
	}
	g.prod.mu.Unlock()
	var missing int
	if !waitFor(3*time.Minute, func() bool {
		if err := g.prod.failed(); err != nil {
			g.t.Fatalf("%s: the producer failed: %v", what, err)
		}
		for _, m := range g.members {
			m.poll(g.t)
			if m.killedAt == 0 && !m.stopped && m.proc.exited() {
				g.t.Fatalf("%s: member %s exited: %v", what, m.name, m.proc.waitErr)
			}
		}
		seen := g.consumed()
		missing = 0
		for p, offs := range want {
			for _, o := range offs {
				if !seen[p][o] {
					missing++
				}
			}
		}
		if missing > 0 {
			time.Sleep(250 * time.Millisecond)
		}
		return missing == 0
	}) {
		g.t.Fatalf("%s: %d records acked by %s after it were not consumed in 3 minutes", what, missing, time.Since(since).Round(time.Millisecond))
	}
	g.t.Logf("%s: every record acked up to 2 s after it consumed %s later", what, time.Since(began).Round(time.Millisecond))
}
