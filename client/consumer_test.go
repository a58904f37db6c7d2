package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/client"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

func TestConfigChecked(t *testing.T) {
	t.Parallel()
	base := client.GroupConsumerConfig{BaseURL: "http://127.0.0.1:1", Group: "g", Topics: []string{"t"}}
	for name, tweak := range map[string]func(*client.GroupConsumerConfig){
		"no base URL":         func(c *client.GroupConsumerConfig) { c.BaseURL = "" },
		"no group":            func(c *client.GroupConsumerConfig) { c.Group = "" },
		"no subscription":     func(c *client.GroupConsumerConfig) { c.Topics = nil },
		"both subscriptions":  func(c *client.GroupConsumerConfig) { c.TopicRegex = "t.*" },
		"bad regex":           func(c *client.GroupConsumerConfig) { c.Topics, c.TopicRegex = nil, "(" },
		"empty topic":         func(c *client.GroupConsumerConfig) { c.Topics = []string{""} },
		"negative session":    func(c *client.GroupConsumerConfig) { c.SessionTimeout = -time.Second },
		"unknown delivery":    func(c *client.GroupConsumerConfig) { c.Delivery = 7 },
		"unknown reset":       func(c *client.GroupConsumerConfig) { c.Reset = 7 },
		"unreachable (joins)": func(c *client.GroupConsumerConfig) {},
	} {
		cfg := base
		tweak(&cfg)
		if _, err := client.NewGroupConsumer(t.Context(), cfg); err == nil {
			t.Errorf("%s: NewGroupConsumer succeeded", name)
		}
	}
}

func TestAgentRefusesSubscription(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	cfg := ta.config("bad\x01name", "t")
	_, err := client.NewGroupConsumer(t.Context(), cfg)
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("a group name with a control character: %v, want INVALID_ARGUMENT", err)
	}
}

// TestOneMemberGetsEverything: a lone member owns every partition, reads
// every record in order and commits where it stopped.
func TestOneMemberGetsEverything(t *testing.T) {
	t.Parallel()
	// Steady: a lapsed session would assign the partitions again.
	ta := startSteadyAgent(t)
	ta.createTopic(t, "solo", 3)
	ta.produce(t, "solo", 3, 0, 10)

	var assigned [][]client.TopicPartition
	var joined []string
	cfg := ta.steadyConfig("g", "solo")
	cfg.OnAssigned = func(_ context.Context, parts []client.TopicPartition) { assigned = append(assigned, parts) }
	cfg.OnJoined = func(_ context.Context, id string) { joined = append(joined, id) }
	c := newConsumer(t, cfg)
	if c.MemberID() == "" {
		t.Fatal("no member id after joining")
	}
	next := map[int32]int{}
	pollUntil(t, c, "30 records", func(recs []client.Record) bool {
		for _, r := range recs {
			if want := fmt.Sprintf("%d-%d", r.Partition, next[r.Partition]); r.Topic != "solo" || string(r.Value) != want || r.Offset != int64(next[r.Partition]) {
				t.Fatalf("record %s/%d@%d = %q, want %q at offset %d", r.Topic, r.Partition, r.Offset, r.Value, want, next[r.Partition])
			}
			if r.Timestamp.IsZero() {
				t.Errorf("record without a timestamp")
			}
			next[r.Partition]++
		}
		return next[0]+next[1]+next[2] == 30
	})
	want := []client.TopicPartition{{"solo", 0}, {"solo", 1}, {"solo", 2}}
	if len(assigned) != 1 || !slices.Equal(assigned[0], want) {
		t.Errorf("OnAssigned calls %v, want one with %v", assigned, want)
	}
	if !slices.Equal(c.Assignment(), want) {
		t.Errorf("Assignment() = %v", c.Assignment())
	}
	if !slices.Equal(joined, []string{c.MemberID()}) {
		t.Errorf("OnJoined calls %v, want one with %s", joined, c.MemberID())
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.Poll(t.Context()); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Poll after Close: %v", err)
	}
	got := ta.committed(t, "g")
	for _, tp := range want {
		if got[tp] != 10 {
			t.Errorf("committed %v = %d, want 10", tp, got[tp])
		}
	}
}

// ownershipLog records OnAssigned/OnRevoked/OnLost of several members in
// one order: a callback of one member that causally follows another's
// (a release, then the hand-over) comes later in it.
type ownershipLog struct {
	mu     sync.Mutex
	events []ownershipEvent
}

type ownershipEvent struct {
	member string
	kind   string
	tp     client.TopicPartition
}

func (l *ownershipLog) hooks(member string, cfg *client.GroupConsumerConfig) {
	add := func(kind string) func(context.Context, []client.TopicPartition) {
		return func(_ context.Context, parts []client.TopicPartition) {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, tp := range parts {
				l.events = append(l.events, ownershipEvent{member, kind, tp})
			}
		}
	}
	cfg.OnAssigned, cfg.OnRevoked, cfg.OnLost = add("assigned"), add("revoked"), add("lost")
}

// check fails the test if a partition was ever assigned to a member while
// another owned it.
func (l *ownershipLog) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	owner := map[client.TopicPartition]string{}
	for i, e := range l.events {
		switch e.kind {
		case "assigned":
			if o := owner[e.tp]; o != "" {
				t.Errorf("event %d: %v assigned to %s while %s owns it", i, e.tp, e.member, o)
			}
			owner[e.tp] = e.member
		default:
			if owner[e.tp] != e.member {
				t.Errorf("event %d: %s %s %v, owned by %q", i, e.member, e.kind, e.tp, owner[e.tp])
			}
			delete(owner, e.tp)
		}
	}
}

// noLoss fails the test if a member lost partitions: a test of hand-overs
// between live members says so, rather than failing later on records read
// twice or positions left uncommitted.
func (l *ownershipLog) noLoss(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.events {
		if e.kind == "lost" {
			t.Errorf("event %d: %s lost %v: its session lapsed or a commit was fenced", i, e.member, e.tp)
		}
	}
}

// runMember polls c on its own goroutine, feeding seen every record, until
// the returned stop is called (or the test ends); stop returns Poll's
// error, if any.
func runMember(t *testing.T, c *client.GroupConsumer, seen func(client.Record)) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		for {
			recs, err := c.Poll(ctx)
			if ctx.Err() != nil {
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
			for _, r := range recs {
				seen(r)
			}
		}
	}()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	// Before the consumer's Close, registered earlier.
	t.Cleanup(func() { _ = stop() })
	return stop
}

// TestTwoMembersSplitWithoutOverlap: a second member takes half of the
// partitions, each only after the first released it; between them they
// read every record.
func TestTwoMembersSplitWithoutOverlap(t *testing.T) {
	t.Parallel()
	// Steady: a lapsed session re-reads (and leaves uncommitted) records,
	// which this test counts.
	ta := startSteadyAgent(t)
	ta.createTopic(t, "split", 8)
	ta.produce(t, "split", 8, 0, 5)

	var log ownershipLog
	var mu sync.Mutex
	seen := map[string]int{}
	count := func(r client.Record) {
		mu.Lock()
		defer mu.Unlock()
		seen[string(r.Value)]++
	}
	cfgA := ta.steadyConfig("g", "split")
	log.hooks("a", &cfgA)
	a := newConsumer(t, cfgA)
	stopA := runMember(t, a, count)
	waitFor(t, "a to own 8 partitions", func() bool { return len(a.Assignment()) == 8 })

	cfgB := ta.steadyConfig("g", "split")
	log.hooks("b", &cfgB)
	b := newConsumer(t, cfgB)
	stopB := runMember(t, b, count)
	start := time.Now()
	waitFor(t, "a 4/4 split", func() bool { return len(a.Assignment()) == 4 && len(b.Assignment()) == 4 })
	t.Logf("settled 4/4 in %v", time.Since(start))
	ta.produce(t, "split", 8, 5, 5)
	waitFor(t, "every record", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 80
	})
	for _, stop := range []func() error{stopA, stopB} {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	if overlap := slices.DeleteFunc(a.Assignment(), func(tp client.TopicPartition) bool { return !slices.Contains(b.Assignment(), tp) }); len(overlap) > 0 {
		t.Errorf("both own %v", overlap)
	}
	closeCtx := context.Background()
	if err := a.Close(closeCtx); err != nil {
		t.Error(err)
	}
	if err := b.Close(closeCtx); err != nil {
		t.Error(err)
	}
	log.check(t)
	log.noLoss(t)
	// A revoked partition was committed before it moved: nothing was read
	// twice.
	for v, n := range seen {
		if n != 1 {
			t.Errorf("%s read %d times", v, n)
		}
	}
	for tp, off := range ta.committed(t, "g") {
		if off != 10 {
			t.Errorf("committed %v = %d, want 10", tp, off)
		}
	}
}

// TestAtLeastOnceResumesAfterCommit: a member closed after reading part
// of a partition, and one that vanished; the next resumes after the last
// record processed, skipping none.
func TestAtLeastOnceResumesAfterCommit(t *testing.T) {
	t.Parallel()
	// Steady: a lapsed session would re-read records or fence the commits
	// this test checks. Only the member meant to vanish has a session short
	// enough to wait out.
	ta := startSteadyAgent(t)
	ta.createTopic(t, "resume", 1)
	ta.produce(t, "resume", 1, 0, 20)

	// Close commits what Poll returned.
	first := newConsumer(t, ta.steadyConfig("g", "resume"))
	recs, err := first.PollN(t.Context(), 10)
	if err != nil || len(recs) != 10 || recs[9].Offset != 9 {
		t.Fatalf("PollN(10) = %d records, %v", len(recs), err)
	}
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := ta.committed(t, "g")[client.TopicPartition{Topic: "resume"}]; got != 10 {
		t.Fatalf("committed %d after Close, want 10", got)
	}

	// A member that dies holding records: those it had not processed yet
	// (its last batch) are read again; none is skipped.
	gt := newGate("")
	cfg := ta.config("g", "resume")
	// The third member waits this out; it is still 25 heartbeats long.
	cfg.SessionTimeout = 5 * time.Second
	cfg.HTTPClient = h2cClient(t, gt.wrap)
	second := newConsumer(t, cfg)
	recs, err = second.PollN(t.Context(), 5)
	if err != nil || len(recs) != 5 || recs[0].Offset != 10 {
		t.Fatalf("second member's first PollN = %v, %v; want offsets 10-14", recs, err)
	}
	time.Sleep(2 * cfg.AutoCommitInterval)
	// This Poll counts 10-14 as processed and commits them (the interval
	// passed), then returns 15-19, which the member never processes.
	recs, err = second.PollN(t.Context(), 5)
	if err != nil || len(recs) != 5 || recs[0].Offset != 15 {
		t.Fatalf("second member's second PollN = %v, %v; want offsets 15-19", recs, err)
	}
	if got := ta.committed(t, "g")[client.TopicPartition{Topic: "resume"}]; got != 15 {
		t.Fatalf("committed %d after processing 10-14, want 15", got)
	}
	gt.close() // dead to the world
	defer gt.open()

	third := newConsumer(t, ta.steadyConfig("g", "resume"))
	recs, err = third.Poll(t.Context())
	if err != nil || len(recs) == 0 {
		t.Fatalf("third member: %v, %v", recs, err)
	}
	if recs[0].Offset != 15 {
		t.Errorf("third member starts at %d, want 15: after the last commit", recs[0].Offset)
	}
}

// TestAtMostOnceCommitsBeforeReturning: the position after a batch is
// committed by the time Poll returns it.
func TestAtMostOnceCommitsBeforeReturning(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "amo", 2)
	ta.produce(t, "amo", 2, 0, 20)
	cfg := ta.config("g", "amo")
	cfg.Delivery = client.AtMostOnce
	var commits atomic.Int32
	cfg.OnCommit = func(_ context.Context, offsets []client.PartitionOffset, err error) {
		if err != nil {
			t.Errorf("commit %v: %v", offsets, err)
		}
		commits.Add(1)
	}
	c := newConsumer(t, cfg)
	total := 0
	for total < 40 {
		recs, err := c.PollN(t.Context(), 7)
		if err != nil {
			t.Fatal(err)
		}
		total += len(recs)
		committed := ta.committed(t, "g")
		for tp, pos := range positionsAfter(recs) {
			if committed[tp] < pos {
				t.Fatalf("Poll returned %v up to %d; committed only %d", tp, pos, committed[tp])
			}
		}
	}
	n := commits.Load()
	// Close commits nothing more: every position is committed already.
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if commits.Load() != n {
		t.Errorf("Close committed again with at-most-once")
	}
}

func positionsAfter(recs []client.Record) map[client.TopicPartition]int64 {
	out := map[client.TopicPartition]int64{}
	for _, r := range recs {
		tp := client.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		out[tp] = max(out[tp], r.Offset+1)
	}
	return out
}

// TestStaleMemberCannotCommit: a member whose heartbeats stop past its
// session is refused a commit (FAILED_PRECONDITION), loses its partitions
// and joins again.
func TestStaleMemberCannotCommit(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "stale", 2)
	ta.produce(t, "stale", 2, 0, 10)

	gt := newGate("/Heartbeat")
	cfg := ta.config("g", "stale")
	cfg.ManualCommit = true
	cfg.HTTPClient = h2cClient(t, gt.wrap)
	var joins atomic.Int32
	var failed atomic.Int32
	var lost atomic.Int32
	cfg.OnLost = func(_ context.Context, parts []client.TopicPartition) { lost.Add(int32(len(parts))) }
	cfg.OnJoined = func(context.Context, string) { joins.Add(1) }
	cfg.OnCommit = func(_ context.Context, _ []client.PartitionOffset, err error) {
		if connect.CodeOf(err) == connect.CodeFailedPrecondition {
			failed.Add(1)
		}
	}
	stale := newConsumer(t, cfg)
	pollUntil(t, stale, "records of both partitions", func([]client.Record) bool { return len(stale.Assignment()) == 2 })

	gt.close()
	// Another member takes the partitions once the stale one's session
	// expired.
	other := newConsumer(t, ta.config("g", "stale"))
	stopOther := runMember(t, other, func(client.Record) {})
	waitFor(t, "the other member to take both partitions", func() bool { return len(other.Assignment()) == 2 })

	err := stale.Commit(t.Context())
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("stale member's commit: %v, want FAILED_PRECONDITION", err)
	}
	if failed.Load() != 1 {
		t.Errorf("OnCommit saw %d fenced commits, want 1", failed.Load())
	}
	if lost.Load() != 2 {
		t.Errorf("OnLost got %d partitions, want 2", lost.Load())
	}
	if len(stale.Assignment()) != 0 {
		t.Errorf("after a fenced commit the stale member still owns %v", stale.Assignment())
	}

	// Heartbeats get through again: the member joins anew and gets its
	// share.
	gt.open()
	pollCtx, pollCancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer pollCancel()
	for len(stale.Assignment()) != 1 {
		if pollCtx.Err() != nil {
			t.Fatal("the stale member never got a partition back")
		}
		pollFor(t, stale, 50*time.Millisecond)
	}
	if joins.Load() != 2 {
		t.Errorf("OnJoined called %d times, want 2", joins.Load())
	}
	if err := stopOther(); err != nil {
		t.Fatal(err)
	}
	if err := stale.Close(t.Context()); err != nil {
		t.Error(err)
	}
	if err := other.Close(t.Context()); err != nil {
		t.Error(err)
	}
}

// TestSessionLossInsidePoll: a member waiting in Poll when its heartbeats
// stop gives its partitions up by its session deadline, returns no record
// after it, and joins again once heartbeats pass.
func TestSessionLossInsidePoll(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "loss", 1)
	gt := newGate("/Heartbeat")
	cfg := ta.config("g", "loss")
	cfg.HTTPClient = h2cClient(t, gt.wrap)
	var mu sync.Mutex
	var events []string
	var lostAt time.Time
	cfg.OnAssigned = func(context.Context, []client.TopicPartition) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, "assigned")
	}
	cfg.OnLost = func(context.Context, []client.TopicPartition) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, "lost")
		lostAt = time.Now()
	}
	c := newConsumer(t, cfg)
	var lastRecord atomic.Int64
	stop := runMember(t, c, func(client.Record) { lastRecord.Store(time.Now().UnixNano()) })
	waitFor(t, "the partition", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 1
	})
	blocked := time.Now()
	gt.close()
	// Records keep coming while the heartbeats are held back.
	stopProducing := make(chan struct{})
	var producing sync.WaitGroup
	producing.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopProducing:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := ta.produceErr(t.Context(), "loss", 1, i, 1); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
		}
	})
	waitFor(t, "the loss", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 2
	})
	mu.Lock()
	lost := lostAt
	mu.Unlock()
	if d := lost.Sub(blocked); d > cfg.SessionTimeout+500*time.Millisecond {
		t.Errorf("lost %v after the heartbeats stopped; the session is %v", d, cfg.SessionTimeout)
	}
	time.Sleep(300 * time.Millisecond)
	if last := time.Unix(0, lastRecord.Load()); last.After(lost) {
		t.Errorf("a record returned at %v, after the loss at %v", last, lost)
	}
	gt.open()
	waitFor(t, "the partition again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 3
	})
	close(stopProducing)
	producing.Wait()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(events, []string{"assigned", "lost", "assigned"}) {
		t.Errorf("events %v", events)
	}
}

// TestRevokedPartitionCommittedBeforeHandOver: with manual commits the
// application commits in OnRevoked, and the next owner starts there.
func TestManualCommitInOnRevoked(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "manual", 2)
	ta.produce(t, "manual", 2, 0, 10)
	cfg := ta.config("g", "manual")
	cfg.ManualCommit = true
	var a *client.GroupConsumer
	var revokeErr error
	cfg.OnRevoked = func(ctx context.Context, _ []client.TopicPartition) { revokeErr = a.Commit(ctx) }
	a = newConsumer(t, cfg)
	pollUntil(t, a, "all 20 records", func() func([]client.Record) bool {
		n := 0
		return func(recs []client.Record) bool { n += len(recs); return n == 20 }
	}())
	if len(ta.committed(t, "g")) != 0 {
		t.Fatalf("manual commit committed by itself: %v", ta.committed(t, "g"))
	}
	b := newConsumer(t, ta.config("g", "manual"))
	var bRecords atomic.Int32
	stopB := runMember(t, b, func(client.Record) { bRecords.Add(1) })
	waitFor(t, "b to take a partition", func() bool {
		pollFor(t, a, 50*time.Millisecond)
		return len(b.Assignment()) == 1
	})
	if revokeErr != nil {
		t.Fatalf("Commit in OnRevoked: %v", revokeErr)
	}
	time.Sleep(200 * time.Millisecond)
	if n := bRecords.Load(); n != 0 {
		t.Errorf("the new owner read %d records the old one had committed", n)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
}

// pollFor polls c for d, failing the test on an error other than the end
// of d.
func pollFor(t *testing.T, c *client.GroupConsumer, d time.Duration) []client.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	recs, err := c.Poll(ctx)
	if err != nil && ctx.Err() == nil {
		t.Fatalf("Poll: %v", err)
	}
	return recs
}

// TestRegexFollowsNewTopics: a subscription by regular expression picks up
// a matching topic created after the member joined, and only matching ones.
func TestRegexFollowsNewTopics(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "logs.a", 1)
	ta.createTopic(t, "other", 1)
	ta.produce(t, "logs.a", 1, 0, 1)
	ta.produce(t, "other", 1, 0, 1)
	cfg := ta.config("g")
	cfg.Topics, cfg.TopicRegex = nil, `logs\..*`
	c := newConsumer(t, cfg)
	seen := map[string]bool{}
	record := func(recs []client.Record) {
		for _, r := range recs {
			if r.Topic == "other" {
				t.Fatalf("read %s, which does not match", r.Topic)
			}
			seen[r.Topic] = true
		}
	}
	pollUntil(t, c, "logs.a", func(recs []client.Record) bool { record(recs); return seen["logs.a"] })
	ta.createTopic(t, "logs.b", 2)
	ta.produce(t, "logs.b", 2, 0, 1)
	pollUntil(t, c, "logs.b", func(recs []client.Record) bool { record(recs); return seen["logs.b"] })
	if n := len(c.Assignment()); n != 3 {
		t.Errorf("owns %v, want logs.a/0 and logs.b/0-1", c.Assignment())
	}
}

// TestCommittedOffsetOutOfRangeResets: a committed position beyond the log
// (say, the topic was made anew) starts over where the reset policy says.
func TestCommittedOffsetOutOfRangeResets(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "reset", 1)
	ta.produce(t, "reset", 1, 0, 3)
	_, err := ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
		Group: "g", Offsets: []*stratav1.PartitionOffset{{Topic: "reset", Partition: 0, Offset: 1000}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, ta.config("g", "reset")) // ResetEarliest
	recs, err := c.Poll(t.Context())
	if err != nil || len(recs) == 0 || recs[0].Offset != 0 {
		t.Fatalf("Poll = %v, %v; want records from offset 0", recs, err)
	}
}

// TestOutageShorterThanSession: while the agent is unreachable for less
// than the session, the member keeps its partitions and then reads on,
// neither losing nor repeating records.
func TestOutageShorterThanSession(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "outage", 2)
	gt := newGate("")
	cfg := ta.config("g", "outage")
	cfg.SessionTimeout = 2 * time.Second
	cfg.HTTPClient = h2cClient(t, gt.wrap)
	var lost, assigned atomic.Int32
	cfg.OnLost = func(context.Context, []client.TopicPartition) { lost.Add(1) }
	cfg.OnAssigned = func(context.Context, []client.TopicPartition) { assigned.Add(1) }
	c := newConsumer(t, cfg)
	var mu sync.Mutex
	seen := map[string]int{}
	runMember(t, c, func(r client.Record) {
		mu.Lock()
		defer mu.Unlock()
		seen[string(r.Value)]++
	})
	waitFor(t, "the partitions", func() bool { return assigned.Load() == 1 })
	ta.produce(t, "outage", 2, 0, 5)
	waitFor(t, "the first records", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 10 })
	gt.failing.Store(true)
	ta.produce(t, "outage", 2, 5, 5) // produced while the member cannot fetch
	time.Sleep(700 * time.Millisecond)
	gt.failing.Store(false)
	waitFor(t, "the records produced during the outage", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 20 })
	if lost.Load() != 0 || assigned.Load() != 1 {
		t.Errorf("%d losses and %d assignments over an outage shorter than the session", lost.Load(), assigned.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for v, n := range seen {
		if n != 1 {
			t.Errorf("%s read %d times", v, n)
		}
	}
}
