package integration

// Helpers over records: Kafka's default partitioner (to check where keyed
// records land), reading a whole partition back with Fetch, and assertions on
// Connect errors.

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// murmur2 is Kafka's murmur2 (org.apache.kafka.common.utils.Utils), written
// here from Kafka's definition rather than taken from the agent, so that the
// tests check the agent against Kafka and not against itself.
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> 24
		k *= m
		h *= m
		h ^= k
	}
	rest := data[n&^3:]
	switch len(rest) {
	case 3:
		h ^= uint32(rest[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(rest[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(rest[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// kafkaPartition is the partition Kafka's default partitioner picks for a
// key.
func kafkaPartition(key []byte, partitions int32) int32 {
	return (murmur2(key) & 0x7fffffff) % partitions
}

func TestKafkaPartitionerVectors(t *testing.T) {
	t.Parallel()
	// Kafka's UtilsTest.testMurmur2.
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := murmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

// readPartition reads a partition from offset 0 to its high watermark with
// Fetch, maxBytes at a time, and checks the offsets are dense: record i of
// the answer is at offset i. It fails the test on any error.
func readPartition(t testing.TB, c clients, topic string, partition int32, maxBytes int32) []*stratav1.ConsumedRecord {
	t.Helper()
	var out []*stratav1.ConsumedRecord
	offset := int64(0)
	hwm := int64(-1)
	for empty := 0; hwm < 0 || offset < hwm; {
		resp, err := c.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{
			Topic: topic, Partition: partition, Offset: offset, MaxBytes: maxBytes,
		}))
		if err != nil {
			t.Fatalf("Fetch %s/%d at %d: %v", topic, partition, offset, err)
		}
		m := resp.Msg
		if hwm >= 0 && m.GetHighWatermark() != hwm {
			t.Fatalf("Fetch %s/%d: high watermark moved from %d to %d while nothing was produced", topic, partition, hwm, m.GetHighWatermark())
		}
		hwm = m.GetHighWatermark()
		if m.GetLogStartOffset() != 0 {
			t.Fatalf("Fetch %s/%d: log start offset %d, want 0 (nothing was deleted)", topic, partition, m.GetLogStartOffset())
		}
		for _, r := range m.GetRecords() {
			if r.GetOffset() != offset {
				t.Fatalf("Fetch %s/%d: record at offset %d where offset %d was expected: offsets are not dense", topic, partition, r.GetOffset(), offset)
			}
			if r.GetTopic() != topic || r.GetPartition() != partition {
				t.Fatalf("Fetch %s/%d: record says it is from %s/%d", topic, partition, r.GetTopic(), r.GetPartition())
			}
			out = append(out, r)
			offset++
		}
		if m.GetNextOffset() != offset {
			t.Fatalf("Fetch %s/%d: next_offset %d after records ending at %d", topic, partition, m.GetNextOffset(), offset)
		}
		if len(m.GetRecords()) == 0 && offset < hwm {
			if empty++; empty > 3 {
				t.Fatalf("Fetch %s/%d at %d: no records although the high watermark is %d", topic, partition, offset, hwm)
			}
		}
	}
	return out
}

// wantConnectError checks err is a Connect error with code whose message
// matches every pattern (regular expressions), and returns it.
func wantConnectError(t testing.TB, what string, err error, code connect.Code, patterns ...string) *connect.Error {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s", what, code)
		return nil
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Errorf("%s: %v (%T), want a Connect error %s", what, err, err, code)
		return nil
	}
	t.Logf("%s: %s: %s", what, ce.Code(), ce.Message())
	if ce.Code() != code {
		t.Errorf("%s: code %s (%q), want %s", what, ce.Code(), ce.Message(), code)
	}
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(ce.Message()) {
			t.Errorf("%s: message %q does not match %q", what, ce.Message(), p)
		}
	}
	return ce
}

// ptr returns a pointer to v, for optional proto fields.
func ptr[T any](v T) *T { return &v }

// quantiles formats the median and the maximum of durations.
func quantiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("p50 %s, p99 %s, max %s", s[len(s)/2].Round(time.Millisecond),
		s[len(s)*99/100].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// oneLine shortens output for messages.
func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", " | ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}
