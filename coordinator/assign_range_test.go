package coordinator_test

import (
	"reflect"
	"testing"

	"github.com/stratabroker/strata/coordinator"
)

func TestComputeRangeAssignment(t *testing.T) {
	t.Parallel()
	tps := func(topic string, ps ...int32) []coordinator.TopicPartition {
		out := []coordinator.TopicPartition{}
		for _, p := range ps {
			out = append(out, coordinator.TopicPartition{Topic: topic, Partition: p})
		}
		return out
	}
	cases := []struct {
		name       string
		members    []coordinator.AssignmentMember
		partitions map[string]int32
		want       map[string][]coordinator.TopicPartition
	}{
		{
			// Contiguous ranges, the first P mod M members one more, in
			// member id order whatever the input order and owned sets.
			name: "contiguous",
			members: []coordinator.AssignmentMember{
				{ID: "c", Topics: []string{"t"}, Owned: tps("t", 0)},
				{ID: "a", Topics: []string{"t"}},
				{ID: "b", Topics: []string{"t"}, Owned: tps("t", 6)},
			},
			partitions: map[string]int32{"t": 7},
			want:       map[string][]coordinator.TopicPartition{"a": tps("t", 0, 1, 2), "b": tps("t", 3, 4), "c": tps("t", 5, 6)},
		},
		{
			// Co-partitioned topics are split alike.
			name: "co-partitioned",
			members: []coordinator.AssignmentMember{
				{ID: "a", Topics: []string{"x", "y"}},
				{ID: "b", Topics: []string{"y", "x"}},
			},
			partitions: map[string]int32{"x": 4, "y": 4},
			want: map[string][]coordinator.TopicPartition{
				"a": append(tps("x", 0, 1), tps("y", 0, 1)...),
				"b": append(tps("x", 2, 3), tps("y", 2, 3)...),
			},
		},
		{
			// Per topic over its own subscribers; fewer partitions than
			// members leaves the last members without; unknown topics are
			// ignored.
			name: "mixed subscriptions",
			members: []coordinator.AssignmentMember{
				{ID: "a", Topics: []string{"x"}},
				{ID: "b", Topics: []string{"x", "y", "gone"}},
				{ID: "c", Topics: []string{"x"}},
			},
			partitions: map[string]int32{"x": 2, "y": 3},
			want: map[string][]coordinator.TopicPartition{
				"a": tps("x", 0), "b": append(tps("x", 1), tps("y", 0, 1, 2)...), "c": tps("x"),
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := coordinator.ComputeRangeAssignment(c.members, c.partitions)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}
