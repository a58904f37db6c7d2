package coordinator

import (
	"maps"
	"slices"
)

// ComputeRangeAssignment is KIP-848's server-side "range" assignor, the
// classic RangeAssignor's split done by the coordinator: for each topic,
// the members subscribed to it, sorted by ID, take contiguous ranges of its
// partitions in order, each floor(P/M) partitions and the first P mod M one
// more. Topics with the same partition count and the same subscribers are
// split the same way (co-partitioned: partition p of each goes to the same
// member), which is what the range assignor is chosen for (joins of
// co-partitioned topics). Owned partitions are ignored: the split depends
// only on the subscriptions and partition counts. The output has the shape
// of ComputeAssignment's: every member ID, its partitions sorted by topic
// then partition, an empty non-nil slice for a member with none.
func ComputeRangeAssignment(members []AssignmentMember, partitions map[string]int32) map[string][]TopicPartition {
	subscribers := map[string]map[string]bool{}
	out := make(map[string][]TopicPartition, len(members))
	for _, m := range members {
		if out[m.ID] == nil {
			out[m.ID] = []TopicPartition{}
		}
		for _, t := range m.Topics {
			if _, ok := partitions[t]; !ok {
				continue
			}
			if subscribers[t] == nil {
				subscribers[t] = map[string]bool{}
			}
			subscribers[t][m.ID] = true
		}
	}
	for _, t := range slices.Sorted(maps.Keys(subscribers)) {
		ids := slices.Sorted(maps.Keys(subscribers[t]))
		n, count := int32(len(ids)), partitions[t]
		per, extra := count/n, count%n
		next := int32(0)
		for i, id := range ids {
			take := per
			if int32(i) < extra {
				take++
			}
			for p := next; p < next+take; p++ {
				out[id] = append(out[id], TopicPartition{Topic: t, Partition: p})
			}
			next += take
		}
	}
	return out
}
