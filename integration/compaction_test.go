package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/minio/minio-go/v7"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// readAllRecords fetches a partition from the log start to the high
// watermark in small steps.
func readAllRecords(t *testing.T, c clients, topic string) []*stratav1.ConsumedRecord {
	t.Helper()
	var out []*stratav1.ConsumedRecord
	for off := int64(0); ; {
		resp, err := c.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: topic, Offset: off, MaxBytes: 2000}))
		if err != nil {
			t.Fatalf("fetch %s at %d: %v", topic, off, err)
		}
		out = append(out, resp.Msg.Records...)
		if resp.Msg.NextOffset >= resp.Msg.HighWatermark {
			return out
		}
		off = resp.Msg.NextOffset
	}
}

// describePartition0 is DescribeTopic's first partition.
func describePartition0(t *testing.T, c clients, topic string) *stratav1.PartitionInfo {
	t.Helper()
	desc, err := c.admin.DescribeTopic(t.Context(), connect.NewRequest(&stratav1.DescribeTopicRequest{Name: topic}))
	if err != nil {
		t.Fatal(err)
	}
	return desc.Msg.Partitions[0]
}

// TestCompactionSurvivesKill kills (SIGKILL) a compacting agent process
// as soon as it logged that it uploaded an archive file, and another as
// soon as it logged its index swap, on MinIO and redis-server (a process
// may get further before the signal lands; agent/compactor_test.go covers
// each step's exact state). Reads stay the same throughout: every
// acknowledged record, once, with its key (null apart from empty), value,
// headers and timestamp. Another agent then finishes the compaction, and
// its janitor deletes what is left: the released segments and an archive
// file that was never swapped in.
func TestCompactionSurvivesKill(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	reader := d.startAgent(t, "reader", "--compaction-interval", "0", "--janitor-interval", "0")
	rc := newClients(reader.url(), protoConnect)

	start := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	steps := []string{"compaction: archive file uploaded", "compaction: index swapped"}
	want := map[string][]*stratav1.ConsumedRecord{}
	for i := range steps {
		topic := fmt.Sprintf("kill-%d", i)
		// Not archived until its step comes: one compactor, one topic.
		mustCLI(t, nil, "topic", "create", topic, "--config", "archive.after.ms=-1", "--config", "retention.ms=-1", "--addr", reader.url())
		for b := range 8 {
			var recs []*stratav1.Record
			for r := range 5 {
				n := b*5 + r
				rec := &stratav1.Record{Partition: ptr[int32](0), Value: []byte(fmt.Sprintf("v%d", n)),
					Timestamp: timestamppb.New(start.Add(time.Duration(1000*n-3000*(n%3)) * time.Millisecond))}
				switch n % 3 {
				case 0:
					rec.Key = []byte{}
				case 1:
					rec.Key = []byte(fmt.Sprintf("k%d", n))
					rec.Headers = []*stratav1.Header{{Key: "h", Value: []byte("x")}, {Key: "h"}}
				}
				if n%7 == 0 {
					rec.Value = nil
				}
				recs = append(recs, rec)
			}
			if _, err := rc.producer.Produce(t.Context(), connect.NewRequest(&stratav1.ProduceRequest{
				Topics: []*stratav1.TopicRecords{{Topic: topic, Records: recs}}})); err != nil {
				t.Fatal(err)
			}
		}
		want[topic] = readAllRecords(t, rc, topic)
		if len(want[topic]) != 40 {
			t.Fatalf("%s: read %d records, want 40", topic, len(want[topic]))
		}
	}
	same := func(when, topic string, c clients) {
		t.Helper()
		got := readAllRecords(t, c, topic)
		if !slices.EqualFunc(got, want[topic], func(a, b *stratav1.ConsumedRecord) bool { return proto.Equal(a, b) }) {
			t.Fatalf("%s: %s reads\n%v\nwant\n%v", when, topic, got, want[topic])
		}
	}

	for i, step := range steps {
		topic := fmt.Sprintf("kill-%d", i)
		mustCLI(t, nil, "topic", "alter", topic, "--config", "archive.after.ms=1", "--addr", reader.url())
		c := d.startAgent(t, fmt.Sprintf("compactor-%d", i), "--compaction-interval", "100ms", "--janitor-interval", "0",
			"--log-level", "debug", "--log-format", "text")
		line := fmt.Sprintf("msg=%q topic=%s", step, topic)
		if !waitFor(60*time.Second, func() bool { return strings.Contains(c.log(), line) }) {
			t.Fatalf("compactor-%d never logged %s:\n%s", i, line, c.log())
		}
		c.kill()
		same("after a kill at "+step, topic, rc)
	}

	// The kill lands at or after its step: a compactor may get further
	// first. A file uploaded and never swapped in, for sure: a copy of an
	// archive file under a key of other offsets.
	var orphan string
	for _, k := range d.objectKeys(t) {
		if strings.Contains(k, "/archive/topic=kill-0/") {
			orphan = strings.Replace(k, "0000000000000000000-", "0000000000000000007-", 1)
			if _, err := d.minio.CopyObject(t.Context(), minio.CopyDestOptions{Bucket: d.bucket, Object: orphan},
				minio.CopySrcOptions{Bucket: d.bucket, Object: k}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if orphan == "" {
		t.Fatalf("no archive file of kill-0 in %v", d.objectKeys(t))
	}

	// Another agent finishes, once the killed ones' leases expired (a
	// minute) and its janitor deleted the file that was never swapped in
	// (past the shortest orphan grace the agent accepts), whose key the new
	// file of the same offsets needs; the janitor also deletes the
	// released segments.
	fin := d.startAgent(t, "finisher", "--compaction-interval", "200ms", "--janitor-interval", "500ms",
		"--commit-timeout", "1s", "--orphan-grace", "62s", "--unreferenced-grace", "0s")
	fc := newClients(fin.url(), protoConnect)
	for topic := range want {
		var p *stratav1.PartitionInfo
		if !waitFor(4*time.Minute, func() bool {
			p = describePartition0(t, fc, topic)
			return p.ArchiveEndOffset == p.HighWatermark && p.ArchivedBytes == p.Bytes
		}) {
			t.Fatalf("%s not archived: %v\n%s", topic, p, fin.log())
		}
		same("after the compaction finished", topic, fc)
	}
	archived := func() (segs, files []string) {
		for _, k := range d.objectKeys(t) {
			switch {
			case strings.HasPrefix(k, d.prefix+"/segments/"):
				segs = append(segs, k)
			case strings.HasPrefix(k, d.prefix+"/archive/"):
				files = append(files, k)
			}
		}
		return segs, files
	}
	var segs, files []string
	if !waitFor(3*time.Minute, func() bool {
		segs, files = archived()
		return len(segs) == 0 && len(files) == len(want)
	}) {
		t.Fatalf("left: segments %v, archive files %v; want no segments and one file per topic\n%s", segs, files, fin.log())
	}
	cold := d.startAgent(t, "cold", "--compaction-interval", "0", "--janitor-interval", "0")
	cc := newClients(cold.url(), protoConnect)
	for topic := range want {
		same("after the janitor", topic, cc)
	}
}
