package integration

// Exactly once through a consume-transform-produce pipeline (issue 11,
// Kafka's KIP-98 pattern): three pipeline processes (testdata/pipeline, a
// consumer group member with a transactional producer per input partition)
// turn an input topic of 12 partitions into an output topic, each input
// record's output and its offset in one transaction. Members are killed
// with SIGKILL and replaced, and one of the two agents is killed and
// restarted under them (the members reach the agents through a TCP proxy,
// as through a load balancer), and one is frozen (SIGSTOP) past its session
// and woken up once the others took its partitions over: a zombie, whose
// transactions must be fenced. In the end the output topic, read with
// read_committed, holds every input record's output exactly once, and none
// of the records of the transactions that aborted (the pipeline aborts
// some on purpose).

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/client"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// buildPipeline builds testdata/pipeline (with -race when the tests run
// with it) and returns the binary's path.
func buildPipeline(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "pipeline")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./integration/testdata/pipeline")
	build := exec.Command("go", args...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", shellJoin(args), err, out)
	}
	return bin
}

// agentProxy forwards each TCP connection to the first of its agents that
// accepts one, taking them in turn: a load balancer in front of the
// agents. A killed agent's connections break, and the clients' new ones go
// to the others.
type agentProxy struct {
	ln       net.Listener
	backends []string
	mu       sync.Mutex
	next     int
	conns    map[net.Conn]bool
	closed   bool
}

func startAgentProxy(t *testing.T, backends ...string) *agentProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProxy{ln: ln, backends: backends, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *agentProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *agentProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *agentProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *agentProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *agentProxy) forward(c net.Conn) {
	if !p.track(c) {
		return
	}
	defer p.untrack(c)
	p.mu.Lock()
	first := p.next
	p.next = (p.next + 1) % len(p.backends)
	p.mu.Unlock()
	var up net.Conn
	for i := range p.backends {
		var err error
		if up, err = net.DialTimeout("tcp", p.backends[(first+i)%len(p.backends)], time.Second); err == nil {
			break
		}
	}
	if up == nil || !p.track(up) {
		return
	}
	defer p.untrack(up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done // either side gone: close both
}

func (p *agentProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

func TestExactlyOncePipeline(t *testing.T) {
	t.Parallel()
	bin := buildPipeline(t)
	d := newDeployment(t)
	addrA := freeAddr(t)
	agentA := d.startAgentAt(t, "agent-a", addrA, "--txn-reaper-interval", "500ms")
	agentB := d.startAgent(t, "agent-b", "--flush-interval", "20ms", "--txn-reaper-interval", "500ms")
	proxy := startAgentProxy(t, agentA.addr, agentB.addr)
	ctx := t.Context()
	api := newClients(agentB.url(), protoConnectH2C)
	const parts, perPart = 12, 500
	const n = parts * perPart
	for _, topic := range []string{"in", "out"} {
		if _, err := api.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: topic, Partitions: parts})); err != nil {
			t.Fatal(err)
		}
	}

	// The input: n known records, perPart in each partition.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	prod, err := client.NewProducer(&http.Client{Transport: tr}, agentB.url(), client.ManualPartitioner())
	if err != nil {
		t.Fatal(err)
	}
	input := make([]*client.Record, n)
	for i := range input {
		input[i] = &client.Record{Topic: "in", Partition: int32(i % parts), Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "in %06d", i)}
	}
	if err := prod.ProduceSync(ctx, input...); err != nil {
		t.Fatal(err)
	}
	if err := prod.Close(ctx); err != nil {
		t.Fatal(err)
	}

	members := map[string]*proc{}
	startMember := func(name string) {
		members[name] = startBinary(t, bin, name, childEnv(), "-addr", proxy.url(), "-member", name,
			"-group", "etl", "-in", "in", "-out", "out", "-txn-prefix", "etl", "-session-timeout", "6s",
			"-txn-timeout", "10s", "-max-poll", "25", "-abort-every", "7")
	}
	// progress is how many input records the group has committed.
	progress := func() int {
		resp, err := api.group.FetchOffsets(ctx, connect.NewRequest(&stratav1.FetchOffsetsRequest{Group: "etl"}))
		if err != nil {
			return -1
		}
		total := 0
		for _, o := range resp.Msg.GetOffsets() {
			if o.GetTopic() == "in" {
				total += int(o.GetOffset())
			}
		}
		return total
	}
	waitProgress := func(want int, what string) {
		t.Helper()
		if !waitFor(5*time.Minute, func() bool { return progress() >= want }) {
			t.Fatalf("%s: the group committed %d of %d input records after 5 minutes", what, progress(), n)
		}
		t.Logf("%s: %d of %d input records committed", what, progress(), n)
	}
	for _, name := range []string{"member-1", "member-2", "member-3"} {
		startMember(name)
	}

	waitProgress(n/5, "before killing member-1")
	members["member-1"].kill()
	startMember("member-4")
	waitProgress(2*n/5, "before killing agent-a")
	agentA.kill()
	t.Log("agent-a killed (SIGKILL)")
	waitProgress(3*n/5, "before restarting agent-a")
	// Back on its address, where the proxy sends half the connections.
	d.startAgentAt(t, "agent-a2", addrA, "--txn-reaper-interval", "500ms")
	members["member-2"].kill()
	startMember("member-5")
	waitProgress(4*n/5, "before killing member-3")
	members["member-3"].kill()
	startMember("member-6")
	// member-5 freezes, most likely inside a transaction, past its
	// session: the others take its partitions over (and the group can
	// only finish once they have), fencing its producers. Woken up, the
	// zombie must not commit anything.
	zombie := members["member-5"]
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitProgress(n, "the end, member-5 frozen")
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Minute, func() bool { return strings.Contains(zombie.log(), "msg=lost") }) {
		t.Fatal("member-5, woken up, did not notice in a minute that it lost its partitions")
	}
	for _, name := range []string{"member-4", "member-5", "member-6"} {
		if members[name].exited() {
			t.Errorf("%s exited: %v", name, members[name].waitErr)
		}
		members[name].kill()
	}
	if got := progress(); got != n {
		t.Fatalf("after member-5 woke up the group's offsets add up to %d, want %d", got, n)
	}

	// The output: every input record's output once under read_committed;
	// read_uncommitted sees the aborted transactions' records besides.
	committed := readAll(t, api, "out", parts, stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED)
	seen := map[string]int{}
	for _, v := range committed {
		seen[v]++
	}
	for i := range n {
		want := fmt.Sprintf("out in %06d", i)
		switch seen[want] {
		case 1:
		case 0:
			t.Fatalf("%q is not in the output: lost", want)
		default:
			t.Fatalf("%q is in the output %d times: duplicated", want, seen[want])
		}
	}
	if len(committed) != n {
		t.Fatalf("read_committed read %d output records, want %d", len(committed), n)
	}
	all := readAll(t, api, "out", parts, stratav1.IsolationLevel_ISOLATION_LEVEL_READ_UNCOMMITTED)
	if len(all) <= n {
		t.Fatalf("read_uncommitted read %d records, want more than %d: the aborted transactions' records", len(all), n)
	}
	t.Logf("%d input records, each once in the output under read_committed; %d aborted output records left out", n, len(all)-n)
}

// readAll reads every record of the topic's partitions at the isolation
// level and returns the values.
func readAll(t *testing.T, api clients, topic string, parts int32, level stratav1.IsolationLevel) []string {
	t.Helper()
	var out []string
	for p := range parts {
		var next int64
		for {
			resp, err := api.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: topic, Partition: p,
				Offset: next, MaxBytes: 1 << 20, IsolationLevel: level}))
			if err != nil {
				t.Fatalf("fetch %s/%d at %d: %v", topic, p, next, err)
			}
			for _, r := range resp.Msg.GetRecords() {
				out = append(out, string(r.GetValue()))
			}
			if resp.Msg.GetNextOffset() == next || resp.Msg.GetNextOffset() >= resp.Msg.GetHighWatermark() {
				break
			}
			next = resp.Msg.GetNextOffset()
		}
	}
	return out
}
