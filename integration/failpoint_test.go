package integration

// Crash tests of compaction and garbage collection: an agent process armed
// with a failpoint (internal/failpoint, STRATA_FAILPOINTS) kills itself
// with SIGKILL between two exact steps, on MinIO and redis-server. After
// each kill, reads are what they were (every acknowledged record once, at
// its offset, with its key, null apart from empty, value, headers and
// timestamp); another agent finishes the work, and what the dead one left
// (an archive file never swapped in, released segments, index references to
// a deleted object) is gone later, as a listing of the bucket and a scan of
// the index show.

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/internal/failpoint"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// gcFlags make garbage collection as quick as the agent allows: the
// shortest orphan grace it accepts (--commit-timeout plus a minute, and a
// bit) and no grace for released objects.
var gcFlags = []string{"--janitor-interval", "500ms", "--commit-timeout", "1s", "--orphan-grace", "62s", "--unreferenced-grace", "0s"}

// startAgentArmed is startAgent with failpoints armed in its environment.
func (d *deployment) startAgentArmed(t testing.TB, name, failpoints string, extra ...string) *server {
	t.Helper()
	return startServer(t, name, func(addr string) ([]string, []string) {
		args := []string{"agent",
			"--listen", addr,
			"--admin-listen", "",
			"--store", d.storeURL,
			"--index", d.indexURL,
			"--flush-interval", "50ms",
			"--agent-id", name,
		}
		return append(args, extra...), childEnv(append(d.credentialsEnv(), failpoint.EnvVar+"="+failpoints)...)
	})
}

// waitKilledAt waits for the process to die by SIGKILL at the failpoint.
func waitKilledAt(t *testing.T, p *server, point string, timeout time.Duration) {
	t.Helper()
	if !waitFor(timeout, p.exited) {
		t.Fatalf("%s still running after %v; never reached %s", p.name, timeout, point)
	}
	var exit *exec.ExitError
	if !errors.As(p.waitErr, &exit) {
		t.Fatalf("%s exited with %v, want SIGKILL at %s", p.name, p.waitErr, point)
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s exited with %v, want SIGKILL at %s", p.name, p.waitErr, point)
	}
	if !strings.Contains(p.log(), "failpoint "+point+": SIGKILL") {
		t.Fatalf("%s was killed, but not by failpoint %s", p.name, point)
	}
}

// produceMixed produces 40 records to partition 0 of topic in 8 produces (8
// segments), an hour old, with empty and null keys, null values, headers
// with null values and timestamps out of order, and returns what a fetch of
// the partition reads back.
func produceMixed(t *testing.T, c clients, topic string) []*stratav1.ConsumedRecord {
	t.Helper()
	start := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
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
		if _, err := c.producer.Produce(t.Context(), connect.NewRequest(&stratav1.ProduceRequest{
			Topics: []*stratav1.TopicRecords{{Topic: topic, Records: recs}}})); err != nil {
			t.Fatal(err)
		}
	}
	got := readAllRecords(t, c, topic)
	if len(got) != 40 {
		t.Fatalf("%s: read %d records, want 40", topic, len(got))
	}
	return got
}

// sameRecords fails the test unless the partition reads want exactly.
func sameRecords(t *testing.T, when, topic string, c clients, want []*stratav1.ConsumedRecord) {
	t.Helper()
	got := readAllRecords(t, c, topic)
	if !slices.EqualFunc(got, want, func(a, b *stratav1.ConsumedRecord) bool { return proto.Equal(a, b) }) {
		t.Fatalf("%s: %s reads\n%v\nwant\n%v", when, topic, got, want)
	}
}

// objectsUnder lists the deployment's objects under prefix (after the
// deployment's own prefix), with their modification times.
func (d *deployment) objectsUnder(t *testing.T, prefix string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	for obj := range d.minio.ListObjects(t.Context(), d.bucket, minio.ListObjectsOptions{Prefix: d.prefix + "/" + prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list bucket %s: %v", d.bucket, obj.Err)
		}
		out[obj.Key] = obj.LastModified
	}
	return out
}

// redisClient is a client of the deployment's index database.
func (d *deployment) redisClient(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(d.indexURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// indexMentions returns the index keys whose name, members or fields
// contain s (a segment's id): what the index still knows of the segment.
func indexMentions(t *testing.T, rdb *redis.Client, s string) []string {
	t.Helper()
	ctx := t.Context()
	var out []string
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if strings.Contains(k, s) {
			out = append(out, k)
			continue
		}
		var members []string
		var err error
		switch typ, _ := rdb.Type(ctx, k).Result(); typ {
		case "zset":
			members, err = rdb.ZRange(ctx, k, 0, -1).Result()
		case "hash":
			members, err = rdb.HKeys(ctx, k).Result()
		case "set":
			members, err = rdb.SMembers(ctx, k).Result()
		}
		if err != nil {
			t.Fatalf("read index key %s: %v", k, err)
		}
		if slices.ContainsFunc(members, func(m string) bool { return strings.Contains(m, s) }) {
			out = append(out, k)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan the index: %v", err)
	}
	return out
}

// archivedWhole waits until the partition is all archive.
func archivedWhole(t *testing.T, c clients, topic string, timeout time.Duration) {
	t.Helper()
	var p *stratav1.PartitionInfo
	if !waitFor(timeout, func() bool {
		p = describePartition0(t, c, topic)
		return p.HighWatermark > 0 && p.ArchiveEndOffset == p.HighWatermark && p.ArchivedBytes == p.Bytes
	}) {
		t.Fatalf("%s not archived within %v: %v", topic, timeout, p)
	}
}

// TestCompactionKilledAfterUpload: the compactor dies after uploading its
// Parquet file and before the index swap. The index still points at the
// segments; another agent, once the dead one's lease expired and its
// janitor deleted the file nobody points at (past --orphan-grace), uploads
// the same range afresh and swaps it in, and the segments go.
func TestCompactionKilledAfterUpload(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	reader := d.startAgent(t, "reader", "--compaction-interval", "0", "--janitor-interval", "0")
	rc := newClients(reader.url(), protoConnect)
	const topic = "killed-after-upload"
	mustCLI(t, nil, "topic", "create", topic, "--config", "archive.after.ms=-1", "--config", "retention.ms=-1", "--addr", reader.url())
	want := produceMixed(t, rc, topic)
	segments := d.objectsUnder(t, "segments/")

	victim := d.startAgentArmed(t, "victim", failpoint.CompactionAfterUpload, "--compaction-interval", "100ms", "--janitor-interval", "0")
	mustCLI(t, nil, "topic", "alter", topic, "--config", "archive.after.ms=1", "--addr", reader.url())
	waitKilledAt(t, victim, failpoint.CompactionAfterUpload, 2*time.Minute)

	sameRecords(t, "after the kill", topic, rc, want)
	if p := describePartition0(t, rc, topic); p.ArchiveEndOffset != 0 || p.ArchivedBytes != 0 {
		t.Fatalf("after a kill before the swap the index shows archived data: %v", p)
	}
	orphans := d.objectsUnder(t, "archive/topic="+topic+"/")
	if len(orphans) == 0 {
		t.Fatal("no archive file uploaded before the kill")
	}
	if got := d.objectsUnder(t, "segments/"); len(got) != len(segments) {
		t.Fatalf("segments after the kill: %d, want the %d produced", len(got), len(segments))
	}

	fin := d.startAgent(t, "finisher", append([]string{"--compaction-interval", "200ms"}, gcFlags...)...)
	fc := newClients(fin.url(), protoConnect)
	archivedWhole(t, fc, topic, 4*time.Minute)
	sameRecords(t, "after another agent compacted", topic, fc, want)

	var segs, files map[string]time.Time
	if !waitFor(3*time.Minute, func() bool {
		segs, files = d.objectsUnder(t, "segments/"), d.objectsUnder(t, "archive/")
		return len(segs) == 0
	}) {
		t.Fatalf("segments left %v after the finisher's janitor ran for 3 minutes", segs)
	}
	// The dead job's files went (an orphan past its grace), and the
	// finisher's, of the same range and so of the same keys, came later.
	for k, at := range orphans {
		if now, ok := files[k]; !ok || !now.After(at) {
			t.Errorf("archive file %s: uploaded at %v before the kill, now %v (present %v); want it deleted and uploaded again", k, at, now, ok)
		}
	}
	if len(files) != len(orphans) {
		t.Errorf("archive files %v, want %d", files, len(orphans))
	}
	cold := d.startAgent(t, "cold", "--compaction-interval", "0", "--janitor-interval", "0")
	sameRecords(t, "after the janitor", topic, newClients(cold.url(), protoConnect), want)
}

// TestCompactionKilledAfterSwap: the compactor dies right after its index
// swap, holding its lease. Reads come from the archive; the segments the
// swap released are deleted by another agent's janitor; the archive file
// stays as it was.
func TestCompactionKilledAfterSwap(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	reader := d.startAgent(t, "reader", "--compaction-interval", "0", "--janitor-interval", "0")
	rc := newClients(reader.url(), protoConnect)
	const topic = "killed-after-swap"
	mustCLI(t, nil, "topic", "create", topic, "--config", "archive.after.ms=-1", "--config", "retention.ms=-1", "--addr", reader.url())
	want := produceMixed(t, rc, topic)

	victim := d.startAgentArmed(t, "victim", failpoint.CompactionAfterSwap, "--compaction-interval", "100ms", "--janitor-interval", "0")
	mustCLI(t, nil, "topic", "alter", topic, "--config", "archive.after.ms=1", "--addr", reader.url())
	waitKilledAt(t, victim, failpoint.CompactionAfterSwap, 2*time.Minute)

	archivedWhole(t, rc, topic, 10*time.Second)
	sameRecords(t, "after the kill", topic, rc, want)
	files := d.objectsUnder(t, "archive/")
	if len(files) != 1 {
		t.Fatalf("archive files after the swap: %v, want 1", files)
	}
	if segs := d.objectsUnder(t, "segments/"); len(segs) != 8 {
		t.Fatalf("segments after the swap: %d, want the 8 produced, released but not deleted", len(segs))
	}

	fin := d.startAgent(t, "finisher", append([]string{"--compaction-interval", "200ms"}, gcFlags...)...)
	fc := newClients(fin.url(), protoConnect)
	var segs map[string]time.Time
	if !waitFor(3*time.Minute, func() bool {
		segs = d.objectsUnder(t, "segments/")
		return len(segs) == 0
	}) {
		t.Fatalf("segments left %v after the finisher's janitor ran for 3 minutes", segs)
	}
	if now := d.objectsUnder(t, "archive/"); fmt.Sprint(now) != fmt.Sprint(files) {
		t.Fatalf("archive files %v, want %v unchanged", now, files)
	}
	sameRecords(t, "after the janitor", topic, fc, want)
}

// TestJanitorKilledAfterDelete: the janitor dies between deleting a
// released segment and removing the index's references to it. Nothing
// reads the segment any more (the archive serves its offsets); another
// agent's janitor, once the dead one's lease expired, finds the object
// gone, removes the references, and deletes the other segments.
func TestJanitorKilledAfterDelete(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	compactor := d.startAgent(t, "compactor", "--compaction-interval", "100ms", "--janitor-interval", "0")
	cc := newClients(compactor.url(), protoConnect)
	const topic = "janitor-killed"
	mustCLI(t, nil, "topic", "create", topic, "--config", "archive.after.ms=-1", "--config", "retention.ms=-1", "--addr", compactor.url())
	want := produceMixed(t, cc, topic)
	segments := d.objectsUnder(t, "segments/")
	mustCLI(t, nil, "topic", "alter", topic, "--config", "archive.after.ms=1", "--addr", compactor.url())
	archivedWhole(t, cc, topic, 2*time.Minute)
	compactor.stop()

	victim := d.startAgentArmed(t, "victim", failpoint.JanitorAfterDelete, append([]string{"--compaction-interval", "0"}, gcFlags...)...)
	vc := newClients(victim.url(), protoConnect)
	sameRecords(t, "before the janitor", topic, vc, want)
	waitKilledAt(t, victim, failpoint.JanitorAfterDelete, 3*time.Minute)

	left := d.objectsUnder(t, "segments/")
	if len(left) != len(segments)-1 {
		t.Fatalf("segments after the kill: %d of %d, want one deleted", len(left), len(segments))
	}
	var deleted string
	for k := range segments {
		if _, ok := left[k]; !ok {
			deleted = strings.TrimSuffix(k[strings.LastIndex(k, "/")+1:], ".seg")
		}
	}
	rdb := d.redisClient(t)
	if m := indexMentions(t, rdb, deleted); len(m) == 0 {
		t.Fatalf("the index forgot segment %s before the kill; the failpoint is not between delete and forget", deleted)
	}

	fin := d.startAgent(t, "finisher", append([]string{"--compaction-interval", "0"}, gcFlags...)...)
	fc := newClients(fin.url(), protoConnect)
	sameRecords(t, "after the kill", topic, fc, want)
	if !waitFor(3*time.Minute, func() bool {
		left = d.objectsUnder(t, "segments/")
		return len(left) == 0 && len(indexMentions(t, rdb, deleted)) == 0
	}) {
		t.Fatalf("after 3 minutes of the finisher's janitor: segments %v, index keys naming %s: %v", left, deleted, indexMentions(t, rdb, deleted))
	}
	for k := range segments {
		id := strings.TrimSuffix(k[strings.LastIndex(k, "/")+1:], ".seg")
		if m := indexMentions(t, rdb, id); len(m) != 0 {
			t.Errorf("segment %s deleted, but the index still names it in %v", id, m)
		}
	}
	if files := d.objectsUnder(t, "archive/"); len(files) != 1 {
		t.Errorf("archive files %v, want the 1 that serves the partition", files)
	}
	sameRecords(t, "after the janitor", topic, fc, want)
}
