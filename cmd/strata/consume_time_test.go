package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// Timestamps need not rise with offsets: --from TIME starts at the first
// record stamped at or after the time, even when the newest record is
// older than the time.
func TestConsumeFromTimeWithTimestampsGoingBack(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "stamps", "--partitions", "2", "--addr", addr)
	producer := stratav1connect.NewProducerServiceClient(http.DefaultClient, "http://"+addr)
	at := func(p int32, stamp, value string) *stratav1.Record {
		ts, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t.Fatal(err)
		}
		return &stratav1.Record{Value: []byte(value), Partition: proto.Int32(p), Timestamp: timestamppb.New(ts)}
	}
	_, err := producer.Produce(t.Context(), connect.NewRequest(&stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{
		Topic: "stamps",
		Records: []*stratav1.Record{
			at(0, "2100-01-01T00:00:00Z", "future"), at(0, "2026-01-01T00:00:00Z", "present"),
			// Partition 1 holds an older record and one stamped exactly
			// 2050, which a time half a millisecond later must not answer.
			at(1, "2026-01-01T00:00:00Z", "old"), at(1, "2050-01-01T00:00:00.000Z", "just-before"),
		},
	}}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, want string }{
		{"2050-01-01T00:00:00Z", "future\npresent\njust-before\n"},
		{"2050-01-01T00:00:00.0005Z", "future\npresent\n"},
		{"2100-01-01T00:00:00Z", "future\npresent\n"},
		{"2100-01-01T00:00:00.001Z", ""},
	} {
		start := time.Now()
		recs := parseRecords(t, ok(t, "", "consume", "stamps", "--from", c.from, "--output", "json", "--addr", addr))
		var got strings.Builder
		for _, r := range recs {
			got.WriteString(*r.Value + "\n")
		}
		// Partition order is not fixed between partitions: compare each.
		if gotSorted, wantSorted := sortedLines(got.String()), sortedLines(c.want); gotSorted != wantSorted {
			t.Errorf("--from %s printed %q, want %q", c.from, got.String(), c.want)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("--from %s took %v", c.from, d)
		}
	}
	// Within a partition, offset order.
	if out := ok(t, "", "consume", "stamps", "--partition", "0", "--from", "2050-01-01T00:00:00Z", "--addr", addr); out != "future\npresent\n" {
		t.Errorf("--partition 0 --from 2050 printed %q", out)
	}
}

func sortedLines(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
