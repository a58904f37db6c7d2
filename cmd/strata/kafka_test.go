package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	strataclient "github.com/stratabroker/strata/client"
	"github.com/stratabroker/strata/internal/testenv"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// The Kafka listener of `strata dev`, driven by real Kafka clients (kcat,
// i.e. librdkafka, and franz-go) over the real agent core, and read back
// over the Connect API.

func runKcat(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.KcatBin(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func TestKafkaDevKcatMetadataProduceConsume(t *testing.T) {
	t.Parallel()
	_, addr, kafkaAddr := startDevKafka(t, t.TempDir())
	ok(t, "", "topic", "create", "kc", "--partitions", "3", "--addr", addr)

	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string `json:"topic"`
			Partitions []struct {
				Partition int32 `json:"partition"`
				Leader    int32 `json:"leader"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	out := runKcat(t, "", "-b", kafkaAddr, "-L", "-J")
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("kcat -L -J output %q: %v", out, err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].Name != kafkaAddr {
		t.Fatalf("kcat sees brokers %+v, want the dev broker at %s alone", md.Brokers, kafkaAddr)
	}
	if len(md.Topics) != 1 || md.Topics[0].Topic != "kc" || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("kcat sees topics %+v, want kc with 3 partitions", md.Topics)
	}
	for _, p := range md.Topics[0].Partitions {
		if p.Leader != md.Brokers[0].ID {
			t.Fatalf("partition %d has leader %d, want the dev broker %d", p.Partition, p.Leader, md.Brokers[0].ID)
		}
	}

	// Each codec, into its own partition run: keyed records with headers,
	// read back whole by kcat, from the beginning and from an offset.
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	var want []string
	for _, codec := range codecs {
		var in strings.Builder
		for i := range 3 {
			fmt.Fprintf(&in, "%s-k%d:%s-v%d\n", codec, i, codec, i)
			want = append(want, fmt.Sprintf("%s-k%d|%s-v%d|codec=%s,n=1", codec, i, codec, i, codec))
		}
		runKcat(t, in.String(), "-b", kafkaAddr, "-P", "-t", "kc", "-p", "1", "-z", codec, "-K", ":", "-H", "codec="+codec, "-H", "n=1")
	}
	got := strings.Split(strings.TrimSpace(runKcat(t, "", "-b", kafkaAddr, "-C", "-t", "kc", "-p", "1", "-o", "beginning", "-e", "-f", `%k|%s|%h|%o\n`)), "\n")
	if len(got) != len(want) {
		t.Fatalf("kcat consumed %d records, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, line := range got {
		if wantLine := fmt.Sprintf("%s|%d", want[i], i); line != wantLine {
			t.Errorf("record %d: got %q, want %q", i, line, wantLine)
		}
	}
	fromOffset := strings.Split(strings.TrimSpace(runKcat(t, "", "-b", kafkaAddr, "-C", "-t", "kc", "-p", "1", "-o", "7", "-e", "-f", `%o:%s\n`)), "\n")
	if len(fromOffset) != len(want)-7 || fromOffset[0] != "7:snappy-v1" {
		t.Fatalf("kcat -o 7 read %q, want %d records from 7:snappy-v1", fromOffset, len(want)-7)
	}
	// The same records over the Connect API, at the same offsets.
	consumer := stratav1connect.NewConsumerServiceClient(http.DefaultClient, addr)
	resp, err := consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "kc", Partition: 1, Offset: 0}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Msg.GetRecords()); n != len(want) {
		t.Fatalf("Connect Fetch read %d records, want %d", n, len(want))
	}
	for i, r := range resp.Msg.GetRecords() {
		if line := fmt.Sprintf("%s|%s|%s=%s,%s=%s", r.Key, r.Value, r.Headers[0].Key, r.Headers[0].Value, r.Headers[1].Key, r.Headers[1].Value); line != want[i] || r.Offset != int64(i) {
			t.Errorf("Connect record at %d: %q, want %q at %d", r.Offset, line, want[i], i)
		}
	}
}

// kafkaRecord is what both protocols must agree on.
type kafkaRecord struct {
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []string // key=value, "key" alone for a null value
	Timestamp int64    // ms
}

func (r kafkaRecord) String() string {
	return fmt.Sprintf("@%d key=%s value=%s headers=%v ts=%d", r.Offset, nullable(r.Key), nullable(r.Value), r.Headers, r.Timestamp)
}

func nullable(b []byte) string {
	if b == nil {
		return "<null>"
	}
	return fmt.Sprintf("%q", b)
}

func sameRecords(t *testing.T, what string, got, want []kafkaRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d\ngot  %v\nwant %v", what, len(got), len(want), got, want)
	}
	for i := range got {
		if got[i].String() != want[i].String() {
			t.Errorf("%s: record %d\ngot  %v\nwant %v", what, i, got[i], want[i])
		}
	}
}

func kgoClient(t *testing.T, kafkaAddr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kafkaAddr), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeKafka reads n records of one partition from offset 0 with franz-go.
func consumeKafka(t *testing.T, kafkaAddr, topic string, partition int32, n int) []kafkaRecord {
	t.Helper()
	cl := kgoClient(t, kafkaAddr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(0)}}))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out []kafkaRecord
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("kgo fetch after %d records: %v", len(out), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			kr := kafkaRecord{Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp.UnixMilli()}
			for _, h := range r.Headers {
				kr.Headers = append(kr.Headers, header(h.Key, h.Value))
			}
			out = append(out, kr)
		})
	}
	return out
}

func header(k string, v []byte) string {
	if v == nil {
		return k
	}
	return k + "=" + string(v)
}

// fetchConnect reads n records of one partition from offset 0 over the
// Connect API.
func fetchConnect(t *testing.T, addr, topic string, partition int32, n int) []kafkaRecord {
	t.Helper()
	consumer := stratav1connect.NewConsumerServiceClient(http.DefaultClient, addr)
	var out []kafkaRecord
	for len(out) < n {
		resp, err := consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: topic, Partition: partition, Offset: int64(len(out))}))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Msg.GetRecords()) == 0 {
			t.Fatalf("Connect Fetch found %d records, want %d", len(out), n)
		}
		for _, r := range resp.Msg.GetRecords() {
			kr := kafkaRecord{Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp.AsTime().UnixMilli()}
			for _, h := range r.Headers {
				kr.Headers = append(kr.Headers, header(h.Key, h.Value))
			}
			out = append(out, kr)
		}
	}
	return out
}

// What is produced over Kafka reads the same over Connect (offsets, keys,
// values, headers, timestamps; null and empty kept apart), and the reverse.
func TestKafkaConnectCrossProtocol(t *testing.T) {
	t.Parallel()
	_, addr, kafkaAddr := startDevKafka(t, t.TempDir())
	ok(t, "", "topic", "create", "xp", "--partitions", "2", "--addr", addr)
	base := time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.UTC)

	want := []kafkaRecord{
		{Key: []byte("k0"), Value: []byte("v0"), Headers: []string{"h=1", "h=2"}},
		{Key: nil, Value: []byte("null key")},
		{Key: []byte{}, Value: []byte("empty key")},
		{Key: []byte("null value"), Value: nil, Headers: []string{"nullhdr", "empty="}},
		{Key: []byte("empty value"), Value: []byte{}},
		{Key: []byte("old"), Value: []byte("before 1970"), Timestamp: -1500},
	}
	for i := range want {
		want[i].Offset = int64(i)
		if want[i].Timestamp == 0 {
			want[i].Timestamp = base.Add(time.Duration(i) * time.Second).UnixMilli()
		}
	}

	// Kafka -> Connect, partition 0.
	pr := kgoClient(t, kafkaAddr)
	for _, w := range want {
		r := &kgo.Record{Topic: "xp", Partition: 0, Key: w.Key, Value: w.Value, Timestamp: time.UnixMilli(w.Timestamp)}
		for _, h := range w.Headers {
			k, v, found := strings.Cut(h, "=")
			hv := []byte(v)
			if !found {
				hv = nil
			}
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: hv})
		}
		if err := pr.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatalf("kgo produce %v: %v", w, err)
		}
	}
	sameRecords(t, "Kafka produce, Connect fetch", fetchConnect(t, addr, "xp", 0, len(want)), want)
	sameRecords(t, "Kafka produce, Kafka fetch", consumeKafka(t, kafkaAddr, "xp", 0, len(want)), want)

	// Connect -> Kafka, partition 1.
	producer := stratav1connect.NewProducerServiceClient(http.DefaultClient, addr)
	var recs []*stratav1.Record
	for _, w := range want {
		r := &stratav1.Record{Key: w.Key, Value: w.Value, Partition: proto.Int32(1), Timestamp: timestamppb.New(time.UnixMilli(w.Timestamp))}
		for _, h := range w.Headers {
			k, v, found := strings.Cut(h, "=")
			hv := []byte(v)
			if !found {
				hv = nil
			}
			r.Headers = append(r.Headers, &stratav1.Header{Key: k, Value: hv})
		}
		recs = append(recs, r)
	}
	if _, err := producer.Produce(t.Context(), connect.NewRequest(&stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: "xp", Records: recs}}})); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "Connect produce, Kafka fetch", consumeKafka(t, kafkaAddr, "xp", 1, len(want)), want)
}

// franz-go's idempotent producer (its default) over many partitions: every
// record is there once, at dense offsets, in the order produced per partition.
func TestKafkaIdempotentProduceConsume(t *testing.T) {
	t.Parallel()
	_, addr, kafkaAddr := startDevKafka(t, t.TempDir())
	ok(t, "", "topic", "create", "idem", "--partitions", "4", "--addr", addr)
	cl := kgoClient(t, kafkaAddr, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerLinger(5*time.Millisecond))
	const n = 2000
	results := make(chan error, n)
	for i := range n {
		cl.Produce(t.Context(), &kgo.Record{Topic: "idem", Key: fmt.Appendf(nil, "k%d", i%37), Value: fmt.Appendf(nil, "%d", i)},
			func(_ *kgo.Record, err error) { results <- err })
	}
	for range n {
		if err := <-results; err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	seen := map[string]bool{}
	for p := range int32(4) {
		consumer := stratav1connect.NewConsumerServiceClient(http.DefaultClient, addr)
		resp, err := consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "idem", Partition: p, Offset: 0}))
		if err != nil {
			t.Fatal(err)
		}
		hw := resp.Msg.GetHighWatermark()
		recs := consumeKafka(t, kafkaAddr, "idem", p, int(hw))
		last := map[string]int{}
		for i, r := range recs {
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: record %d at offset %d: offsets not dense", p, i, r.Offset)
			}
			if seen[string(r.Value)] {
				t.Fatalf("record %s appears twice", r.Value)
			}
			seen[string(r.Value)] = true
			var v int
			fmt.Sscan(string(r.Value), &v)
			if prev, ok := last[string(r.Key)]; ok && v < prev {
				t.Fatalf("key %s: %d after %d: order not kept", r.Key, v, prev)
			}
			last[string(r.Key)] = v
		}
	}
	if len(seen) != n {
		missing := []int{}
		for i := range n {
			if !seen[fmt.Sprint(i)] {
				missing = append(missing, i)
			}
		}
		slices.Sort(missing)
		t.Fatalf("%d records of %d read back; missing %v", len(seen), n, missing[:min(len(missing), 10)])
	}
}

// Topic administration over Kafka (kadm) goes through the same index as the
// Connect API: what one creates, alters or deletes, the other sees.
func TestKafkaAdminTopics(t *testing.T) {
	t.Parallel()
	_, addr, kafkaAddr := startDevKafka(t, t.TempDir())
	ctx := t.Context()
	adm := kadm.NewClient(kgoClient(t, kafkaAddr))

	if _, err := adm.CreateTopic(ctx, 2, -1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, "adm"); err != nil {
		t.Fatal(err)
	}
	if r, err := adm.CreateTopic(ctx, 1, -1, nil, "adm"); err == nil && r.Err == nil {
		t.Fatal("creating adm twice succeeded")
	} else if !errors.Is(cmp.Or(err, r.Err), kerr.TopicAlreadyExists) {
		t.Fatalf("creating adm twice: %v, want TOPIC_ALREADY_EXISTS", cmp.Or(err, r.Err))
	}
	if r, _ := adm.CreateTopic(ctx, 1, -1, nil, "bad/name"); !errors.Is(r.Err, kerr.InvalidTopicException) {
		t.Fatalf("a bad name: %v, want INVALID_TOPIC_EXCEPTION", r.Err)
	}
	if r, _ := adm.CreateTopic(ctx, 1, -1, map[string]*string{"retention.ms": kadm.StringPtr("soon")}, "badcfg"); !errors.Is(r.Err, kerr.InvalidConfig) {
		t.Fatalf("a bad config: %v, want INVALID_CONFIG", r.Err)
	}
	desc := ok(t, "", "topic", "describe", "adm", "--addr", addr)
	if !strings.Contains(desc, "3600000") {
		t.Fatalf("strata topic describe adm lacks retention.ms 3600000:\n%s", desc)
	}

	if _, err := adm.UpdatePartitions(ctx, 5, "adm"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr("5000")}}, "adm"); err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("adm", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
	}
	if got["max.message.bytes"] != "5000" || got["retention.ms"] != "3600000" || got["cleanup.policy"] != "delete" {
		t.Fatalf("DescribeConfigs: %v", got)
	}
	md, err := adm.Metadata(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md.Topics["adm"].Partitions); n != 5 {
		t.Fatalf("adm has %d partitions over Kafka, want 5", n)
	}
	// A batch over max.message.bytes is refused with the Kafka code.
	err = kgoClient(t, kafkaAddr, kgo.ProducerBatchCompression(kgo.NoCompression())).
		ProduceSync(ctx, &kgo.Record{Topic: "adm", Value: bytes.Repeat([]byte("x"), 6000)}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("a 6000-byte record into max.message.bytes 5000: %v, want MESSAGE_TOO_LARGE", err)
	}

	// DeleteRecords moves the log start offset, for both protocols.
	pr := kgoClient(t, kafkaAddr)
	for i := range 3 {
		if err := pr.ProduceSync(ctx, &kgo.Record{Topic: "adm", Partition: 0, Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var before kadm.Offsets
	before.Add(kadm.Offset{Topic: "adm", Partition: 0, At: 2})
	drs, err := adm.DeleteRecords(ctx, before)
	if err != nil {
		t.Fatal(err)
	}
	if dr, ok := drs.Lookup("adm", 0); !ok || dr.Err != nil || dr.LowWatermark != 2 {
		t.Fatalf("DeleteRecords before 2: %+v, want low watermark 2", dr)
	}
	starts, err := adm.ListStartOffsets(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("adm", 0); o.Offset != 2 {
		t.Fatalf("log start after DeleteRecords: %+v, want 2", o)
	}
	consumer := stratav1connect.NewConsumerServiceClient(http.DefaultClient, addr)
	if _, err := consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{Topic: "adm", Partition: 0, Offset: 0})); connect.CodeOf(err) != connect.CodeOutOfRange {
		t.Fatalf("Connect Fetch below the new log start: %v, want OutOfRange", err)
	}
	var past kadm.Offsets
	past.Add(kadm.Offset{Topic: "adm", Partition: 0, At: 99})
	if drs, err := adm.DeleteRecords(ctx, past); err != nil {
		t.Fatal(err)
	} else if dr, _ := drs.Lookup("adm", 0); !errors.Is(dr.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("DeleteRecords past the high watermark: %v, want OFFSET_OUT_OF_RANGE", dr.Err)
	}

	if _, err := adm.DeleteTopics(ctx, "adm"); err != nil {
		t.Fatal(err)
	}
	fails(t, "", []string{"topic", "describe", "adm", "--addr", addr}, "adm")
}

// --kafka-advertise defaults to the bound listener; one on every interface
// is advertised under the API's advertised host.
func TestKafkaAdvertiseDefault(t *testing.T) {
	t.Parallel()
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	for _, c := range []struct {
		bound             net.Addr
		advertise, listen string
		want              string
	}{
		{tcp("127.0.0.1", 9092), "", "127.0.0.1:7070", "127.0.0.1:9092"},
		{tcp("0.0.0.0", 9092), "broker-1.example:7070", "0.0.0.0:7070", "broker-1.example:9092"},
		{tcp("::", 19092), "", "10.1.2.3:7070", "10.1.2.3:19092"},
	} {
		if got := kafkaAdvertise(c.bound, c.advertise, c.listen); got != c.want {
			t.Errorf("kafkaAdvertise(%v, %q, %q) = %q, want %q", c.bound, c.advertise, c.listen, got, c.want)
		}
	}
	host, _ := os.Hostname()
	if got := kafkaAdvertise(tcp("0.0.0.0", 9092), "", "0.0.0.0:7070"); got != net.JoinHostPort(host, "9092") {
		t.Errorf("with no host to take, advertised %q, want the host name %q", got, host)
	}
}

// A Kafka read_committed consumer (franz-go) never sees the records of a
// transaction aborted through the Connect API, nor those of one still open:
// the listener cuts its answers at the last stable offset and lists the
// aborted transactions, as Kafka's brokers do (KIP-98); read_uncommitted
// sees everything.
func TestKafkaReadCommittedSkipsAbortedTransactions(t *testing.T) {
	t.Parallel()
	_, addr, kafkaAddr := startDevKafka(t, t.TempDir())
	ok(t, "", "topic", "create", "txk", "--partitions", "1", "--addr", addr)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	p, err := strataclient.NewProducer(&http.Client{Transport: tr}, addr, strataclient.TransactionalID("txk-app", 0), strataclient.Linger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	ctx := t.Context()
	if err := p.InitTransactions(ctx); err != nil {
		t.Fatal(err)
	}
	send := func(prefix string, n int) {
		t.Helper()
		recs := make([]*strataclient.Record, n)
		for i := range recs {
			recs[i] = &strataclient.Record{Topic: "txk", Partition: 0, Value: fmt.Appendf(nil, "%s%d", prefix, i)}
		}
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.ProduceSync(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	send("committed-a", 3)
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	send("aborted", 4)
	if err := p.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	send("committed-b", 2)
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	send("open", 2) // never ended: past the last stable offset

	cl := kgoClient(t, kafkaAddr, kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"txk": {0: kgo.NewOffset().At(0)}}))
	var got []string
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(got) < 5 {
		fs := cl.PollFetches(pctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("kgo read_committed fetch after %v: %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	// Nothing more comes while the last transaction stays open.
	short, cancelShort := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancelShort()
	cl.PollFetches(short).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	want := []string{"committed-a0", "committed-a1", "committed-a2", "committed-b0", "committed-b1"}
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed over Kafka read %q, want %q", got, want)
	}
	all := consumeKafka(t, kafkaAddr, "txk", 0, 11) // read_uncommitted: every record, markers aside
	if n := len(all); n < 11 {
		t.Fatalf("read_uncommitted read %d records, want 11", n)
	}
}
