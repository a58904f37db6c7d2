package integration

// Bad requests, as a user makes them: each must fail with the Connect code
// the API documents and a message that says what is wrong and, where it
// can, how to fix it.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

func TestBadInput(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	const maxRequest = 65536
	a := d.startAgent(t, "agent", "--max-request-bytes", fmt.Sprint(maxRequest))
	c := newClients(a.url(), protoConnect)
	g := newClients(a.url(), protoGRPC)
	j := newClients(a.url(), protoConnectJSON)
	ctx := t.Context()

	topic := "bad-" + randomHex(3)
	if _, err := c.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{
		Name: topic, Partitions: 2, Configs: map[string]string{"max.message.bytes": "1000"},
	})); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	produce := func(cl clients, topic string, recs ...*stratav1.Record) error {
		_, err := cl.producer.Produce(ctx, connect.NewRequest(&stratav1.ProduceRequest{
			Topics: []*stratav1.TopicRecords{{Topic: topic, Records: recs}},
		}))
		return err
	}
	hwms := func() []int64 {
		resp, err := c.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: topic}))
		if err != nil {
			t.Fatalf("DescribeTopic: %v", err)
		}
		var out []int64
		for _, p := range resp.Msg.GetPartitions() {
			out = append(out, p.GetHighWatermark())
		}
		return out
	}

	t.Run("UnknownTopic", func(t *testing.T) {
		missing := "no-such-topic-" + randomHex(3)
		hint := "strata topic create " + missing
		for _, cl := range []clients{c, g, j} {
			err := produce(cl, missing, &stratav1.Record{Value: []byte("v")})
			wantConnectError(t, "Produce to an unknown topic", err, connect.CodeNotFound, missing, hint)
		}
		_, err := c.consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{Topic: missing}))
		wantConnectError(t, "Fetch of an unknown topic", err, connect.CodeNotFound, missing)
		_, err = c.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: missing}))
		wantConnectError(t, "DescribeTopic of an unknown topic", err, connect.CodeNotFound, missing)
		stream, err := c.consumer.Subscribe(ctx, connect.NewRequest(&stratav1.SubscribeRequest{Topic: missing}))
		if err == nil {
			for stream.Receive() {
				t.Errorf("Subscribe to an unknown topic: got a message")
			}
			err = stream.Err()
			stream.Close()
		}
		wantConnectError(t, "Subscribe to an unknown topic", err, connect.CodeNotFound, missing)

		// The CLI passes the hint on.
		r := runCLI(t, strings.NewReader("hello\n"), "produce", missing, "--addr", a.url())
		if r.err == nil || !strings.Contains(r.stderr, "strata topic create") {
			t.Errorf("strata produce to an unknown topic: %v, stderr %q; want a failure that says to run `strata topic create`", r.err, r.stderr)
		}
	})

	t.Run("OversizedRecord", func(t *testing.T) {
		before := hwms()
		err := produce(c, topic,
			&stratav1.Record{Value: []byte("small, and valid")},
			&stratav1.Record{Value: bytes.Repeat([]byte("x"), 2000)})
		wantConnectError(t, "Produce of a 2000-byte record to a topic with max.message.bytes 1000", err,
			connect.CodeInvalidArgument, `max\.message\.bytes`, `\b1000\b`)
		// The request is refused whole: the valid record was not written.
		if after := hwms(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("high watermarks %v after a refused request, %v before: part of it was written", after, before)
		}
	})

	t.Run("BadPartition", func(t *testing.T) {
		err := produce(c, topic, &stratav1.Record{Value: []byte("v"), Partition: ptr[int32](5)})
		wantConnectError(t, "Produce to partition 5 of a 2-partition topic", err, connect.CodeInvalidArgument, `\b5\b`, `\b2 partitions\b`)
		_, err = c.consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{Topic: topic, Partition: 5}))
		wantConnectError(t, "Fetch of partition 5 of a 2-partition topic", err, connect.CodeNotFound, `\b5\b`, `\b2 partitions\b`)
	})

	t.Run("OffsetOutOfRange", func(t *testing.T) {
		var recs []*stratav1.Record
		for i := range 7 {
			recs = append(recs, &stratav1.Record{Value: fmt.Appendf(nil, "r%d", i), Partition: ptr[int32](1)})
		}
		if err := produce(c, topic, recs...); err != nil {
			t.Fatalf("Produce: %v", err)
		}
		for _, offset := range []int64{1000, 8, -1} {
			_, err := c.consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{Topic: topic, Partition: 1, Offset: offset}))
			// Both bounds: log start 0 and high watermark 7.
			wantConnectError(t, fmt.Sprintf("Fetch at offset %d of a partition holding [0, 7)", offset), err,
				connect.CodeOutOfRange, `\b0\b`, `\b7\b`)
		}
		// The high watermark itself is in range: an empty answer.
		resp, err := c.consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{Topic: topic, Partition: 1, Offset: 7}))
		if err != nil || len(resp.Msg.GetRecords()) != 0 || resp.Msg.GetHighWatermark() != 7 {
			t.Errorf("Fetch at the high watermark: %v, %v; want no records and high watermark 7", resp, err)
		}
	})

	t.Run("InvalidTopicName", func(t *testing.T) {
		for _, name := range []string{"bad/name", "has space", "..", ".", "ünïcode", strings.Repeat("a", 250)} {
			_, err := c.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: name, Partitions: 1}))
			shown := name
			if len(shown) > 20 {
				shown = shown[:20]
			}
			wantConnectError(t, fmt.Sprintf("CreateTopic %q", shown), err, connect.CodeInvalidArgument, `(?i)name`)
		}
		_, err := c.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: "", Partitions: 1}))
		wantConnectError(t, "CreateTopic with no name", err, connect.CodeInvalidArgument, `(?i)name`)
		_, err = c.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: topic, Partitions: 1}))
		wantConnectError(t, "CreateTopic of an existing name", err, connect.CodeAlreadyExists, topic)
		_, err = c.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{
			Name: "cfg-" + randomHex(3), Configs: map[string]string{"retention.ms": "soon"},
		}))
		wantConnectError(t, "CreateTopic with retention.ms=soon", err, connect.CodeInvalidArgument, `retention\.ms`)
		_, err = c.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{
			Name: "cfg-" + randomHex(3), Configs: map[string]string{"no.such.key": "1"},
		}))
		wantConnectError(t, "CreateTopic with an unknown config key", err, connect.CodeInvalidArgument, `no\.such\.key`)
	})

	t.Run("MalformedJSON", func(t *testing.T) {
		for _, body := range []string{`{"name":`, `[]`, `{"name": 42}`} {
			resp, err := http.Post(a.url()+"/strata.v1.AdminService/CreateTopic", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var ce connectErrorJSON
			jerr := json.Unmarshal(raw, &ce)
			if resp.StatusCode != http.StatusBadRequest || jerr != nil || ce.Code != "invalid_argument" || ce.Message == "" {
				t.Errorf("CreateTopic with body %q: HTTP %d %s; want 400 with code invalid_argument and a message", body, resp.StatusCode, raw)
			}
		}
	})

	t.Run("RequestOverLimit", func(t *testing.T) {
		big, err := c.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: "big-" + randomHex(3)}))
		if err != nil {
			t.Fatalf("CreateTopic: %v", err)
		}
		bigTopic := big.Msg.GetTopic().GetName()
		records := func(n int) []*stratav1.Record {
			var recs []*stratav1.Record
			for range n {
				recs = append(recs, &stratav1.Record{Value: bytes.Repeat([]byte("y"), 8<<10)})
			}
			return recs
		}
		// 7 records of 8 KiB fit in 64 KiB; 10 do not.
		if err := produce(c, bigTopic, records(7)...); err != nil {
			t.Errorf("Produce of 56 KiB with a 64 KiB request limit: %v", err)
		}
		for _, cl := range []struct {
			name string
			c    clients
		}{{"connect", c}, {"grpc", g}} {
			// Refused before it is read (its Content-Length tells), naming the
			// limit in a LimitExceeded detail.
			err := produce(cl.c, bigTopic, records(10)...)
			if ce := wantConnectError(t, cl.name+": Produce of 80 KiB with a 64 KiB request limit", err,
				connect.CodeInvalidArgument, "max-request-bytes "+fmt.Sprint(maxRequest)); ce != nil {
				var limit *stratav1.LimitExceeded
				for _, d := range ce.Details() {
					if v, err := d.Value(); err == nil {
						if l, ok := v.(*stratav1.LimitExceeded); ok {
							limit = l
						}
					}
				}
				if limit.GetName() != "max-request-bytes" || limit.GetLimit() != maxRequest || limit.GetActual() <= maxRequest {
					t.Errorf("%s: LimitExceeded %v, want max-request-bytes %d with what the request had", cl.name, limit, maxRequest)
				}
			}
		}
		// Over JSON too (a bigger body: base64).
		var recs []string
		for range 8 {
			recs = append(recs, fmt.Sprintf(`{"value":%q}`, strings.Repeat("QUFB", 3<<10)))
		}
		body := fmt.Sprintf(`{"topics":[{"topic":%q,"records":[%s]}]}`, bigTopic, strings.Join(recs, ","))
		resp, err := http.Post(a.url()+"/strata.v1.ProducerService/Produce", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var ce connectErrorJSON
		if json.Unmarshal(raw, &ce) != nil || ce.Code != "invalid_argument" || !strings.Contains(ce.Message, "max-request-bytes "+fmt.Sprint(maxRequest)) {
			t.Errorf("JSON Produce of %d bytes with a 64 KiB request limit: HTTP %d %s; want code invalid_argument naming the limit", len(body), resp.StatusCode, raw)
		}
	})

	a.stop()
}
