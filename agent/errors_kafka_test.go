package agent_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// TestErrorsCarryKafkaErrors: each refusal a client can meet over the API
// names its Kafka equivalent in ErrorInfo, and one that broke a limit says
// which in LimitExceeded (errors.proto).
func TestErrorsCarryKafkaErrors(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "orders", 2, nil)
	m := newMember(ta, "g", "orders")
	m.mustHeartbeat(t)
	if m.epoch < 1 {
		t.Fatalf("member epoch %d after joining, want at least 1", m.epoch)
	}
	commit := func(memberID string, epoch int32, metadata string) error {
		_, err := ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
			Group: "g", MemberId: memberID, MemberEpoch: epoch,
			Offsets: []*stratav1.PartitionOffset{{Topic: "orders", Partition: 0, Offset: 1, Metadata: metadata}}}))
		return err
	}
	createTopic := func(name string, partitions int32, configs map[string]string) error {
		_, err := ta.admin.CreateTopic(t.Context(), connect.NewRequest(&stratav1.CreateTopicRequest{Name: name, Partitions: partitions, Configs: configs}))
		return err
	}
	createPartitions := func(total int32) error {
		_, err := ta.admin.CreatePartitions(t.Context(), connect.NewRequest(&stratav1.CreatePartitionsRequest{Name: "orders", Total: total}))
		return err
	}
	for _, c := range []struct {
		name      string
		call      func() error
		code      connect.Code
		kafka     string
		kafkaCode int32
		limit     *stratav1.LimitExceeded // nil: none
	}{
		{"delete unknown topic", func() error {
			_, err := ta.admin.DeleteTopic(t.Context(), connect.NewRequest(&stratav1.DeleteTopicRequest{Name: "nope"}))
			return err
		}, connect.CodeNotFound, "UNKNOWN_TOPIC_OR_PARTITION", 3, nil},
		{"describe unknown group", func() error {
			_, err := ta.group.DescribeGroup(t.Context(), connect.NewRequest(&stratav1.DescribeGroupRequest{Group: "nobody"}))
			return err
		}, connect.CodeNotFound, "GROUP_ID_NOT_FOUND", 69, nil},
		{"commit from unknown member", func() error { return commit("ghost", 1, "") },
			connect.CodeFailedPrecondition, "UNKNOWN_MEMBER_ID", 25, nil},
		{"commit at a stale epoch", func() error { return commit(m.id, m.epoch-1, "") },
			connect.CodeFailedPrecondition, "STALE_MEMBER_EPOCH", 113, nil},
		{"commit at an epoch ahead", func() error { return commit(m.id, m.epoch+1, "") },
			connect.CodeFailedPrecondition, "FENCED_MEMBER_EPOCH", 110, nil},
		{"heartbeat at an epoch ahead", func() error {
			_, err := ta.group.Heartbeat(t.Context(), connect.NewRequest(&stratav1.HeartbeatRequest{
				Group: "g", MemberId: m.id, MemberEpoch: m.epoch + 5, Topics: []string{"orders"},
				SessionTimeout: durationpb.New(2 * time.Second)}))
			return err
		}, connect.CodeFailedPrecondition, "FENCED_MEMBER_EPOCH", 110, nil},
		{"offset metadata over the limit", func() error { return commit(m.id, m.epoch, strings.Repeat("m", 4097)) },
			connect.CodeInvalidArgument, "OFFSET_METADATA_TOO_LARGE", 12,
			&stratav1.LimitExceeded{Name: "offset-metadata-max-bytes", Limit: 4096, Actual: 4097}},
		{"topic name too long", func() error { return createTopic(strings.Repeat("a", 250), 1, nil) },
			connect.CodeInvalidArgument, "INVALID_TOPIC_EXCEPTION", 17,
			&stratav1.LimitExceeded{Name: "topic name length", Limit: 249, Actual: 250}},
		{"topic name with a space", func() error { return createTopic("bad name", 1, nil) },
			connect.CodeInvalidArgument, "INVALID_TOPIC_EXCEPTION", 17, nil},
		{"create with too many partitions", func() error { return createTopic("big", 10001, nil) },
			connect.CodeInvalidArgument, "INVALID_PARTITIONS", 37,
			&stratav1.LimitExceeded{Name: "partitions", Limit: 10000, Actual: 10001}},
		{"create partitions over the limit", func() error { return createPartitions(100000) },
			connect.CodeInvalidArgument, "INVALID_PARTITIONS", 37,
			&stratav1.LimitExceeded{Name: "partitions", Limit: 10000, Actual: 100000}},
		{"lower the partition count", func() error { return createPartitions(1) },
			connect.CodeInvalidArgument, "INVALID_PARTITIONS", 37, nil},
		{"bad config value", func() error { return createTopic("cfg", 1, map[string]string{"retention.ms": "abc"}) },
			connect.CodeInvalidArgument, "INVALID_CONFIG", 40, nil},
		{"unknown config key", func() error { return createTopic("cfg", 1, map[string]string{"no.such.key": "1"}) },
			connect.CodeInvalidArgument, "INVALID_CONFIG", 40, nil},
		{"update with a bad config value", func() error {
			_, err := ta.admin.UpdateTopicConfig(t.Context(), connect.NewRequest(&stratav1.UpdateTopicConfigRequest{
				Name: "orders", Set: map[string]string{"retention.ms": "abc"}}))
			return err
		}, connect.CodeInvalidArgument, "INVALID_CONFIG", 40, nil},
		{"topic already exists", func() error { return createTopic("orders", 1, nil) },
			connect.CodeAlreadyExists, "TOPIC_ALREADY_EXISTS", 36, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != c.code {
				t.Fatalf("got %v, want code %v", err, c.code)
			}
			info := clientDetail[*stratav1.ErrorInfo](t, ce)
			if info.GetKafkaErrorName() != c.kafka || info.GetKafkaErrorCode() != c.kafkaCode {
				t.Errorf("%v: ErrorInfo %v, want Kafka error %s (%d)", err, info, c.kafka, c.kafkaCode)
			}
			if got := clientDetail[*stratav1.LimitExceeded](t, ce); !proto.Equal(got, c.limit) {
				t.Errorf("%v: LimitExceeded %v, want %v", err, got, c.limit)
			}
		})
	}
}

// TestProduceBufferFullNamesTheLimit: a produce refused because the buffer
// stayed full says which limit it met, as a LimitExceeded detail.
func TestProduceBufferFullNamesTheLimit(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) {
		c.SegmentMaxBytes = 4 << 10
		c.MaxBufferedBytes = 8 << 10
		c.ProduceQueueTimeout = 50 * time.Millisecond
	})
	ta.createTopic(t, "t", 1, nil)
	// Uploads hang, so the buffer never drains.
	inj := ta.bucket.Inject(objectlog.Fault{Ops: objectlog.OpPut, Delay: time.Minute})
	defer inj.Remove()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The first produces fill the buffer and wait on the upload; the others
	// wait for space past the queue timeout.
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			_, err := produce(ctx, ta.producer, "t", rec("", strings.Repeat("y", 3000)))
			errs <- err
		}()
	}
	var exhausted *connect.Error
	for exhausted == nil {
		select {
		case err := <-errs:
			if connect.CodeOf(err) == connect.CodeResourceExhausted {
				errors.As(err, &exhausted)
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	if exhausted == nil {
		t.Fatal("no produce failed with ResourceExhausted while the buffer was full")
	}
	want := &stratav1.LimitExceeded{Name: "max-buffered-bytes", Limit: 8 << 10}
	if got := clientDetail[*stratav1.LimitExceeded](t, exhausted); !proto.Equal(got, want) {
		t.Errorf("LimitExceeded %v, want %v", got, want)
	}
	if info := clientDetail[*stratav1.ErrorInfo](t, exhausted); !info.GetRetriable() {
		t.Errorf("ErrorInfo %v, want retriable", info)
	}
}

// TestRequestOverMaxRequestBytes: a unary request whose body is declared
// over --max-request-bytes is INVALID_ARGUMENT, naming the limit in a
// LimitExceeded detail, whatever the protocol (Connect binary or JSON, gRPC)
// and HTTP version.
func TestRequestOverMaxRequestBytes(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.MaxRequestBytes = 64 << 10 })
	ta.createTopic(t, "t", 1, nil)
	big := &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: "t", Records: []*stratav1.Record{rec("", strings.Repeat("x", 100<<10))}}}}
	binary, err := proto.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	jsonBody, err := protojson.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	const path = "/strata.v1.ProducerService/Produce"
	for _, c := range []struct {
		name        string
		contentType string
		body        []byte
		size        int64 // the message's size
	}{
		{"connect binary", "application/proto", binary, int64(len(binary))},
		{"connect json", "application/json", jsonBody, int64(len(jsonBody))},
	} {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s http2=%v", c.name, h2), func(t *testing.T) {
				t.Parallel()
				tr := &http.Transport{Protocols: new(http.Protocols)}
				if h2 {
					tr.Protocols.SetUnencryptedHTTP2(true)
				} else {
					tr.Protocols.SetHTTP1(true)
				}
				t.Cleanup(tr.CloseIdleConnections)
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ta.url+path, bytes.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", c.contentType)
				res, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				var body struct {
					Code    string
					Message string
					Details []struct {
						Type  string
						Value string
					}
				}
				if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
					t.Fatal(err)
				}
				if res.StatusCode != http.StatusBadRequest || body.Code != "invalid_argument" {
					t.Fatalf("HTTP %d, code %q (%s), want 400 invalid_argument", res.StatusCode, body.Code, body.Message)
				}
				var limit *stratav1.LimitExceeded
				for _, d := range body.Details {
					if d.Type == "strata.v1.LimitExceeded" {
						raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(d.Value, "="))
						if err != nil {
							t.Fatal(err)
						}
						limit = &stratav1.LimitExceeded{}
						if err := proto.Unmarshal(raw, limit); err != nil {
							t.Fatal(err)
						}
					}
				}
				want := &stratav1.LimitExceeded{Name: "max-request-bytes", Limit: 64 << 10, Actual: c.size}
				if !proto.Equal(limit, want) {
					t.Errorf("LimitExceeded %v, want %v (message %q)", limit, want, body.Message)
				}
			})
		}
	}
}

// TestGRPCRequestOverMaxRequestBytes: the same over gRPC, whose body is the
// message in a 5-byte envelope.
func TestGRPCRequestOverMaxRequestBytes(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.MaxRequestBytes = 64 << 10 })
	ta.createTopic(t, "t", 1, nil)
	for _, size := range []int{64<<10 - 200, 100 << 10} {
		msg, err := proto.Marshal(&stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: "t", Records: []*stratav1.Record{rec("", strings.Repeat("x", size))}}}})
		if err != nil {
			t.Fatal(err)
		}
		body := append([]byte{0, byte(len(msg) >> 24), byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg))}, msg...)
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ta.url+"/strata.v1.ProducerService/Produce", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		res, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		tr.CloseIdleConnections()
		status := cmp.Or(res.Trailer.Get("Grpc-Status"), res.Header.Get("Grpc-Status"))
		message := cmp.Or(res.Trailer.Get("Grpc-Message"), res.Header.Get("Grpc-Message"))
		want := "0"
		if len(msg) > 64<<10 {
			want = "3" // INVALID_ARGUMENT
		}
		if status != want || (want == "3" && !strings.Contains(message, "max-request-bytes")) {
			t.Errorf("message of %d bytes: grpc-status %q (%q), want %s", len(msg), status, message, want)
		}
	}
}
