package integration

// Exactly once through a Kafka consume-transform-produce pipeline (issue
// 13), the Kafka twin of TestExactlyOncePipeline: member processes of
// testdata/kpipeline, franz-go's GroupTransactSession each (KIP-98's
// transactions with KIP-447's one transactional id per member), turn an
// input topic of 12 partitions into an output topic through two agents'
// Kafka listeners. Members are killed with SIGKILL and replaced; one agent
// is killed and restarted under them (its clients' open transactions,
// connections, coordinators and EndTxn calls in flight lost); and one member freezes itself (SIGSTOP) inside a
// transaction, past its session and its transaction's timeout, and is woken
// once the others finished: a zombie, whose late commit must fail. In the
// end the output, read with read_committed by franz-go, holds every input
// record's output exactly once, none of the aborted transactions' records
// (the members abort some on purpose, which a read_uncommitted reader
// sees), and the group's committed offsets add up to the input.

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// buildKPipeline builds testdata/kpipeline (with -race when the tests run
// with it) and returns the binary's path.
func buildKPipeline(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kpipeline")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./integration/testdata/kpipeline")
	build := exec.Command("go", args...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", shellJoin(args), err, out)
	}
	return bin
}

// groupCommitted is the sum of the group's committed offsets on topic, -1
// when they cannot be read right now.
func groupCommitted(ctx context.Context, adm *kadm.Client, group, topic string) int64 {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	var total int64
	offsets.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At > 0 {
			total += o.At
		}
	})
	return total
}

// consumeValues reads topic from the start at the isolation level until
// at least want records came, then until a poll of 3 s brings no more, and
// returns how many times each value came. It fails the test, saying why it
// wanted them, when want records do not come in timeout.
func consumeValues(t *testing.T, seeds []string, topic string, level kgo.IsolationLevel, want int, why string, timeout time.Duration) (map[string]int, int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.FetchIsolationLevel(level),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	seen := map[string]int{}
	total := 0
	for total < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d records after %s, want at least %d: %s", topic, total, timeout, want, why)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("read %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
	}
	for {
		short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
		n := 0
		cl.PollFetches(short).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++; n++ })
		cancelShort()
		if n == 0 {
			return seen, total
		}
	}
}

func TestKafkaEOSPipeline(t *testing.T) {
	t.Parallel()
	bin := buildKPipeline(t)
	d := newDeployment(t)
	apiA, kafkaA, kafkaB := freeAddr(t), freeAddr(t), freeAddr(t)
	agentA := d.startAgentAt(t, "agent-a", apiA, "--kafka-listen", kafkaA, "--txn-reaper-interval", "500ms")
	d.startAgent(t, "agent-b", "--kafka-listen", kafkaB, "--flush-interval", "20ms", "--txn-reaper-interval", "500ms")
	seeds := []string{kafkaA, kafkaB}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	const parts, perPart = 12, 250
	const n = parts * perPart
	in, out, group := "eos-in", "eos-out", "eos"
	// Admin and input producer through agent-b alone, which stays up.
	prod := kafkaGroupTopic(t, ctx, []string{kafkaB}, in, parts)
	adm := kadm.NewClient(prod)
	if _, err := adm.CreateTopic(ctx, parts, -1, nil, out); err != nil {
		t.Fatalf("create %s: %v", out, err)
	}
	// The input: n known records, perPart in each partition; the last
	// tail of each partition comes once the zombie-to-be was asked to
	// freeze, so that it has records to transform then.
	const tail = 30
	produceInput := func(from, to int) {
		t.Helper()
		var rs []*kgo.Record
		for i := from; i < to; i++ {
			rs = append(rs, &kgo.Record{Topic: in, Partition: int32(i % parts), Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "in %06d", i)})
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce the input: %v", err)
		}
	}
	produceInput(0, n-parts*tail)

	members := map[string]*proc{}
	startMember := func(name string) {
		members[name] = startBinary(t, bin, name, childEnv(), "-brokers", strings.Join(seeds, ","),
			"-member", name, "-txn-id", "eos-"+name, "-group", group, "-in", in, "-out", out,
			"-session-timeout", "6s", "-txn-timeout", "10s", "-max-poll", "40", "-abort-every", "7")
	}
	progress := func() int64 { return groupCommitted(ctx, adm, group, in) }
	waitProgress := func(want int64, what string) {
		t.Helper()
		if !waitFor(4*time.Minute, func() bool { return progress() >= want }) {
			offsets, err := adm.FetchOffsets(ctx, group)
			t.Fatalf("%s: the group committed %d of %d input records after 4 minutes: %v %v", what, progress(), n, offsets.Sorted(), err)
		}
		t.Logf("%s: %d of %d input records committed", what, progress(), n)
	}
	for _, name := range []string{"member-1", "member-2", "member-3"} {
		startMember(name)
	}

	waitProgress(n/6, "before killing member-1")
	members["member-1"].kill()
	startMember("member-4")
	waitProgress(2*n/6, "before killing agent-a")
	// Killed under the members, EndTxn calls in flight included: a
	// transaction agent-a left in PrepareCommit stays so until a reaper
	// rolls it forward at its deadline, and meanwhile an OffsetFetch with
	// RequireStable (KIP-447), as GroupTransactSession sends it, answers
	// UNSTABLE_OFFSET_COMMIT for the partitions it holds offsets of, so
	// no member reads the group's older offsets and transforms the records
	// again. Their open transactions, their connections and the
	// coordinators they found on agent-a go with it.
	agentA.kill()
	t.Log("agent-a killed (SIGKILL)")
	waitProgress(3*n/6, "before restarting agent-a")
	// The same agent id and addresses: a restarted pod.
	d.startAgentAt(t, "agent-a", apiA, "--kafka-listen", kafkaA, "--txn-reaper-interval", "500ms")
	t.Log("agent-a restarted")
	members["member-2"].kill()
	startMember("member-5")
	waitProgress(4*n/6, "before killing member-3")
	members["member-3"].kill()
	startMember("member-6")

	// member-5 freezes inside its next transaction, records written,
	// past its session and its transaction's timeout: the others take
	// its partitions over and finish, and the transaction is aborted.
	zombie := members["member-5"]
	if err := zombie.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Minute, func() bool { return strings.Contains(zombie.log(), `msg="asked to freeze`) }) {
		t.Fatal("member-5 did not take SIGUSR1 in a minute")
	}
	produceInput(n-parts*tail, n)
	if !waitFor(2*time.Minute, func() bool { return strings.Contains(zombie.log(), `msg="frozen inside a transaction"`) }) {
		t.Fatal("member-5 did not freeze inside a transaction in 2 minutes")
	}
	frozenAt := time.Now()
	t.Log("member-5 frozen inside a transaction")
	waitProgress(n, "the end, member-5 frozen")
	// Past the transaction timeout (10 s) and the session (6 s) for sure.
	time.Sleep(max(0, 15*time.Second-time.Since(frozenAt)))
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	lateEnd := regexp.MustCompile(`msg="late end" .*committed=(\w+).*`)
	var m []string
	if !waitFor(2*time.Minute, func() bool { m = lateEnd.FindStringSubmatch(zombie.log()); return m != nil }) {
		t.Fatal("member-5, woken up, did not end its transaction in 2 minutes")
	}
	if m[1] != "false" {
		t.Fatalf("member-5, a zombie woken up, committed its transaction: %s", m[0])
	}
	// Fenced by the agents, not only by the client's own check of its
	// group membership: the reaper aborted the transaction and bumped the
	// transactional id's epoch.
	if !strings.Contains(m[0], "PRODUCER_FENCED") && !strings.Contains(m[0], "INVALID_PRODUCER_EPOCH") {
		t.Fatalf("member-5's late end failed, but not fenced: %s", m[0])
	}
	t.Logf("member-5 woken up: %s", m[0])
	for _, name := range []string{"member-4", "member-5", "member-6"} {
		if members[name].exited() {
			t.Errorf("%s exited: %v", name, members[name].waitErr)
		}
	}
	// Whatever the zombie does next, its partitions are done: nothing
	// more may be committed.
	time.Sleep(3 * time.Second)
	for _, name := range []string{"member-4", "member-5", "member-6"} {
		members[name].kill()
	}
	if got := progress(); got != n {
		t.Fatalf("after member-5 woke up the group's offsets add up to %d, want %d", got, n)
	}

	// The output: every input record's output once under read_committed
	// (the reader waits for the killed members' open transactions to time
	// out); read_uncommitted sees the aborted records besides.
	committed, total := consumeValues(t, seeds, out, kgo.ReadCommitted(), n,
		"every input record's output (read_committed)", 2*time.Minute)
	for i := range n {
		want := fmt.Sprintf("in %06d!", i)
		switch committed[want] {
		case 1:
		case 0:
			t.Fatalf("%q is not in the output: lost", want)
		default:
			t.Fatalf("%q is in the output %d times: duplicated", want, committed[want])
		}
	}
	if total != n {
		t.Fatalf("read_committed read %d output records, want %d", total, n)
	}
	_, all := consumeValues(t, seeds, out, kgo.ReadUncommitted(), n+1,
		"the committed output and the aborted transactions' records (read_uncommitted)", 2*time.Minute)
	t.Logf("%d input records, each once in the output under read_committed; %d aborted output records left out", n, all-n)
}
