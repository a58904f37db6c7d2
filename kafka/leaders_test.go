package kafka

import (
	"crypto/rand"
	"testing"
)

func brokerIDs(n int) []Broker {
	var bs []Broker
	for i := range n {
		bs = append(bs, Broker{ID: int32(i + 1)})
	}
	return bs
}

func randomTopics(n int) []TopicID {
	ids := make([]TopicID, n)
	for i := range ids {
		rand.Read(ids[i][:])
	}
	return ids
}

// leaders maps (topic, partition) to the leader's id.
func leaders(brokers []Broker, topics []TopicID, partitions int32) map[[2]any]int32 {
	m := map[[2]any]int32{}
	for _, tp := range topics {
		for p := range partitions {
			b, _ := partitionLeader(brokers, tp, p)
			m[[2]any{tp, p}] = b.ID
		}
	}
	return m
}

func TestLeaderSpreadIsEven(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3, 6, 10} {
		topics := randomTopics(20)
		const partitions = 600 // 12000 partitions in all
		count := map[int32]int{}
		for _, id := range leaders(brokerIDs(n), topics, partitions) {
			count[id]++
		}
		mean := 20 * partitions / n
		for id := int32(1); id <= int32(n); id++ {
			// Rendezvous hashing is binomial: within 10% of the mean is over
			// 4 standard deviations at these sizes.
			if c := count[id]; c < mean*9/10 || c > mean*11/10 {
				t.Errorf("%d brokers: broker %d leads %d partitions, mean %d", n, id, c, mean)
			}
		}
	}
}

func TestLeaderStableUnderChurn(t *testing.T) {
	t.Parallel()
	topics := randomTopics(10)
	all := brokerIDs(5)
	before := leaders(all, topics, 200)

	// Broker 3 leaves: only its partitions move.
	without := append(append([]Broker{}, all[:2]...), all[3:]...)
	after := leaders(without, topics, 200)
	moved := 0
	for k, was := range before {
		now := after[k]
		if was != 3 && now != was {
			t.Fatalf("partition %v moved from live broker %d to %d when broker 3 left", k, was, now)
		}
		if was == 3 {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("broker 3 led nothing: the test proves nothing")
	}

	// Broker 6 joins: partitions move only to it, about 1/6 of them.
	joined := append(append([]Broker{}, all...), Broker{ID: 6})
	after = leaders(joined, topics, 200)
	gained := 0
	for k, was := range before {
		if now := after[k]; now != was {
			if now != 6 {
				t.Fatalf("partition %v moved from %d to %d, not to the new broker", k, was, now)
			}
			gained++
		}
	}
	if total := len(before); gained < total/6*8/10 || gained > total/6*12/10 {
		t.Errorf("the new broker took %d of %d partitions, want about 1/6", gained, total)
	}

	// Order of the broker list does not matter.
	reversed := []Broker{all[4], all[3], all[2], all[1], all[0]}
	for k, was := range leaders(reversed, topics, 200) {
		if before[k] != was {
			t.Fatalf("leader of %v depends on broker order", k)
		}
	}
}

func TestPartitionLeaderNoBrokers(t *testing.T) {
	t.Parallel()
	if _, ok := partitionLeader(nil, TopicID{}, 0); ok {
		t.Fatal("a leader with no brokers")
	}
}

func TestClientZone(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]string{
		"":                           "",
		"zone=us-east-1a":            "us-east-1a",
		"billing,zone=us-east-1a":    "us-east-1a",
		"app;zone=eu-west-1b;rack=x": "eu-west-1b",
		"zone=use1-az1,instance=7":   "use1-az1",
		"app zone=z1":                "z1",
		"myzone=a":                   "",
		"timezone=UTC,zone=b":        "b",
		"consumer-1":                 "",
		"zone=":                      "",
	} {
		if got := clientZone(id); got != want {
			t.Errorf("clientZone(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestBrokersInZone(t *testing.T) {
	t.Parallel()
	all := []Broker{{ID: 3, Zone: "b"}, {ID: 1, Zone: "a"}, {ID: 2, Zone: "b"}}
	ids := func(bs []Broker) (out []int32) {
		for _, b := range bs {
			out = append(out, b.ID)
		}
		return out
	}
	for zone, want := range map[string][]int32{"b": {2, 3}, "a": {1}, "c": {1, 2, 3}, "": {1, 2, 3}} {
		got := ids(brokersInZone(all, zone))
		if len(got) != len(want) {
			t.Fatalf("zone %q: %v, want %v", zone, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("zone %q: %v, want %v", zone, got, want)
			}
		}
	}
	if all[0].ID != 3 {
		t.Fatal("brokersInZone sorted its input in place")
	}
}
