package integration

// Consumer groups of real Kafka clients under load (issue 13): the scenario
// and the checks that kafkajs_groups_test.go and sarama_groups_test.go share.
//
// Each member is a separate process (a node script, a small sarama program)
// that writes what happened to it to an event file, one JSON object a line:
// the partitions it was assigned in each generation and when, when it gave
// them up, the records it processed (with the generation it held them in),
// and the offsets it committed. Separate processes, so that a member killed
// with SIGKILL is killed as in production: the kernel resets its
// connections, it never leaves, and its partitions move only when its
// session expires. The test reads the files and checks, for the whole run:
//
//   - no partition is assigned to two members in one generation, and no
//     two members hold a partition at once (wall clock: from the assignment
//     to the revocation, or the kill; for a cooperative member, KIP-429,
//     from its claim of the partition to its release);
//   - a member processed a record only while it held the record's partition
//     in the generation it processed it in;
//   - per partition, a member reads offsets in order and densely within a
//     generation, and each record is the one the producer was acked at that
//     offset;
//   - every acked record is consumed; a partition's next owner starts where
//     the previous one stopped when that one left or was revoked cleanly,
//     and, after a kill, never before the last committed offset (the
//     records re-read are exactly those the killed member had not
//     committed); after a restart of the whole group the new members start
//     at the committed offsets the group's OffsetFetch answers.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	loadPartitions = 12
	// loadSession is the members' session timeout: a killed member's
	// partitions move this long after its last heartbeat. Short for the
	// test's sake, long enough that a live member heartbeating every 500 ms
	// on a loaded machine is never taken for dead (it would then hold
	// partitions it no longer owns, as in Kafka, and fail the checks).
	loadSession = 10 * time.Second
	// loadProcess is how long a member takes to process a batch, between
	// logging and committing it: a kill then likely leaves records
	// processed and not committed, which the next owner must read again.
	loadProcess = 50 * time.Millisecond
	// loadDwell is how long each stable generation runs before the next
	// member joins, leaves or dies.
	loadDwell = 2 * time.Second
)

// groupLoadClient starts member processes of one Kafka client.
type groupLoadClient struct {
	// start runs member name of group on topic, writing events to path.
	start func(t *testing.T, name, brokers, topic, group, path string) *proc
	// perClaim: the member holds partitions from its "claimed" event to
	// its "released" one, not from "assigned" to "revoked": a cooperative
	// (KIP-429) member keeps the partitions that do not move across
	// generations, and gives up the others one by one.
	perClaim bool
}

// loadEvent is one line of a member's event file (see
// testdata/kafkajs/kafkajs-group-member.js for the format).
type loadEvent struct {
	Ev         string           `json:"ev"`
	Gen        *int32           `json:"gen"`
	Member     string           `json:"member"`
	Partitions []int32          `json:"partitions"`
	Partition  int32            `json:"partition"`
	Offset     int64            `json:"offset"`
	Offsets    []int64          `json:"offsets"`
	Values     []string         `json:"values"`
	Committed  map[string]int64 `json:"committed"`
	Error      string           `json:"error"`
	T          int64            `json:"t"` // ms since the epoch
}

// loadMember is one member process and what it has logged so far.
type loadMember struct {
	name     string
	proc     *proc
	path     string
	killedAt int64 // ms since the epoch once killed (after it is gone), else 0
	stopped  bool  // stopped with SIGTERM
	read     int64 // bytes of the file parsed
	events   []loadEvent
}

// poll parses the complete lines added to the member's event file.
func (m *loadMember) poll(t *testing.T) {
	t.Helper()
	f, err := os.Open(m.path)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(m.read, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	// A killed member may have left half a line: only whole lines count.
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(b[:end+1]))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var ev loadEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: event line %q: %v", m.name, sc.Text(), err)
		}
		m.events = append(m.events, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	m.read += int64(end + 1)
}

// loadProducer produces to every partition of a topic until stopped, one
// keyed record per partition a round, and keeps what it was acked where.
type loadProducer struct {
	mu    sync.Mutex
	acked map[int32]map[int64]string // partition -> offset -> value
	err   error
	stop  chan struct{} // closed to stop after the round in flight
	done  chan struct{}
}

func startLoadProducer(ctx context.Context, cl *kgo.Client) *loadProducer {
	lp := &loadProducer{acked: map[int32]map[int64]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	for p := range int32(loadPartitions) {
		lp.acked[p] = map[int64]string{}
	}
	go func() {
		defer close(lp.done)
		for round := 0; ; round++ {
			rs := make([]*kgo.Record, 0, loadPartitions)
			for p := range int32(loadPartitions) {
				rs = append(rs, &kgo.Record{
					Partition: p,
					Key:       fmt.Appendf(nil, "key-%d", p),
					Value:     fmt.Appendf(nil, "%d-%d", p, round),
				})
			}
			// Never cut short by the stop: a round cut short could be
			// stored without being acked.
			results := cl.ProduceSync(ctx, rs...)
			if err := results.FirstErr(); err != nil {
				lp.mu.Lock()
				lp.err = fmt.Errorf("round %d: %w", round, err)
				lp.mu.Unlock()
				return
			}
			lp.mu.Lock()
			for _, r := range results {
				lp.acked[r.Record.Partition][r.Record.Offset] = string(r.Record.Value)
			}
			lp.mu.Unlock()
			select {
			case <-lp.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return lp
}

// finish stops the producer and returns what it was acked.
func (lp *loadProducer) finish(t *testing.T) map[int32]map[int64]string {
	t.Helper()
	close(lp.stop)
	<-lp.done
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.err != nil {
		t.Fatalf("the producer failed: %v", lp.err)
	}
	return lp.acked
}

func (lp *loadProducer) stopped() bool {
	select {
	case <-lp.stop:
		return true
	default:
		return false
	}
}

func (lp *loadProducer) failed() error {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.err
}

// groupLoad is one run of the scenario.
type groupLoad struct {
	t       *testing.T
	client  groupLoadClient
	brokers string
	topic   string
	group   string
	dir     string
	prod    *loadProducer
	members []*loadMember // every member ever started, in order
}

func (g *groupLoad) start(name string) *loadMember {
	path := filepath.Join(g.dir, name+".events")
	m := &loadMember{name: name, path: path}
	m.proc = g.client.start(g.t, name, g.brokers, g.topic, g.group, path)
	g.members = append(g.members, m)
	return m
}

// stop stops a member with SIGTERM: it leaves the group (LeaveGroup) and
// must exit 0.
func (g *groupLoad) stop(m *loadMember) {
	g.t.Helper()
	m.stopped = true
	m.proc.stop()
	m.poll(g.t)
	if n := len(m.events); n == 0 || m.events[n-1].Ev != "exit" {
		g.t.Errorf("%s: stopped, but its last event is not exit", m.name)
	}
}

// holding is what a member holds after its events so far: the generation
// of its last assignment and the partitions, or ok false when it holds none
// (never assigned, revoked, killed or exited). A perClaim member holds what
// it claimed and has not released, in the last generation it logged.
func (m *loadMember) holding(perClaim bool) (gen int32, parts []int32, ok bool) {
	if m.killedAt != 0 {
		return 0, nil, false
	}
	if perClaim {
		held := map[int32]bool{}
		gen = -1
		for _, ev := range m.events {
			switch ev.Ev {
			case "claimed":
				held[ev.Partition] = true
			case "released":
				delete(held, ev.Partition)
			case "exit":
				return 0, nil, false
			}
			if ev.Gen != nil && *ev.Gen > gen {
				gen = *ev.Gen
			}
		}
		return gen, slices.Sorted(maps.Keys(held)), gen >= 0
	}
	for i := len(m.events) - 1; i >= 0; i-- {
		switch ev := m.events[i]; ev.Ev {
		case "revoked", "exit":
			return 0, nil, false
		case "assigned":
			return *ev.Gen, ev.Partitions, true
		}
	}
	return 0, nil, false
}

// consumedIn reports whether the member processed records in generation gen.
func (m *loadMember) consumedIn(gen int32) bool {
	for _, ev := range m.events {
		if ev.Ev == "records" && ev.Gen != nil && *ev.Gen == gen {
			return true
		}
	}
	return false
}

// waitStable waits until exactly the members live hold every partition
// between them in one generation, each some and has processed records in
// it, and returns that generation.
func (g *groupLoad) waitStable(what string, live ...*loadMember) int32 {
	g.t.Helper()
	var state string
	began := time.Now()
	deadline := began.Add(2 * time.Minute)
	for {
		if err := g.prod.failed(); err != nil {
			g.t.Fatalf("%s: the producer failed: %v", what, err)
		}
		for _, m := range g.members {
			m.poll(g.t)
			if m.killedAt == 0 && !m.stopped && m.proc.exited() {
				g.t.Fatalf("%s: member %s exited: %v", what, m.name, m.proc.waitErr)
			}
		}
		gen, stable, desc := g.holdings(live)
		if stable {
			g.t.Logf("%s: generation %d after %s: %s", what, gen, time.Since(began).Round(time.Millisecond), desc)
			// Let the generation consume under load for a while before
			// the next change.
			time.Sleep(loadDwell)
			return gen
		}
		state = desc
		if time.Now().After(deadline) {
			g.prod.mu.Lock()
			acked := map[int32]map[int64]string{}
			for p, offs := range g.prod.acked {
				acked[p] = maps.Clone(offs)
			}
			g.prod.mu.Unlock()
			g.checkOwnership(acked, false)
			g.t.Fatalf("%s: the group did not settle with %d members in 2 minutes: %s", what, len(live), state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (g *groupLoad) holdings(live []*loadMember) (int32, bool, string) {
	var desc []string
	gens := map[int32]bool{}
	covered := map[int32]bool{}
	stable := true
	for _, m := range g.members {
		gen, parts, ok := m.holding(g.client.perClaim)
		if !ok {
			if slices.Contains(live, m) {
				stable = false
				desc = append(desc, m.name+" holds nothing")
			}
			continue
		}
		desc = append(desc, fmt.Sprintf("%s gen %d %v", m.name, gen, parts))
		if !slices.Contains(live, m) {
			stable = false
			continue
		}
		gens[gen] = true
		for _, p := range parts {
			covered[p] = true
		}
		// With 12 partitions every member gets some; a cooperative member
		// with none is waiting for the follow-up rebalance.
		if len(parts) == 0 || !m.consumedIn(gen) {
			stable = false
		}
	}
	if len(gens) != 1 || len(covered) != loadPartitions {
		stable = false
	}
	var gen int32
	for k := range gens {
		gen = k
	}
	return gen, stable, strings.Join(desc, "; ")
}

// waitConsumed waits until every acked record has been processed by some
// member.
func (g *groupLoad) waitConsumed(acked map[int32]map[int64]string) {
	g.t.Helper()
	var missing int
	if !waitFor(2*time.Minute, func() bool {
		for _, m := range g.members {
			m.poll(g.t)
		}
		seen := g.consumed()
		missing = 0
		for p, offs := range acked {
			for o := range offs {
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
		g.t.Fatalf("%d acked records were never consumed", missing)
	}
}

func (g *groupLoad) consumed() map[int32]map[int64]bool {
	seen := map[int32]map[int64]bool{}
	for _, m := range g.members {
		for _, ev := range m.events {
			if ev.Ev != "records" {
				continue
			}
			if seen[ev.Partition] == nil {
				seen[ev.Partition] = map[int64]bool{}
			}
			for _, o := range ev.Offsets {
				seen[ev.Partition][o] = true
			}
		}
	}
	return seen
}

// runGroupLoad runs the scenario with client's members: two agents, a
// producer throughout; members join one at a time (1, 2, 3), one leaves
// cleanly, one is killed, the last one is stopped and two new ones start
// from the committed offsets; then it checks the members' event logs.
func runGroupLoad(t *testing.T, client groupLoadClient) {
	d := newDeployment(t)
	kafkaA, kafkaB := freeAddr(t), freeAddr(t)
	d.startAgent(t, "agent-a", "--kafka-listen", kafkaA)
	d.startAgent(t, "agent-b", "--kafka-listen", kafkaB)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	topic, group := "load-"+randomHex(3), "load-"+randomHex(3)
	cl := kafkaGroupTopic(t, ctx, []string{kafkaA, kafkaB}, topic, loadPartitions)
	g := &groupLoad{t: t, client: client, brokers: kafkaA + "," + kafkaB, topic: topic, group: group, dir: t.TempDir()}
	g.prod = startLoadProducer(ctx, cl)
	defer func() {
		if !g.prod.stopped() {
			close(g.prod.stop)
		}
		<-g.prod.done
	}()

	m1 := g.start("m1")
	g.waitStable("one member", m1)
	m2 := g.start("m2")
	g.waitStable("m2 joined", m1, m2)
	m3 := g.start("m3")
	g.waitStable("m3 joined", m1, m2, m3)

	// A clean leave: LeaveGroup, after committing what it processed.
	g.stop(m1)
	g.waitStable("m1 left", m2, m3)

	// A kill: no LeaveGroup; m2's partitions move when its session expires.
	m2.proc.kill()
	m2.killedAt = time.Now().UnixMilli()
	g.waitStable("m2 killed", m3)

	// The whole group restarts: the new members start at the offsets the
	// group committed, which OffsetFetch answers once nobody is left.
	g.stop(m3)
	dg, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups %s: %v", group, err)
	}
	if st := dg[group]; st.State != "Empty" || len(st.Members) != 0 {
		t.Fatalf("group %s after its last member left: state %s with %d members, want Empty with none", group, st.State, len(st.Members))
	}
	committed := fetchCommitted(t, ctx, cl, group, topic)
	m4 := g.start("m4")
	m5 := g.start("m5")
	g.waitStable("restarted with m4 and m5", m4, m5)

	acked := g.prod.finish(t)
	g.waitConsumed(acked)
	g.stop(m4)
	g.stop(m5)
	for _, m := range g.members {
		m.poll(t)
	}
	total := 0
	for _, offs := range acked {
		total += len(offs)
	}
	t.Logf("%d records produced and acked over %d partitions", total, loadPartitions)
	g.check(acked, committed, []*loadMember{m4, m5}, m2)
}

// fetchCommitted is the group's committed offset of each partition of topic.
func fetchCommitted(t *testing.T, ctx context.Context, cl *kgo.Client, group, topic string) map[int32]int64 {
	t.Helper()
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("OffsetFetch %s: %v", group, err)
	}
	out := map[int32]int64{}
	for p, o := range resp[topic] {
		if o.Err != nil {
			t.Fatalf("OffsetFetch %s partition %d: %v", group, p, o.Err)
		}
		out[p] = o.At
	}
	if len(out) != loadPartitions {
		t.Fatalf("OffsetFetch %s: committed offsets for %d partitions, want %d: %v", group, len(out), loadPartitions, out)
	}
	return out
}

// loadHold is one member's hold of one partition in one generation.
type loadHold struct {
	member   *loadMember
	gen      int32
	from, to int64 // ms; to is the revocation, the kill or +inf
}

// loadSegment is what one member processed of one partition in one generation.
type loadSegment struct {
	member      *loadMember
	gen         int32
	first, last int64
	start       int64 // the claim's initial offset, -1 when not logged
	assignedAt  int64
}

// loadAnalysis is what the members' events show.
type loadAnalysis struct {
	segs    map[int32]map[string]*loadSegment // partition -> member/gen -> segment
	commits []loadEvent
	seen    map[int32]map[int64]int // partition -> offset -> times consumed
	// heldAtKill is what each killed member held when it died.
	heldAtKill map[*loadMember]map[int32]bool
}

// checkOwnership checks that no partition was held by two members at once,
// that records were processed only by their partition's holder, in order
// and densely, and that they are what the producer was acked. With final
// false the run is still going: members may hold partitions, and records
// the producer has not heard about yet may have been consumed.
func (g *groupLoad) checkOwnership(acked map[int32]map[int64]string, final bool) loadAnalysis {
	t := g.t
	t.Helper()
	holds := map[int32][]loadHold{} // partition -> its holds
	byGen := map[int32]map[int32]*loadMember{}
	segs := map[int32]map[string]*loadSegment{} // partition -> member/gen -> segment
	var commits []loadEvent                     // with the member's events' times
	seen := map[int32]map[int64]int{}           // partition -> offset -> times consumed
	for p := range int32(loadPartitions) {
		segs[p] = map[string]*loadSegment{}
		seen[p] = map[int64]int{}
	}
	perClaim := g.client.perClaim
	heldAtKill := map[*loadMember]map[int32]bool{}
	errorsShown := 0
	for _, m := range g.members {
		var gens map[int32][]int32 = map[int32][]int32{}
		open := map[int32]*loadHold{} // partition -> current hold
		closeAll := func(at int64) {
			for p, h := range open {
				h.to = at
				holds[p] = append(holds[p], *h)
			}
			clear(open)
		}
		// claim opens a hold of p in generation gen.
		claim := func(p, gen int32, at int64) {
			if byGen[gen] == nil {
				byGen[gen] = map[int32]*loadMember{}
			}
			if o := byGen[gen][p]; o != nil && o != m {
				t.Errorf("generation %d: partition %d assigned to both %s and %s", gen, p, o.name, m.name)
			}
			byGen[gen][p] = m
			if open[p] != nil {
				t.Errorf("%s: claimed partition %d in generation %d while holding it since generation %d", m.name, p, gen, open[p].gen)
				return
			}
			open[p] = &loadHold{member: m, gen: gen, from: at}
		}
		for _, ev := range m.events {
			switch ev.Ev {
			case "assigned":
				if perClaim {
					continue // the claims say what it holds
				}
				if len(open) > 0 {
					t.Errorf("%s: assigned %v in generation %d while still holding %v", m.name, ev.Partitions, *ev.Gen, slices.Collect(maps.Keys(open)))
					closeAll(ev.T)
				}
				if _, dup := gens[*ev.Gen]; dup {
					t.Errorf("%s: assigned twice in generation %d", m.name, *ev.Gen)
				}
				gens[*ev.Gen] = ev.Partitions
				for _, p := range ev.Partitions {
					claim(p, *ev.Gen, ev.T)
				}
			case "released":
				if h := open[ev.Partition]; perClaim && h != nil {
					h.to = ev.T
					holds[ev.Partition] = append(holds[ev.Partition], *h)
					delete(open, ev.Partition)
				}
			case "revoked":
				closeAll(ev.T)
			case "records":
				if ev.Gen == nil {
					t.Errorf("%s: processed %d/%v holding no generation", m.name, ev.Partition, ev.Offsets)
					continue
				}
				// An eager member holds its partitions in one generation;
				// a cooperative one keeps them across generations.
				h := open[ev.Partition]
				if h == nil || (!perClaim && h.gen != *ev.Gen) {
					t.Errorf("%s: processed partition %d offsets %v in generation %d without holding it (holds %v)", m.name, ev.Partition, ev.Offsets, *ev.Gen, slices.Sorted(maps.Keys(open)))
					continue
				}
				key := fmt.Sprintf("%s/%d", m.name, *ev.Gen)
				s := segs[ev.Partition][key]
				for _, o := range ev.Offsets {
					if s == nil {
						s = &loadSegment{member: m, gen: *ev.Gen, first: o, last: o - 1, start: -1, assignedAt: h.from}
						segs[ev.Partition][key] = s
					}
					if o != s.last+1 {
						t.Errorf("%s generation %d partition %d: offset %d after %d: offsets must be read in order and densely", m.name, *ev.Gen, ev.Partition, o, s.last)
					}
					s.last = o
					seen[ev.Partition][o]++
				}
				for i, o := range ev.Offsets {
					if want, ok := acked[ev.Partition][o]; !ok {
						if final {
							t.Errorf("%s: consumed %d/%d (%q), which the producer was never acked", m.name, ev.Partition, o, ev.Values[i])
						}
					} else if ev.Values[i] != want {
						t.Errorf("%s: %d/%d is %q, the producer was acked %q there", m.name, ev.Partition, o, ev.Values[i], want)
					}
				}
			case "claimed":
				if perClaim {
					claim(ev.Partition, *ev.Gen, ev.T)
				}
				if ev.Offset < 0 {
					// No committed offset: the client's reset offset
					// (sarama.OffsetOldest); where it began is checked below.
					continue
				}
				key := fmt.Sprintf("%s/%d", m.name, *ev.Gen)
				if s := segs[ev.Partition][key]; s != nil {
					t.Errorf("%s: start of partition %d logged after its records", m.name, ev.Partition)
				} else {
					segs[ev.Partition][key] = &loadSegment{member: m, gen: *ev.Gen, first: ev.Offset, last: ev.Offset - 1, start: ev.Offset, assignedAt: ev.T}
				}
			case "committed":
				commits = append(commits, ev)
			case "error":
				// A client error (a failed commit, a fetch refused) is a
				// failure of the run; the first few say enough.
				if errorsShown++; errorsShown <= 5 {
					t.Errorf("%s: the client reported an error: %s", m.name, ev.Error)
				}
			}
		}
		switch {
		case m.killedAt != 0:
			heldAtKill[m] = map[int32]bool{}
			for p := range open {
				heldAtKill[m][p] = true
			}
			closeAll(m.killedAt)
		case len(open) > 0:
			if final {
				t.Errorf("%s: still holds %v at the end", m.name, slices.Sorted(maps.Keys(open)))
			}
			closeAll(math.MaxInt64)
		}
	}

	// (a) No two members hold a partition at once.
	for p, hs := range holds {
		sort.Slice(hs, func(i, j int) bool { return hs[i].from < hs[j].from })
		for i := 1; i < len(hs); i++ {
			if prev := hs[i-1]; hs[i].from < prev.to {
				t.Errorf("partition %d: %s held it from %d (generation %d) while %s held it until %d (generation %d)",
					p, hs[i].member.name, hs[i].from, hs[i].gen, prev.member.name, prev.to, prev.gen)
			}
		}
	}
	return loadAnalysis{segs: segs, commits: commits, seen: seen, heldAtKill: heldAtKill}
}

// check checks the whole run: checkOwnership, then that every acked record
// was consumed, that partitions changed hands at the committed offsets, and
// that only what the killed member had processed and not committed was
// read twice.
func (g *groupLoad) check(acked map[int32]map[int64]string, committedAtRestart map[int32]int64, restarted []*loadMember, killed *loadMember) {
	t := g.t
	t.Helper()
	a := g.checkOwnership(acked, true)
	segs, commits, seen := a.segs, a.commits, a.seen

	// The producer's order per key (one key a partition): the log holds the
	// rounds in the order they were sent, each once.
	for p, offs := range acked {
		prev := -1
		for _, o := range slices.Sorted(maps.Keys(offs)) {
			var vp, round int
			if _, err := fmt.Sscanf(offs[o], "%d-%d", &vp, &round); err != nil || vp != int(p) || round <= prev {
				t.Errorf("partition %d: offset %d holds %q after round %d: the producer's order is lost", p, o, offs[o], prev)
			}
			prev = round
		}
	}

	// (b) Every acked record consumed; duplicates only after a kill.
	for p, offs := range acked {
		for o := range offs {
			if seen[p][o] == 0 {
				t.Errorf("%d/%d (%q) was acked but never consumed", p, o, offs[o])
			}
		}
	}
	committedBefore := func(p int32, at int64) int64 {
		c := int64(0)
		for _, ev := range commits {
			if o, ok := ev.Committed[strconv.Itoa(int(p))]; ok && ev.T <= at && o > c {
				c = o
			}
		}
		return c
	}
	reread := 0
	for p := range int32(loadPartitions) {
		var ss []*loadSegment
		for _, s := range segs[p] {
			if s.last >= s.first {
				ss = append(ss, s)
			} else if c := committedBefore(p, s.assignedAt); s.start >= 0 && s.start < c {
				// A claim with no records still starts at (or, when a
				// killed member's last commit went unlogged, after) the
				// committed offset.
				t.Errorf("partition %d: %s started generation %d at %d, before the committed offset %d", p, s.member.name, s.gen, s.start, c)
			}
		}
		sort.Slice(ss, func(i, j int) bool { return ss[i].gen < ss[j].gen })
		if len(ss) == 0 {
			t.Errorf("partition %d: nobody consumed it", p)
			continue
		}
		if ss[0].first != 0 {
			t.Errorf("partition %d: the first owner (%s) started at %d, not at the start", p, ss[0].member.name, ss[0].first)
		}
		for i := 1; i < len(ss); i++ {
			prev, s := ss[i-1], ss[i]
			if s.start >= 0 && s.start != s.first {
				t.Errorf("partition %d: %s's claim in generation %d starts at %d but its first record is %d", p, s.member.name, s.gen, s.start, s.first)
			}
			if s.first > prev.last+1 {
				t.Errorf("partition %d: %s started generation %d at %d, after %s stopped at %d: %d records skipped", p, s.member.name, s.gen, s.first, prev.member.name, prev.last, s.first-prev.last-1)
				continue
			}
			// Only the handoff of what the killed member held when it
			// died (its last segment of the partition) may re-read.
			if prev.member != killed || !a.heldAtKill[killed][p] || slices.ContainsFunc(ss[i:], func(x *loadSegment) bool { return x.member == killed }) {
				// A clean handoff (a rebalance or a leave): everything the
				// previous owner processed was committed first.
				if s.first != prev.last+1 {
					t.Errorf("partition %d: %s started generation %d at %d, re-reading %d records %s processed (up to %d) and should have committed before giving it up",
						p, s.member.name, s.gen, s.first, prev.last+1-s.first, prev.member.name, prev.last)
				}
				continue
			}
			// After the kill: from the last committed offset, re-reading
			// only what the killed member had processed and not committed.
			c := committedBefore(p, s.assignedAt)
			if s.first < c {
				t.Errorf("partition %d: %s started generation %d at %d, before the offset %d committed before it joined", p, s.member.name, s.gen, s.first, c)
			}
			reread += int(prev.last + 1 - s.first)
			t.Logf("partition %d: after the kill of %s (last processed %d, last commit logged %d) %s starts at %d", p, prev.member.name, prev.last, c, s.member.name, s.first)
		}
	}
	dups := 0
	for _, offs := range seen {
		for _, n := range offs {
			dups += n - 1
		}
	}
	if dups != reread {
		t.Errorf("%d records were consumed more than once, %d of them re-read after the kill: the others have no excuse", dups, dups-reread)
	}
	t.Logf("%d records re-read after the kill (processed, not committed)", reread)

	// After the restart, the new members start at the committed offsets.
	for p := range int32(loadPartitions) {
		var first *loadSegment
		for _, s := range segs[p] {
			if slices.Contains(restarted, s.member) && (first == nil || s.gen < first.gen) {
				first = s
			}
		}
		if first == nil {
			t.Errorf("partition %d: no restarted member held it", p)
			continue
		}
		if first.first != committedAtRestart[p] {
			t.Errorf("partition %d: after the restart %s started at %d; the group had committed %d", p, first.member.name, first.first, committedAtRestart[p])
		}
	}
}
