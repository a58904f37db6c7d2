package integration

// `strata dev` as a user runs it: a process on a data directory, driven with
// the CLI, stopped (SIGTERM) or killed (SIGKILL) and started again on the
// same directory without losing an acked record.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// printedOffset is one line of `strata produce --print-offsets`.
type printedOffset struct {
	Line      int   `json:"line"`
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

// consumedJSON is one line of `strata consume --output json`.
type consumedJSON struct {
	Topic       string    `json:"topic"`
	Partition   int32     `json:"partition"`
	Offset      int64     `json:"offset"`
	Timestamp   time.Time `json:"timestamp"`
	Key         *string   `json:"key"`
	KeyBase64   []byte    `json:"key_base64"`
	Value       *string   `json:"value"`
	ValueBase64 []byte    `json:"value_base64"`
	Headers     []struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	} `json:"headers"`
}

// parseJSONLines decodes every line of out into a T, strictly: unknown
// fields are an error, so a change of the output format shows.
func parseJSONLines[T any](t testing.TB, what, out string) []T {
	t.Helper()
	var all []T
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		all = append(all, parseJSONLine[T](t, what, sc.Text()))
	}
	return all
}

func parseJSONLine[T any](t testing.TB, what, line string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: line %q: %v", what, line, err)
	}
	return v
}

// devLine is one input line of the dev tests and where it landed.
type devLine struct {
	key, value string
	partition  int32
	offset     int64
}

func TestDevRestart(t *testing.T) {
	t.Parallel()
	t.Run("SIGTERM", func(t *testing.T) {
		t.Parallel()
		testDevRestart(t, false)
	})
	t.Run("SIGKILL", func(t *testing.T) {
		t.Parallel()
		testDevRestart(t, true)
	})
}

// testDevRestart writes 100 lines with `strata produce`, stops (or kills)
// the dev broker, starts it again on the same directory and reads them back
// with `strata consume`: same records, same offsets; then new records
// continue the offsets and reach a following consumer.
func testDevRestart(t *testing.T, kill bool) {
	const partitions = 3
	dir := t.TempDir()
	dev := startDev(t, "dev-1", dir)
	topic := "events"
	out := mustCLI(t, nil, "topic", "create", topic, "--partitions", fmt.Sprint(partitions), "--addr", dev.url())
	t.Logf("strata topic create: %s", oneLine(out))

	lines := make([]devLine, 100)
	var input strings.Builder
	for i := range lines {
		lines[i] = devLine{key: fmt.Sprintf("user-%d", i%11), value: fmt.Sprintf("event %03d: ünïcode ok", i)}
		fmt.Fprintf(&input, "%s|%s\n", lines[i].key, lines[i].value)
	}
	produced := produceLines(t, dev, topic, partitions, strings.NewReader(input.String()), lines, "--key-separator", "|")

	if kill {
		dev.kill()
	} else {
		dev.stop()
	}
	dev = startDev(t, "dev-2", dir)

	out = mustCLI(t, nil, "consume", topic, "--addr", dev.url(), "--from", "earliest", "-n", "100", "--output", "json")
	got := parseJSONLines[consumedJSON](t, "strata consume --output json", out)
	checkConsumed(t, topic, got, produced)

	// Offsets go on after the restart, and a following consumer sees both
	// the old records and the new ones (read from --file this time).
	follow := startStreamingCLI(t, "consume", topic, "--addr", dev.url(), "--from", "earliest", "--follow", "--output", "json")
	more := make([]devLine, 10)
	var moreInput strings.Builder
	for i := range more {
		more[i] = devLine{key: fmt.Sprintf("user-%d", i%11), value: fmt.Sprintf("after restart %d", i)}
		fmt.Fprintf(&moreInput, "%s|%s\n", more[i].key, more[i].value)
	}
	file := filepath.Join(t.TempDir(), "more.txt")
	if err := os.WriteFile(file, []byte(moreInput.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	counts := make([]int64, partitions)
	for _, l := range produced {
		counts[l.partition]++
	}
	moreProduced := produceLines(t, dev, topic, partitions, nil, more, "--key-separator", "|", "--file", file)
	for _, l := range moreProduced {
		if l.offset != counts[l.partition] {
			t.Errorf("after the restart, %q went to %d/%d; the partition held %d records, so want offset %d",
				l.value, l.partition, l.offset, counts[l.partition], counts[l.partition])
		}
		counts[l.partition]++
	}
	all := append(append([]devLine(nil), produced...), moreProduced...)
	var followed []consumedJSON
	deadline := time.After(20 * time.Second)
	for len(followed) < len(all) {
		select {
		case line, ok := <-follow.lines:
			if !ok {
				t.Fatalf("strata consume --follow ended after %d of %d records: %v\nstderr: %s", len(followed), len(all), follow.err, follow.stderr())
			}
			followed = append(followed, parseJSONLine[consumedJSON](t, "strata consume --follow", line))
		case <-deadline:
			t.Fatalf("strata consume --follow printed %d of %d records in 20s", len(followed), len(all))
		}
	}
	checkConsumed(t, topic, followed, all)
	dev.stop()
	// The follower's stream ends with the broker, and it says so.
	select {
	case <-follow.done:
		t.Logf("strata consume --follow after the broker stopped: %v; stderr: %s", follow.err, oneLine(follow.stderr()))
	case <-time.After(15 * time.Second):
		t.Errorf("strata consume --follow still running 15s after the broker it follows exited")
	}
}

// produceLines runs `strata produce --print-offsets` and checks what it
// printed: one line per input line, in input order, each where Kafka's
// partitioner puts its key, the offsets of a partition consecutive.
func produceLines(t *testing.T, dev *server, topic string, partitions int32, stdin io.Reader, lines []devLine, extra ...string) []devLine {
	t.Helper()
	args := append([]string{"produce", topic, "--addr", dev.url(), "--print-offsets"}, extra...)
	r := runCLI(t, stdin, args...)
	if r.err != nil {
		t.Fatalf("strata %s: %v\nstdout:\n%s\nstderr:\n%s", shellJoin(args), r.err, r.stdout, r.stderr)
	}
	printed := parseJSONLines[printedOffset](t, "strata produce --print-offsets", r.stdout)
	if len(printed) != len(lines) {
		t.Fatalf("strata produce --print-offsets printed %d lines for %d input lines:\n%s", len(printed), len(lines), r.stdout)
	}
	out := make([]devLine, len(lines))
	last := map[int32]int64{}
	for i, p := range printed {
		if p.Line != i+1 {
			t.Fatalf("strata produce --print-offsets: output line %d is for input line %d; want input order, 1-based", i+1, p.Line)
		}
		l := lines[i]
		if want := kafkaPartition([]byte(l.key), partitions); p.Partition != want {
			t.Fatalf("line %d (key %q) went to partition %d; Kafka's partitioner puts it in %d", p.Line, l.key, p.Partition, want)
		}
		if prev, ok := last[p.Partition]; ok && p.Offset != prev+1 {
			t.Fatalf("line %d: offset %d in partition %d after offset %d: not consecutive", p.Line, p.Offset, p.Partition, prev)
		}
		last[p.Partition] = p.Offset
		l.partition, l.offset = p.Partition, p.Offset
		out[i] = l
	}
	return out
}

// checkConsumed checks the consumed records are exactly the produced lines,
// at the offsets produce printed, in offset order per partition.
func checkConsumed(t *testing.T, topic string, got []consumedJSON, want []devLine) {
	t.Helper()
	type at struct {
		p int32
		o int64
	}
	byOffset := map[at]devLine{}
	for _, l := range want {
		byOffset[at{l.partition, l.offset}] = l
	}
	if len(got) != len(want) {
		t.Errorf("consumed %d records, want %d", len(got), len(want))
	}
	seen := map[at]bool{}
	last := map[int32]int64{}
	for _, c := range got {
		k := at{c.Partition, c.Offset}
		l, ok := byOffset[k]
		switch {
		case !ok:
			t.Errorf("consumed a record at %d/%d, where none was produced: %+v", c.Partition, c.Offset, c)
			continue
		case seen[k]:
			t.Errorf("consumed %d/%d twice", c.Partition, c.Offset)
		case c.Topic != topic:
			t.Errorf("%d/%d: topic %q, want %q", c.Partition, c.Offset, c.Topic, topic)
		case c.Key == nil || *c.Key != l.key || c.KeyBase64 != nil:
			t.Errorf("%d/%d: key %v (base64 %q), want %q", c.Partition, c.Offset, c.Key, c.KeyBase64, l.key)
		case c.Value == nil || *c.Value != l.value || c.ValueBase64 != nil:
			t.Errorf("%d/%d: value %v (base64 %q), want %q", c.Partition, c.Offset, c.Value, c.ValueBase64, l.value)
		case c.Timestamp.IsZero() || time.Since(c.Timestamp) > time.Hour || time.Until(c.Timestamp) > time.Minute:
			t.Errorf("%d/%d: timestamp %s, want about now (the produce time)", c.Partition, c.Offset, c.Timestamp)
		case len(c.Headers) != 0:
			t.Errorf("%d/%d: headers %v, want none", c.Partition, c.Offset, c.Headers)
		}
		if prev, ok := last[c.Partition]; ok && c.Offset <= prev {
			t.Errorf("partition %d: offset %d printed after %d", c.Partition, c.Offset, prev)
		}
		last[c.Partition] = c.Offset
		seen[k] = true
	}
	for k, l := range byOffset {
		if !seen[k] {
			t.Errorf("%q, acked at %d/%d, was not consumed", l.value, k.p, k.o)
		}
	}
}
