package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// Consumer groups with real processes: agents, redis-server, MinIO, and
// `strata consume --group` members whose own event logs (--events) say when
// they acquired and released each partition.

// groupEvent is one line of a member's --events file.
type groupEvent struct {
	Time       time.Time `json:"time"`
	Member     string    `json:"member"`
	Event      string    `json:"event"`
	Partitions []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
	} `json:"partitions"`
	Offsets []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
	} `json:"offsets"`
}

// groupConsumer is one `strata consume --group` process.
type groupConsumer struct {
	name              string
	cmd               *exec.Cmd
	stdout, events    string // file paths
	stderrPath        string
	done              chan struct{}
	waitErr           error
	killedAt, endedAt time.Time
}

func startGroupConsumer(t *testing.T, name, addr, group string, args ...string) *groupConsumer {
	t.Helper()
	dir := t.TempDir()
	c := &groupConsumer{
		name:       name,
		stdout:     filepath.Join(dir, "stdout"),
		events:     filepath.Join(dir, "events"),
		stderrPath: filepath.Join(dir, "stderr"),
		done:       make(chan struct{}),
	}
	out, err := os.Create(c.stdout)
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(c.stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"consume", "--group", group, "--addr", addr, "--events", c.events, "--output", "json"}, args...)
	c.cmd = exec.Command(strataBin, argv...)
	c.cmd.Env = childEnv()
	c.cmd.Stdout, c.cmd.Stderr = out, errf
	setParentDeathSignal(c.cmd)
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: strata %s: %v", name, shellJoin(argv), err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		c.endedAt = time.Now()
		out.Close()
		errf.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		b, _ := os.ReadFile(c.stderrPath)
		if strings.Contains(string(b), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector reported a data race:\n%s", name, b)
		}
		if t.Failed() {
			ev, _ := os.ReadFile(c.events)
			t.Logf("%s: strata %s\n--- stderr ---\n%s--- events ---\n%s", name, shellJoin(argv), tailLines(string(b), 50), tailLines(string(ev), 80))
		}
	})
	return c
}

func (c *groupConsumer) kill9(t *testing.T) {
	t.Helper()
	c.killedAt = time.Now()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.done
}

// stop sends SIGTERM: the member commits what it printed, leaves the group
// and exits 0.
func (c *groupConsumer) stop(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still running 30 s after SIGTERM", c.name)
	}
	if c.waitErr != nil {
		t.Errorf("%s: exit after SIGTERM: %v, want status 0", c.name, c.waitErr)
	}
}

func (c *groupConsumer) readEvents(t *testing.T) []groupEvent {
	t.Helper()
	b, err := os.ReadFile(c.events)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var evs []groupEvent
	for line := range strings.Lines(string(b)) {
		if !strings.HasSuffix(line, "\n") {
			break // a line being written, or cut by kill -9
		}
		var e groupEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%s: events line %q: %v", c.name, line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

func (c *groupConsumer) readRecords(t *testing.T) []consumedJSON {
	t.Helper()
	f, err := os.Open(c.stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []consumedJSON
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r consumedJSON
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			// kill -9 may cut the last line.
			continue
		}
		out = append(out, r)
	}
	return out
}

// ownership is one interval during which a member owned a partition.
type ownership struct {
	member   string
	from, to time.Time
}

// ownerships rebuilds, from every member's events, who owned which
// partition when. An interval still open ends when the member was killed
// or exited.
func ownerships(t *testing.T, members ...*groupConsumer) map[int32][]ownership {
	t.Helper()
	out := map[int32][]ownership{}
	for _, c := range members {
		open := map[int32]time.Time{}
		for _, e := range c.readEvents(t) {
			for _, p := range e.Partitions {
				switch e.Event {
				case "assigned":
					if _, dup := open[p.Partition]; dup {
						t.Fatalf("%s: partition %d assigned twice without a release", c.name, p.Partition)
					}
					open[p.Partition] = e.Time
				case "revoked", "lost":
					from, ok := open[p.Partition]
					if !ok {
						t.Fatalf("%s: partition %d released but never assigned", c.name, p.Partition)
					}
					out[p.Partition] = append(out[p.Partition], ownership{c.name, from, e.Time})
					delete(open, p.Partition)
				}
			}
		}
		end := c.endedAt
		if !c.killedAt.IsZero() {
			end = c.killedAt
		}
		if end.IsZero() {
			end = time.Now()
		}
		for p, from := range open {
			out[p] = append(out[p], ownership{c.name, from, end})
		}
	}
	return out
}

// checkOwnership fails if two members owned one partition at once.
func checkOwnership(t *testing.T, owners map[int32][]ownership) {
	t.Helper()
	for p, os := range owners {
		slices.SortFunc(os, func(a, b ownership) int { return a.from.Compare(b.from) })
		for i := 1; i < len(os); i++ {
			if os[i].from.Before(os[i-1].to) {
				t.Errorf("partition %d owned by %s from %s and by %s until %s: overlap of %s",
					p, os[i].member, os[i].from.Format(time.StampMicro), os[i-1].member, os[i-1].to.Format(time.StampMicro), os[i-1].to.Sub(os[i].from))
			}
		}
	}
}

// checkOwnershipExceptStopped is checkOwnership for a run in which stopped
// was frozen (SIGSTOP) from stoppedAt to resumedAt: a frozen process runs
// no code, so its ownership ends when it was stopped, whatever it logs
// once it resumes — provided it logged the loss before anything else.
func checkOwnershipExceptStopped(t *testing.T, stopped *groupConsumer, stoppedAt, resumedAt time.Time, others ...*groupConsumer) {
	t.Helper()
	owners := ownerships(t, append([]*groupConsumer{stopped}, others...)...)
	for p, os := range owners {
		for i, o := range os {
			if o.member == stopped.name && o.from.Before(stoppedAt) && o.to.After(resumedAt) {
				os[i].to = stoppedAt
			}
		}
		owners[p] = os
	}
	checkOwnership(t, owners)
}

// describeGroup reads a group through the API.
func describeGroup(t *testing.T, c clients, group string) *stratav1.DescribeGroupResponse {
	t.Helper()
	res, err := c.group.DescribeGroup(t.Context(), connect.NewRequest(&stratav1.DescribeGroupRequest{Group: group}))
	if err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound {
			return &stratav1.DescribeGroupResponse{}
		}
		t.Fatal(err)
	}
	return res.Msg
}

// assignment is member -> owned partitions, from DescribeGroup.
func assignment(d *stratav1.DescribeGroupResponse) map[string][]int32 {
	out := map[string][]int32{}
	for _, m := range d.GetMembers() {
		var ps []int32
		for _, tp := range m.GetAssigned() {
			ps = append(ps, tp.GetPartitions()...)
		}
		slices.Sort(ps)
		out[m.GetMemberId()] = ps
	}
	return out
}

// waitStable waits until the group is Stable with members live members
// owning partitions partitions between them, each within one of the others.
func waitStable(t *testing.T, c clients, group string, members, partitions int, timeout time.Duration) (map[string][]int32, time.Duration) {
	t.Helper()
	start := time.Now()
	var last *stratav1.DescribeGroupResponse
	for time.Since(start) < timeout {
		d := describeGroup(t, c, group)
		last = d
		if d.GetState() == "Stable" && len(d.GetMembers()) == members {
			a := assignment(d)
			total, lo, hi := 0, partitions, 0
			for _, ps := range a {
				total += len(ps)
				lo, hi = min(lo, len(ps)), max(hi, len(ps))
			}
			if total == partitions && hi-lo <= 1 {
				return a, time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("group %s not stable with %d members owning %d partitions after %s; last: %v", group, members, partitions, timeout, last)
	return nil, 0
}

// moves counts partitions whose owner changed between two assignments.
func moves(before, after map[string][]int32) int {
	owner := map[int32]string{}
	for m, ps := range before {
		for _, p := range ps {
			owner[p] = m
		}
	}
	n := 0
	for m, ps := range after {
		for _, p := range ps {
			if o, ok := owner[p]; ok && o != m {
				n++
			}
		}
	}
	return n
}

type partOff struct {
	p int32
	o int64
}

// feeder produces continuously through several agents, one record to each
// partition per round, and remembers what was acknowledged.
type feeder struct {
	mu      sync.Mutex
	acked   map[partOff]string
	ackedAt map[partOff]time.Time
	stop    atomic.Bool
	done    chan struct{}
	errs    atomic.Int64
}

func startFeeder(t *testing.T, topic string, partitions int32, agents ...clients) *feeder {
	f := &feeder{acked: map[partOff]string{}, ackedAt: map[partOff]time.Time{}, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for round := 0; !f.stop.Load(); round++ {
			c := agents[round%len(agents)]
			tr := &stratav1.TopicRecords{Topic: topic}
			for p := range partitions {
				tr.Records = append(tr.Records, &stratav1.Record{Partition: &p, Value: fmt.Appendf(nil, "r%d-p%d", round, p)})
			}
			res, err := c.producer.Produce(t.Context(), connect.NewRequest(&stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{tr}}))
			if err != nil {
				f.errs.Add(1)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			f.mu.Lock()
			now := time.Now()
			for i, r := range res.Msg.GetTopics()[0].GetResults() {
				f.acked[partOff{r.GetPartition(), r.GetOffset()}] = string(tr.Records[i].GetValue())
				f.ackedAt[partOff{r.GetPartition(), r.GetOffset()}] = now
			}
			f.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return f
}

func (f *feeder) halt() map[partOff]string {
	f.stop.Store(true)
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.acked)
}

// TestConsumerGroupThreeMembers: three member processes in one group on a
// 12-partition topic fed through two agents; one is killed with SIGKILL and
// its partitions move after its session; a fourth joins and takes its share
// with as few moves as possible. At no instant do two members own one
// partition; every acknowledged record is consumed; a record is consumed
// twice only if the killed member had read it after its last commit.
func TestConsumerGroupThreeMembers(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	agentFlags := []string{"--group-heartbeat-interval", "300ms", "--topic-cache-ttl", "500ms"}
	a1 := d.startAgent(t, "agent-1", agentFlags...)
	a2 := d.startAgent(t, "agent-2", agentFlags...)
	c1, c2 := newClients(a1.url(), protoConnect), newClients(a2.url(), protoConnect)
	mustCLI(t, nil, "topic", "create", "events", "--partitions", "12", "--addr", a1.url())
	feed := startFeeder(t, "events", 12, c1, c2)
	defer feed.stop.Store(true)

	const group = "g3"
	memberArgs := []string{"events", "--from", "earliest", "--session-timeout", "3s"}
	m1 := startGroupConsumer(t, "member-1", a1.url(), group, memberArgs...)
	m2 := startGroupConsumer(t, "member-2", a2.url(), group, memberArgs...)
	m3 := startGroupConsumer(t, "member-3", a1.url(), group, memberArgs...)
	three, took := waitStable(t, c1, group, 3, 12, 30*time.Second)
	t.Logf("3 members settled in %s: %v", took, three)
	time.Sleep(2 * time.Second)

	m2.kill9(t)
	two, took := waitStable(t, c2, group, 2, 12, 30*time.Second)
	t.Logf("after kill -9 of member-2, settled in %s (session 3 s): %v", took, two)
	time.Sleep(2 * time.Second)

	m4 := startGroupConsumer(t, "member-4", a2.url(), group, memberArgs...)
	three, took = waitStable(t, c1, group, 3, 12, 30*time.Second)
	moved := moves(two, three)
	t.Logf("member-4 joined, settled in %s with %d moves: %v", took, moved, three)
	if moved != 4 {
		t.Errorf("member-4's join moved %d partitions, want 4 (its fair share, taken from the others)", moved)
	}
	// Agents keep no group state: restarting the agent member-4 talks to,
	// on the same address and within the session, disturbs nothing.
	a2.stop()
	restartedAt := time.Now()
	p := startProc(t, "agent-2-restarted", childEnv(d.credentialsEnv()...), append([]string{"agent",
		"--listen", a2.addr, "--admin-listen", "", "--store", d.storeURL, "--index", d.indexURL,
		"--flush-interval", "50ms", "--agent-id", "agent-2"}, agentFlags...)...)
	if err := waitReady(t.Context(), p, a2.addr); err != nil {
		t.Fatalf("agent-2 did not come back: %v", err)
	}
	t.Logf("agent-2 restarted in %s", time.Since(restartedAt))
	time.Sleep(2 * time.Second)
	if after, _ := waitStable(t, c1, group, 3, 12, 10*time.Second); moves(three, after) != 0 {
		t.Errorf("the agent restart moved partitions: %v before, %v after", three, after)
	}
	for _, e := range m4.readEvents(t) {
		if e.Time.After(restartedAt) && (e.Event == "lost" || e.Event == "revoked" || e.Event == "joined") {
			t.Errorf("member-4 logged %q at %s, after its agent restarted", e.Event, e.Time.Format(time.StampMicro))
		}
	}
	acked := feed.halt()
	if len(acked) == 0 {
		t.Fatal("nothing was produced")
	}

	// Wait until the live members printed every acknowledged record.
	live := []*groupConsumer{m1, m3, m4}
	all := []*groupConsumer{m1, m2, m3, m4}
	consumedAll := func() bool {
		seen := map[partOff]bool{}
		for _, m := range all {
			for _, r := range m.readRecords(t) {
				seen[partOff{r.Partition, r.Offset}] = true
			}
		}
		for k := range acked {
			if !seen[k] {
				return false
			}
		}
		return true
	}
	if !waitFor(60*time.Second, consumedAll) {
		t.Error("not every acknowledged record was consumed within 60 s")
	}
	for _, m := range live {
		m.stop(t)
	}

	// Ownership: never two at once.
	checkOwnership(t, ownerships(t, all...))

	// Records: each acknowledged one consumed with the value produced; a
	// duplicate only where the killed member read past its last commit.
	lastCommit := map[int32]int64{}
	for _, e := range m2.readEvents(t) {
		if e.Event == "committed" {
			for _, o := range e.Offsets {
				lastCommit[o.Partition] = max(lastCommit[o.Partition], o.Offset)
			}
		}
	}
	readBy := map[partOff][]string{}
	total := 0
	for _, m := range all {
		for _, r := range m.readRecords(t) {
			k := partOff{r.Partition, r.Offset}
			want, ok := acked[k]
			if ok && (r.Value == nil || *r.Value != want) {
				t.Errorf("%s read %d/%d = %v, produced %q", m.name, r.Partition, r.Offset, r.Value, want)
			}
			readBy[k] = append(readBy[k], m.name)
			total++
		}
	}
	dups := 0
	for k, who := range readBy {
		if len(who) == 1 {
			continue
		}
		dups += len(who) - 1
		if len(who) > 2 || !slices.Contains(who, "member-2") {
			t.Errorf("record %d/%d consumed by %v: only the killed member's uncommitted records may be read twice", k.p, k.o, who)
		} else if k.o < lastCommit[k.p] {
			t.Errorf("record %d/%d read again although member-2 had committed up to %d", k.p, k.o, lastCommit[k.p])
		}
	}
	for k := range acked {
		if len(readBy[k]) == 0 {
			t.Errorf("acknowledged record %d/%d was never consumed", k.p, k.o)
		}
	}
	// After the graceful stops the group is empty and has no lag.
	d1 := describeGroup(t, c1, group)
	if d1.GetState() != "Empty" || d1.GetTotalLag() != 0 {
		t.Errorf("after the members stopped: state %q, lag %d; want Empty with no lag", d1.GetState(), d1.GetTotalLag())
	}
	t.Logf("%d records acknowledged, %d consumed, %d duplicates (all after member-2's last commit), %d produce errors",
		len(acked), total, dups, feed.errs.Load())
}

// TestConsumerGroupStaleMember: a member stopped (SIGSTOP) past its session
// loses its partitions to the other member; when it resumes it neither reads
// nor commits them, learns it must rejoin, and the group settles again. The
// same seen through the raw API: a stale member's commit and heartbeat are
// refused with FAILED_PRECONDITION, and it rejoins at epoch 0.
func TestConsumerGroupStaleMember(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	a := d.startAgent(t, "agent", "--group-heartbeat-interval", "300ms")
	c := newClients(a.url(), protoConnect)
	mustCLI(t, nil, "topic", "create", "stale", "--partitions", "4", "--addr", a.url())
	feed := startFeeder(t, "stale", 4, c)
	defer feed.stop.Store(true)

	const group = "gs"
	args := []string{"stale", "--from", "earliest", "--session-timeout", "2s"}
	m1 := startGroupConsumer(t, "member-1", a.url(), group, args...)
	m2 := startGroupConsumer(t, "member-2", a.url(), group, args...)
	waitStable(t, c, group, 2, 4, 30*time.Second)
	// The group is stable on the agent's side; member-1 must also have taken
	// up its partitions (on a loaded machine its start can lag), or there is
	// nothing for it to lose.
	waitFor(30*time.Second, func() bool {
		for _, e := range m1.readEvents(t) {
			if e.Event == "assigned" && len(e.Partitions) > 0 {
				return true
			}
		}
		return false
	})

	if err := m1.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	_, took := waitStable(t, c, group, 1, 4, 30*time.Second)
	t.Logf("member-2 owns all 4 partitions %s after member-1 stopped (session 2 s)", took)
	time.Sleep(time.Second)
	// Taken before the signal: the process may log before Signal returns.
	resumedAt := time.Now()
	if err := m1.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitStable(t, c, group, 2, 4, 30*time.Second)
	// The member applies the loss in its next Poll, which may come after
	// its heartbeat has already rejoined the group.
	var lostAt time.Time
	waitFor(10*time.Second, func() bool {
		for _, e := range m1.readEvents(t) {
			if e.Event == "lost" && e.Time.After(stoppedAt) {
				lostAt = e.Time
				return true
			}
		}
		return false
	})
	if lostAt.IsZero() {
		t.Error("member-1 never logged that it lost its partitions")
	}
	for _, e := range m1.readEvents(t) {
		if e.Event == "committed" && e.Time.After(resumedAt) && e.Time.Before(lostAt) {
			t.Errorf("member-1 committed at %s after resuming, before it learned it had lost its partitions", e.Time)
		}
	}
	acked := feed.halt()
	if !waitFor(30*time.Second, func() bool {
		seen := map[partOff]bool{}
		for _, m := range []*groupConsumer{m1, m2} {
			for _, r := range m.readRecords(t) {
				seen[partOff{r.Partition, r.Offset}] = true
			}
		}
		return len(seen) >= len(acked)
	}) {
		t.Error("not every acknowledged record was consumed")
	}
	m1.stop(t)
	m2.stop(t)
	checkOwnershipExceptStopped(t, m1, stoppedAt, resumedAt, m2)
	// A record read by both members is one member-1 read before it was
	// stopped and had not committed.
	lastCommit := map[int32]int64{}
	for _, e := range m1.readEvents(t) {
		if e.Event == "committed" && e.Time.Before(stoppedAt) {
			for _, o := range e.Offsets {
				lastCommit[o.Partition] = max(lastCommit[o.Partition], o.Offset)
			}
		}
	}
	readBy := map[partOff]int{}
	for _, m := range []*groupConsumer{m1, m2} {
		for _, r := range m.readRecords(t) {
			readBy[partOff{r.Partition, r.Offset}]++
		}
	}
	feed.mu.Lock()
	for k, n := range readBy {
		if n > 1 && k.o < lastCommit[k.p] {
			t.Errorf("record %d/%d read %d times although member-1 had committed up to %d before it stopped", k.p, k.o, n, lastCommit[k.p])
		}
		// Member-1 could only have fetched it before it froze.
		if at := feed.ackedAt[k]; n > 1 && at.After(stoppedAt) {
			t.Errorf("record %d/%d, acknowledged %s after member-1 froze, was read twice: member-1 read it after resuming, past its session", k.p, k.o, at.Sub(stoppedAt))
		}
	}
	feed.mu.Unlock()

	// Raw API: a member that went silent past its session.
	join := func(id string, epoch int32, session time.Duration) (*stratav1.HeartbeatResponse, error) {
		res, err := c.group.Heartbeat(t.Context(), connect.NewRequest(&stratav1.HeartbeatRequest{
			Group: "raw", MemberId: id, MemberEpoch: epoch, Topics: []string{"stale"}, SessionTimeout: durationpb.New(session)}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}
	x, err := join("", 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	y, err := join("", 0, 10*time.Second)
	if err != nil || len(y.GetAssigned()) == 0 {
		t.Fatalf("new member after x's session: %v %v", y, err)
	}
	_, err = c.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
		Group: "raw", MemberId: x.GetMemberId(), MemberEpoch: x.GetMemberEpoch(),
		Offsets: []*stratav1.PartitionOffset{{Topic: "stale", Partition: 0, Offset: 1}}}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "rejoin") {
		t.Errorf("stale member's commit: %v, want FAILED_PRECONDITION telling it to rejoin", err)
	}
	_, err = join(x.GetMemberId(), x.GetMemberEpoch(), time.Second)
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "member_epoch 0") {
		t.Errorf("stale member's heartbeat: %v, want FAILED_PRECONDITION telling it to rejoin with member_epoch 0", err)
	}
	if _, err := join(x.GetMemberId(), 0, time.Second); err != nil {
		t.Errorf("rejoin at epoch 0: %v", err)
	}
}
