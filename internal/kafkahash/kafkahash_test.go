package kafkahash_test

import (
	"testing"

	"github.com/stratabroker/strata/internal/kafkahash"
)

// The vectors are Kafka's own (UtilsTest.testMurmur2), so a mismatch means
// keyed records would land elsewhere than a Kafka client puts them.
func TestMurmur2MatchesKafka(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   []byte
		want int32
	}{
		{[]byte("21"), -973932308},
		{[]byte("foobar"), -790332482},
		{[]byte("a-little-bit-long-string"), -985981536},
		{[]byte("a-little-bit-longer-string"), -1486304829},
		{[]byte("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971},
		{[]byte{'a', 'b', 'c'}, 479470107},
	}
	for _, c := range cases {
		if got := kafkahash.Murmur2(c.in); got != c.want {
			t.Errorf("murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestKeyPartitionInRange(t *testing.T) {
	t.Parallel()
	seen := map[int32]bool{}
	for i := range 1000 {
		p := kafkahash.KeyPartition([]byte{byte(i), byte(i >> 8), 7}, 12)
		if p < 0 || p >= 12 {
			t.Fatalf("partition %d out of [0,12)", p)
		}
		seen[p] = true
	}
	if len(seen) != 12 {
		t.Errorf("1000 keys hit %d of 12 partitions", len(seen))
	}
}
