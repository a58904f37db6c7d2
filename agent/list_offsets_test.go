package agent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/agent/connectapi"
	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// stamped is a record for partition p stamped ms milliseconds after the
// epoch.
func stamped(p int32, ms int64, value string) *stratav1.Record {
	return &stratav1.Record{Value: []byte(value), Partition: proto.Int32(p), Timestamp: timestamppb.New(time.UnixMilli(ms))}
}

// produceEach produces each record in its own request, so each lands in
// its own segment and index entry.
func produceEach(t *testing.T, ta *testAgent, topic string, recs ...*stratav1.Record) {
	t.Helper()
	for _, r := range recs {
		if _, err := produce(t.Context(), ta.producer, topic, r); err != nil {
			t.Fatal(err)
		}
	}
}

func earliest(topic string, p int32) *stratav1.ListOffsetsPartition {
	return &stratav1.ListOffsetsPartition{Topic: topic, Partition: p, Spec: &stratav1.ListOffsetsPartition_Earliest{Earliest: true}}
}

func latest(topic string, p int32) *stratav1.ListOffsetsPartition {
	return &stratav1.ListOffsetsPartition{Topic: topic, Partition: p, Spec: &stratav1.ListOffsetsPartition_Latest{Latest: true}}
}

func byTime(topic string, p int32, ts *timestamppb.Timestamp) *stratav1.ListOffsetsPartition {
	return &stratav1.ListOffsetsPartition{Topic: topic, Partition: p, Spec: &stratav1.ListOffsetsPartition_Timestamp{Timestamp: ts}}
}

func maxTimestamp(topic string, p int32) *stratav1.ListOffsetsPartition {
	return &stratav1.ListOffsetsPartition{Topic: topic, Partition: p, Spec: &stratav1.ListOffsetsPartition_MaxTimestamp{MaxTimestamp: true}}
}

func ms(v int64) *timestamppb.Timestamp { return timestamppb.New(time.UnixMilli(v)) }

func listOffsets(t *testing.T, c stratav1connect.ConsumerServiceClient, qs ...*stratav1.ListOffsetsPartition) ([]*stratav1.ListOffsetsPartitionResult, error) {
	t.Helper()
	resp, err := c.ListOffsets(t.Context(), connect.NewRequest(&stratav1.ListOffsetsRequest{Partitions: qs}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetPartitions(), nil
}

// answer is a result in short: the offset and the timestamp in ms, -1 when
// unset.
func answer(r *stratav1.ListOffsetsPartitionResult) string {
	ts := int64(-1)
	if r.GetTimestamp() != nil {
		ts = r.GetTimestamp().AsTime().UnixMilli()
	}
	return fmt.Sprintf("%s/%d offset %d ts %d", r.GetTopic(), r.GetPartition(), r.GetOffset(), ts)
}

func TestListOffsets(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "times", 3, nil)
	ta.createTopic(t, "other", 1, nil)
	// Partition 0: timestamps go back and forth, across several index
	// entries, and the largest (7000) appears twice.
	produceEach(t, ta, "times",
		stamped(0, 5000, "a"), stamped(0, 1000, "b"), stamped(0, 7000, "c"), stamped(0, 3000, "d"), stamped(0, 7000, "e"))
	// And some in one entry.
	if _, err := produce(t.Context(), ta.producer, "times", stamped(0, 6000, "f"), stamped(0, 7000, "g"), stamped(0, 2000, "h")); err != nil {
		t.Fatal(err)
	}
	// Partition 1: records one millisecond apart. Partition 2: empty.
	produceEach(t, ta, "times", stamped(1, 1000, "x"), stamped(1, 1001, "y"))
	produceEach(t, ta, "other", stamped(0, 42, "o"))

	cases := []struct {
		q    *stratav1.ListOffsetsPartition
		want string
	}{
		{earliest("times", 0), "times/0 offset 0 ts -1"},
		{latest("times", 0), "times/0 offset 8 ts -1"},
		{byTime("times", 0, ms(0)), "times/0 offset 0 ts 5000"},
		{byTime("times", 0, ms(5000)), "times/0 offset 0 ts 5000"},
		// The first record in offset order at or after the time, not the
		// nearest one.
		{byTime("times", 0, ms(2000)), "times/0 offset 0 ts 5000"},
		{byTime("times", 0, ms(5001)), "times/0 offset 2 ts 7000"},
		{byTime("times", 0, ms(7001)), "times/0 offset -1 ts -1"},
		{maxTimestamp("times", 0), "times/0 offset 2 ts 7000"},
		// A time between two milliseconds: 1000.5 ms is after the record
		// stamped 1000, so the answer is the one stamped 1001.
		{byTime("times", 1, &timestamppb.Timestamp{Seconds: 1, Nanos: 500_000}), "times/1 offset 1 ts 1001"},
		{byTime("times", 1, &timestamppb.Timestamp{Seconds: 1, Nanos: 1}), "times/1 offset 1 ts 1001"},
		{byTime("times", 1, &timestamppb.Timestamp{Seconds: 1}), "times/1 offset 0 ts 1000"},
		{byTime("times", 1, &timestamppb.Timestamp{Seconds: 0, Nanos: 999_999_999}), "times/1 offset 0 ts 1000"},
		{byTime("times", 1, &timestamppb.Timestamp{Seconds: 1, Nanos: 1_000_001}), "times/1 offset -1 ts -1"},
		{maxTimestamp("times", 1), "times/1 offset 1 ts 1001"},
		{earliest("times", 2), "times/2 offset 0 ts -1"},
		{latest("times", 2), "times/2 offset 0 ts -1"},
		{byTime("times", 2, ms(0)), "times/2 offset -1 ts -1"},
		{maxTimestamp("times", 2), "times/2 offset -1 ts -1"},
		{maxTimestamp("other", 0), "other/0 offset 0 ts 42"},
	}
	// One at a time, then all in one call, in order.
	var all []*stratav1.ListOffsetsPartition
	for _, c := range cases {
		all = append(all, c.q)
		got, err := listOffsets(t, ta.consumer, c.q)
		if err != nil {
			t.Errorf("%v: %v", c.q, err)
			continue
		}
		if len(got) != 1 || answer(got[0]) != c.want {
			t.Errorf("%v: got %v, want %s", c.q, got, c.want)
		}
	}
	got, err := listOffsets(t, ta.consumer, all...)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(cases) {
		t.Fatalf("%d answers to %d lookups", len(got), len(cases))
	}
	for i, c := range cases {
		if answer(got[i]) != c.want {
			t.Errorf("in one call, lookup %d (%v): got %s, want %s", i, c.q, answer(got[i]), c.want)
		}
	}
}

func TestListOffsetsErrors(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "known", 2, nil)
	tooMany := make([]*stratav1.ListOffsetsPartition, 1001)
	for i := range tooMany {
		tooMany[i] = latest("known", 0)
	}
	cases := []struct {
		name  string
		qs    []*stratav1.ListOffsetsPartition
		code  connect.Code
		kafka string
	}{
		{"unknown topic", []*stratav1.ListOffsetsPartition{latest("known", 0), latest("nope", 0)}, connect.CodeNotFound, "UNKNOWN_TOPIC_OR_PARTITION"},
		{"unknown partition", []*stratav1.ListOffsetsPartition{latest("known", 2)}, connect.CodeNotFound, "UNKNOWN_TOPIC_OR_PARTITION"},
		{"negative partition", []*stratav1.ListOffsetsPartition{latest("known", -1)}, connect.CodeNotFound, "UNKNOWN_TOPIC_OR_PARTITION"},
		{"no spec", []*stratav1.ListOffsetsPartition{{Topic: "known"}}, connect.CodeInvalidArgument, "INVALID_REQUEST"},
		{"no topic", []*stratav1.ListOffsetsPartition{earliest("", 0)}, connect.CodeInvalidArgument, "INVALID_REQUEST"},
		{"bad timestamp", []*stratav1.ListOffsetsPartition{byTime("known", 0, &timestamppb.Timestamp{Nanos: 2e9})}, connect.CodeInvalidArgument, "INVALID_REQUEST"},
		{"nothing", nil, connect.CodeInvalidArgument, "INVALID_REQUEST"},
		{"too many", tooMany, connect.CodeInvalidArgument, "INVALID_REQUEST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := listOffsets(t, ta.consumer, c.qs...)
			if connect.CodeOf(err) != c.code {
				t.Fatalf("got %v, want %v", err, c.code)
			}
			var ce *connect.Error
			errors.As(err, &ce)
			info := clientDetail[*stratav1.ErrorInfo](t, ce)
			if info == nil || info.GetKafkaErrorName() != c.kafka {
				t.Errorf("ErrorInfo %v, want Kafka error %s", info, c.kafka)
			}
		})
	}
	_, err := listOffsets(t, ta.consumer, tooMany...)
	var ce *connect.Error
	errors.As(err, &ce)
	want := &stratav1.LimitExceeded{Name: "partitions", Limit: 1000, Actual: 1001}
	if got := clientDetail[*stratav1.LimitExceeded](t, ce); !proto.Equal(got, want) {
		t.Errorf("LimitExceeded %v, want %v", got, want)
	}
}

// clientDetail is the detail of type M of an error a client received, or
// nil.
func clientDetail[M proto.Message](t *testing.T, err *connect.Error) M {
	t.Helper()
	var zero M
	if err == nil {
		return zero
	}
	for _, d := range err.Details() {
		v, derr := d.Value()
		if derr != nil {
			t.Fatalf("detail %s: %v", d.Type(), derr)
		}
		if m, ok := v.(M); ok {
			return m
		}
	}
	return zero
}

// The facts of an error reach the client as typed details, not only as
// text.
func TestErrorDetailsReachClients(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "small", 1, map[string]string{"max.message.bytes": "1000"})
	produceEach(t, ta, "small", stamped(0, 1, "a"), stamped(0, 2, "b"))

	_, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "small", Offset: 7}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeOutOfRange {
		t.Fatalf("fetch past the end: %v, want OutOfRange", err)
	}
	wantRange := &stratav1.OffsetOutOfRange{Topic: "small", Partition: 0, RequestedOffset: 7, LogStartOffset: 0, HighWatermark: 2}
	if got := clientDetail[*stratav1.OffsetOutOfRange](t, ce); !proto.Equal(got, wantRange) {
		t.Errorf("OffsetOutOfRange detail %v, want %v", got, wantRange)
	}

	_, err = produce(t.Context(), ta.producer, "small", &stratav1.Record{Value: make([]byte, 1500)})
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument {
		t.Fatalf("oversized record: %v, want InvalidArgument", err)
	}
	got := clientDetail[*stratav1.LimitExceeded](t, ce)
	if got.GetName() != "max.message.bytes" || got.GetLimit() != 1000 || got.GetActual() < 1500 {
		t.Errorf("LimitExceeded detail %v, want max.message.bytes 1000 with at least 1500", got)
	}
	if info := clientDetail[*stratav1.ErrorInfo](t, ce); info.GetKafkaErrorName() != "MESSAGE_TOO_LARGE" || info.GetRetriable() {
		t.Errorf("ErrorInfo %v, want MESSAGE_TOO_LARGE, not retriable", info)
	}
}

// Reads answer Connect GET requests: URLs a browser can open and a cache
// can keep.
func TestReadsAnswerHTTPGet(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "gettable", 1, nil)
	produceEach(t, ta, "gettable", stamped(0, 1000, "a"), stamped(0, 2000, "b"))
	srv := httptest.NewServer(connectapi.Handler(ta.agent))
	t.Cleanup(srv.Close)

	get := func(procedure string, msg proto.Message) (int, []byte) {
		t.Helper()
		body, err := protojson.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		u := srv.URL + procedure + "?connect=v1&encoding=json&message=" + url.QueryEscape(string(body))
		resp, err := srv.Client().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}

	status, body := get(stratav1connect.ConsumerServiceListOffsetsProcedure, &stratav1.ListOffsetsRequest{
		Partitions: []*stratav1.ListOffsetsPartition{byTime("gettable", 0, ms(1500)), latest("gettable", 0)}})
	var lo stratav1.ListOffsetsResponse
	if status != http.StatusOK || protojson.Unmarshal(body, &lo) != nil {
		t.Fatalf("GET ListOffsets: %d %s", status, body)
	}
	if len(lo.GetPartitions()) != 2 || answer(lo.GetPartitions()[0]) != "gettable/0 offset 1 ts 2000" || lo.GetPartitions()[1].GetOffset() != 2 {
		t.Errorf("GET ListOffsets answered %s", body)
	}

	status, body = get(stratav1connect.ConsumerServiceFetchProcedure, &stratav1.FetchRequest{Topic: "gettable", Offset: 1})
	var f stratav1.FetchResponse
	if status != http.StatusOK || protojson.Unmarshal(body, &f) != nil {
		t.Fatalf("GET Fetch: %d %s", status, body)
	}
	if len(f.GetRecords()) != 1 || string(f.GetRecords()[0].GetValue()) != "b" || f.GetHighWatermark() != 2 {
		t.Errorf("GET Fetch answered %s", body)
	}

	status, body = get(stratav1connect.AdminServiceDescribeTopicProcedure, &stratav1.DescribeTopicRequest{Name: "gettable"})
	var d stratav1.DescribeTopicResponse
	if status != http.StatusOK || protojson.Unmarshal(body, &d) != nil || d.GetPartitions()[0].GetHighWatermark() != 2 {
		t.Fatalf("GET DescribeTopic: %d %s", status, body)
	}

	status, body = get(stratav1connect.AdminServiceListTopicsProcedure, &stratav1.ListTopicsRequest{})
	var lt stratav1.ListTopicsResponse
	if status != http.StatusOK || protojson.Unmarshal(body, &lt) != nil || len(lt.GetTopics()) != 1 || lt.GetTopics()[0].GetName() != "gettable" {
		t.Fatalf("GET ListTopics: %d %s", status, body)
	}

	// An error by GET is a Connect error body, with its details.
	status, body = get(stratav1connect.ConsumerServiceFetchProcedure, &stratav1.FetchRequest{Topic: "gettable", Offset: 9})
	var eb struct {
		Code    string `json:"code"`
		Details []struct {
			Type string `json:"type"`
		} `json:"details"`
	}
	if err := json.Unmarshal(body, &eb); err != nil || status != http.StatusBadRequest || eb.Code != "out_of_range" {
		t.Fatalf("GET Fetch out of range: %d %s", status, body)
	}
	var types []string
	for _, d := range eb.Details {
		types = append(types, d.Type)
	}
	if fmt.Sprint(types) != "[strata.v1.ErrorInfo strata.v1.OffsetOutOfRange]" {
		t.Errorf("error details by GET: %v", types)
	}

	// Writes refuse GET.
	if status, body := get(stratav1connect.AdminServiceCreateTopicProcedure, &stratav1.CreateTopicRequest{Name: "sneaky"}); status != http.StatusMethodNotAllowed {
		t.Errorf("GET CreateTopic: %d %s, want 405", status, body)
	}

	// connect-go clients use GET when asked to.
	c := stratav1connect.NewConsumerServiceClient(srv.Client(), srv.URL, connect.WithHTTPGet())
	got, err := listOffsets(t, c, maxTimestamp("gettable", 0))
	if err != nil || answer(got[0]) != "gettable/0 offset 1 ts 2000" {
		t.Errorf("ListOffsets with WithHTTPGet: %v %v", got, err)
	}
}

// The Go API of the lookup, for front-ends: Kafka's special timestamps.
func TestListOffsetSpecialTimestamps(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "kafkaish", 1, nil)
	produceEach(t, ta, "kafkaish", stamped(0, 300, "a"), stamped(0, 900, "b"), stamped(0, 600, "c"))
	for _, c := range []struct {
		ts         int64
		off, stamp int64
	}{
		{agent.ListEarliest, 0, -1},
		{agent.ListLatest, 3, -1},
		{agent.ListMaxTimestamp, 1, 900},
		{0, 0, 300},
		{301, 1, 900},
		{901, -1, -1},
	} {
		off, stamp, err := ta.agent.ListOffset(t.Context(), "kafkaish", 0, c.ts, false)
		if err != nil || off != c.off || stamp != c.stamp {
			t.Errorf("ListOffset(%d) = %d, %d, %v; want %d, %d", c.ts, off, stamp, err, c.off, c.stamp)
		}
	}
	if _, _, err := ta.agent.ListOffset(t.Context(), "kafkaish", 0, -4, false); err == nil || !strings.Contains(err.Error(), "timestamp -4") {
		t.Errorf("ListOffset(-4): %v, want an invalid timestamp", err)
	}
	if _, _, err := ta.agent.ListOffset(t.Context(), "kafkaish", 1, agent.ListLatest, false); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("ListOffset of partition 1 of 1: %v, want ErrNotFound", err)
	}
}
