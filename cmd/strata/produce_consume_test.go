package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kafkaMurmur2 is Kafka's default partitioner hash, written again here so
// the test checks the agent's placement against Kafka's definition rather
// than against the agent's own code.
func kafkaMurmur2(data []byte) int32 {
	const seed, m uint32 = 0x9747b28c, 0x5bd1e995
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> 24
		k *= m
		h = h*m ^ k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

func kafkaPartition(key string, partitions int32) int32 {
	return (kafkaMurmur2([]byte(key)) & 0x7fffffff) % partitions
}

func TestKafkaMurmur2Vectors(t *testing.T) {
	t.Parallel()
	// Kafka's UtilsTest.testMurmur2.
	for in, want := range map[string]int32{"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536, "abc": 479470107} {
		if got := kafkaMurmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

// ackedOffset is one line of produce --print-offsets.
type ackedOffset struct {
	Line      int   `json:"line"`
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

func parseOffsets(t *testing.T, out string) []ackedOffset {
	t.Helper()
	var acks []ackedOffset
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var a ackedOffset
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("--print-offsets line %q: %v", l, err)
		}
		acks = append(acks, a)
	}
	return acks
}

// consumedRecord is one line of consume --output json.
type consumedRecord struct {
	Topic       string  `json:"topic"`
	Partition   int32   `json:"partition"`
	Offset      int64   `json:"offset"`
	Timestamp   string  `json:"timestamp"`
	Key         *string `json:"key"`
	KeyBase64   *string `json:"key_base64"`
	Value       *string `json:"value"`
	ValueBase64 *string `json:"value_base64"`
	Headers     []struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	} `json:"headers"`
}

func parseRecords(t *testing.T, out string) []consumedRecord {
	t.Helper()
	var recs []consumedRecord
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var r consumedRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("consume json line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestProduceConsumeKeysAndHeaders(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "events", "--partitions", "4", "--addr", addr)

	var input strings.Builder
	var keys, values []string
	for i := range 60 {
		k := fmt.Sprintf("user-%d", i%7)
		v := fmt.Sprintf("event %d: a=b", i) // the separator ": " appears once more in the value
		keys, values = append(keys, k), append(values, v)
		fmt.Fprintf(&input, "%s: %s\n", k, v)
	}
	// Small batches, so several requests are in flight on the stream.
	r := strata(t, input.String(), "produce", "events", "--key-separator", ": ", "--header", "source=test", "--header", "trace=x=1",
		"--batch-records", "7", "--print-offsets", "--addr", addr)
	if r.code != 0 {
		t.Fatalf("produce: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "produced 60 records to events") {
		t.Errorf("produce summary %q", r.stderr)
	}
	acks := parseOffsets(t, r.stdout)
	if len(acks) != 60 {
		t.Fatalf("--print-offsets gave %d lines, want 60", len(acks))
	}
	type position struct {
		partition int32
		offset    int64
	}
	lineAt := map[position]int{}
	next := map[int32]int64{}
	for i, a := range acks {
		if a.Line != i+1 {
			t.Fatalf("offset line %d is for input line %d", i+1, a.Line)
		}
		if want := kafkaPartition(keys[i], 4); a.Partition != want {
			t.Errorf("key %s went to partition %d; Kafka's partitioner says %d", keys[i], a.Partition, want)
		}
		// Offsets are dense and in input order within a partition.
		if a.Offset != next[a.Partition] {
			t.Errorf("line %d: partition %d offset %d, want %d", a.Line, a.Partition, a.Offset, next[a.Partition])
		}
		next[a.Partition] = a.Offset + 1
		lineAt[position{a.Partition, a.Offset}] = a.Line
	}
	if len(next) < 2 {
		t.Errorf("7 keys landed in %d partition(s) of 4", len(next))
	}

	recs := parseRecords(t, ok(t, "", "consume", "events", "--from", "earliest", "--output", "json", "--addr", addr))
	if len(recs) != 60 {
		t.Fatalf("consume gave %d records, want 60", len(recs))
	}
	partitionOfKey := map[string]int32{}
	for _, rec := range recs {
		line, found := lineAt[position{rec.Partition, rec.Offset}]
		if !found {
			t.Fatalf("consumed partition %d offset %d, which produce never acked", rec.Partition, rec.Offset)
		}
		i := line - 1
		if rec.Topic != "events" || rec.Key == nil || *rec.Key != keys[i] || rec.Value == nil || *rec.Value != values[i] {
			t.Errorf("record at %d/%d: %+v, want key %q value %q", rec.Partition, rec.Offset, rec, keys[i], values[i])
		}
		if p, seen := partitionOfKey[*rec.Key]; seen && p != rec.Partition {
			t.Errorf("key %s in partitions %d and %d", *rec.Key, p, rec.Partition)
		}
		partitionOfKey[*rec.Key] = rec.Partition
		if len(rec.Headers) != 2 || rec.Headers[0].Key != "source" || *rec.Headers[0].Value != "test" || rec.Headers[1].Key != "trace" || *rec.Headers[1].Value != "x=1" {
			t.Errorf("headers %+v", rec.Headers)
		}
		if ts, err := time.Parse(time.RFC3339Nano, rec.Timestamp); err != nil || time.Since(ts) > time.Minute || time.Since(ts) < 0 {
			t.Errorf("timestamp %q: %v", rec.Timestamp, err)
		}
	}

	// plain output with --print-key, one partition.
	p := kafkaPartition("user-3", 4)
	plain := ok(t, "", "consume", "events", "--partition", fmt.Sprint(p), "--print-key", "--addr", addr)
	if !strings.Contains(plain, "user-3\tevent 3: a=b\n") {
		t.Errorf("plain --print-key output lacks user-3's record:\n%s", plain)
	}
	for _, l := range strings.Split(strings.TrimSpace(plain), "\n") {
		k, _, _ := strings.Cut(l, "\t")
		if kafkaPartition(k, 4) != p {
			t.Errorf("--partition %d printed a record keyed %s", p, k)
		}
	}
}

func TestProduceUnkeyedFileAndBinary(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "raw", "--partitions", "2", "--addr", addr)
	file := filepath.Join(t.TempDir(), "in.txt")
	// An empty line, CRLF, a value with HTML characters and one that is
	// not UTF-8.
	if err := os.WriteFile(file, []byte("first\n\nthird\r\n<b>&</b>\n\xff\xfe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := strata(t, "", "produce", "raw", "--file", file, "--partition", "1", "--print-offsets", "--addr", addr)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if acks := parseOffsets(t, r.stdout); len(acks) != 5 || acks[4].Partition != 1 || acks[4].Offset != 4 {
		t.Fatalf("acks %+v", acks)
	}
	out := ok(t, "", "consume", "raw", "--output", "json", "--addr", addr)
	recs := parseRecords(t, out)
	if len(recs) != 5 {
		t.Fatalf("got %d records: %s", len(recs), out)
	}
	want := []string{"first", "", "third", "<b>&</b>"}
	for i, w := range want {
		if recs[i].Key != nil || recs[i].KeyBase64 != nil || recs[i].Value == nil || *recs[i].Value != w {
			t.Errorf("record %d: %+v, want null key and value %q", i, recs[i], w)
		}
	}
	if !strings.Contains(out, `"key":null`) || !strings.Contains(out, `"value":"<b>&</b>"`) || !strings.Contains(out, `"headers":[]`) {
		t.Errorf("json output not as documented:\n%s", out)
	}
	if b := recs[4]; b.Value != nil || b.ValueBase64 == nil || *b.ValueBase64 != base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}) {
		t.Errorf("binary value: %+v", b)
	}
	// Plain output writes the bytes as they are.
	if plain := ok(t, "", "consume", "raw", "--addr", addr); plain != "first\n\nthird\n<b>&</b>\n\xff\xfe\n" {
		t.Errorf("plain output %q", plain)
	}
}

func TestConsumeLimitAndOffset(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "numbers", "--partitions", "2", "--addr", addr)
	ok(t, "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n", "produce", "numbers", "--partition", "0", "--addr", addr)
	ok(t, "a\nb\nc\n", "produce", "numbers", "--partition", "1", "--addr", addr)

	if out := ok(t, "", "consume", "numbers", "--partition", "0", "-n", "3", "--addr", addr); out != "0\n1\n2\n" {
		t.Errorf("-n 3 printed %q", out)
	}
	if out := ok(t, "", "consume", "numbers", "--partition", "0", "--from", "7", "--addr", addr); out != "7\n8\n9\n" {
		t.Errorf("--from 7 printed %q", out)
	}
	// An offset applies to every partition, clamped to its bounds.
	recs := parseRecords(t, ok(t, "", "consume", "numbers", "--from", "2", "--output", "json", "--addr", addr))
	got := map[int32][]int64{}
	for _, r := range recs {
		got[r.Partition] = append(got[r.Partition], r.Offset)
	}
	if fmt.Sprint(got[0]) != "[2 3 4 5 6 7 8 9]" || fmt.Sprint(got[1]) != "[2]" {
		t.Errorf("--from 2 read %v", got)
	}
	// Past the end, and from latest: nothing, at once.
	for _, from := range []string{"100", "latest"} {
		start := time.Now()
		if out := ok(t, "", "consume", "numbers", "--from", from, "--addr", addr); out != "" {
			t.Errorf("--from %s printed %q", from, out)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("--from %s took %v to find nothing", from, d)
		}
	}
	// Without --follow, records produced after the start are left out: the
	// run is a snapshot of the watermarks it began with.
	if out := ok(t, "", "consume", "numbers", "--partition", "1", "--addr", addr); out != "a\nb\nc\n" {
		t.Errorf("partition 1 printed %q", out)
	}
}

func TestConsumeFromTime(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "clock", "--partitions", "3", "--addr", addr)
	// Old records in every partition.
	ok(t, "k1:old1\nk2:old2\nk3:old3\nk4:old4\n", "produce", "clock", "--key-separator", ":", "--addr", addr)
	// The agent stamps records with its clock in milliseconds: leave a
	// gap on both sides of the cut.
	time.Sleep(5 * time.Millisecond)
	cut := time.Now()
	time.Sleep(5 * time.Millisecond)
	// New records in partition 2 only: partitions 0 and 1 have nothing at
	// or after the cut, and the command must not wait for them.
	ok(t, "new1\nnew2\n", "produce", "clock", "--partition", "2", "--addr", addr)

	start := time.Now()
	if out := ok(t, "", "consume", "clock", "--from", cut.Format(time.RFC3339Nano), "--addr", addr); out != "new1\nnew2\n" {
		t.Errorf("--from %s printed %q", cut.Format(time.RFC3339Nano), out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("--from time took %v", d)
	}
	old := cut.Add(-time.Hour).Format(time.RFC3339)
	if n := len(parseRecords(t, ok(t, "", "consume", "clock", "--from", old, "--output", "json", "--addr", addr))); n != 6 {
		t.Errorf("--from an hour ago read %d records, want 6", n)
	}
	future := cut.Add(time.Hour).Format(time.RFC3339)
	if out := ok(t, "", "consume", "clock", "--from", future, "--addr", addr); out != "" {
		t.Errorf("--from the future printed %q", out)
	}
}

func TestConsumeFollow(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "live", "--partitions", "2", "--addr", addr)
	ok(t, "before\n", "produce", "live", "--addr", addr)

	// From latest: only what is produced once the stream is open.
	subscribed := make(chan struct{})
	stdout := &lockedBuffer{}
	c := &cli{stdin: strings.NewReader(""), stdout: stdout, stderr: &lockedBuffer{}, subscribed: func() { close(subscribed) }}
	done := make(chan int, 1)
	go func() {
		done <- c.run(t.Context(), []string{"consume", "live", "--follow", "-n", "3", "--addr", addr})
	}()
	select {
	case <-subscribed:
	case code := <-done:
		t.Fatalf("consume --follow ended early: exit %d: %s", code, c.stderr)
	}
	ok(t, "after1\n", "produce", "live", "--addr", addr)
	waitFor(t, "the first new record", func() bool { return strings.Contains(stdout.String(), "after1\n") })
	ok(t, "after2\nafter3\nafter4\n", "produce", "live", "--partition", "1", "--addr", addr)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("consume --follow -n 3: exit %d: %s", code, c.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consume --follow -n 3 did not stop after 3 records")
	}
	if got := stdout.String(); got != "after1\nafter2\nafter3\n" {
		t.Errorf("consume --follow printed %q", got)
	}

	// From earliest with --follow: the history, then new records.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout2 := &lockedBuffer{}
	c2 := &cli{stdin: strings.NewReader(""), stdout: stdout2, stderr: &lockedBuffer{}}
	done2 := make(chan int, 1)
	go func() {
		done2 <- c2.run(ctx, []string{"consume", "live", "--follow", "--from", "earliest", "--partition", "1", "--addr", addr})
	}()
	waitFor(t, "the history of partition 1", func() bool { return strings.Contains(stdout2.String(), "after4\n") })
	ok(t, "later\n", "produce", "live", "--partition", "1", "--addr", addr)
	waitFor(t, "a record produced while following", func() bool { return strings.HasSuffix(stdout2.String(), "after4\nlater\n") })
	cancel()
	if code := <-done2; code != 0 {
		t.Errorf("consume --follow after cancel: exit %d: %s", code, c2.stderr)
	}
}

func TestProtocols(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "wire", "--addr", addr, "--protocol", "grpc")
	for _, proto := range []string{"connect", "grpc", "grpcweb"} {
		r := strata(t, proto+"-1\n"+proto+"-2\n", "produce", "wire", "--protocol", proto, "--print-offsets", "--addr", "http://"+addr)
		if r.code != 0 {
			t.Fatalf("produce over %s: %s", proto, r.stderr)
		}
		if n := len(parseOffsets(t, r.stdout)); n != 2 {
			t.Errorf("produce over %s acked %d records", proto, n)
		}
	}
	for _, proto := range []string{"connect", "grpc", "grpcweb"} {
		if out := ok(t, "", "consume", "wire", "--protocol", proto, "--addr", addr); out != "connect-1\nconnect-2\ngrpc-1\ngrpc-2\ngrpcweb-1\ngrpcweb-2\n" {
			t.Errorf("consume over %s printed %q", proto, out)
		}
		if out := ok(t, "", "topic", "list", "--protocol", proto, "--addr", addr); !strings.Contains(out, "wire") {
			t.Errorf("topic list over %s printed %q", proto, out)
		}
	}
}

// TestProduceStopsAtFirstError: a batch the agent refuses ends the command;
// the records acknowledged before it were printed, none after.
func TestProduceStopsAtFirstError(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "small", "--config", "max.message.bytes=100", "--addr", addr)
	var input strings.Builder
	for i := 1; i <= 20; i++ {
		if i == 9 {
			input.WriteString(strings.Repeat("x", 500) + "\n")
			continue
		}
		fmt.Fprintf(&input, "line %d\n", i)
	}
	r := fails(t, input.String(), []string{"produce", "small", "--batch-records", "4", "--print-offsets", "--addr", addr},
		"line 9:", "max.message.bytes", "produced 8 records to small before the error")
	acks := parseOffsets(t, r.stdout)
	if len(acks) != 8 || acks[7].Line != 8 {
		t.Errorf("acked before the error: %+v, want lines 1-8", acks)
	}

	// A line without the key separator is refused like Kafka's console
	// producer does; the lines before it are produced.
	ok(t, "", "topic", "create", "keyed", "--addr", addr)
	r = fails(t, "a:1\nb:2\nnokey\nc:3\n", []string{"produce", "keyed", "--key-separator", ":", "--print-offsets", "--addr", addr},
		`line 3 has no key separator ":"`)
	if acks := parseOffsets(t, r.stdout); len(acks) != 2 || acks[1].Line != 2 {
		t.Errorf("acked before the bad line: %+v", acks)
	}
	if out := ok(t, "", "consume", "keyed", "--print-key", "--addr", addr); out != "a\t1\nb\t2\n" {
		t.Errorf("the topic holds %q, want the two lines before the bad one", out)
	}
}

// TestProduceLinger: a partial batch is sent after a pause in the input,
// without waiting for the input to end: typing lines by hand works.
func TestProduceLinger(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "typed", "--addr", addr)
	pr, pw := io.Pipe()
	stdout := &lockedBuffer{}
	c := &cli{stdin: pr, stdout: stdout, stderr: &lockedBuffer{}}
	done := make(chan int, 1)
	go func() { done <- c.run(t.Context(), []string{"produce", "typed", "--print-offsets", "--addr", addr}) }()
	if _, err := io.WriteString(pw, "one line\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ack of a line while the input is still open", func() bool {
		return stdout.String() == `{"line":1,"partition":0,"offset":0}`+"\n"
	})
	pw.Close()
	if code := <-done; code != 0 {
		t.Errorf("produce: exit %d: %s", code, c.stderr)
	}
}

// TestProduceLarge pushes enough records through the pipelined stream to
// keep many requests in flight, and checks every line is acked once, in order.
func TestProduceLarge(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "bulk", "--partitions", "3", "--addr", addr)
	const n = 20000
	var input strings.Builder
	for i := range n {
		fmt.Fprintf(&input, "k%d,value %d\n", i%100, i)
	}
	r := strata(t, input.String(), "produce", "bulk", "--key-separator", ",", "--batch-records", "100", "--batch-bytes", "2KiB", "--print-offsets", "--addr", addr)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	acks := parseOffsets(t, r.stdout)
	if len(acks) != n {
		t.Fatalf("%d acks for %d lines", len(acks), n)
	}
	for i, a := range acks {
		if a.Line != i+1 {
			t.Fatalf("ack %d is for line %d", i, a.Line)
		}
	}
	d := describe(t, addr, "bulk")
	var total int64
	for _, p := range d.Partitions {
		total += p.Records
	}
	if total != n {
		t.Errorf("topic holds %d records, want %d", total, n)
	}
	if got := strings.Count(ok(t, "", "consume", "bulk", "--addr", addr), "\n"); got != n {
		t.Errorf("consume read %d records, want %d", got, n)
	}
}

// TestProduceIdempotentFlag: --idempotent=false sends plain requests, and
// both modes write the lines in order.
func TestProduceIdempotentFlag(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "modes", "--partitions", "1", "--addr", addr)
	for _, flag := range []string{"--idempotent=true", "--idempotent=false"} {
		r := strata(t, "a\nb\nc\n", "produce", "modes", flag, "--print-offsets", "--addr", addr)
		if r.code != 0 {
			t.Fatalf("produce %s: %s", flag, r.stderr)
		}
		if acks := parseOffsets(t, r.stdout); len(acks) != 3 || acks[2].Offset != acks[0].Offset+2 {
			t.Fatalf("produce %s acked %+v", flag, acks)
		}
	}
	if out := ok(t, "", "consume", "modes", "--addr", addr); out != "a\nb\nc\na\nb\nc\n" {
		t.Fatalf("the topic holds %q", out)
	}
	fails(t, "x\n", []string{"produce", "modes", "--idempotent=maybe", "--addr", addr}, "idempotent")
}
