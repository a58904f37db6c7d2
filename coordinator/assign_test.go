package coordinator_test

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stratabroker/strata/coordinator"
)

type tp = coordinator.TopicPartition

// tps lists the named partitions of one topic.
func tps(topic string, parts ...int32) []tp {
	out := make([]tp, len(parts))
	for i, p := range parts {
		out[i] = tp{Topic: topic, Partition: p}
	}
	return out
}

// span lists partitions [from, to) of one topic.
func span(topic string, from, to int32) []tp {
	var out []tp
	for p := from; p < to; p++ {
		out = append(out, tp{Topic: topic, Partition: p})
	}
	return out
}

func member(id string, topics []string, owned ...tp) coordinator.AssignmentMember {
	return coordinator.AssignmentMember{ID: id, Topics: topics, Owned: owned}
}

// withOwned returns members owning what assignment gives them.
func withOwned(members []coordinator.AssignmentMember, assignment map[string][]tp) []coordinator.AssignmentMember {
	out := make([]coordinator.AssignmentMember, len(members))
	for i, m := range members {
		m.Owned = slices.Clone(assignment[m.ID])
		out[i] = m
	}
	return out
}

func equalAssignments(a, b map[string][]tp) bool {
	return maps.EqualFunc(a, b, func(x, y []tp) bool { return slices.Equal(x, y) })
}

func loads(assignment map[string][]tp) (lo, hi int) {
	first := true
	for _, held := range assignment {
		if first || len(held) < lo {
			lo = len(held)
		}
		if first || len(held) > hi {
			hi = len(held)
		}
		first = false
	}
	return lo, hi
}

func containsAll(held, want []tp) bool {
	for _, p := range want {
		if !slices.Contains(held, p) {
			return false
		}
	}
	return true
}

// checkAssignment asserts the invariants every result must meet: one entry
// per member, non-nil and sorted; every partition of a subscribed topic
// assigned exactly once, to a subscriber; nothing else assigned.
func checkAssignment(t *testing.T, members []coordinator.AssignmentMember, partitions map[string]int32, got map[string][]tp) {
	t.Helper()
	subscribed := make(map[string]map[string]bool)
	for _, m := range members {
		if subscribed[m.ID] == nil {
			subscribed[m.ID] = make(map[string]bool)
		}
		for _, topic := range m.Topics {
			subscribed[m.ID][topic] = true
		}
	}
	if len(got) != len(subscribed) {
		t.Fatalf("assignment has %d members, want %d: %v", len(got), len(subscribed), got)
	}
	owner := make(map[tp]string)
	for id, held := range got {
		if held == nil {
			t.Errorf("member %q has a nil slice", id)
		}
		if _, ok := subscribed[id]; !ok {
			t.Errorf("unknown member %q in assignment", id)
		}
		if !slices.IsSortedFunc(held, func(a, b tp) int {
			return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		}) {
			t.Errorf("member %q: partitions not sorted: %v", id, held)
		}
		for _, p := range held {
			if prev, dup := owner[p]; dup {
				t.Errorf("partition %v assigned to %q and %q", p, prev, id)
			}
			owner[p] = id
			if !subscribed[id][p.Topic] {
				t.Errorf("partition %v assigned to %q, which does not subscribe to it", p, id)
			}
			if p.Partition < 0 || p.Partition >= partitions[p.Topic] {
				t.Errorf("partition %v does not exist (count %d)", p, partitions[p.Topic])
			}
		}
	}
	for topic, count := range partitions {
		wanted := false
		for _, subs := range subscribed {
			wanted = wanted || subs[topic]
		}
		if !wanted {
			continue
		}
		for p := range count {
			if _, ok := owner[tp{Topic: topic, Partition: p}]; !ok {
				t.Errorf("partition %s-%d is unassigned", topic, p)
			}
		}
	}
}

func TestComputeAssignment(t *testing.T) {
	t.Parallel()
	abc := []coordinator.AssignmentMember{
		member("a", []string{"t"}),
		member("b", []string{"t"}),
		member("c", []string{"t"}),
	}
	balanced := coordinator.ComputeAssignment(abc, map[string]int32{"t": 12})

	tests := []struct {
		name       string
		members    []coordinator.AssignmentMember
		partitions map[string]int32
		check      func(t *testing.T, got map[string][]tp)
	}{
		{
			name:       "empty group",
			partitions: map[string]int32{"t": 3},
			check: func(t *testing.T, got map[string][]tp) {
				if got == nil || len(got) != 0 {
					t.Fatalf("got %v, want an empty map", got)
				}
			},
		},
		{
			name:       "one member gets all",
			members:    []coordinator.AssignmentMember{member("a", []string{"t2", "t1"})},
			partitions: map[string]int32{"t1": 3, "t2": 2, "other": 4},
			check: func(t *testing.T, got map[string][]tp) {
				want := append(span("t1", 0, 3), span("t2", 0, 2)...)
				if !slices.Equal(got["a"], want) {
					t.Fatalf("a got %v, want %v", got["a"], want)
				}
			},
		},
		{
			name: "member without eligible partitions gets an empty slice",
			members: []coordinator.AssignmentMember{
				member("a", []string{"t"}),
				member("b", []string{"missing"}),
				member("c", nil),
			},
			partitions: map[string]int32{"t": 2, "empty": 0},
			check: func(t *testing.T, got map[string][]tp) {
				if len(got["b"]) != 0 || len(got["c"]) != 0 || len(got["a"]) != 2 {
					t.Fatalf("got %v", got)
				}
			},
		},
		{
			name:       "three members share twelve partitions",
			members:    abc,
			partitions: map[string]int32{"t": 12},
			check: func(t *testing.T, got map[string][]tp) {
				for id, held := range got {
					if len(held) != 4 {
						t.Errorf("%s got %d partitions, want 4", id, len(held))
					}
				}
			},
		},
		{
			name:       "a fourth member takes one from each",
			members:    append(withOwned(abc, balanced), member("d", []string{"t"})),
			partitions: map[string]int32{"t": 12},
			check: func(t *testing.T, got map[string][]tp) {
				if moved := coordinator.MovedPartitions(balanced, got); moved != 3 {
					t.Errorf("moved %d partitions, want 3", moved)
				}
				for _, id := range []string{"a", "b", "c"} {
					if len(got[id]) != 3 || !containsAll(balanced[id], got[id]) {
						t.Errorf("%s went from %v to %v, want 3 of its 4", id, balanced[id], got[id])
					}
				}
				if len(got["d"]) != 3 {
					t.Errorf("d got %v, want 3 partitions", got["d"])
				}
			},
		},
		{
			name:       "a leaving member's partitions alone move",
			members:    []coordinator.AssignmentMember{withOwned(abc, balanced)[0], withOwned(abc, balanced)[2]},
			partitions: map[string]int32{"t": 12},
			check: func(t *testing.T, got map[string][]tp) {
				if moved := coordinator.MovedPartitions(balanced, got); moved != len(balanced["b"]) {
					t.Errorf("moved %d partitions, want %d (b's)", moved, len(balanced["b"]))
				}
				for _, id := range []string{"a", "c"} {
					if len(got[id]) != 6 || !containsAll(got[id], balanced[id]) {
						t.Errorf("%s went from %v to %v, want to keep all and reach 6", id, balanced[id], got[id])
					}
				}
			},
		},
		{
			name: "differing subscriptions balance over eligible members",
			members: []coordinator.AssignmentMember{
				member("a", []string{"t1", "t2"}),
				member("b", []string{"t2"}),
			},
			partitions: map[string]int32{"t1": 2, "t2": 6},
			check: func(t *testing.T, got map[string][]tp) {
				if len(got["a"]) != 4 || len(got["b"]) != 4 {
					t.Errorf("got %v, want 4 each", got)
				}
			},
		},
		{
			name: "differing subscriptions where the narrow topic outweighs",
			members: []coordinator.AssignmentMember{
				member("a", []string{"t1", "t2"}),
				member("b", []string{"t2"}),
			},
			partitions: map[string]int32{"t1": 6, "t2": 2},
			check: func(t *testing.T, got map[string][]tp) {
				if !slices.Equal(got["a"], span("t1", 0, 6)) || !slices.Equal(got["b"], span("t2", 0, 2)) {
					t.Errorf("got %v, want a all of t1 and b all of t2", got)
				}
			},
		},
		{
			// Filling the members greedily overloads a with t0-0; the
			// rebalance must move that one, not the t0-2 a came in with.
			name: "rebalancing moves a new partition before an owned one",
			members: []coordinator.AssignmentMember{
				member("a", []string{"t0", "t1"}, tp{"t0", 2}),
				member("b", []string{"t1"}),
				member("c", []string{"t0"}),
			},
			partitions: map[string]int32{"t0": 3, "t1": 4},
			check: func(t *testing.T, got map[string][]tp) {
				if !slices.Contains(got["a"], tp{"t0", 2}) {
					t.Errorf("a lost its t0-2: %v", got)
				}
				if lo, hi := loads(got); lo != 2 || hi != 3 {
					t.Errorf("loads %d..%d, want 2..3: %v", lo, hi, got)
				}
			},
		},
		{
			name: "owned partitions it may not keep are dropped",
			members: []coordinator.AssignmentMember{
				member("a", []string{"t1"},
					tp{"t1", 1}, tp{"t2", 0}, tp{"gone", 0}, tp{"t1", 7}, tp{"t1", -1}),
			},
			partitions: map[string]int32{"t1": 2, "t2": 3},
			check: func(t *testing.T, got map[string][]tp) {
				if want := span("t1", 0, 2); !slices.Equal(got["a"], want) {
					t.Errorf("a got %v, want %v", got["a"], want)
				}
			},
		},
		{
			name: "an unsubscribed topic's partitions go to a subscriber",
			members: []coordinator.AssignmentMember{
				member("a", []string{"t1"}, tps("t2", 0, 1)...),
				member("b", []string{"t2"}),
			},
			partitions: map[string]int32{"t1": 1, "t2": 2},
			check: func(t *testing.T, got map[string][]tp) {
				if !slices.Equal(got["a"], span("t1", 0, 1)) || !slices.Equal(got["b"], span("t2", 0, 2)) {
					t.Errorf("got %v", got)
				}
			},
		},
		{
			name: "a partition claimed twice goes to the smaller ID",
			members: []coordinator.AssignmentMember{
				member("b", []string{"t"}, tps("t", 0, 1)...),
				member("a", []string{"t"}, tps("t", 1, 0)...),
			},
			partitions: map[string]int32{"t": 4},
			check: func(t *testing.T, got map[string][]tp) {
				if !slices.Equal(got["a"], tps("t", 0, 1)) || !slices.Equal(got["b"], tps("t", 2, 3)) {
					t.Errorf("got %v, want a: t-0,t-1 and b: t-2,t-3", got)
				}
			},
		},
		{
			name: "entries with the same ID merge",
			members: []coordinator.AssignmentMember{
				member("a", []string{"t1"}, tp{"t1", 0}),
				member("a", []string{"t2"}, tp{"t2", 0}),
			},
			partitions: map[string]int32{"t1": 1, "t2": 1},
			check: func(t *testing.T, got map[string][]tp) {
				if want := []tp{{"t1", 0}, {"t2", 0}}; len(got) != 1 || !slices.Equal(got["a"], want) {
					t.Errorf("got %v, want only a with %v", got, want)
				}
			},
		},
		{
			name:       "new partitions go out without moving old ones",
			members:    withOwned(abc, balanced),
			partitions: map[string]int32{"t": 15},
			check: func(t *testing.T, got map[string][]tp) {
				if moved := coordinator.MovedPartitions(balanced, got); moved != 0 {
					t.Errorf("moved %d partitions, want 0", moved)
				}
				for id, held := range got {
					if len(held) != 5 || !containsAll(held, balanced[id]) {
						t.Errorf("%s went from %v to %v", id, balanced[id], held)
					}
				}
			},
		},
		{
			name:       "one new partition goes out without moving old ones",
			members:    withOwned(abc, balanced),
			partitions: map[string]int32{"t": 13},
			check: func(t *testing.T, got map[string][]tp) {
				if moved := coordinator.MovedPartitions(balanced, got); moved != 0 {
					t.Errorf("moved %d partitions, want 0", moved)
				}
				if lo, hi := loads(got); lo != 4 || hi != 5 {
					t.Errorf("loads %d..%d, want 4..5", lo, hi)
				}
			},
		},
		{
			name:       "a shrunk topic rebalances what is left",
			members:    withOwned(abc, balanced),
			partitions: map[string]int32{"t": 6},
			check: func(t *testing.T, got map[string][]tp) {
				if lo, hi := loads(got); lo != 2 || hi != 2 {
					t.Errorf("loads %d..%d, want 2 each: %v", lo, hi, got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := coordinator.ComputeAssignment(tt.members, tt.partitions)
			checkAssignment(t, tt.members, tt.partitions, got)
			tt.check(t, got)
		})
	}
}

func TestComputeAssignmentDeterministic(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	partitions := map[string]int32{"t1": 17, "t2": 9, "t3": 30}
	var members []coordinator.AssignmentMember
	for i := range 9 {
		m := member(fmt.Sprintf("m%d", i), []string{"t3"})
		if i%2 == 0 {
			m.Topics = append(m.Topics, "t1")
		}
		if i%3 == 0 {
			m.Topics = append(m.Topics, "t2")
		}
		for range 6 {
			topic := []string{"t1", "t2", "t3"}[rng.IntN(3)]
			m.Owned = append(m.Owned, tp{Topic: topic, Partition: rng.Int32N(32)})
		}
		members = append(members, m)
	}
	want := coordinator.ComputeAssignment(members, partitions)
	checkAssignment(t, members, partitions, want)
	for range 50 {
		shuffled := make([]coordinator.AssignmentMember, len(members))
		for i, m := range members {
			m.Topics = slices.Clone(m.Topics)
			m.Owned = slices.Clone(m.Owned)
			rng.Shuffle(len(m.Topics), func(i, j int) { m.Topics[i], m.Topics[j] = m.Topics[j], m.Topics[i] })
			rng.Shuffle(len(m.Owned), func(i, j int) { m.Owned[i], m.Owned[j] = m.Owned[j], m.Owned[i] })
			shuffled[i] = m
		}
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := coordinator.ComputeAssignment(shuffled, partitions); !equalAssignments(got, want) {
			t.Fatalf("shuffled input gave\n%v\nwant\n%v", got, want)
		}
	}
}

// TestComputeAssignmentProperties checks the invariants on random groups:
// full and exclusive coverage by eligible members, balance, the fewest moves
// for groups with identical subscriptions, and stability on its own output.
func TestComputeAssignmentProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(848, 2024))
	allTopics := []string{"t0", "t1", "t2", "t3", "t4"}
	for c := range 400 {
		partitions := make(map[string]int32)
		for _, topic := range allTopics[:1+rng.IntN(len(allTopics))] {
			partitions[topic] = rng.Int32N(25)
		}
		uniform := rng.IntN(2) == 0
		shared := randomSubset(rng, allTopics)
		var members []coordinator.AssignmentMember
		before := make(map[string][]tp)
		for i := range rng.IntN(10) {
			m := member(fmt.Sprintf("m%02d", i), shared)
			if !uniform {
				m.Topics = randomSubset(rng, allTopics)
			}
			m.Owned = randomOwned(rng, allTopics)
			before[m.ID] = m.Owned
			members = append(members, m)
		}
		// Former members, now gone, whose partitions must move.
		for i := range rng.IntN(3) {
			before[fmt.Sprintf("gone%d", i)] = randomOwned(rng, allTopics)
		}
		t.Run(fmt.Sprintf("case%03d", c), func(t *testing.T) {
			t.Parallel()
			got := coordinator.ComputeAssignment(members, partitions)
			checkAssignment(t, members, partitions, got)
			if uniform {
				if lo, hi := loads(got); hi-lo > 1 {
					t.Errorf("identical subscriptions but loads %d..%d: %v", lo, hi, got)
				}
				if moved, least := coordinator.MovedPartitions(before, got), fewestMoves(members, before, partitions); moved != least {
					t.Errorf("moved %d partitions, the fewest possible is %d", moved, least)
				}
			}
			checkLocallyBalanced(t, members, got)
			again := coordinator.ComputeAssignment(withOwned(members, got), partitions)
			if moved := coordinator.MovedPartitions(got, again); moved != 0 || !equalAssignments(got, again) {
				t.Errorf("recomputing on its own output moved %d partitions:\n%v\n%v", moved, got, again)
			}
		})
	}
}

func randomSubset(rng *rand.Rand, from []string) []string {
	var out []string
	for _, s := range from {
		if rng.IntN(2) == 0 {
			out = append(out, s)
		}
	}
	return out
}

// randomOwned draws claims that may name missing topics, out-of-range
// partitions and duplicates.
func randomOwned(rng *rand.Rand, topics []string) []tp {
	var out []tp
	for range rng.IntN(12) {
		out = append(out, tp{Topic: topics[rng.IntN(len(topics))], Partition: rng.Int32N(30)})
	}
	return out
}

// checkLocallyBalanced asserts that no member could hand a partition to an
// eligible member with at least two fewer.
func checkLocallyBalanced(t *testing.T, members []coordinator.AssignmentMember, got map[string][]tp) {
	t.Helper()
	for _, from := range members {
		for _, to := range members {
			if len(got[from.ID]) <= len(got[to.ID])+1 {
				continue
			}
			for _, p := range got[from.ID] {
				if slices.Contains(to.Topics, p.Topic) {
					t.Errorf("%s (%d) could give %v to %s (%d)", from.ID, len(got[from.ID]), p, to.ID, len(got[to.ID]))
					break
				}
			}
		}
	}
}

// fewestMoves is the least number of moves any balanced assignment of a group
// with identical subscriptions could make from before: the partitions whose
// previous owner may not keep them, plus what members must shed to fit
// their quota, the larger quotas going to those that keep the most.
func fewestMoves(members []coordinator.AssignmentMember, before map[string][]tp, partitions map[string]int32) int {
	if len(members) == 0 {
		return 0
	}
	eligible := func(p tp) bool {
		return slices.Contains(members[0].Topics, p.Topic) && p.Partition >= 0 && p.Partition < partitions[p.Topic]
	}
	total := 0
	for _, topic := range members[0].Topics {
		total += int(max(partitions[topic], 0))
	}
	current := make(map[string]bool)
	for _, m := range members {
		current[m.ID] = true
	}
	ids := slices.Sorted(maps.Keys(before))
	seen := make(map[tp]bool)
	keeps := make(map[string]int)
	forced := 0
	for _, id := range ids {
		for _, p := range before[id] {
			if seen[p] || !eligible(p) {
				continue
			}
			seen[p] = true
			if current[id] {
				keeps[id]++
			} else {
				forced++
			}
		}
	}
	counts := make([]int, 0, len(members))
	for _, m := range members {
		counts = append(counts, keeps[m.ID])
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	quota, extra := total/len(members), total%len(members)
	shed := 0
	for i, k := range counts {
		q := quota
		if i < extra {
			q++
		}
		shed += max(0, k-q)
	}
	return forced + shed
}

func TestMovedPartitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		before, after map[string][]tp
		want          int
	}{
		{name: "both empty"},
		{
			name:   "unchanged",
			before: map[string][]tp{"a": tps("t", 0, 1), "b": tps("t", 2)},
			after:  map[string][]tp{"a": tps("t", 0, 1), "b": tps("t", 2)},
		},
		{
			name:   "swap",
			before: map[string][]tp{"a": tps("t", 0), "b": tps("t", 1)},
			after:  map[string][]tp{"a": tps("t", 1), "b": tps("t", 0)},
			want:   2,
		},
		{
			name:   "new and dropped partitions are no moves",
			before: map[string][]tp{"a": tps("t", 0, 1)},
			after:  map[string][]tp{"a": tps("t", 0), "b": tps("t", 2)},
		},
		{
			name:   "to a new member",
			before: map[string][]tp{"a": tps("t", 0, 1)},
			after:  map[string][]tp{"a": tps("t", 0), "b": tps("t", 1)},
			want:   1,
		},
		{
			name:   "a duplicate claim counts for the smaller ID",
			before: map[string][]tp{"b": tps("t", 0), "a": tps("t", 0)},
			after:  map[string][]tp{"a": tps("t", 0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := coordinator.MovedPartitions(tt.before, tt.after); got != tt.want {
				t.Errorf("MovedPartitions = %d, want %d", got, tt.want)
			}
		})
	}
}

// BenchmarkComputeAssignment runs 100 members over 1000 partitions (10
// topics of 100): from scratch, on a stable group, as a member joins, and
// as 99 members join one that owns everything (990 moves).
func BenchmarkComputeAssignment(b *testing.B) {
	partitions := make(map[string]int32)
	var topics []string
	for i := range 10 {
		topic := fmt.Sprintf("topic%d", i)
		topics = append(topics, topic)
		partitions[topic] = 100
	}
	var members []coordinator.AssignmentMember
	for i := range 100 {
		members = append(members, member(fmt.Sprintf("member%03d", i), topics))
	}
	fresh := coordinator.ComputeAssignment(members, partitions)
	stable := withOwned(members, fresh)
	joining := append(withOwned(members[:99], coordinator.ComputeAssignment(members[:99], partitions)), members[99])
	scaleOut := append(withOwned(members[:1], coordinator.ComputeAssignment(members[:1], partitions)), members[1:]...)
	for _, bc := range []struct {
		name    string
		members []coordinator.AssignmentMember
	}{
		{"fresh", members},
		{"stable", stable},
		{"member-joins", joining},
		{"scale-out-from-one", scaleOut},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				coordinator.ComputeAssignment(bc.members, partitions)
			}
		})
	}
}
