package coordinator

// Target assignment for consumer groups, computed by the index in the spirit
// of KIP-848's uniform assignor. It is pure: the caller reads members,
// subscriptions and partition counts from the index, calls ComputeAssignment,
// and stores the result as the group's target. Members then converge on the
// target by releasing and acquiring partitions; that hand-over, not this
// function, guarantees that two live members never own one partition.
//
// The computation keeps every partition a member already owns and may still
// own, gives the partitions nobody owns to the least-loaded eligible member,
// then moves partitions one at a time from a member to an eligible member
// with at least two fewer partitions until no such move exists. Each move
// strictly lowers the sum of squared loads, so the loop ends; and because
// the output admits no further move, feeding it back in changes nothing.

import (
	"cmp"
	"slices"
)

// AssignmentMember is one consumer-group member as ComputeAssignment sees it.
type AssignmentMember struct {
	// ID identifies the member. Entries with the same ID are merged: their
	// topics and owned partitions are united.
	ID string
	// Topics are the names of the topics the member subscribes to, with any
	// regular expression already resolved against the topic list. Topics
	// missing from the partition counts are ignored.
	Topics []string
	// Owned is the member's current assignment, possibly empty. A partition
	// the member may not keep (topic unsubscribed or vanished, partition
	// number beyond the count, or also claimed by a member with a smaller
	// ID) is ignored.
	Owned []TopicPartition
}

// ComputeAssignment returns the target assignment of a group: for each
// member ID, its partitions sorted by topic then partition number. Members
// with nothing to own get an empty, non-nil slice.
//
// partitions maps each topic name to its partition count. Every partition of
// every topic at least one member subscribes to is assigned to exactly one
// member subscribed to it; no other partition appears. Among members with
// identical subscriptions the counts differ by at most one. With differing
// subscriptions the result is balanced locally: no member holds a partition
// that another eligible member with at least two fewer partitions could take.
// Owned partitions stay put unless balance requires moving them; with
// identical subscriptions the fewest possible move (a heuristic otherwise,
// with no proof of minimality). The result depends only on the content of
// the input, not on the order of members, topics or owned partitions.
func ComputeAssignment(members []AssignmentMember, partitions map[string]int32) map[string][]TopicPartition {
	a := newAssigner(members, partitions)
	a.keepOwned(members)
	a.assignUnowned()
	a.rebalance()
	out := make(map[string][]TopicPartition, len(a.ids))
	for i, id := range a.ids {
		held := a.held[i]
		if held == nil {
			held = []TopicPartition{}
		}
		out[id] = held
	}
	return out
}

// MovedPartitions counts the partitions owned in both before and after whose
// owner differs. A partition only in after (new) or only in before (dropped)
// is no move. A partition listed under several members counts as owned by the
// one with the smallest ID, as in ComputeAssignment.
func MovedPartitions(before, after map[string][]TopicPartition) int {
	was := firstOwners(before)
	moved := 0
	for tp, owner := range firstOwners(after) {
		if prev, ok := was[tp]; ok && prev != owner {
			moved++
		}
	}
	return moved
}

func firstOwners(assignment map[string][]TopicPartition) map[TopicPartition]string {
	ids := make([]string, 0, len(assignment))
	for id := range assignment {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	owners := make(map[TopicPartition]string)
	for _, id := range ids {
		for _, tp := range assignment[id] {
			if _, taken := owners[tp]; !taken {
				owners[tp] = id
			}
		}
	}
	return owners
}

// assigner holds the working state; members are referred to by their index
// in ids, which is sorted, so "smallest index" means "smallest ID".
type assigner struct {
	ids        []string
	subscribed []map[string]bool
	counts     map[string]int32
	// topics are the topics with partitions and at least one subscriber,
	// sorted; eligible lists each one's subscribers by ascending index.
	topics   []string
	eligible map[string][]int
	held     [][]TopicPartition
	owner    map[TopicPartition]int
	// kept records who owned a partition coming in, so that rebalancing
	// prefers moving partitions whose owner changes anyway.
	kept map[TopicPartition]int
}

func newAssigner(members []AssignmentMember, partitions map[string]int32) *assigner {
	a := &assigner{
		counts:   partitions,
		eligible: make(map[string][]int),
		owner:    make(map[TopicPartition]int),
		kept:     make(map[TopicPartition]int),
	}
	for _, m := range members {
		a.ids = append(a.ids, m.ID)
	}
	slices.Sort(a.ids)
	a.ids = slices.Compact(a.ids)
	a.subscribed = make([]map[string]bool, len(a.ids))
	a.held = make([][]TopicPartition, len(a.ids))
	for i := range a.subscribed {
		a.subscribed[i] = make(map[string]bool)
	}
	for _, m := range members {
		i := a.index(m.ID)
		for _, topic := range m.Topics {
			if partitions[topic] > 0 {
				a.subscribed[i][topic] = true
			}
		}
	}
	for i, subs := range a.subscribed {
		for topic := range subs {
			if a.eligible[topic] == nil {
				a.topics = append(a.topics, topic)
			}
			a.eligible[topic] = append(a.eligible[topic], i)
		}
	}
	slices.Sort(a.topics)
	return a
}

func (a *assigner) index(id string) int {
	i, _ := slices.BinarySearch(a.ids, id)
	return i
}

// keepOwned gives each member the owned partitions it may keep, members in
// ID order so that a partition claimed twice goes to the smaller ID.
func (a *assigner) keepOwned(members []AssignmentMember) {
	owned := make([][]TopicPartition, len(a.ids))
	for _, m := range members {
		i := a.index(m.ID)
		owned[i] = append(owned[i], m.Owned...)
	}
	for i, tps := range owned {
		slices.SortFunc(tps, CompareTopicPartitions)
		for _, tp := range slices.Compact(tps) {
			if !a.subscribed[i][tp.Topic] || tp.Partition < 0 || tp.Partition >= a.counts[tp.Topic] {
				continue
			}
			if _, taken := a.owner[tp]; taken {
				continue
			}
			a.owner[tp] = i
			a.kept[tp] = i
			a.held[i] = append(a.held[i], tp)
		}
	}
}

// assignUnowned gives each partition nobody kept to its least-loaded eligible
// member, the smaller ID on a tie. Topics with fewer subscribers go first:
// their partitions have fewer places to go, and filling those members early
// steers the more widely subscribed topics to the others.
func (a *assigner) assignUnowned() {
	order := slices.Clone(a.topics)
	slices.SortStableFunc(order, func(x, y string) int {
		return cmp.Compare(len(a.eligible[x]), len(a.eligible[y]))
	})
	for _, topic := range order {
		for p := range a.counts[topic] {
			tp := TopicPartition{Topic: topic, Partition: p}
			if _, taken := a.owner[tp]; taken {
				continue
			}
			to := a.leastLoaded(topic)
			a.owner[tp] = to
			a.held[to] = append(a.held[to], tp)
		}
	}
	for _, held := range a.held {
		slices.SortFunc(held, CompareTopicPartitions)
	}
}

func (a *assigner) leastLoaded(topic string) int {
	best := -1
	for _, i := range a.eligible[topic] {
		if best < 0 || len(a.held[i]) < len(a.held[best]) {
			best = i
		}
	}
	return best
}

// rebalance moves one partition at a time until no member holds a partition
// that an eligible member with at least two fewer partitions could take.
func (a *assigner) rebalance() {
	if len(a.ids) == 0 {
		return
	}
	order := make([]int, len(a.ids))
	target := make(map[string]int, len(a.topics))
	for {
		for _, topic := range a.topics {
			target[topic] = a.leastLoaded(topic)
		}
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(x, y int) int {
			return cmp.Compare(len(a.held[y]), len(a.held[x]))
		})
		if !a.moveOne(order, target) {
			return
		}
	}
}

// moveOne moves one partition from the most-loaded member that can give one,
// and reports whether it did. Among that member's candidates it prefers a
// partition it did not own coming in (moving it costs no extra move), then
// the least-loaded receiver, then the partition that sorts last.
func (a *assigner) moveOne(order []int, target map[string]int) bool {
	minLoad := len(a.held[order[len(order)-1]])
	for _, from := range order {
		load := len(a.held[from])
		if load <= minLoad+1 {
			return false
		}
		pick, pickFree, pickLoad := -1, false, 0
		for k := len(a.held[from]) - 1; k >= 0; k-- {
			tp := a.held[from][k]
			toLoad := len(a.held[target[tp.Topic]])
			if toLoad+1 >= load {
				continue
			}
			prev, wasKept := a.kept[tp]
			free := !wasKept || prev != from
			if pick < 0 || (free && !pickFree) || (free == pickFree && toLoad < pickLoad) {
				pick, pickFree, pickLoad = k, free, toLoad
			}
		}
		if pick < 0 {
			continue
		}
		tp := a.held[from][pick]
		to := target[tp.Topic]
		a.held[from] = slices.Delete(a.held[from], pick, pick+1)
		at, _ := slices.BinarySearchFunc(a.held[to], tp, CompareTopicPartitions)
		a.held[to] = slices.Insert(a.held[to], at, tp)
		a.owner[tp] = to
		return true
	}
	return false
}
